/*
 * Unit tests for out.c, the per-connection output queue, with a fake
 * writev that takes at most a given number of bytes per call and can say
 * EAGAIN or EINTR, and a fake preadv that can read short or be
 * interrupted. Each row of the table is one response (a header block
 * copied in, a body lent from memory, a file) and one behaviour of the
 * socket; every row must end with a well-formed record stream whose
 * STDOUT content is exactly what was given, then END_REQUEST, nothing
 * after. The check is an independent parser of the captured bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "out.h"
#include "tap.h"

enum {
	AGAIN = 1,	/* EAGAIN after every write that took bytes */
	INTR = 2,	/* EINTR before every write */
	REUSE = 4,	/* the lent body's memory is overwritten after the first send */
	SHORT_READ = 8,	/* preadv returns at most 1000 bytes */
	READ_INTR = 16,	/* preadv says EINTR every other call */
	SHRINK = 32,	/* the file is cut short after the first send */
};

static struct {
	size_t max;		/* bytes a writev takes at most */
	int flags;
	int again_next, intr_next, read_intr_next;
	unsigned char *cap;	/* everything written */
	size_t caplen, capsize;
	unsigned long calls;
} sock;

static void
sock_reset(size_t max, int flags)
{
	sock.max = max;
	sock.flags = flags;
	sock.again_next = sock.intr_next = sock.read_intr_next = 0;
	sock.caplen = 0;
	sock.calls = 0;
}

static ssize_t
fake_writev(int fd, const struct iovec *iov, int n)
{
	size_t took = 0;

	(void)fd;
	sock.calls++;
	if ((sock.flags & INTR) && (sock.intr_next = !sock.intr_next)) {
		errno = EINTR;
		return -1;
	}
	if (sock.again_next) {
		sock.again_next = 0;
		errno = EAGAIN;
		return -1;
	}
	for (int i = 0; i < n && took < sock.max; i++) {
		size_t k = iov[i].iov_len < sock.max - took ? iov[i].iov_len : sock.max - took;

		if (sock.caplen + k > sock.capsize) {
			sock.capsize = (sock.caplen + k) * 2;
			if ((sock.cap = realloc(sock.cap, sock.capsize)) == NULL)
				abort();
		}
		memcpy(sock.cap + sock.caplen, iov[i].iov_base, k);
		sock.caplen += k;
		took += k;
	}
	if (took == 0) {
		errno = EAGAIN;
		return -1;
	}
	if (sock.flags & AGAIN)
		sock.again_next = 1;
	return (ssize_t)took;
}

static ssize_t
fake_preadv(int fd, const struct iovec *iov, int n, off_t off)
{
	struct iovec one;

	if ((sock.flags & READ_INTR) && (sock.read_intr_next = !sock.read_intr_next)) {
		errno = EINTR;
		return -1;
	}
	if (sock.flags & SHORT_READ) {
		one = iov[0];
		if (one.iov_len > 1000)
			one.iov_len = 1000;
		return preadv(fd, &one, 1, off);
	}
	return preadv(fd, iov, n, off);
}

static const struct out_io fake_io = { fake_writev, fake_preadv };

/* The content a response is made of: head, then body, then file. */
static unsigned char want[2 * 1024 * 1024];
static char tmpl[] = "/tmp/test_out.XXXXXX";
static int file_fd = -1;

static void
fill(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)((i * 131 + seed) >> 3 ^ i);
}

/*
 * Parses the captured stream. Returns the STDOUT content length and sets
 * *why, or -1 when the stream is not FCGI_STDOUT records for request id,
 * one empty STDOUT, one END_REQUEST and nothing more.
 */
