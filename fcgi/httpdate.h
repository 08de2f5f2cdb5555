/*
 * httpdate: HTTP dates (RFC 9110 section 5.6.7). Formats IMF-fixdate and
 * parses the three forms a recipient must accept. Pure; no I/O, no locale.
 */
#ifndef AVATAR_HTTPDATE_H
#define AVATAR_HTTPDATE_H

#include <stddef.h>
#include <time.h>

/* "Sun, 06 Nov 1994 08:49:37 GMT" plus NUL. */
#define HTTPDATE_LEN 30

/* Writes t as IMF-fixdate into buf (HTTPDATE_LEN bytes). Returns 0 or -1. */
int httpdate_format(time_t t, char buf[HTTPDATE_LEN]);

/*
 * Parses IMF-fixdate, obsolete RFC 850 and asctime dates. Returns 0 and
 * sets *t, or -1 for anything else (an invalid date must be ignored, not
 * guessed at, per RFC 9110 section 13.1.3).
 */
int httpdate_parse(const char *s, time_t *t);

#endif
