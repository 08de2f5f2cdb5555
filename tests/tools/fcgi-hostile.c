/*
 * fcgi-hostile: the project's own hostile FastCGI peer (issue 5, item 4).
 *
 * It connects straight to a responder's socket, sends one attack (records
 * that crash or hang an unguarded libfcgi 2.4.2, truncated records, idle and
 * slow peers, thousands of connections at once), reports how the responder
 * reacted, and then proves the responder still answers a good request: the
 * redis-style "PING after each attack".  While an attack holds connections
 * open (idle, slowloris, floods) the good request is sent during the attack,
 * because that is when a blocked worker would show.
 *
 * Output is one line of key=value fields, for example
 *   attack=params-overflow sent=32 reaction=closed ping=200 body=1234
 * Exit status: 0 when the good request(s) got a 2xx answer, 1 when not,
 * 2 on a usage error.  This file never decides whether a reaction is right;
 * the tests that run it do, from their tables.
 */
#include <errno.h>
#include <fastcgi.h>	/* the protocol's constants, as libfcgi names them */
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>


struct buf {
	unsigned char *p;
	size_t len, cap;
};

static const char *sock_spec;
static const char *good_uri = "/1000";
static int dump;		/* --dump: write the attack's bytes to stdout, send nothing */
static double wait_s = 5.0;	/* how long to wait for a reaction */
static long count = -1;		/* connections for the flood attacks */

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("fcgi-hostile: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
ms_left(double deadline)
{
	double left = deadline - now();

	if (left <= 0)
		return 0;
	return (int)(left * 1000.0) + 1;
}

static void
buf_add(struct buf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;

		while (cap < b->len + n)
			cap *= 2;
		b->p = realloc(b->p, cap);
		if (b->p == NULL)
			die("out of memory");
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void
buf_byte(struct buf *b, unsigned v)
{
	unsigned char c = (unsigned char)v;

	buf_add(b, &c, 1);
}

/* A record header; the caller appends exactly clen + plen bytes (or not). */
static void
rec_hdr(struct buf *b, unsigned type, unsigned id, size_t clen, unsigned plen)
{
	buf_byte(b, FCGI_VERSION_1);
	buf_byte(b, type);
	buf_byte(b, id >> 8);
	buf_byte(b, id);
	buf_byte(b, (unsigned)(clen >> 8));
	buf_byte(b, (unsigned)clen);
	buf_byte(b, plen);
	buf_byte(b, 0);
}

static void
rec(struct buf *b, unsigned type, unsigned id, const void *p, size_t n)
{
	static const unsigned char pad[8];
	unsigned plen = (unsigned)((8 - n % 8) % 8);

	rec_hdr(b, type, id, n, plen);
	buf_add(b, p, n);
	buf_add(b, pad, plen);
}

/* One name-value length: one byte below 128, else four with the top bit. */
static void
nv_len(struct buf *b, uint32_t len, int force4)
{
	if (len < 128 && !force4) {
		buf_byte(b, len);
		return;
	}
	buf_byte(b, (len >> 24) | 0x80);
	buf_byte(b, len >> 16);
	buf_byte(b, len >> 8);
	buf_byte(b, len);
}

static void
nv(struct buf *b, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value);

	nv_len(b, (uint32_t)nl, 0);
	nv_len(b, (uint32_t)vl, 0);
	buf_add(b, name, nl);
	buf_add(b, value, vl);
}

static void
begin(struct buf *b, unsigned id, unsigned role, unsigned flags)
{
	unsigned char body[8] = { 0 };

	body[0] = (unsigned char)(role >> 8);
	body[1] = (unsigned char)role;
	body[2] = (unsigned char)flags;
	rec(b, FCGI_BEGIN_REQUEST, id, body, sizeof(body));
}

/* The params nginx sends for GET uri, as one PARAMS stream. */
static void
good_params(struct buf *pb, const char *uri)
{
	nv(pb, "GATEWAY_INTERFACE", "CGI/1.1");
	nv(pb, "SERVER_SOFTWARE", "fcgi-hostile");
	nv(pb, "SERVER_PROTOCOL", "HTTP/1.1");
	nv(pb, "REQUEST_METHOD", "GET");
	nv(pb, "REQUEST_URI", uri);
	nv(pb, "DOCUMENT_URI", uri);
	nv(pb, "SCRIPT_NAME", uri);
	nv(pb, "QUERY_STRING", "");
	nv(pb, "REMOTE_ADDR", "127.0.0.1");
	nv(pb, "REMOTE_PORT", "40000");
	nv(pb, "SERVER_ADDR", "127.0.0.1");
	nv(pb, "SERVER_PORT", "80");
	nv(pb, "SERVER_NAME", "localhost");
	nv(pb, "HTTP_HOST", "localhost");
}

/* The good params as one PARAMS record. */
static void
good_params_rec(struct buf *b, unsigned id, const char *uri)
{
	struct buf pb = { 0 };

	good_params(&pb, uri);
	rec(b, FCGI_PARAMS, id, pb.p, pb.len);
	free(pb.p);
}

/* One name-value pair as one PARAMS record. */
static void
pair_rec(struct buf *b, unsigned id, const char *name, const char *value)
{
	struct buf pb = { 0 };

	nv(&pb, name, value);
	rec(b, FCGI_PARAMS, id, pb.p, pb.len);
	free(pb.p);
}

/* The good params, the end of PARAMS and an empty STDIN: what follows a
 * BEGIN_REQUEST in a whole GET. */
static void
good_rest(struct buf *b, unsigned id, const char *uri)
{
	good_params_rec(b, id, uri);
	rec(b, FCGI_PARAMS, id, NULL, 0);
	rec(b, FCGI_STDIN, id, NULL, 0);
}

/* A whole good request: BEGIN, PARAMS, empty PARAMS, empty STDIN. */
static void
good_request(struct buf *b, unsigned id, const char *uri, unsigned flags)
{
	begin(b, id, FCGI_RESPONDER, flags);
	good_rest(b, id, uri);
}

/* Connects to PATH, HOST:PORT or [V6]:PORT; non-blocking if asked. */
static int
sock_connect(int nonblock)
{
	int fd = -1, type = SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0);

	if (sock_spec[0] == '/' || sock_spec[0] == '.') {
		struct sockaddr_un sun;

		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		if (strlen(sock_spec) >= sizeof(sun.sun_path))
			die("%s: socket path too long", sock_spec);
		strcpy(sun.sun_path, sock_spec);
		if ((fd = socket(AF_UNIX, type, 0)) == -1)
			return -1;
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 &&
		    errno != EINPROGRESS) {
			int e = errno;

			close(fd);
			errno = e;
			return -1;
		}
		return fd;
	} else {
		char host[256];
		const char *port, *h = sock_spec;
		struct addrinfo hints, *res;
		size_t hl;
		int rc;

		if (*h == '[') {
			const char *end = strchr(h, ']');

			if (end == NULL || end[1] != ':')
				die("%s: want [V6]:PORT", sock_spec);
			hl = (size_t)(end - h - 1);
			h++;
			port = end + 2;
		} else {
			port = strrchr(h, ':');
			if (port == NULL)
				die("%s: want /path, HOST:PORT or [V6]:PORT", sock_spec);
			hl = (size_t)(port - h);
			port++;
		}
		if (hl >= sizeof(host))
			die("%s: host too long", sock_spec);
		memcpy(host, h, hl);
		host[hl] = '\0';
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
		if ((rc = getaddrinfo(host, port, &hints, &res)) != 0)
			die("%s: %s", sock_spec, gai_strerror(rc));
		fd = socket(res->ai_family, type, 0);
		if (fd != -1 && connect(fd, res->ai_addr, res->ai_addrlen) == -1 &&
		    errno != EINPROGRESS) {
			int e = errno;

			close(fd);
			fd = -1;
			errno = e;
		}
		freeaddrinfo(res);
		return fd;
	}
}

