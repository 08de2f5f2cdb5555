/*
 * out: FCGI_STDOUT records queued per connection and sent with writev as
 * the socket takes them. Bodies are framed on the fly: a body's position
 * counts framed bytes (headers and content), so a partial write can stop
 * anywhere, even inside a record header, and the next call resumes there.
 */
#include "out.h"

#include <errno.h>
#include <fastcgi.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Largest record content that keeps records 8-byte aligned. */
#define MAX_CONTENT 65528
#define FRAME (FCGI_HEADER_LEN + MAX_CONTENT)
/* A file is read this many records at a time (256 KiB). */
#define CHUNK_RECS 4

enum { SEG_STAGE, SEG_MEM, SEG_FILE };

static ssize_t
sys_writev(int fd, const struct iovec *iov, int iovcnt)
{
	/* MSG_NOSIGNAL: a peer gone away is EPIPE, whatever SIGPIPE's
	 * disposition happens to be. */
	struct msghdr m = { .msg_iov = (struct iovec *)(uintptr_t)iov,
	    .msg_iovlen = (size_t)iovcnt };

	return sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
}

const struct out_io out_io_sys = { sys_writev, preadv };

void
out_header(unsigned char h[8], unsigned type, unsigned id, size_t len)
{
	h[0] = FCGI_VERSION_1;
	h[1] = (unsigned char)type;
	h[2] = (unsigned char)(id >> 8);
	h[3] = (unsigned char)id;
	h[4] = (unsigned char)(len >> 8);
	h[5] = (unsigned char)len;
	h[6] = 0;
	h[7] = 0;
}

/* Framed size of a body of clen content bytes. */
static uint64_t
framed(uint64_t clen)
{
	return clen + FCGI_HEADER_LEN * ((clen + MAX_CONTENT - 1) / MAX_CONTENT);
}

/* Content bytes of record k of a body. */
static size_t
rec_len(const struct out_seg *s, uint64_t k)
{
	uint64_t left = s->clen - k * MAX_CONTENT;

	return left < MAX_CONTENT ? (size_t)left : MAX_CONTENT;
}

static uint64_t
seg_left(const struct out_seg *s)
{
	if (s->kind == SEG_STAGE)
		return s->end - s->start;
	return framed(s->clen) - s->pos;
}

