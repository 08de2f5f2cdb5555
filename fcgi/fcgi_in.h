/*
 * fcgi_in: the incremental FastCGI 1.0 record parser for one connection of
 * a responder. It is fed whatever bytes the socket gave, in pieces of any
 * size, and reports what they mean one event at a time; it never blocks and
 * never reads a socket. The grammar of one request:
 *   BEGIN_REQUEST (RESPONDER), PARAMS*, empty PARAMS, STDIN*, empty STDIN
 * all with the same nonzero request id; on a kept connection the next
 * request follows. An ABORT_REQUEST may come at any point.
 *
 * Why not libfcgi's reader (FCGX_Accept_r): it serves one connection at a
 * time and blocks reading it, so a non-blocking worker that multiplexes
 * connections cannot use it, and it trusts the peer's lengths (PARAMS
 * lengths near 2^31 make it overflow or abort, CVE-2025-23016; an
 * FCGI_GET_VALUES naming FCGI_MPXS_CONNS four times overflows a stack
 * buffer). Here every length is checked before every copy. The record
 * layout and constants are libfcgi's own, from <fastcgi.h>.
 *
 * Pure: no I/O, no hidden state; everything lives in struct fcgi_in.
 */
#ifndef AVATAR_FCGI_IN_H
#define AVATAR_FCGI_IN_H

#include <stddef.h>

/*
 * BEGIN_REQUEST and PARAMS records of one request may take at most this
 * many bytes, headers and padding included. nginx and lighttpd send a few
 * hundred bytes for an avatar GET and cap a request's headers at 8 kB by
 * default; Apache sends at most its LimitRequestFieldSize per header.
 */
#define FCGI_IN_PARAMS_MAX (64 * 1024)

enum fcgi_in_ev {
	FCGI_IN_MORE,	/* every usable byte is used; feed more */
	FCGI_IN_PARAMS,	/* PARAMS ended; fcgi_in_param() walks the pairs */
	FCGI_IN_STDIN,	/* data, len: the next piece of the request body */
	FCGI_IN_END,	/* the empty STDIN record: the request is whole */
	FCGI_IN_ABORT,	/* ABORT_REQUEST for the current request */
	FCGI_IN_BAD,	/* a protocol error: close the connection; why says why */
};

struct fcgi_in_event {
	enum fcgi_in_ev type;
	const unsigned char *data;	/* FCGI_IN_STDIN: points into the fed bytes */
	size_t len;
	const char *why;		/* FCGI_IN_BAD: a static string for the log */
};

struct fcgi_in {
	/* The request. */
	int phase;		/* private: where in the grammar */
	unsigned id;		/* requestId of the current request, 0 for none */
	int keep_conn;		/* FCGI_KEEP_CONN was set in BEGIN_REQUEST */
	/* The record being read (private). */
	unsigned type, rid;
	size_t cleft, pleft;	/* content and padding bytes still to come */
	int in_record;
	size_t head_bytes;	/* BEGIN_REQUEST and PARAMS bytes so far */
	/* The PARAMS stream of the current request, checked as it grows. */
	unsigned char *params;
	size_t plen, pcap, pchecked;
};

void fcgi_in_init(struct fcgi_in *p);
void fcgi_in_free(struct fcgi_in *p);

/*
 * Forgets the finished (or aborted) request so the next one may begin on
 * the same connection. The parser stays where it is in the byte stream.
 */
void fcgi_in_next_request(struct fcgi_in *p);

/*
 * Reads buf[0..len) up to the next event and returns how many bytes it
 * used; bytes not used must be given again, with more after them, at the
 * next call. FCGI_IN_MORE with fewer than len bytes used means the rest is
 * an incomplete record header, or, once the request is whole (after
 * FCGI_IN_END, until fcgi_in_next_request), bytes of what comes next:
 * then only an ABORT_REQUEST for the current request is taken.
 */
size_t fcgi_in_feed(struct fcgi_in *p, const unsigned char *buf, size_t len,
    struct fcgi_in_event *ev);

/*
 * Walks the name-value pairs of the PARAMS stream after FCGI_IN_PARAMS,
 * until the next fcgi_in_next_request. *pos starts at 0. Returns 1 and
 * sets the pair (not NUL-terminated), or 0 after the last.
 */
int fcgi_in_param(const struct fcgi_in *p, size_t *pos, const char **name,
    size_t *nlen, const char **value, size_t *vlen);

/* Bytes of the PARAMS stream (an upper bound of what its values need). */
size_t fcgi_in_params_len(const struct fcgi_in *p);

#endif