/*
 * A non-blocking connection, retried while the listen backlog is full (a
 * unix socket refuses with EAGAIN) until the deadline; -1 if it never came.
 */
static int
sock_open(double deadline)
{
	for (;;) {
		int fd = sock_connect(1);

		if (fd != -1) {
			struct pollfd pfd = { fd, POLLOUT, 0 };
			int err = 0;
			socklen_t el = sizeof(err);

			if (poll(&pfd, 1, ms_left(deadline)) == 1 &&
			    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0)
				return fd;
			close(fd);
			errno = err ? err : ETIMEDOUT;
			return -1;
		}
		if ((errno != EAGAIN && errno != ECONNREFUSED) || now() > deadline)
			return -1;
		usleep(10000);
	}
}

static int
send_all(int fd, const unsigned char *p, size_t n, double deadline)
{
	while (n > 0) {
		struct pollfd pfd = { fd, POLLOUT, 0 };
		ssize_t w;

		if (poll(&pfd, 1, ms_left(deadline)) <= 0)
			return -1;
		w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w == -1) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * How the responder reacted to what was sent: it closed the connection,
 * reset it, wrote something, or stayed silent until the deadline.
 */
static const char *
reaction(int fd, double deadline)
{
	unsigned char tmp[4096];
	int replied = 0;

	for (;;) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		ssize_t r;

		if (now() >= deadline || poll(&pfd, 1, ms_left(deadline)) <= 0)
			return replied ? "reply" : "silent";
		r = recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT);
		if (r == 0)
			return replied ? "reply-closed" : "closed";
		if (r == -1) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return replied ? "reply-reset" : "reset";
		}
		replied = 1;
	}
}

