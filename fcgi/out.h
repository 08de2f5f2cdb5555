/*
 * out: the response side of FastCGI, written by hand. libfcgi's writer
 * copies into an 8 KiB buffer and makes one write() per 8 KiB, then one
 * more for FCGI_END_REQUEST; here the header block, the body (uncopied,
 * from the cache) and the closing records leave in one writev(). The
 * connection is non-blocking: a peer that stops reading gets the
 * configured timeout, then the connection is dropped.
 */
#ifndef AVATAR_OUT_H
#define AVATAR_OUT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "resp.h"

#define OUT_IOV 64
#define OUT_BUF (16 * 1024)

struct out {
	int fd;
	unsigned request_id;
	int64_t deadline_ms;	/* CLOCK_MONOTONIC */
	int failed;
	struct iovec iov[OUT_IOV];
	int niov;
	size_t blen;
	unsigned char buf[OUT_BUF];	/* copied bytes and record headers */
};

void out_begin(struct out *o, int fd, unsigned request_id, int64_t deadline_ms);
/* A sink whose bytes become FCGI_STDOUT records of this response. */
struct sink out_sink(struct out *o);
/* Adds the empty STDOUT record and FCGI_END_REQUEST and sends everything.
 * Returns 0, or -1 when the peer could not take it in time. */
int out_finish(struct out *o);

/* Builds one 8-byte FastCGI record header. */
void out_header(unsigned char h[8], unsigned type, unsigned request_id, size_t len);

#endif
