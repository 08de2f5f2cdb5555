/*
 * fcgi-client: the project's own FastCGI client for tests. Sends one or
 * more responder requests over a unix or TCP socket and prints the STDOUT
 * stream of each response; STDERR records go to stderr.
 *
 *   fcgi-client [-k N] [-t SECONDS] [-b BODYFILE] [-r RATE] [-B BYTES] [-a]
 *               SOCKET NAME=VALUE ...
 *
 * -k N   send N requests one after another on one connection with
 *        FCGI_KEEP_CONN set (as nginx fastcgi_keep_conn does)
 * -t S   give up after S seconds without a byte (exit 3)
 * -b F   send the contents of F as FCGI_STDIN
 * -r R   read the response at R bytes a second at most (a slow reader)
 * -B N   SO_RCVBUF and SO_SNDBUF of N bytes, set before connecting
 * -a     write as Apache's mod_proxy_fcgi does: a non-blocking socket,
 *        and a wait for POLLOUT (at most -t seconds) before each write;
 *        a peer that never drains the socket makes this time out (exit 3)
 * Exit: 0 every request ended with END_REQUEST; 1 the connection ended
 * first; 2 usage or connect error; 3 timeout.
 */
#include <errno.h>
#include <fastcgi.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int timeout_ms = 10000;
static long rate;		/* -r: bytes a second, 0 for no limit */
static int sockbuf;		/* -B */
static int apache;		/* -a */
static long long got_total;	/* bytes read, for the rate limit */
static struct timespec started;

static double
since_start(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - started.tv_sec) +
	    (double)(now.tv_nsec - started.tv_nsec) / 1e9;
}

/* Sleeps until the bytes read so far are within the rate. */
static void
throttle(void)
{
	double due;

	if (rate <= 0)
		return;
	due = (double)got_total / (double)rate - since_start();
	if (due > 0)
		usleep((useconds_t)(due * 1e6));
}

/* Small socket buffers make a slow reader, or a peer that does not drain
 * the socket, show at once. */
static void
set_bufs(int fd)
{
	if (sockbuf > 0) {
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sockbuf, sizeof(sockbuf));
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sockbuf, sizeof(sockbuf));
	}
}

static int
connect_to(const char *spec)
{
	int fd;

	if (strchr(spec, '/') != NULL) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };

		if (strlen(spec) >= sizeof(sun.sun_path))
			return -1;
		strcpy(sun.sun_path, spec);
		if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1)
			return -1;
		set_bufs(fd);
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
			close(fd);
			return -1;
		}
		return fd;
	} else {
		char host[256];
		const char *colon = strrchr(spec, ':');
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
		size_t hl;

		if (colon == NULL || (hl = (size_t)(colon - spec)) >= sizeof(host))
			return -1;
		memcpy(host, spec, hl);
		host[hl] = '\0';
		if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
			memmove(host, host + 1, hl - 2);
			host[hl - 2] = '\0';
		}
		if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
			return -1;
		fd = socket(res->ai_family, SOCK_STREAM, 0);
		if (fd != -1)
			set_bufs(fd);
		if (fd != -1 && connect(fd, res->ai_addr, res->ai_addrlen) == -1) {
			close(fd);
			fd = -1;
		}
		freeaddrinfo(res);
		return fd;
	}
}

struct buf {
	unsigned char *p;
	size_t len, cap;
};

static void
put(struct buf *b, const void *d, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 64;
		if ((b->p = realloc(b->p, b->cap)) == NULL)
			exit(2);
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
}

static void
record(struct buf *b, int type, int id, const unsigned char *c, size_t n)
{
	unsigned char h[8] = { FCGI_VERSION_1, (unsigned char)type, (unsigned char)(id >> 8),
	    (unsigned char)id, (unsigned char)(n >> 8), (unsigned char)n, 0, 0 };

	put(b, h, 8);
	put(b, c, n);
}

static void
pair_len(struct buf *b, size_t n)
{
	if (n < 128) {
		unsigned char c = (unsigned char)n;
		put(b, &c, 1);
	} else {
		unsigned char c[4] = { (unsigned char)((n >> 24) | 0x80),
		    (unsigned char)(n >> 16), (unsigned char)(n >> 8), (unsigned char)n };
		put(b, c, 4);
	}
}

static int
read_full(int fd, unsigned char *p, size_t n)
{
	size_t got = 0;

	while (got < n) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		size_t want = n - got;
		ssize_t r;

		/* A slow reader takes small bites, so the rate holds. */
		if (rate > 0 && want > 4096)
			want = 4096;
		throttle();
		if (poll(&pfd, 1, timeout_ms) == 0)
			return -3;
		r = read(fd, p + got, want);
		if (r == -1 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
		got_total += r;
	}
	return 0;
}