/*
 * Reads records for request id until its END_REQUEST; returns the HTTP
 * status (200 when the responder sent no Status header) and the body size,
 * or -1 with why in reason.
 */
struct reply {
	struct buf in;		/* bytes received, not yet parsed */
	struct buf out;		/* STDOUT stream of the request */
	int done;
};

static int
reply_parse(struct reply *r, unsigned id, const char **reason)
{
	size_t off = 0;

	while (r->in.len - off >= FCGI_HEADER_LEN) {
		const unsigned char *h = r->in.p + off;
		size_t clen = (size_t)h[4] << 8 | h[5], total = FCGI_HEADER_LEN + clen + h[6];
		unsigned rid = (unsigned)h[2] << 8 | h[3];

		if (h[0] != FCGI_VERSION_1) {
			*reason = "bad-version-in-reply";
			return -1;
		}
		if (r->in.len - off < total)
			break;
		if (rid == id && h[1] == FCGI_STDOUT)
			buf_add(&r->out, h + FCGI_HEADER_LEN, clen);
		else if (rid == id && h[1] == FCGI_END_REQUEST)
			r->done = 1;
		off += total;
	}
	memmove(r->in.p, r->in.p + off, r->in.len - off);
	r->in.len -= off;
	return 0;
}

static int
reply_status(const struct reply *r, size_t *bodylen)
{
	const unsigned char *p = r->out.p;
	size_t n = r->out.len, i;
	int status = 200;

	for (i = 0; i + 1 < n; i++) {
		size_t hdr_end = 0;

		if (p[i] == '\n' && p[i + 1] == '\n')
			hdr_end = i + 2;
		else if (i + 3 < n && memcmp(p + i, "\r\n\r\n", 4) == 0)
			hdr_end = i + 4;
		if (hdr_end) {
			const unsigned char *s = memmem(p, i, "Status:", 7);

			if (s != NULL)
				status = atoi((const char *)s + 7);
			*bodylen = n - hdr_end;
			return status;
		}
	}
	*bodylen = 0;
	return -1;		/* no header block at all */
}

/* Reads one whole reply from a blocking fd. */
static int
read_reply(int fd, unsigned id, double deadline, size_t *bodylen, const char **reason)
{
	struct reply r = { { 0 }, { 0 }, 0 };
	unsigned char tmp[16384];
	int status = -1;

	while (!r.done) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		ssize_t n;

		if (now() >= deadline || poll(&pfd, 1, ms_left(deadline)) <= 0) {
			*reason = "timeout";
			goto done;
		}
		n = recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT);
		if (n == 0) {
			*reason = "closed";
			goto done;
		}
		if (n == -1) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			*reason = "reset";
			goto done;
		}
		buf_add(&r.in, tmp, (size_t)n);
		if (reply_parse(&r, id, reason) == -1)
			goto done;
	}
	status = reply_status(&r, bodylen);
	if (status == -1)
		*reason = "no-headers";
done:
	free(r.in.p);
	free(r.out.p);
	return status;
}

/* One good request on a fresh connection; prints ping=STATUS body=N. */
static int
ping(void)
{
	double deadline = now() + (wait_s > 10 ? wait_s : 10);
	struct buf b = { 0 };
	const char *reason = "connect";
	size_t body = 0;
	int fd, status = -1;

	good_request(&b, 1, good_uri, 0);
	if ((fd = sock_open(deadline)) == -1)
		goto done;
	reason = "send";
	if (send_all(fd, b.p, b.len, deadline) == 0)
		status = read_reply(fd, 1, deadline, &body, &reason);
	close(fd);
done:
	free(b.p);
	if (status >= 200 && status < 300) {
		printf(" ping=%d body=%zu", status, body);
		return 0;
	}
	if (status > 0)
		printf(" ping=%d", status);
	else
		printf(" ping=fail(%s)", reason);
	return 1;
}

/*
 * The one-shot attacks: each builds the bytes to send and says whether to
 * half-close afterwards (a truncated record followed by EOF).
 */
