/*
 * resp: writes a CGI-style response (header lines, blank line, body)
 * through a sink, so tests capture it in memory and the server sends it as
 * FastCGI STDOUT. The whole header block is decided before the first byte
 * goes out. This file never opens a file: bodies arrive as bytes or as an
 * already opened descriptor.
 */
#ifndef AVATAR_RESP_H
#define AVATAR_RESP_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "reqparse.h"
#include "resolve.h"

struct sink {
	/* Takes a copy of buf (or sends it now); returns 0 or -1. */
	int (*write)(void *ctx, const void *buf, size_t len);
	/* Like write, for a response body that stays valid and unchanged
	 * until the sink's owner has tried to send it once (it copies what
	 * is left then), so it may be sent uncopied. */
	int (*body)(void *ctx, const void *buf, size_t len);
	/* The body is the first size bytes of the open file fd; the sink
	 * takes its own reference, the caller still closes fd. */
	int (*file)(void *ctx, int fd, uint64_t size);
	void *ctx;
};

/* HTTP status codes this responder sends. */
enum resp_status {
	RESP_OK = 200,
	RESP_CREATED = 201,
	RESP_NO_CONTENT = 204,
	RESP_NOT_MODIFIED = 304,
	RESP_BAD_REQUEST = 400,
	RESP_FORBIDDEN = 403,
	RESP_NOT_FOUND = 404,
	RESP_METHOD_NOT_ALLOWED = 405,
	RESP_LENGTH_REQUIRED = 411,
	RESP_PAYLOAD_TOO_LARGE = 413,
	RESP_UNSUPPORTED_MEDIA_TYPE = 415,
	RESP_UNPROCESSABLE = 422,
	RESP_SERVER_ERROR = 500,
	RESP_UNAVAILABLE = 503,
};

/*
 * Every answer carries Cache-Control (the policy is in resp.c), nosniff
 * and, for avatars, the cross-origin headers (--cors-origin).
 *
 * Answers with avatar a, or 304 when the request's validators match, in
 * every mode. flags: RESP_SHORT_LIFE when a stands in for what was asked
 * (the default avatar for a missing one, or the original while a variant
 * is being made), so it gets the short lifetime; RESP_VARY_ACCEPT when the
 * file was chosen by the Accept header. Returns the status sent, or -1
 * when the sink failed: the caller must then abort the connection, since
 * the promised Content-Length cannot be kept (the same holds when a file
 * handed to sink->file ends early while it is sent).
 */
#define RESP_SHORT_LIFE 1u
#define RESP_VARY_ACCEPT 2u
int resp_avatar(const struct conf *c, const struct req *r,
    const struct avatar *a, unsigned flags, struct sink *s);

/* A small non-image answer (404, 405, /status, /metrics). cache_control:
 * NULL for the policy's choice by status. A 405 carries Allow. */
int resp_plain(const struct conf *c, const struct req *r, enum resp_status status,
    const char *content_type, const char *cache_control,
    const char *body, size_t len, struct sink *s);

/* OPTIONS: 204 with Allow, and the CORS preflight answer when the request
 * is one. */
int resp_options(const struct conf *c, const struct req *r, struct sink *s);

#endif
