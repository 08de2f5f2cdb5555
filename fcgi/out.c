/*
 * out: FCGI_STDOUT records into an iovec, flushed with writev.
 */
#include "out.h"
#include "clock.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>

#define FCGI_END_REQUEST 3
#define FCGI_STDOUT 6
#define FCGI_REQUEST_COMPLETE 0
/* Largest record content that keeps records 8-byte aligned. */
#define MAX_CONTENT 65528

void
out_header(unsigned char h[8], unsigned type, unsigned id, size_t len)
{
	h[0] = 1;
	h[1] = (unsigned char)type;
	h[2] = (unsigned char)(id >> 8);
	h[3] = (unsigned char)id;
	h[4] = (unsigned char)(len >> 8);
	h[5] = (unsigned char)len;
	h[6] = 0;
	h[7] = 0;
}

void
out_begin(struct out *o, int fd, unsigned id, int64_t deadline_ms)
{
	o->fd = fd;
	o->request_id = id;
	o->deadline_ms = deadline_ms;
	o->failed = 0;
	o->niov = 0;
	o->blen = 0;
}

static int
flush(struct out *o)
{
	struct iovec *iov = o->iov;
	int n = o->niov;

	while (n > 0 && !o->failed) {
		ssize_t w = writev(o->fd, iov, n);

		if (w == -1) {
			struct pollfd pfd = { .fd = o->fd, .events = POLLOUT };
			int64_t left;

			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				o->failed = 1;
				break;
			}
			left = o->deadline_ms - clock_ms();
			if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
				o->failed = 1;
			continue;
		}
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	o->niov = 0;
	o->blen = 0;
	return o->failed ? -1 : 0;
}

static void
add_iov(struct out *o, const void *p, size_t len)
{
	/* Merge with the previous entry when contiguous in buf. */
	if (o->niov > 0) {
		struct iovec *last = &o->iov[o->niov - 1];
		if ((const char *)last->iov_base + last->iov_len == (const char *)p) {
			last->iov_len += len;
			return;
		}
	}
	o->iov[o->niov].iov_base = (void *)(uintptr_t)p;
	o->iov[o->niov].iov_len = len;
	o->niov++;
}

/* Room for a record header in buf and two iovec entries, or a flush. */
static int
make_room(struct out *o, size_t copy)
{
	if (o->blen + 8 + copy > sizeof(o->buf) || o->niov + 2 > OUT_IOV)
		return flush(o);
	return 0;
}

static int
put(struct out *o, const void *data, size_t len, int copy)
{
	const unsigned char *p = data;

	if (o->failed)
		return -1;
	while (len > 0) {
		size_t n = len > MAX_CONTENT ? MAX_CONTENT : len;
		int c = copy && n + 8 <= sizeof(o->buf);

		if (make_room(o, c ? n : 0) == -1)
			return -1;
		out_header(o->buf + o->blen, FCGI_STDOUT, o->request_id, n);
		add_iov(o, o->buf + o->blen, 8);
		o->blen += 8;
		if (c) {
			memcpy(o->buf + o->blen, p, n);
			add_iov(o, o->buf + o->blen, n);
			o->blen += n;
		} else {
			add_iov(o, p, n);
			/* The caller may reuse a copied buffer: send now. */
			if (copy && flush(o) == -1)
				return -1;
		}
		p += n;
		len -= n;
	}
	return 0;
}

static int
sink_write(void *ctx, const void *buf, size_t len)
{
	return put(ctx, buf, len, 1);
}

static int
sink_body(void *ctx, const void *buf, size_t len)
{
	return put(ctx, buf, len, 0);
}

struct sink
out_sink(struct out *o)
{
	struct sink s = { sink_write, sink_body, o };
	return s;
}

int
out_finish(struct out *o)
{
	unsigned char *p;

	if (o->failed || make_room(o, 24) == -1)
		return -1;
	p = o->buf + o->blen;
	out_header(p, FCGI_STDOUT, o->request_id, 0);
	out_header(p + 8, FCGI_END_REQUEST, o->request_id, 8);
	/* appStatus 0, protocolStatus FCGI_REQUEST_COMPLETE */
	memset(p + 16, 0, 8);
	p[20] = FCGI_REQUEST_COMPLETE;
	add_iov(o, p, 24);
	o->blen += 24;
	return flush(o);
}