static void
params_lengths(struct buf *b, uint32_t nl, uint32_t vl, size_t extra)
{
	struct buf pb = { 0 };
	size_t i;

	begin(b, 1, FCGI_RESPONDER, 0);
	nv_len(&pb, nl, 1);
	nv_len(&pb, vl, 1);
	for (i = 0; i < extra; i++)
		buf_byte(&pb, 'A');
	rec(b, FCGI_PARAMS, 1, pb.p, pb.len);
	/* The request is otherwise whole, so a guard that waits for the end
	 * of PARAMS must still judge these lengths. */
	rec(b, FCGI_PARAMS, 1, NULL, 0);
	rec(b, FCGI_STDIN, 1, NULL, 0);
	free(pb.p);
}

static void
get_values(struct buf *b, int n)
{
	struct buf pb = { 0 };
	int i;

	for (i = 0; i < n; i++)
		nv(&pb, "FCGI_MPXS_CONNS", "");
	rec(b, FCGI_GET_VALUES, 0, pb.p, pb.len);
	free(pb.p);
}

struct attack {
	const char *name;
	const char *what;
	void (*build)(struct buf *);
	int half_close;
};

static void a_params_overflow(struct buf *b) { params_lengths(b, 0x40000000, 0x40000000, 8); }
static void a_params_7ffffffe(struct buf *b) { params_lengths(b, 0x7ffffffe, 0, 8); }
static void a_params_3fffffff(struct buf *b) { params_lengths(b, 0x3fffffff, 0, 8); }
static void a_params_ffffffff(struct buf *b) { params_lengths(b, 0x7fffffff, 0x7fffffff, 8); }
static void a_params_short(struct buf *b) { params_lengths(b, 200, 10, 20); }
static void
a_params_open(struct buf *b)
{
	params_lengths(b, 0x40000000, 0x40000000, 8);
	b->len -= 2 * (FCGI_HEADER_LEN);	/* no end of PARAMS, no STDIN */
}
static void a_get_values_1(struct buf *b) { get_values(b, 1); }
static void a_get_values_4(struct buf *b) { get_values(b, 4); }
static void a_get_values_64(struct buf *b) { get_values(b, 64); }

static void
a_trunc_header(struct buf *b)
{
	begin(b, 1, FCGI_RESPONDER, 0);
	b->len -= 11;		/* 5 bytes of the header are left */
}

static void
a_trunc_begin(struct buf *b)
{
	begin(b, 1, FCGI_RESPONDER, 0);
	b->len -= 5;
}

static void
a_trunc_params(struct buf *b)
{
	struct buf pb = { 0 };

	begin(b, 1, FCGI_RESPONDER, 0);
	good_params(&pb, good_uri);
	rec(b, FCGI_PARAMS, 1, pb.p, pb.len);
	b->len -= pb.len / 2;
	free(pb.p);
}

static void
a_trunc_padding(struct buf *b)
{
	struct buf pb = { 0 };

	begin(b, 1, FCGI_RESPONDER, 0);
	good_params(&pb, good_uri);
	rec_hdr(b, FCGI_PARAMS, 1, pb.len, 255);
	buf_add(b, pb.p, pb.len);	/* and none of the 255 padding bytes */
	free(pb.p);
}

static void
a_bad_version(struct buf *b)
{
	good_request(b, 1, good_uri, 0);
	b->p[0] = 2;
}

static void
a_unknown_type(struct buf *b)
{
	rec(b, 0x7f, 0, "abcdefgh", 8);
	good_request(b, 1, good_uri, 0);
}

static void
a_params_no_begin(struct buf *b)
{
	good_rest(b, 1, good_uri);
}

static void
a_authorizer(struct buf *b)
{
	begin(b, 1, FCGI_AUTHORIZER, 0);
	good_params_rec(b, 1, good_uri);
	rec(b, FCGI_PARAMS, 1, NULL, 0);
}

static void
a_request_id_0(struct buf *b)
{
	good_request(b, 0, good_uri, 0);
}