static long
parse(unsigned id, unsigned char *content, const char **why)
{
	size_t off = 0, n = 0;
	int ended = 0, stdout_closed = 0;

	*why = "ok";
	while (off < sock.caplen) {
		const unsigned char *h = sock.cap + off;
		size_t clen, plen;

		if (ended) {
			*why = "bytes after END_REQUEST";
			return -1;
		}
		if (sock.caplen - off < 8) {
			*why = "a cut record header";
			return -1;
		}
		clen = (size_t)h[4] << 8 | h[5];
		plen = h[6];
		if (h[0] != 1 || ((unsigned)h[2] << 8 | h[3]) != id) {
			*why = "bad version or request id";
			return -1;
		}
		if (sock.caplen - off < 8 + clen + plen) {
			*why = "a cut record";
			return -1;
		}
		if (h[1] == 6) {
			if (stdout_closed) {
				*why = "STDOUT after its end";
				return -1;
			}
			if (clen == 0)
				stdout_closed = 1;
			memcpy(content + n, h + 8, clen);
			n += clen;
		} else if (h[1] == 3) {
			if (!stdout_closed || clen != 8 || h[8 + 4] != 0) {
				*why = "END_REQUEST before STDOUT's end, or malformed";
				return -1;
			}
			ended = 1;
		} else {
			*why = "unexpected record type";
			return -1;
		}
		off += 8 + clen + plen;
	}
	if (!ended) {
		*why = "no END_REQUEST";
		return -1;
	}
	return (long)n;
}

/*
 * One response: head bytes written (copied), body bytes lent, file bytes
 * from the temporary file. Sends until done as an event loop would, each
 * EAGAIN standing for a wait for EPOLLOUT. Returns 1 when the peer got
 * exactly the content; expect_fail: 1 when out_send must fail instead.
 */
static int
one(size_t head, size_t body, size_t file, size_t wmax, int flags, int expect_fail)
{
	static unsigned char lent[300 * 1024], got[sizeof(want)];
	struct out o;
	struct sink s;
	enum out_status st;
	size_t sent, total = head + body + file;
	unsigned id = 0x1234;
	int rounds = 0, ok_ = 1;
	const char *why;
	long n;

	sock_reset(wmax, flags);
	fill(want, total, (unsigned)(head + body + file));
	memcpy(lent, want + head, body);
	if (file > 0) {
		if (ftruncate(file_fd, 0) == -1 ||
		    pwrite(file_fd, want + head + body, file, 0) != (ssize_t)file)
			abort();
	}

	out_init(&o);
	o.io = &fake_io;
	out_begin(&o, id);
	s = out_sink(&o);
	if (head > 0 && s.write(s.ctx, want, head) == -1)
		return 0;
	if (body > 0 && s.body(s.ctx, lent, body) == -1)
		return 0;
	if (file > 0 && s.file(s.ctx, file_fd, file) == -1)
		return 0;
	if (out_end(&o) == -1)
		return 0;
	for (;;) {
		st = out_send(&o, 99, &sent);
		if (rounds++ == 0) {
			if (out_keep(&o) == -1)
				return 0;
			if (flags & REUSE)
				memset(lent, 0xee, body);	/* the cache evicted it */
			if ((flags & SHRINK) && ftruncate(file_fd, (off_t)(file / 2)) == -1)
				abort();
		}
		if (st != OUT_AGAIN)
			break;
		if (rounds > 10000000)
			return 0;
	}
	if (expect_fail) {
		ok_ = st == OUT_FAIL && o.file_error;
		out_free(&o);
		return ok_;
	}
	if (st != OUT_DONE || out_pending(&o) != 0) {
		printf("# status %d, %llu bytes still queued\n", (int)st,
		    (unsigned long long)out_pending(&o));
		ok_ = 0;
	}
	n = parse(id, got, &why);
	if (n != (long)total || memcmp(got, want, total) != 0) {
		printf("# content: %ld of %zu bytes, %s\n", n, total, why);
		ok_ = 0;
	}
	if ((flags & AGAIN) && rounds < 2)
		ok_ = 0;
	out_free(&o);
	return ok_;
}

