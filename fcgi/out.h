/*
 * out: the response side of FastCGI for one connection, written by hand: a
 * queue of what is still to be sent, framed as FCGI_STDOUT records, then
 * the empty STDOUT record and FCGI_END_REQUEST. The header block, the body
 * and the closing records usually leave in one writev(). What the socket
 * cannot take stays queued here, and out_send() is called again when the
 * socket is writable (EPOLLOUT), so a slow reader never stalls a worker:
 *   - bytes given to write() are copied at once;
 *   - a body given to body() is sent uncopied; whatever the first send
 *     could not take is copied by out_keep(), since the cache that holds
 *     it may evict it as soon as another request is served;
 *   - a file given to file() is read chunk by chunk (pread) as the socket
 *     drains; the queue holds its own descriptor.
 * This module never waits and never decides timeouts; the server does.
 */
#ifndef AVATAR_OUT_H
#define AVATAR_OUT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "resp.h"

/* The system calls the queue makes, replaceable by the unit tests. */
struct out_io {
	ssize_t (*writev)(int fd, const struct iovec *iov, int iovcnt);
	ssize_t (*preadv)(int fd, const struct iovec *iov, int iovcnt, off_t off);
};

/* The real ones: sendmsg(MSG_NOSIGNAL) and preadv. */
extern const struct out_io out_io_sys;

#define OUT_SEGS 8
#define OUT_IOV 64

struct out_seg {
	int kind;
	size_t start, end;		/* bytes of stage[] (framed already) */
	const unsigned char *p;		/* body content byte x is p[x - skip] */
	size_t skip;
	unsigned char *own;		/* p's memory when it is ours to free */
	int fd;				/* file body: our own descriptor */
	uint64_t clen;			/* body content bytes */
	uint64_t pos;			/* framed body bytes sent */
};

struct out {
	const struct out_io *io;
	unsigned request_id;
	int failed;			/* a sink call failed: answer cannot be whole */
	int file_error;			/* a file body could not be read whole */
	struct out_seg seg[OUT_SEGS];
	int head, nseg;
	unsigned char *stage;		/* headers, copied bytes, closing records */
	size_t slen, scap;
	unsigned char *chunk;		/* the part of a file being sent, framed */
	const struct out_seg *chunk_seg;	/* the file it belongs to, or NULL */
	uint64_t chunk_from, chunk_to;	/* its framed positions in that segment */
	unsigned char hdr[OUT_IOV / 2][8];	/* record headers of one writev */
};

enum out_status { OUT_DONE, OUT_AGAIN, OUT_FAIL };

void out_init(struct out *o);
/* Releases everything, including queued descriptors. */
void out_free(struct out *o);

/* Starts an empty response to request_id; forgets any earlier one. */
void out_begin(struct out *o, unsigned request_id);
/* A sink whose bytes become FCGI_STDOUT records of this response. */
struct sink out_sink(struct out *o);
/* Queues the empty STDOUT record and FCGI_END_REQUEST. 0, or -1. */
int out_end(struct out *o);
/*
 * Writes as much as fd takes now. *sent: bytes written (progress, for
 * the inactivity timeout). OUT_AGAIN: wait for the socket to be writable;
 * OUT_FAIL: the peer is gone, or a file body ended early (file_error).
 */
enum out_status out_send(struct out *o, int fd, size_t *sent);
/* Copies the unsent part of borrowed bodies; call after the first send. */
int out_keep(struct out *o);
/*
 * FCGI_ABORT_REQUEST during the response: the body stops at the end of
 * the record being sent, and the closing records follow.
 */
void out_abort(struct out *o);
/* Bytes still queued (stage and bodies, framed), for tests and logs. */
uint64_t out_pending(const struct out *o);

/* Builds one 8-byte FastCGI record header. */
void out_header(unsigned char h[8], unsigned type, unsigned request_id, size_t len);

#endif
