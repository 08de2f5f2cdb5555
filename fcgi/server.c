/*
 * server: a worker's epoll loop over the listening socket and every
 * connection it accepted.
 *
 * Why not plain FCGX_Accept_r: libfcgi serves one connection at a time and
 * blocks reading it with no timeout. A front server that keeps FastCGI
 * connections open (nginx fastcgi_keep_conn) then pins a worker per idle
 * connection, and a peer that stops mid-record pins one forever. Here the
 * worker accepts itself, watches all its connections at once, and hands a
 * connection to libfcgi only when guard.c has seen a whole, well-formed
 * request in the socket buffer (MSG_PEEK), so libfcgi's reads never block.
 *
 * libfcgi parses the request: it is given no listening socket (-1), so its
 * FCGX_Accept_r reads the connection placed in ipcFd and, on a protocol
 * error, closes it and fails at accept() instead of blocking.
 * keepConnection is forced on so that it never closes a connection behind
 * our back, and FCGX_Detach stops its lingering close (shutdown, then up to
 * 2 s of select) on error. ipcFd and keepConnection sit in the "don't use"
 * part of FCGX_Request; they are the only way to drive libfcgi this way,
 * and the struct has been unchanged since 2.4.0. The response goes out
 * through out.c in one writev, and FCGX_Free releases libfcgi's side.
 */
#include "server.h"
#include "clock.h"
#include "guard.h"
#include "handler.h"
#include "log.h"
#include "out.h"
#include "reqparse.h"
#include "sock.h"
#include "stats.h"

#include <errno.h>
#include <fcgiapp.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 64
#define ACCEPT_BATCH 64

struct conn {
	int fd;			/* -1: slot free */
	int64_t deadline;	/* ms, CLOCK_MONOTONIC */
	int in_epoll;
	int served;		/* requests answered on this connection */
};

static volatile sig_atomic_t stop_requested;
static const struct conf *cf;
static int epfd = -1, lfd = -1;
static struct conn *conns;
static size_t nconns_cap, nconns;
static unsigned char peekbuf[GUARD_MAX];
static FCGX_Request req;

static void
on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static struct conn *
conn_slot(int fd)
{
	if ((size_t)fd >= nconns_cap) {
		size_t cap = nconns_cap ? nconns_cap : 256;
		struct conn *n;

		while (cap <= (size_t)fd)
			cap *= 2;
		if ((n = realloc(conns, cap * sizeof(*n))) == NULL)
			return NULL;
		for (size_t i = nconns_cap; i < cap; i++)
			n[i].fd = -1;
		conns = n;
		nconns_cap = cap;
	}
	return &conns[fd];
}

/* Forgets a connection whose descriptor is already closed. */
static void
conn_forget(struct conn *c)
{
	c->fd = -1;
	c->in_epoll = 0;
	nconns--;
}

static void
conn_close(struct conn *c)
{
	/* close() also removes the descriptor from the epoll set. */
	close(c->fd);
	conn_forget(c);
}

static void
log_request(const struct req *r, int status)
{
	char path[256];

	log_escape(path, sizeof(path), r->log_path, strlen(r->log_path));
	log_debug("%s %s -> %d", req_method_name(r->method), path, status);
}

/* Runs one whole, buffered request through libfcgi and the handler. */
static void
conn_request(struct conn *c)
{
	static struct out out;
	struct req_params p;
	struct req r;
	struct sink s;
	char drain[512];
	int peer_keep, st;

	req.ipcFd = c->fd;
	req.keepConnection = 1;
	FCGX_Detach(&req);
	if (FCGX_Accept_r(&req) < 0) {
		/* libfcgi met a protocol error and closed the connection. */
		log_warnx("peer: malformed request; connection closed");
		stats_inc(ST_ERRORS);
		conn_forget(c);
		req.ipcFd = -1;
		return;
	}
	peer_keep = req.keepConnection;

	/* Copy out what we need before anything else: envp is libfcgi's. */
	memset(&p, 0, sizeof(p));
	for (char **e = req.envp; e != NULL && *e != NULL; e++) {
		const char *eq = strchr(*e, '=');

		if (eq != NULL)
			req_params_set(&p, *e, (size_t)(eq - *e), eq + 1, strlen(eq + 1));
	}
	req_parse(&p, &r);

	/* The guard saw the end of STDIN, so this never blocks. A body is
	 * read and dropped so the connection is clean for the next request. */
	while (FCGX_GetStr(drain, sizeof(drain), req.in) > 0)
		;

	out_begin(&out, c->fd, (unsigned)req.requestId,
	    clock_ms() + cf->timeout * 1000);
	s = out_sink(&out);
	st = handler_run(cf, &r, &s);
	if (log_enabled(LOG_LVL_DEBUG))
		log_request(&r, st);
	/* Our own writer sent the response: free libfcgi's side without
	 * letting it write a second END_REQUEST or close anything. */
	FCGX_Free(&req, 0);
	req.ipcFd = -1;

	if (st < 0 || out_finish(&out) == -1) {
		/* The response cannot be completed (the peer went away or
		 * stalled, or a streamed file shrank): end the connection
		 * without END_REQUEST so the front server sees the
		 * truncation instead of a short body. */
		stats_inc(ST_ERRORS);
		conn_close(c);
		return;
	}
	/* Once stopping, a kept connection still serves through the grace
	 * period (closing it after each answer would race with the front
	 * server reusing it at once); after that it is closed. */
	if (!peer_keep || (stop_requested && lfd < 0)) {
		conn_close(c);
		return;
	}
	c->served++;
	c->deadline = clock_ms() + cf->timeout * 1000;
}