static int
write_all(int fd, const unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t w;

		if (apache) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };

			if (poll(&pfd, 1, timeout_ms) == 0) {
				fprintf(stderr, "fcgi-client: timeout waiting to write (POLLOUT)\n");
				exit(3);
			}
		}
		w = write(fd, p, n);
		if (w == -1 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct buf params = { 0 }, req = { 0 }, body = { 0 };
	int ch, nreq = 1, keep = 0, fd, id = 1;

	/* A responder that refuses a request may close while it is being
	 * written: that is an exit status here, not a death by SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	while ((ch = getopt(argc, argv, "k:t:b:r:B:a")) != -1) {
		switch (ch) {
		case 'k':
			nreq = atoi(optarg);
			keep = 1;
			break;
		case 't':
			timeout_ms = atoi(optarg) * 1000;
			break;
		case 'r':
			rate = atol(optarg);
			break;
		case 'B':
			sockbuf = atoi(optarg);
			break;
		case 'a':
			apache = 1;
			break;
		case 'b': {
			FILE *f = fopen(optarg, "rb");
			unsigned char tmp[4096];
			size_t n;

			if (f == NULL) {
				perror(optarg);
				return 2;
			}
			while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
				put(&body, tmp, n);
			fclose(f);
			break;
		}
		default:
			goto usage;
		}
	}
	if (optind >= argc || nreq < 1) {
usage:
		fprintf(stderr, "usage: fcgi-client [-k N] [-t S] [-b FILE] [-r RATE] [-B BYTES] [-a] "
		    "SOCKET NAME=VALUE...\n");
		return 2;
	}
	if ((fd = connect_to(argv[optind])) == -1) {
		fprintf(stderr, "fcgi-client: cannot connect to %s: %s\n", argv[optind],
		    strerror(errno));
		return 2;
	}
	if (apache)
		(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	clock_gettime(CLOCK_MONOTONIC, &started);
	for (int i = optind + 1; i < argc; i++) {
		const char *eq = strchr(argv[i], '=');
		size_t nl, vl;

		if (eq == NULL)
			continue;
		nl = (size_t)(eq - argv[i]);
		vl = strlen(eq + 1);
		pair_len(&params, nl);
		pair_len(&params, vl);
		put(&params, argv[i], nl);
		put(&params, eq + 1, vl);
	}

	for (int r = 0; r < nreq; r++) {
		unsigned char begin[8] = { 0, FCGI_RESPONDER, keep ? FCGI_KEEP_CONN : 0, 0, 0, 0, 0, 0 };
		size_t off;
		int ended = 0;

		req.len = 0;
		record(&req, FCGI_BEGIN_REQUEST, id, begin, 8);
		for (off = 0; off < params.len; off += 65535) {
			size_t n = params.len - off > 65535 ? 65535 : params.len - off;
			record(&req, FCGI_PARAMS, id, params.p + off, n);
		}
		record(&req, FCGI_PARAMS, id, NULL, 0);
		for (off = 0; off < body.len; off += 65535) {
			size_t n = body.len - off > 65535 ? 65535 : body.len - off;
			record(&req, FCGI_STDIN, id, body.p + off, n);
		}
		record(&req, FCGI_STDIN, id, NULL, 0);
		if (write_all(fd, req.p, req.len) == -1) {
			fprintf(stderr, "fcgi-client: write: %s\n", strerror(errno));
			return 1;
		}
		while (!ended) {
			unsigned char h[8], content[65536 + 256];
			size_t clen, plen;
			int rc = read_full(fd, h, 8);

			if (rc == -3) {
				fprintf(stderr, "fcgi-client: timeout\n");
				return 3;
			}
			if (rc == -1) {
				fprintf(stderr, "fcgi-client: connection closed before END_REQUEST\n");
				return 1;
			}
			clen = (size_t)h[4] << 8 | h[5];
			plen = h[6];
			rc = read_full(fd, content, clen + plen);
			if (rc == -3) {
				fprintf(stderr, "fcgi-client: timeout\n");
				return 3;
			}
			if (rc == -1) {
				fprintf(stderr, "fcgi-client: connection closed mid-record\n");
				return 1;
			}
			if (h[1] == FCGI_STDOUT)
				fwrite(content, 1, clen, stdout);
			else if (h[1] == FCGI_STDERR)
				fwrite(content, 1, clen, stderr);
			else if (h[1] == FCGI_END_REQUEST)
				ended = 1;
		}
		fflush(stdout);
		id = id % 65535 + 1;
	}
	close(fd);
	return 0;
}
