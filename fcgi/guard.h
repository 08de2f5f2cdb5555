/*
 * guard: validates the FastCGI records of one request before libfcgi reads
 * them. libfcgi 2.4.2 trusts the peer: PARAMS lengths near 2^30 make it
 * abort in Malloc, an FCGI_GET_VALUES naming FCGI_MPXS_CONNS four times
 * overflows a stack buffer, and its reads block forever on a peer that
 * stops mid-record. The server peeks at the bytes a connection has sent and
 * hands it to libfcgi only when this module says a whole, well-formed
 * request is buffered, so libfcgi never blocks and never sees those records.
 * Pure: works on a byte buffer, no I/O.
 */
#ifndef AVATAR_GUARD_H
#define AVATAR_GUARD_H

#include <stddef.h>

/* A request's records may take at most this many bytes. nginx and lighttpd
 * send a few hundred for an avatar GET; URIs are capped by them at 8 kB. */
#define GUARD_MAX (64 * 1024)

enum guard_result {
	GUARD_COMPLETE,	/* a whole request; *used bytes */
	GUARD_MORE,	/* well formed so far; wait for more bytes */
	GUARD_BAD,	/* close the connection; *why says why */
};

enum guard_result guard_check(const unsigned char *buf, size_t len,
    size_t *used, const char **why);

#endif