static void
seg_release(struct out_seg *s)
{
	free(s->own);
	s->own = NULL;
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

void
out_init(struct out *o)
{
	memset(o, 0, sizeof(*o));
	o->io = &out_io_sys;
	for (int i = 0; i < OUT_SEGS; i++)
		o->seg[i].fd = -1;
}

static void
drop_queue(struct out *o)
{
	for (int i = 0; i < o->nseg; i++)
		seg_release(&o->seg[(o->head + i) % OUT_SEGS]);
	o->head = o->nseg = 0;
	free(o->chunk);
	o->chunk = NULL;
	o->chunk_seg = NULL;
	o->chunk_from = o->chunk_to = 0;
}

void
out_free(struct out *o)
{
	const struct out_io *io = o->io;

	drop_queue(o);
	free(o->stage);
	out_init(o);
	o->io = io;
}

void
out_begin(struct out *o, unsigned request_id)
{
	drop_queue(o);
	/* Keep a small staging buffer for the next response; a large one
	 * (a big /metrics page) goes back. */
	if (o->scap > 64 * 1024) {
		free(o->stage);
		o->stage = NULL;
		o->scap = 0;
	}
	o->slen = 0;
	o->request_id = request_id;
	o->failed = o->file_error = 0;
}

static struct out_seg *
seg_new(struct out *o, int kind)
{
	struct out_seg *s;

	if (o->nseg == OUT_SEGS)
		return NULL;
	s = &o->seg[(o->head + o->nseg++) % OUT_SEGS];
	memset(s, 0, sizeof(*s));
	s->kind = kind;
	s->fd = -1;
	return s;
}

/* Appends framed bytes to the stage, extending its last segment. */
static int
stage_add(struct out *o, const void *p, size_t n)
{
	struct out_seg *last = o->nseg ? &o->seg[(o->head + o->nseg - 1) % OUT_SEGS] : NULL;

	if (o->slen + n > o->scap) {
		size_t cap = o->scap ? o->scap : 2048;
		unsigned char *ns;

		while (cap < o->slen + n)
			cap *= 2;
		if ((ns = realloc(o->stage, cap)) == NULL)
			return -1;
		o->stage = ns;
		o->scap = cap;
	}
	memcpy(o->stage + o->slen, p, n);
	if (last == NULL || last->kind != SEG_STAGE || last->end != o->slen) {
		if ((last = seg_new(o, SEG_STAGE)) == NULL)
			return -1;
		last->start = last->end = o->slen;
	}
	o->slen += n;
	last->end = o->slen;
	return 0;
}

static int
sink_write(void *ctx, const void *buf, size_t len)
{
	struct out *o = ctx;
	const unsigned char *p = buf;

	while (len > 0 && !o->failed) {
		size_t n = len < MAX_CONTENT ? len : MAX_CONTENT;
		unsigned char h[8];

		out_header(h, FCGI_STDOUT, o->request_id, n);
		if (stage_add(o, h, 8) == -1 || stage_add(o, p, n) == -1)
			o->failed = 1;
		p += n;
		len -= n;
	}
	return o->failed ? -1 : 0;
}

static int
sink_body(void *ctx, const void *buf, size_t len)
{
	struct out *o = ctx;
	struct out_seg *s;

	if (o->failed)
		return -1;
	if (len == 0)
		return 0;	/* no record: an empty one would end the stream */
	if ((s = seg_new(o, SEG_MEM)) == NULL) {
		o->failed = 1;
		return -1;
	}
	s->p = buf;
	s->clen = len;
	return 0;
}

static int
sink_file(void *ctx, int fd, uint64_t size)
{
	struct out *o = ctx;
	struct out_seg *s;

	if (o->failed)
		return -1;
	if (size == 0)
		return 0;
	if ((s = seg_new(o, SEG_FILE)) == NULL) {
		o->failed = 1;
		return -1;
	}
	/* Our own descriptor: the caller closes its one when it returns. */
	if ((s->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) == -1) {
		o->nseg--;
		o->failed = 1;
		return -1;
	}
	s->clen = size;
	return 0;
}

struct sink
out_sink(struct out *o)
{
	struct sink s = { .write = sink_write, .body = sink_body, .file = sink_file, .ctx = o };

	return s;
}

int
out_end(struct out *o)
{
	unsigned char p[24];

	if (o->failed)
		return -1;
	out_header(p, FCGI_STDOUT, o->request_id, 0);
	out_header(p + 8, FCGI_END_REQUEST, o->request_id, 8);
	/* appStatus 0, protocolStatus FCGI_REQUEST_COMPLETE */
	memset(p + 16, 0, 8);
	p[20] = FCGI_REQUEST_COMPLETE;
	if (stage_add(o, p, sizeof(p)) == -1)
		o->failed = 1;
	return o->failed ? -1 : 0;
}

/* Reads n content bytes at off into the iovecs; -1 if the file ends early. */
static int
read_all(const struct out_io *io, int fd, struct iovec *iov, int n, off_t off)
{
	while (n > 0) {
		ssize_t r = io->preadv(fd, iov, n, off);

		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		off += r;
		while (n > 0 && (size_t)r >= iov->iov_len) {
			r -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + r;
			iov->iov_len -= (size_t)r;
		}
	}
	return 0;
}

/* Loads the next records of a file body, which s->pos has reached. */
static int
load_chunk(struct out *o, struct out_seg *s)
{
	struct iovec iov[CHUNK_RECS];
	uint64_t k = s->pos / FRAME, nrec = (s->clen + MAX_CONTENT - 1) / MAX_CONTENT;
	size_t at = 0;
	int n = 0;

	if (o->chunk == NULL && (o->chunk = malloc(CHUNK_RECS * FRAME)) == NULL)
		return -1;
	for (; n < CHUNK_RECS && k + (uint64_t)n < nrec; n++) {
		size_t len = rec_len(s, k + (uint64_t)n);

		out_header(o->chunk + at, FCGI_STDOUT, o->request_id, len);
		iov[n].iov_base = o->chunk + at + FCGI_HEADER_LEN;
		iov[n].iov_len = len;
		at += FCGI_HEADER_LEN + len;
	}
	if (read_all(o->io, s->fd, iov, n, (off_t)(k * MAX_CONTENT)) == -1) {
		o->file_error = 1;
		return -1;
	}
	o->chunk_seg = s;
	o->chunk_from = s->pos;
	o->chunk_to = s->pos + at;
	return 0;
}

/*
 * Fills iov with the next bytes to send, in order, across segments. A file
 * body ends the list unless the chunk in memory is its last. Returns the
 * count, or -1 when a file cannot be read.
 */
static int
gather(struct out *o, struct iovec *iov)
{
	int n = 0, nh = 0;

	for (int i = 0; i < o->nseg && n < OUT_IOV; i++) {
		struct out_seg *s = &o->seg[(o->head + i) % OUT_SEGS];
		uint64_t pos, end;

		switch (s->kind) {
		case SEG_STAGE:
			iov[n].iov_base = o->stage + s->start;
			iov[n++].iov_len = s->end - s->start;
			break;
		case SEG_MEM:
			end = framed(s->clen);
			for (pos = s->pos; pos < end && n + 2 <= OUT_IOV && nh < OUT_IOV / 2;) {
				uint64_t k = pos / FRAME;
				size_t w = (size_t)(pos % FRAME), len = rec_len(s, k), c = 0;

				if (w < FCGI_HEADER_LEN) {
					out_header(o->hdr[nh], FCGI_STDOUT, o->request_id, len);
					iov[n].iov_base = o->hdr[nh++] + w;
					iov[n++].iov_len = FCGI_HEADER_LEN - w;
				} else {
					c = w - FCGI_HEADER_LEN;
				}
				iov[n].iov_base = (void *)(uintptr_t)(s->p +
				    (k * MAX_CONTENT + c - s->skip));
				iov[n++].iov_len = len - c;
				pos += FCGI_HEADER_LEN - (w < FCGI_HEADER_LEN ? w : FCGI_HEADER_LEN) + len - c;
			}
			if (pos < end)
				return n;
			break;
		case SEG_FILE:
			/* One chunk buffer: a second file waits for the first. */
			if (o->chunk_seg != NULL && o->chunk_seg != s)
				return n;
			if ((o->chunk_seg == NULL || o->chunk_to <= s->pos) &&
			    load_chunk(o, s) == -1)
				return -1;
			iov[n].iov_base = o->chunk + (s->pos - o->chunk_from);
			iov[n++].iov_len = (size_t)(o->chunk_to - s->pos);
			if (o->chunk_to < framed(s->clen))
				return n;
			break;
		}
	}
	return n;
}

/* Takes w sent bytes off the front of the queue. */
static void
advance(struct out *o, size_t w)
{
	while (o->nseg > 0) {
		struct out_seg *s = &o->seg[o->head];
		uint64_t left = seg_left(s), take = w < left ? w : left;

		if (s->kind == SEG_STAGE)
			s->start += (size_t)take;
		else
			s->pos += take;
		w -= (size_t)take;
		if (take < left)
			return;
		if (s == o->chunk_seg) {
			o->chunk_seg = NULL;
			o->chunk_from = o->chunk_to = 0;
		}
		seg_release(s);
		o->head = (o->head + 1) % OUT_SEGS;
		o->nseg--;
	}
}

enum out_status
out_send(struct out *o, int fd, size_t *sent)
{
	*sent = 0;
	while (o->nseg > 0) {
		struct iovec iov[OUT_IOV];
		int n = gather(o, iov);
		ssize_t w;

		if (n == -1)
			return OUT_FAIL;
		w = o->io->writev(fd, iov, n);
		if (w == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return OUT_AGAIN;
			return OUT_FAIL;
		}
		*sent += (size_t)w;
		advance(o, (size_t)w);
	}
	free(o->chunk);
	o->chunk = NULL;
	return OUT_DONE;
}

int
out_keep(struct out *o)
{
	for (int i = 0; i < o->nseg; i++) {
		struct out_seg *s = &o->seg[(o->head + i) % OUT_SEGS];
		uint64_t k, from;
		size_t w;

		if (s->kind != SEG_MEM || s->own != NULL)
			continue;
		k = s->pos / FRAME;
		w = (size_t)(s->pos % FRAME);
		from = k * MAX_CONTENT + (w > FCGI_HEADER_LEN ? w - FCGI_HEADER_LEN : 0);
		if ((s->own = malloc((size_t)(s->clen - from))) == NULL) {
			o->failed = 1;
			return -1;
		}
		memcpy(s->own, s->p + (from - s->skip), (size_t)(s->clen - from));
		s->p = s->own;
		s->skip = (size_t)from;
	}
	return 0;
}

void
out_abort(struct out *o)
{
	for (int i = 0; i < o->nseg; i++) {
		struct out_seg *s = &o->seg[(o->head + i) % OUT_SEGS];
		uint64_t k, keep;

		if (s->kind == SEG_STAGE)
			continue;
		/* Finish the record under way (its header told its length);
		 * drop the records not begun. */
		k = s->pos / FRAME;
		keep = s->pos % FRAME ? (k + 1) * MAX_CONTENT : k * MAX_CONTENT;
		if (keep < s->clen)
			s->clen = keep;
		if (s == o->chunk_seg && o->chunk_to > framed(s->clen))
			o->chunk_to = framed(s->clen);
	}
}

uint64_t
out_pending(const struct out *o)
{
	uint64_t n = 0;

	for (int i = 0; i < o->nseg; i++)
		n += seg_left(&o->seg[(o->head + i) % OUT_SEGS]);
	return n;
}