static const struct {
	const char *name;
	size_t head, body, file, wmax;
	int flags, fail;
} cases[] = {
	{ "header only, one write",		200, 0, 0, 1 << 20, 0, 0 },
	{ "header + body, one writev",		200, 5000, 0, 1 << 20, 0, 0 },
	{ "header + 3-record body",		300, 150000, 0, 1 << 20, 0, 0 },
	{ "header + body, EAGAIN each write",	300, 150000, 0, 4096, AGAIN, 0 },
	{ "EINTR before each write",		300, 150000, 0, 4096, INTR, 0 },
	{ "EINTR and EAGAIN",			300, 150000, 0, 777, INTR | AGAIN, 0 },
	{ "lent body reused after 1st send",	300, 150000, 0, 1000, REUSE | AGAIN, 0 },
	{ "lent body reused, cut in header",	300, 150000, 0, 65536 + 300 + 8 + 3, REUSE | AGAIN, 0 },
	{ "lent body reused, at record end",	300, 150000, 0, 300 + 8 + 8 + 65528, REUSE | AGAIN, 0 },
	{ "file in chunks",			200, 0, 600000, 1 << 20, 0, 0 },
	{ "file, EAGAIN each write",		200, 0, 600000, 50000, AGAIN, 0 },
	{ "file, short and interrupted reads",	200, 0, 300000, 65536, SHORT_READ | READ_INTR | AGAIN, 0 },
	{ "file of one byte",			200, 0, 1, 3, AGAIN, 0 },
	{ "file of exactly 4 records",		200, 0, 4 * 65528, 100000, AGAIN, 0 },
	{ "file of 4 records + 1",		200, 0, 4 * 65528 + 1, 100000, AGAIN, 0 },
	{ "file shrinks while sent",		200, 0, 600000, 50000, SHRINK | AGAIN, 1 },
	{ "big header block (3 records)",	140000, 0, 0, 9999, AGAIN, 0 },
	{ "header + body + file",		200, 70000, 300000, 12345, AGAIN | INTR, 0 },
};

int
main(void)
{
	int all;

	if ((file_fd = mkstemp(tmpl)) == -1) {
		perror("mkstemp");
		return 1;
	}
	unlink(tmpl);

	for (size_t i = 0; i < NELEM(cases); i++)
		ok(one(cases[i].head, cases[i].body, cases[i].file, cases[i].wmax,
		    cases[i].flags, cases[i].fail), "%s", cases[i].name);

	/* Partial writes of every size from 1 to 200 bytes, and around the
	 * record and chunk sizes, with the lent body reused each time. */
	all = 1;
	for (size_t w = 1; w <= 200 && all; w++)
		all = one(150, 70000, 0, w, AGAIN | REUSE, 0);
	ok(all, "writes of every size 1..200: header + 2-record lent body");
	all = 1;
	for (size_t w = 1; w <= 64 && all; w++)
		all = one(150, 0, 70000, w * 997, AGAIN, 0);
	ok(all, "writes of 997..63808 bytes: header + file");
	all = 1;
	for (size_t w = 65520; w <= 65545 && all; w++)
		all = one(100, 200000, 0, w, AGAIN | REUSE, 0) &&
		    one(100, 0, 300000, w, AGAIN, 0);
	ok(all, "writes of 65520..65545 bytes: lent body and file");

	/* FCGI_ABORT_REQUEST in the middle of a file: the record under way
	 * is finished, the rest dropped, END_REQUEST follows. */
	{
		static unsigned char got[sizeof(want)];
		struct out o;
		struct sink s;
		size_t sent;
		const char *why;
		long n;
		int rounds = 0;
		enum out_status st;

		sock_reset(100000, AGAIN);
		fill(want, 1000000, 7);
		if (ftruncate(file_fd, 0) == -1 || pwrite(file_fd, want, 1000000, 0) != 1000000)
			abort();
		out_init(&o);
		o.io = &fake_io;
		out_begin(&o, 1);
		s = out_sink(&o);
		s.file(s.ctx, file_fd, 1000000);
		out_end(&o);
		while ((st = out_send(&o, 99, &sent)) == OUT_AGAIN && rounds < 100000)
			if (++rounds == 2)
				out_abort(&o);
		n = parse(1, got, &why);
		ok(st == OUT_DONE && n > 0 && n < 1000000 && n % 65528 == 0 &&
		    memcmp(got, want, (size_t)n) == 0,
		    "abort mid-file: %ld bytes of 1000000, whole records, then END_REQUEST (%s)", n, why);
		out_free(&o);
	}
	close(file_fd);
	free(sock.cap);
	return tap_done();
}
