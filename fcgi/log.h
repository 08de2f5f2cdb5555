/*
 * log: one line per event on stderr, "avatar.fcgi[PID]: LEVEL: message".
 * spawn-fcgi, lighttpd and systemd all collect a FastCGI program's stderr,
 * so this is the only log sink. Callers decide whether to log; this module
 * never decides it for them.
 */
#ifndef AVATAR_LOG_H
#define AVATAR_LOG_H

#include <stddef.h>

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Sets the threshold; messages above it are dropped. */
void log_set_level(enum log_level level);
int log_enabled(enum log_level level);
/* Parses "error", "warn", "info" or "debug"; returns -1 for anything else. */
int log_level_parse(const char *name);

/* The x variants do not append strerror(errno), as in OpenBSD's lwarnx. */
void log_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_errx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Start-up errors: prints "avatar.fcgi: message" (no level, no pid: nothing
 * has started yet) to stderr and exits with status 2.
 */
void log_die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/*
 * Copies src into dst for logging with every byte outside printable ASCII
 * (and the backslash) written as \xNN, so request data can never forge a log
 * line or drive a terminal. Output is NUL-terminated and truncated with "..."
 * when it does not fit. Returns dst.
 */
char *log_escape(char *dst, size_t dstlen, const char *src, size_t srclen);

#endif