/*
 * Looks at what a connection has sent. hup: the peer has shut down its
 * side, so what is buffered is all that will ever come. Returns 1 when the
 * connection is still open and waiting for bytes, 0 when it was closed.
 */
static int
conn_service(struct conn *c, int hup)
{
	const char *why;
	size_t used;
	ssize_t n;

	for (;;) {
		n = recv(c->fd, peekbuf, sizeof(peekbuf), MSG_PEEK | MSG_DONTWAIT);
		if (n == 0) {
			conn_close(c);
			return 0;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 1;
			conn_close(c);
			return 0;
		}
		switch (guard_check(peekbuf, (size_t)n, &used, &why)) {
		case GUARD_MORE:
			if (hup) {
				conn_close(c);
				return 0;
			}
			return 1;
		case GUARD_BAD:
			log_warnx("peer: %s; connection closed", why);
			stats_inc(ST_ERRORS);
			conn_close(c);
			return 0;
		case GUARD_COMPLETE:
			conn_request(c);
			if (c->fd < 0)
				return 0;
			if (hup) {
				conn_close(c);
				return 0;
			}
			/* A kept connection: anything more is the next
			 * request, which arrives later; back to epoll. */
			return 1;
		}
	}
}

static void
conn_watch(struct conn *c)
{
	/*
	 * Edge-triggered: a connection holding half a request keeps its
	 * bytes in the socket (we only peek), so a level-triggered watch
	 * would wake us for it again and again. Each arrival of new bytes
	 * is an edge; that is the only time the guard can change its mind.
	 */
	struct epoll_event ev = {
		.events = EPOLLIN | EPOLLRDHUP | EPOLLET,
		.data.fd = c->fd,
	};

	if (c->in_epoll)
		return;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) == -1) {
		log_warn("epoll_ctl");
		conn_close(c);
		return;
	}
	c->in_epoll = 1;
}

/*
 * Accepts one connection and registers it. Returns it, or NULL with *done
 * set when the queue is empty or accept failed, or NULL alone when this
 * peer was refused (try the next one).
 */
static struct conn *
accept_conn(int *done)
{
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	struct conn *c;
	int fd;

	*done = 0;
	fd = accept4(lfd, (struct sockaddr *)&ss, &sslen, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd == -1) {
		if (errno == EINTR || errno == ECONNABORTED)
			return NULL;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			/* EMFILE and friends: back off instead of spinning
			 * on a queue we cannot take. */
			log_warn("accept");
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM)
				usleep(10000);
		}
		*done = 1;
		return NULL;
	}
	if (!sock_peer_allowed(&ss, sslen)) {
		log_warnx("peer not in FCGI_WEB_SERVER_ADDRS; closed");
		stats_inc(ST_ERRORS);
		close(fd);
		return NULL;
	}
	if ((c = conn_slot(fd)) == NULL) {
		close(fd);
		return NULL;
	}
	c->fd = fd;
	c->in_epoll = 0;
	c->served = 0;
	c->deadline = clock_ms() + cf->timeout * 1000;
	nconns++;
	return c;
}

static void
accept_some(void)
{
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int done;
		struct conn *c = accept_conn(&done);

		if (done)
			return;
		/* The front server usually writes its request right after
		 * connecting: try it now and skip epoll when it is done. */
		if (c != NULL && conn_service(c, 0))
			conn_watch(c);
	}
}

/* Closes connections past their deadline: idle kept ones and peers that
 * never finished a request (slowloris). */
static void
sweep(int64_t now)
{
	for (size_t i = 0; i < nconns_cap; i++) {
		struct conn *c = &conns[i];

		if (c->fd < 0 || c->deadline > now)
			continue;
		conn_close(c);
	}
}

/*
 * After a stop request a worker goes on accepting and serving for this
 * long, answering each request with a closed connection. Workers are told
 * to stop together, and the listening socket lives until its last holder
 * closes it: had the first worker stopped accepting at once, connections
 * arriving meanwhile would queue behind a socket nobody accepts from and be
 * reset when the last copy closed. Each worker ends its grace period with
 * a last accept of whatever is queued, then closes its copy.
 */