static void
a_multiplex(struct buf *b)
{
	begin(b, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
	begin(b, 2, FCGI_RESPONDER, FCGI_KEEP_CONN);
	good_params_rec(b, 2, good_uri);
	good_rest(b, 1, good_uri);
	rec(b, FCGI_PARAMS, 2, NULL, 0);
	rec(b, FCGI_STDIN, 2, NULL, 0);
}

static void
a_abort(struct buf *b)
{
	begin(b, 1, FCGI_RESPONDER, 0);
	rec(b, FCGI_ABORT_REQUEST, 1, NULL, 0);
}

/* PARAMS worth 180 KB: beyond the 64 KiB bound on a request's head. */
static void
a_big_params(struct buf *b)
{
	char *v = malloc(60000);
	int i;

	if (v == NULL)
		die("out of memory");
	memset(v, 'v', 59999);
	v[59999] = '\0';
	begin(b, 1, FCGI_RESPONDER, 0);
	for (i = 0; i < 3; i++) {
		char name[16];

		snprintf(name, sizeof(name), "HTTP_X_BIG%d", i);
		pair_rec(b, 1, name, v);
	}
	good_rest(b, 1, good_uri);
	free(v);
}

/* Twenty thousand tiny params, each a separate record. */
static void
a_many_params(struct buf *b)
{
	begin(b, 1, FCGI_RESPONDER, 0);
	for (int i = 0; i < 20000; i++)
		pair_rec(b, 1, "HTTP_X", "y");
	good_rest(b, 1, good_uri);
}

/* A good GET followed by 1 MiB of STDIN (a body is read and dropped, up to
 * --upload-max). */
static void
a_big_stdin(struct buf *b)
{
	static unsigned char chunk[32768];

	memset(chunk, 's', sizeof(chunk));
	begin(b, 1, FCGI_RESPONDER, 0);
	good_params_rec(b, 1, good_uri);
	rec(b, FCGI_PARAMS, 1, NULL, 0);
	for (int i = 0; i < 32; i++)
		rec(b, FCGI_STDIN, 1, chunk, sizeof(chunk));
	rec(b, FCGI_STDIN, 1, NULL, 0);
}

/* 4 KiB from a fixed-seed generator, so every run sends the same bytes. */
static void
a_garbage(struct buf *b)
{
	uint32_t x = 2463534242u;
	int i;

	for (i = 0; i < 4096; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf_byte(b, x & 0xff);
	}
}

static void
a_empty_records(struct buf *b)
{
	int i;

	begin(b, 1, FCGI_RESPONDER, 0);
	for (i = 0; i < 20000; i++)
		rec(b, FCGI_STDIN, 1, NULL, 0);
}

static const struct attack attacks[] = {
	{ "params-overflow", "PARAMS name+value lengths 0x40000000+0x40000000 (CVE-2025-23016)", a_params_overflow, 0 },
	{ "params-7ffffffe", "PARAMS name length 0x7ffffffe, value 0 (CVE-2025-23016)", a_params_7ffffffe, 0 },
	{ "params-3fffffff", "PARAMS name length 0x3fffffff with 8 bytes present", a_params_3fffffff, 0 },
	{ "params-7fffffff", "PARAMS lengths 0x7fffffff+0x7fffffff", a_params_ffffffff, 0 },
	{ "params-open", "the 0x40000000+0x40000000 PARAMS record, and then nothing more", a_params_open, 0 },
	{ "params-short", "PARAMS lengths 200+10 with 20 bytes present", a_params_short, 0 },
	{ "get-values-1", "FCGI_GET_VALUES naming FCGI_MPXS_CONNS once", a_get_values_1, 0 },
	{ "get-values-4", "FCGI_GET_VALUES naming FCGI_MPXS_CONNS 4 times (stack overflow)", a_get_values_4, 0 },
	{ "get-values-64", "FCGI_GET_VALUES naming FCGI_MPXS_CONNS 64 times", a_get_values_64, 0 },
	{ "trunc-header", "5 bytes of a record header, then EOF", a_trunc_header, 1 },
	{ "trunc-begin", "BEGIN_REQUEST missing 5 body bytes, then EOF", a_trunc_begin, 1 },
	{ "trunc-params", "PARAMS record cut in half, then EOF", a_trunc_params, 1 },
	{ "trunc-padding", "PARAMS promising 255 padding bytes, none sent, then EOF", a_trunc_padding, 1 },
	{ "bad-version", "a good request whose first header says version 2", a_bad_version, 0 },
	{ "unknown-type", "record type 0x7f, then a good request", a_unknown_type, 0 },
	{ "params-no-begin", "PARAMS and STDIN with no BEGIN_REQUEST", a_params_no_begin, 0 },
	{ "authorizer", "BEGIN_REQUEST with the AUTHORIZER role", a_authorizer, 0 },
	{ "request-id-0", "a whole request with request id 0", a_request_id_0, 0 },
	{ "multiplex", "two interleaved requests on one connection", a_multiplex, 0 },
	{ "abort", "BEGIN_REQUEST then ABORT_REQUEST (answered with END_REQUEST)", a_abort, 0 },
	{ "big-params", "180 KB of PARAMS in 60 KB values", a_big_params, 0 },
	{ "many-params", "20000 PARAMS records of one tiny pair each", a_many_params, 0 },
	{ "big-stdin", "a GET with 1 MiB of STDIN", a_big_stdin, 0 },
	{ "empty-records", "BEGIN_REQUEST then 20000 empty STDIN records", a_empty_records, 0 },
	{ "garbage", "4 KiB of pseudo-random bytes", a_garbage, 0 },
	{ NULL, NULL, NULL, 0 }
};

/*
 * Sends one attack and waits for the responder's reaction; the good request
 * goes out while the attacking connection is still open, so a worker stuck
 * on it cannot hide, and once more after it is closed.
 */
static int
one_shot(const char *name, struct buf *b, int half_close)
{
	double deadline = now() + wait_s;
	const char *r = "connect-failed";
	int fd, rc;

	printf("attack=%s", name);
	fflush(stdout);
	if ((fd = sock_open(deadline)) != -1) {
		if (send_all(fd, b->p, b->len, deadline) == -1)
			r = errno == EPIPE || errno == ECONNRESET ? "closed-while-sending" :
			    "blocked-while-sending";
		else {
			if (half_close)
				shutdown(fd, SHUT_WR);
			r = reaction(fd, deadline);
		}
	}
	printf(" sent=%zu reaction=%s", b->len, r);
	rc = ping();
	if (fd != -1)
		close(fd);
	rc |= ping();
	putchar('\n');
	return rc;
}

/* Waits until every held fd is closed by the responder, or the deadline. */
static long
await_closed(int *fds, long n, double deadline)
{
	struct pollfd *pfd = calloc((size_t)n, sizeof(*pfd));
	long closed = 0, i;

	if (pfd == NULL)
		die("out of memory");
	for (i = 0; i < n; i++)
		pfd[i] = (struct pollfd){ fds[i], POLLIN, 0 };
	while (closed < n && now() < deadline && poll(pfd, (nfds_t)n, ms_left(deadline)) > 0) {
		for (i = 0; i < n; i++) {
			unsigned char tmp[4096];

			if (pfd[i].fd < 0 || !pfd[i].revents)
				continue;
			ssize_t r = recv(pfd[i].fd, tmp, sizeof(tmp), MSG_DONTWAIT);

			if (r > 0)
				continue;	/* a reply; the close comes after */
			if (r == -1 && (errno == EAGAIN || errno == EINTR))
				continue;
			pfd[i].fd = -1;
			closed++;
		}
	}
	free(pfd);
	return closed;
}

/*
 * Opens n connections that each send prefix (maybe nothing) and then stall;
 * pings while they are held; then, if trickle, sends one more byte of the
 * stalled record on each every second (slowloris) until the responder
 * closes them or wait_s runs out.
 */
static int
hold(const char *name, long n, const struct buf *prefix, int trickle, const struct buf *rest)
{
	double deadline = now() + (wait_s > 30 ? wait_s : 30), until;
	int *fds = calloc((size_t)n, sizeof(int));
	long opened = 0, closed, dropped = 0, i, sent = 0;
	int rc;

	if (fds == NULL)
		die("out of memory");
	printf("attack=%s", name);
	fflush(stdout);
	for (i = 0; i < n; i++) {
		int fd = sock_open(deadline);

		if (fd == -1)
			break;
		if (prefix->len && send_all(fd, prefix->p, prefix->len, deadline) == -1) {
			close(fd);
			break;
		}
		fds[opened++] = fd;
	}
	printf(" held=%ld", opened);
	rc = ping();
	until = now() + wait_s;
	if (trickle) {
		int open_left = 1;

		/* One byte per second per connection: each byte would reset a naive idle timer. */
		while (open_left && now() < until && (size_t)sent < rest->len) {
			open_left = 0;
			for (i = 0; i < opened; i++) {
				if (fds[i] < 0)
					continue;
				if (send(fds[i], rest->p + sent, 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1 &&
				    errno != EAGAIN) {
					close(fds[i]);
					fds[i] = -1;
					continue;
				}
				open_left = 1;
			}
			sent++;
			usleep(1000000);
		}
		/* Those closed while trickling are counted; the rest are awaited below. */
		for (i = 0; i < opened; i++)
			if (fds[i] < 0) {
				fds[i--] = fds[--opened];
				dropped++;
			}
	}
	closed = dropped + await_closed(fds, opened, until);
	if (trickle)
		printf(" trickled=%ld", sent);
	printf(" closed=%ld", closed);
	/* A second good request after the held connections are gone or timed out. */
	rc |= ping();
	putchar('\n');
	for (i = 0; i < opened; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(fds);
	return rc;
}

/*
 * n connections at once, each sending a whole good request; replies are
 * read as they come, as a front server would, and connects refused by a
 * full backlog are retried.  Counts the 2xx answers and the largest number
 * of connections open at the same moment.
 */
static int
flood_get(long n)
{
	double deadline = now() + (wait_s > 60 ? wait_s : 60);
	struct pollfd *pfd = calloc((size_t)n, sizeof(*pfd));
	struct reply *rs = calloc((size_t)n, sizeof(*rs));
	struct buf req = { 0 };
	long started = 0, open_now = 0, open_max = 0, answered = 0, failed = 0, i;
	int rc;

	if (pfd == NULL || rs == NULL)
		die("out of memory");
	good_request(&req, 1, good_uri, 0);
	printf("attack=flood-get");
	fflush(stdout);
	while (answered + failed < n && now() < deadline) {
		/* Start every connection the backlog takes now. */
		while (started < n) {
			int fd = sock_connect(1);

			if (fd == -1) {
				if (errno == EAGAIN || errno == ECONNREFUSED)
					break;
				failed++;
				pfd[started++].fd = -1;
				continue;
			}
			pfd[started++] = (struct pollfd){ fd, POLLOUT, 0 };
			if (++open_now > open_max)
				open_max = open_now;
		}
		if (poll(pfd, (nfds_t)started, started < n ? 10 : ms_left(deadline)) <= 0)
			continue;
		for (i = 0; i < started; i++) {
			unsigned char tmp[16384];
			const char *reason = NULL;
			int err = 0, finished = 0;
			socklen_t el = sizeof(err);
			size_t body;
			ssize_t r;

			if (pfd[i].fd < 0 || !pfd[i].revents)
				continue;
			if (pfd[i].events == POLLOUT) {
				/* The request is far smaller than a socket buffer: one write suffices. */
				getsockopt(pfd[i].fd, SOL_SOCKET, SO_ERROR, &err, &el);
				if (err || send(pfd[i].fd, req.p, req.len, MSG_NOSIGNAL) != (ssize_t)req.len)
					finished = 1;
				else
					pfd[i].events = POLLIN;
			} else {
				r = recv(pfd[i].fd, tmp, sizeof(tmp), MSG_DONTWAIT);
				if (r == -1 && errno == EAGAIN)
					continue;
				if (r > 0) {
					buf_add(&rs[i].in, tmp, (size_t)r);
					if (reply_parse(&rs[i], 1, &reason) == 0 && !rs[i].done)
						continue;
				}
				finished = 1;
			}
			if (!finished)
				continue;
			if (rs[i].done) {
				int st = reply_status(&rs[i], &body);

				if (st >= 200 && st < 300)
					answered++;
				else
					failed++;
			} else
				failed++;
			close(pfd[i].fd);
			pfd[i].fd = -1;
			open_now--;
			free(rs[i].in.p);
			free(rs[i].out.p);
			rs[i].in.p = rs[i].out.p = NULL;
		}
	}
	printf(" connections=%ld open_max=%ld answered=%ld failed=%ld unanswered=%ld",
	    started, open_max, answered, failed, n - answered - failed);
	rc = ping();
	putchar('\n');
	for (i = 0; i < started; i++) {
		if (pfd[i].fd >= 0)
			close(pfd[i].fd);
		free(rs[i].in.p);
		free(rs[i].out.p);
	}
	free(pfd);
	free(rs);
	free(req.p);
	return rc || answered != n ? 1 : 0;
}

static int
raw_file(const char *path)
{
	struct buf b = { 0 };
	unsigned char tmp[65536];
	size_t n;
	FILE *f = fopen(path, "rb");
	int rc;

	if (f == NULL)
		die("%s: %s", path, strerror(errno));
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		buf_add(&b, tmp, n);
	fclose(f);
	rc = one_shot(path, &b, 1);
	free(b.p);
	return rc;
}

static void
usage(void)
{
	const struct attack *a;

	fprintf(stderr,
	    "usage: fcgi-hostile [--wait S] [--count N] [--uri URI] [--dump -] SOCKET ATTACK\n"
	    "--dump - writes a one-shot attack's bytes to stdout and sends nothing\n"
	    "SOCKET: /path (unix), HOST:PORT or [V6]:PORT\n"
	    "ATTACK:\n"
	    "  %-16s %s\n", "ping", "one good GET (URI, default /1000)");
	for (a = attacks; a->name; a++)
		fprintf(stderr, "  %-16s %s\n", a->name, a->what);
	fprintf(stderr,
	    "  %-16s %s\n  %-16s %s\n  %-16s %s\n  %-16s %s\n  %-16s %s\n  %-16s %s\n",
	    "idle", "COUNT (1) connections that send nothing",
	    "slowloris", "COUNT (1) connections trickling a record one byte a second",
	    "keepalive-idle", "a kept-open connection after one answered request",
	    "flood-idle", "COUNT (2000) idle connections at once",
	    "flood-get", "COUNT (2000) connections each sending a GET at once",
	    "raw:FILE", "the bytes of FILE, then EOF (fuzzer finds)");
	exit(2);
}

int
main(int argc, char **argv)
{
	const struct attack *a;
	const char *name;
	struct rlimit rl;
	int i = 1;

	for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
		char *end;

		if (strcmp(argv[i], "--wait") == 0) {
			wait_s = strtod(argv[i + 1], &end);
			if (*end || wait_s <= 0 || wait_s > 3600)
				die("--wait: \"%s\" is not 0 < S <= 3600", argv[i + 1]);
		} else if (strcmp(argv[i], "--count") == 0) {
			errno = 0;
			count = strtol(argv[i + 1], &end, 10);
			if (*end || errno || count < 1 || count > 100000)
				die("--count: \"%s\" is not 1..100000", argv[i + 1]);
		} else if (strcmp(argv[i], "--uri") == 0)
			good_uri = argv[i + 1];
		else if (strcmp(argv[i], "--dump") == 0 && strcmp(argv[i + 1], "-") == 0)
			dump = 1;
		else
			usage();
	}
	if (argc - i != 2)
		usage();
	sock_spec = argv[i];
	name = argv[i + 1];
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* The floods need a descriptor per connection. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	if (strcmp(name, "ping") == 0) {
		int rc;

		printf("attack=ping");
		rc = ping();
		putchar('\n');
		return rc;
	}
	if (strncmp(name, "raw:", 4) == 0)
		return raw_file(name + 4);
	for (a = attacks; a->name; a++)
		if (strcmp(name, a->name) == 0) {
			struct buf b = { 0 };
			int rc;

			a->build(&b);
			if (dump) {
				/* For regression files and fuzzer seeds. */
				rc = fwrite(b.p, 1, b.len, stdout) == b.len ? 0 : 1;
				free(b.p);
				return rc;
			}
			rc = one_shot(a->name, &b, a->half_close);
			free(b.p);
			return rc;
		}
	if (strcmp(name, "idle") == 0 || strcmp(name, "flood-idle") == 0) {
		struct buf none = { 0 };

		return hold(name, count > 0 ? count : name[0] == 'i' ? 1 : 2000, &none, 0, &none);
	}
	if (strcmp(name, "slowloris") == 0) {
		struct buf full = { 0 }, prefix = { 0 }, rest = { 0 };
		size_t cut;
		int rc;

		good_request(&full, 1, good_uri, 0);
		cut = FCGI_HEADER_LEN + 8 + 4;	/* BEGIN_REQUEST and half a PARAMS header */
		buf_add(&prefix, full.p, cut);
		buf_add(&rest, full.p + cut, full.len - cut);
		rc = hold(name, count > 0 ? count : 1, &prefix, 1, &rest);
		free(full.p);
		free(prefix.p);
		free(rest.p);
		return rc;
	}
	if (strcmp(name, "keepalive-idle") == 0) {
		/* One answered request on a kept connection, then silence, as nginx's upstream keepalive does. */
		double deadline = now() + 10;
		struct buf b = { 0 };
		const char *reason = "connect";
		size_t body;
		long closed;
		int fd, st = -1, rc;

		good_request(&b, 1, good_uri, FCGI_KEEP_CONN);
		printf("attack=keepalive-idle");
		if ((fd = sock_open(deadline)) != -1 && send_all(fd, b.p, b.len, deadline) == 0)
			st = read_reply(fd, 1, deadline, &body, &reason);
		printf(" first=%d", st);
		rc = ping();
		closed = fd == -1 ? 0 : await_closed(&fd, 1, now() + wait_s);
		printf(" closed=%ld", closed);
		rc |= ping();
		putchar('\n');
		if (fd != -1)
			close(fd);
		free(b.p);
		return rc || st < 200 || st >= 300;
	}
	if (strcmp(name, "flood-get") == 0)
		return flood_get(count > 0 ? count : 2000);
	usage();
}