#define STOP_GRACE_MS 500

static void
stop_listening(void)
{
	int n = 0;

	/*
	 * Take the whole queue first and serve it afterwards: a connection
	 * that arrives while this worker is busy answering would otherwise
	 * be queued behind a socket about to close, and reset with it.
	 * Between the last accept and close() only microseconds pass.
	 */
	for (;;) {
		int done;

		if (accept_conn(&done) != NULL)
			n++;
		else if (done)
			break;
	}
	epoll_ctl(epfd, EPOLL_CTL_DEL, lfd, NULL);
	close(lfd);
	lfd = -1;
	/* Now serve them; epoll reports the ones whose bytes are already in. */
	for (size_t i = 0; i < nconns_cap && n > 0; i++) {
		struct conn *c = &conns[i];

		if (c->fd >= 0 && !c->in_epoll && c->served == 0) {
			n--;
			if (conn_service(c, 0))
				conn_watch(c);
		}
	}
}

/*
 * Closes kept connections that have nothing buffered, at the end of the
 * grace period. The front server may be writing a request into one at this
 * very moment; nginx retries a request that fails on a cached connection,
 * but on a pool that is going away the retry has nowhere to go. During the
 * grace period every request on a kept connection is still served (and its
 * connection closed after the answer), so the idle ones left by then are
 * the ones the front server is not using. A connection that has not sent
 * its first request is never closed here: the front server connected to
 * send one; it gets until its deadline like any other.
 */
static void
close_idle_kept(void)
{
	for (size_t i = 0; i < nconns_cap; i++) {
		struct conn *c = &conns[i];
		ssize_t n;

		if (c->fd < 0 || c->served == 0)
			continue;
		n = recv(c->fd, peekbuf, 1, MSG_PEEK | MSG_DONTWAIT);
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			conn_close(c);
	}
}

int
server_run(const struct conf *c, int listen_fd)
{
	struct epoll_event ev, evs[MAX_EVENTS];
	struct sigaction sa;
	struct rlimit rl;
	sigset_t block, waitmask;
	int64_t last_sweep = clock_ms(), stop_deadline = 0, grace_end = 0;

	cf = c;
	lfd = listen_fd;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	/* SIGHUP is the supervisor's (it replaces workers with SIGTERM); a
	 * hangup sent to the whole process group must not stop them all. */
	sa.sa_handler = SIG_IGN;
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGPIPE, &sa, NULL);
	/* Signals arrive only inside epoll_pwait, so a stop request can
	 * never fall between a check of the flag and the wait. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &waitmask);
	sigdelset(&waitmask, SIGTERM);
	sigdelset(&waitmask, SIGINT);

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (FCGX_Init() != 0 || FCGX_InitRequest(&req, -1, 0) != 0) {
		log_errx("libfcgi initialisation failed");
		return 1;
	}
	/* libfcgi installs its own handlers in FCGX_Init; ours win. */
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);

	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) == -1) {
		log_err("epoll_create1");
		return 1;
	}
	(void)fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK);
	/* EPOLLEXCLUSIVE: a new connection wakes one idle worker, not all. */
	ev.events = EPOLLIN | EPOLLEXCLUSIVE;
	ev.data.fd = lfd;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev) == -1) {
		log_err("epoll_ctl listen");
		return 1;
	}

	for (;;) {
		int n, timeout = nconns ? 500 : -1;
		int64_t now;

		if (stop_requested && grace_end == 0 && lfd >= 0) {
			grace_end = clock_ms() + STOP_GRACE_MS;
			stop_deadline = grace_end + c->timeout * 1000 + 1000;
		}
		if (grace_end != 0) {
			int64_t t = clock_ms();

			if (lfd >= 0 && t >= grace_end) {
				stop_listening();
				close_idle_kept();
			}
			if (lfd < 0 && nconns == 0)
				break;
			if (t > stop_deadline) {
				log_warnx("stopping with %zu connections unfinished", nconns);
				break;
			}
			timeout = lfd >= 0 ? (int)(grace_end - t) + 1 : 200;
		}
		n = epoll_pwait(epfd, evs, MAX_EVENTS, timeout, &waitmask);
		if (n == -1 && errno != EINTR) {
			log_err("epoll_pwait");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == lfd) {
				if (lfd >= 0)
					accept_some();
				continue;
			}
			if ((size_t)fd < nconns_cap && conns[fd].fd == fd)
				(void)conn_service(&conns[fd], (evs[i].events &
				    (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0);
		}
		now = clock_ms();
		if (nconns && now - last_sweep >= 500) {
			sweep(now);
			last_sweep = now;
		}
	}
	close(epfd);
	return 0;
}
