/*
 * server: a worker's event loop over the listening socket and every
 * connection it accepted. It owns the FastCGI side of a worker: accept,
 * reading records (fcgi_in.c), the request body, and the output queues
 * (out.c); the handler decides what a request gets.
 *
 * Nothing here waits for one peer. A connection's bytes are read (consumed,
 * not peeked) into its own buffer as they arrive and fed to its parser;
 * its response is queued on it and written as the socket takes it
 * (EPOLLOUT). Connections are edge-triggered, so a slow reader, a
 * half-sent request or a front server that waits for POLLOUT before each
 * write (Apache's mod_proxy_fcgi) costs the others nothing.
 *
 * --timeout: the head of a request (BEGIN_REQUEST and PARAMS, at most
 * 64 KiB, which a front server sends at once) must arrive within it, so a
 * peer trickling a byte a second (slowloris) cannot hold a connection.
 * From there on it is an inactivity timeout: any byte of the body or of
 * the response resets it, so a slow but steady reader gets the whole file.
 *
 * Signals: SIGTERM and SIGINT stay blocked and are read from a signalfd,
 * so a stop request is handled between events, never inside a write;
 * SIGHUP (the supervisor's to act on), SIGUSR1, SIGUSR2 and SIGPIPE are
 * ignored. Since no signal has a handler, no system call here is ever
 * interrupted by one; EINTR is still retried wherever it could appear.
 *
 * All state is in struct server and struct conn, passed explicitly.
 */
#include "server.h"
#include "clock.h"
#include "fcgi_in.h"
#include "handler.h"
#include "log.h"
#include "out.h"
#include "reqparse.h"
#include "sock.h"
#include "stats.h"
#include "write.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EVENTS 64
#define ACCEPT_BATCH 64
/* Input buffer of a connection. Records stream through it, so it bounds
 * nothing but how much is read per recv(). */
#define IN_BUF (16 * 1024)
#define SWEEP_MS 500
/* Closed connections kept for reuse, with their buffers. */
#define SPARE_CONNS 64

/*
 * After a stop request a worker goes on accepting and serving for this
 * long. Workers are told to stop together, and the listening socket lives
 * until its last holder closes it: had the first worker stopped accepting
 * at once, connections arriving meanwhile would queue behind a socket
 * nobody accepts from and be reset when the last copy closed. Each worker
 * ends its grace period by accepting whatever is queued, then closes its
 * copy; from then on each answer on a kept connection closes it.
 */
#define STOP_GRACE_MS 500

/*
 * What an epoll event points at. A connection that waits for an answer
 * from elsewhere (CONN_WAIT: an upload process's reply socket) has that
 * descriptor watched as W_REPLY, through a second watch inside it.
 */
enum watch_kind { W_LISTEN, W_SIGNAL, W_CONN, W_REPLY };

struct watch {
	enum watch_kind kind;
	int fd;
};

enum conn_state {
	CONN_READ,	/* reading a request */
	CONN_WRITE,	/* its response is queued; later input waits behind it */
	CONN_WAIT,	/* a write's answer comes from an upload process */
	CONN_LINGER,	/* answered and closing: drop what the peer still sends */
};

struct conn {
	struct watch w;			/* first: an event's pointer is the conn */
	struct watch rw;		/* CONN_WAIT: the job's reply socket */
	struct conn *prev, *next;
	enum conn_state state;
	uint32_t armed;			/* epoll events registered, 0: none */
	int can_read;			/* no EAGAIN since the last input edge */
	int eof;			/* the peer shut down its side */
	int close_after;		/* close once the response is out */
	int drop_input;			/* answered early (413): read and drop */
	int served;			/* requests answered on this connection */
	int in_body;			/* the request's PARAMS are in */
	int64_t last_active;		/* ms; see --timeout above */
	int outq;			/* bytes in the socket's send queue when
					 * last looked at, -1 for not known */
	unsigned char *ibuf;		/* IN_BUF bytes: ioff parsed, up to ilen read */
	size_t ioff, ilen;
	struct fcgi_in in;
	struct req req;			/* parsed when its PARAMS are in */
	int keep_body;			/* a PUT: the body is kept */
	uint64_t body_len;		/* body bytes received (kept or not) */
	unsigned char *body;
	size_t body_cap;
	struct out out;
};

struct server {
	const struct conf *cf;
	int epfd;
	struct watch lw;		/* the listening socket; fd -1 once closed */
	struct watch sw;		/* signalfd for SIGTERM and SIGINT */
	struct conn *conns;		/* every open connection */
	size_t nconns;
	struct conn *spare;		/* closed ones, for reuse */
	size_t nspare;
	int upload_fd;			/* the upload job queue, -1: none */
	struct handler handler;		/* variant jobs this worker sent */
	unsigned uploads_waiting;	/* jobs of this worker not answered yet */
	int stopping;
	int64_t grace_end, stop_deadline;
	unsigned char drop[IN_BUF];	/* where dropped input goes */
};

static void
conn_touch(struct conn *c)
{
	c->last_active = clock_ms();
}

static void
body_release(struct conn *c)
{
	free(c->body);
	c->body = NULL;
	c->body_cap = 0;
	c->body_len = 0;
	c->keep_body = 0;
}

static struct conn *
conn_new(struct server *s, int fd)
{
	struct conn *c = s->spare;

	if (c != NULL) {
		s->spare = c->next;
		s->nspare--;
	} else {
		if ((c = calloc(1, sizeof(*c))) == NULL)
			return NULL;
		out_init(&c->out);
		fcgi_in_init(&c->in);
	}
	c->w.kind = W_CONN;
	c->w.fd = fd;
	c->rw.kind = W_REPLY;
	c->rw.fd = -1;
	c->state = CONN_READ;
	c->armed = 0;
	c->eof = c->close_after = c->drop_input = c->served = 0;
	c->in_body = 0;
	c->can_read = 1;
	c->ioff = c->ilen = 0;
	conn_touch(c);
	c->prev = NULL;
	c->next = s->conns;
	if (s->conns != NULL)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	return c;
}

/* Lets go of a write's reply socket (close() takes it out of epoll). The
 * upload process finishes the job all the same: the store never holds
 * half an avatar, whoever waits or not. */
static void
reply_release(struct server *s, struct conn *c)
{
	if (c->rw.fd < 0)
		return;
	close(c->rw.fd);
	c->rw.fd = -1;
	s->uploads_waiting--;
}

/* Closes the connection (which also takes it out of the epoll set). */
static void
conn_close(struct server *s, struct conn *c)
{
	reply_release(s, c);
	close(c->w.fd);
	c->w.fd = -1;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	s->nconns--;
	body_release(c);
	out_begin(&c->out, 0);		/* releases queued bodies and files */
	fcgi_in_free(&c->in);
	/* Always kept until the current batch of events is done (spare_trim):
	 * a later event of the same batch may still name this connection,
	 * and must find it closed (w.fd -1), not freed. */
	c->next = s->spare;
	s->spare = c;
	s->nspare++;
}

/* Closes a connection whose request cannot be answered whole (our
 * failure, the peer's, or a protocol error), counted as an error.
 * Returns -1, as its callers do then. */
static int
conn_fail(struct server *s, struct conn *c)
{
	stats_inc(ST_ERRORS);
	conn_close(s, c);
	return -1;
}

/* Frees closed connections beyond SPARE_CONNS, between batches. */
static void
spare_trim(struct server *s)
{
	while (s->nspare > SPARE_CONNS) {
		struct conn *c = s->spare;

		s->spare = c->next;
		s->nspare--;
		out_free(&c->out);
		free(c->ibuf);
		free(c);
	}
}

/*
 * Leaves the connection to epoll, edge-triggered: input is read until
 * EAGAIN (or until the buffer is full, then can_read says more is waiting)
 * and output written until EAGAIN, so every edge is a real change.
 * EPOLLOUT is asked for only while a response waits for room: each reader
 * taking bytes would otherwise wake the worker once more per response (5 us
 * of system time a request, measured), and a response that fits the socket
 * at once, the usual case, costs no epoll_ctl at all.
 */
static int
conn_arm(struct server *s, struct conn *c)
{
	struct epoll_event ev = {
		.events = EPOLLIN | EPOLLRDHUP | EPOLLET |
		    (c->state == CONN_WRITE ? EPOLLOUT : 0),
		.data.ptr = &c->w,
	};

	if (c->armed == ev.events)
		return 0;
	if (epoll_ctl(s->epfd, c->armed ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->w.fd, &ev) == -1) {
		log_warn("epoll_ctl");
		conn_close(s, c);
		return -1;
	}
	c->armed = ev.events;
	return 0;
}

static void
log_request(const struct req *r, int status)
{
	char path[256];

	log_escape(path, sizeof(path), r->log_path, strlen(r->log_path));
	log_debug("%s %s -> %d", req_method_name(r->method), path, status);
}

/*
 * The response is whole: the next request may be read, or the connection
 * ends. Returns 0, or -1 when the connection was closed.
 */
static int
response_done(struct server *s, struct conn *c)
{
	body_release(c);
	/*
	 * Once stopping, a kept connection still serves through the grace
	 * period (closing it after each answer would race with the front
	 * server reusing it at once); after that it is closed, unless the
	 * next request is already here: that one is answered first.
	 */
	if (c->close_after || (s->stopping && s->lw.fd < 0 && c->ilen == c->ioff)) {
		if (c->drop_input) {
			/* The peer may still be sending the body we refused:
			 * closing now could reset the connection before it
			 * reads the answer (TCP discards it on RST). Say we
			 * are done and drop what comes, for --timeout at most. */
			shutdown(c->w.fd, SHUT_WR);
			c->state = CONN_LINGER;
			return 0;
		}
		if (c->ilen > c->ioff)
			log_warnx("peer: %zu bytes after a request on a connection to "
			    "be closed (no FCGI_KEEP_CONN); dropped", c->ilen - c->ioff);
		conn_close(s, c);
		return -1;
	}
	c->served++;
	c->state = CONN_READ;
	c->in_body = 0;
	fcgi_in_next_request(&c->in);
	return 0;
}

/* Bytes in the socket's send queue (unix sockets count whole buffers). */
static int
send_queue(int fd)
{
	int q;

	return ioctl(fd, SIOCOUTQ, &q) == -1 ? -1 : q;
}

/*
 * Sends what the socket takes. Returns 1 on progress (bytes sent, or the
 * response finished), 0 when it must wait for EPOLLOUT, -1 when the
 * connection was closed.
 */
static int
conn_flush(struct server *s, struct conn *c)
{
	size_t sent;

	switch (out_send(&c->out, c->w.fd, &sent)) {
	case OUT_DONE:
		conn_touch(c);
		return response_done(s, c) == -1 ? -1 : 1;
	case OUT_AGAIN:
		if (sent == 0)
			return 0;
		conn_touch(c);
		/* From here on, the queue shrinking is the reader's doing. */
		c->outq = send_queue(c->w.fd);
		return 1;
	case OUT_FAIL:
		break;
	}
	/* The peer went away, or a streamed file shrank: end the connection
	 * without END_REQUEST so the front server sees the truncation
	 * instead of a short body. */
	if (c->out.file_error)
		log_warnx("an avatar file shrank while it was sent; response cut");
	return conn_fail(s, c);
}

/*
 * The response is queued: first try to send it whole, then take a copy of
 * what the cache lent and the socket did not take. Returns -1 when the
 * connection was closed.
 */
static int
respond(struct server *s, struct conn *c, int close_after)
{
	c->state = CONN_WRITE;
	c->close_after = close_after;
	c->outq = -1;
	if (out_end(&c->out) == -1)
		return conn_fail(s, c);
	if (conn_flush(s, c) == -1)
		return -1;
	if (c->state == CONN_WRITE && out_keep(&c->out) == -1) {
		log_warn("response copy");
		return conn_fail(s, c);
	}
	return 0;
}

/*
 * The answer to the request is built (st: its status, or -1 when the sink
 * failed and it cannot be whole): send it, and keep the connection if the
 * front server asked to. Returns -1 when the connection was closed.
 */
static int
answer(struct server *s, struct conn *c, int st)
{
	if (log_enabled(LOG_LVL_DEBUG))
		log_request(&c->req, st);
	if (st < 0)
		return conn_fail(s, c);
	return respond(s, c, !c->in.keep_conn);
}

/* A body over --upload-max: 413 now, then the connection closes. */
static int
too_large(struct server *s, struct conn *c)
{
	char msg[96];
	struct sink sk;
	int n;

	log_info("request body over --upload-max (%llu bytes): 413, connection closed",
	    (unsigned long long)s->cf->upload_max);
	stats_inc(ST_REQUESTS);
	out_begin(&c->out, c->in.id);
	sk = out_sink(&c->out);
	c->drop_input = 1;
	body_release(c);
	/* JSON, as every answer to a write; the limit it names is the option. */
	n = snprintf(msg, sizeof(msg), "{\"error\":\"upload-max: the body is over %llu bytes\"}\n",
	    (unsigned long long)s->cf->upload_max);
	if (n < 0 || (size_t)n >= sizeof(msg))
		n = 0;
	if (resp_plain(s->cf, &c->req, RESP_PAYLOAD_TOO_LARGE, "application/json", "no-store",
	    msg, (size_t)n, &sk) == -1) {
		conn_close(s, c);
		return -1;
	}
	return respond(s, c, 1);
}

/* A sink that keeps nothing: write_check's verdict without its answer. */
static int
discard_bytes(void *ctx, const void *buf, size_t len)
{
	(void)ctx;
	(void)buf;
	(void)len;
	return 0;
}

static int
discard_file(void *ctx, int fd, uint64_t size)
{
	(void)ctx;
	(void)fd;
	(void)size;
	return 0;
}

/*
 * Whether a PUT's body is worth keeping: one whose parameters already
 * settle it (writes off, not an id, a bad signature, no length) is read
 * and dropped as it arrives, never buffered, and answered at its end like
 * any request, so the connection stays usable for the next one.
 */
static int
write_wanted(struct server *s, struct conn *c)
{
	struct sink none = { discard_bytes, discard_bytes, discard_file, NULL };

	return write_check(s->cf, &c->req, &none) == 0;
}

/* PARAMS are whole: the request parser takes what it needs of them. */
static int
on_params(struct server *s, struct conn *c)
{
	struct req_params p;
	size_t pos = 0, nlen, vlen;
	const char *name, *value;
	uint64_t clen;

	c->in_body = 1;
	conn_touch(c);
	memset(&p, 0, sizeof(p));
	while (fcgi_in_param(&c->in, &pos, &name, &nlen, &value, &vlen))
		req_params_set(&p, name, nlen, value, vlen);
	req_parse(&p, &c->req);

	body_release(c);
	/* Only an upload's body is kept; any other is read and dropped. */
	c->keep_body = c->req.method == REQ_PUT && write_wanted(s, c);
	if (c->req.content_length_state == REQ_OK) {
		clen = (uint64_t)c->req.content_length;
		if (clen > s->cf->upload_max)
			return too_large(s, c);
		if (c->keep_body && clen > 0) {
			/* The whole body at once when its size is known. */
			if ((c->body = malloc((size_t)clen)) != NULL)
				c->body_cap = (size_t)clen;
		}
	}
	return 0;
}

/* A piece of the body: kept (PUT) or counted and dropped. */
static int
on_stdin(struct server *s, struct conn *c, const unsigned char *p, size_t n)
{
	if (c->body_len + n > s->cf->upload_max)
		return too_large(s, c);
	if (c->keep_body) {
		if (c->body_len + n > c->body_cap) {
			size_t cap = c->body_cap ? c->body_cap : 64 * 1024;
			unsigned char *nb;

			while (cap < c->body_len + n)
				cap *= 2;
			if (cap > s->cf->upload_max)
				cap = (size_t)s->cf->upload_max;
			if ((nb = realloc(c->body, cap)) == NULL) {
				log_warn("request body");
				conn_close(s, c);
				return -1;
			}
			c->body = nb;
			c->body_cap = cap;
		}
		memcpy(c->body + c->body_len, p, n);
	}
	c->body_len += n;
	return 0;
}

static void conn_run(struct server *s, struct conn *c);

/*
 * A write was handed to an upload process: the connection waits for the
 * reply socket, and the worker goes on serving everyone else. The body
 * went with the job (a copy in a sealed memfd), so it is freed now.
 */
static int
conn_wait(struct server *s, struct conn *c, int rfd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &c->rw };

	body_release(c);
	c->state = CONN_WAIT;
	c->rw.fd = rfd;
	s->uploads_waiting++;
	conn_touch(c);
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, rfd, &ev) == -1) {
		log_warn("epoll_ctl reply");
		return conn_fail(s, c);
	}
	return 0;
}

/* The upload process answered (or died, or took too long): send it. */
static void
conn_reply(struct server *s, struct conn *c, int timed_out)
{
	struct sink sk;
	int st;

	out_begin(&c->out, c->in.id);
	sk = out_sink(&c->out);
	if (timed_out)
		st = write_timeout(s->cf, &c->req, &sk);
	else if ((st = write_finish(s->cf, &c->req, c->rw.fd, &sk)) == WRITE_PENDING)
		return;
	reply_release(s, c);
	if (st >= 500)
		stats_inc(ST_ERRORS);
	if (answer(s, c, st) == 0)
		conn_run(s, c);
}

/* The request is whole: run it. */
static int
on_end(struct server *s, struct conn *c)
{
	struct req *r = &c->req;
	struct sink sk;
	int st;

	r->body = c->keep_body ? c->body : NULL;
	r->body_len = c->keep_body ? (size_t)c->body_len : 0;
	out_begin(&c->out, c->in.id);
	sk = out_sink(&c->out);
	if (r->method == REQ_PUT || r->method == REQ_DELETE) {
		int rfd = -1;

		stats_inc(ST_REQUESTS);
		st = write_begin(s->cf, r, r->body, r->body_len, s->upload_fd,
		    s->uploads_waiting, r->remote_addr, &sk, &rfd);
		if (st == WRITE_PENDING)
			return conn_wait(s, c, rfd);
		/* Counted like the handler counts: writes off is a method
		 * this resource does not have. */
		if (st == RESP_METHOD_NOT_ALLOWED)
			stats_inc(ST_METHOD_NOT_ALLOWED);
		else if (st >= 500)
			stats_inc(ST_ERRORS);
	} else
		st = handler_run(s->cf, &s->handler, r, &sk);
	return answer(s, c, st);
}

/* FCGI_ABORT_REQUEST: END_REQUEST answers it, whatever was under way. */
static int
on_abort(struct server *s, struct conn *c)
{
	if (c->state == CONN_WRITE) {
		out_abort(&c->out);
		return 0;
	}
	out_begin(&c->out, c->in.id);
	return respond(s, c, !c->in.keep_conn);
}

/*
 * Feeds the buffered bytes to the parser and acts on each event. Returns
 * 1 on progress, 0 when it needs more bytes (or the response to finish),
 * -1 when the connection was closed.
 */
static int
conn_parse(struct server *s, struct conn *c)
{
	int progress = 0, r = 0;

	while (c->ioff < c->ilen && !c->drop_input &&
	    (c->state == CONN_READ || c->state == CONN_WRITE)) {
		struct fcgi_in_event ev;
		size_t used = fcgi_in_feed(&c->in, c->ibuf + c->ioff, c->ilen - c->ioff, &ev);

		c->ioff += used;
		if (used > 0)
			progress = 1;
		switch (ev.type) {
		case FCGI_IN_MORE:
			return progress;
		case FCGI_IN_BAD:
			log_warnx("peer: %s; connection closed", ev.why);
			return conn_fail(s, c);
		case FCGI_IN_PARAMS:
			r = on_params(s, c);
			break;
		case FCGI_IN_STDIN:
			r = on_stdin(s, c, ev.data, ev.len);
			break;
		case FCGI_IN_END:
			r = on_end(s, c);
			break;
		case FCGI_IN_ABORT:
			r = on_abort(s, c);
			break;
		}
		if (r == -1)
			return -1;
		progress = 1;
	}
	if (c->drop_input)
		c->ioff = c->ilen;
	return progress;
}

/*
 * Reads what the socket has, as far as the buffer has room. Returns 1 on
 * progress (bytes, or the end of input), 0 when there is nothing to read
 * now, -1 when the connection failed.
 */
static int
conn_fill(struct server *s, struct conn *c)
{
	for (;;) {
		unsigned char *dst;
		size_t room;
		ssize_t n;

		if (c->eof || !c->can_read)
			return 0;
		if (c->drop_input) {
			dst = s->drop;
			room = sizeof(s->drop);
		} else {
			if (c->ibuf == NULL && (c->ibuf = malloc(IN_BUF)) == NULL)
				return -1;
			/* What the parser has not taken moves to the front. */
			if (c->ioff > 0) {
				memmove(c->ibuf, c->ibuf + c->ioff, c->ilen - c->ioff);
				c->ilen -= c->ioff;
				c->ioff = 0;
			}
			dst = c->ibuf + c->ilen;
			room = IN_BUF - c->ilen;
			if (room == 0)
				return 0;	/* can_read stays set: read after parsing */
		}
		n = recv(c->w.fd, dst, room, MSG_DONTWAIT);
		if (n > 0) {
			/* Bytes of a request's head do not extend its time,
			 * nor do those dropped after an early answer. */
			if (c->in_body && c->state != CONN_LINGER)
				conn_touch(c);
			if (!c->drop_input) {
				c->ilen += (size_t)n;
				return 1;
			}
			continue;
		}
		if (n == 0) {
			c->eof = 1;
			return 1;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			c->can_read = 0;
			return 0;
		}
		return -1;
	}
}

/*
 * Moves a connection as far as it can go without waiting: send, read,
 * parse, answer, and again, until nothing changes; then leaves it to epoll.
 */
static void
conn_run(struct server *s, struct conn *c)
{
	for (;;) {
		int progress = 0, r;

		if (c->state == CONN_WRITE) {
			if ((r = conn_flush(s, c)) == -1)
				return;
			progress |= r;
		}
		if ((r = conn_fill(s, c)) == -1) {
			conn_close(s, c);
			return;
		}
		progress |= r;
		if ((r = conn_parse(s, c)) == -1)
			return;
		progress |= r;
		if (!progress)
			break;
	}
	/* At the end of input, a connection that is not answering is done:
	 * what it holds is an unfinished request that can never finish. */
	if (c->eof && (c->state == CONN_READ || c->state == CONN_LINGER)) {
		conn_close(s, c);
		return;
	}
	(void)conn_arm(s, c);
}

static void
conn_event(struct server *s, struct conn *c, uint32_t events)
{
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		c->can_read = 1;
	conn_run(s, c);
}

/*
 * Accepts one connection. Returns it, or NULL with *done set when the
 * queue is empty or accept failed, or NULL alone when this peer was
 * refused (try the next one).
 */
static struct conn *
accept_conn(struct server *s, int *done)
{
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	struct conn *c;
	int fd;

	*done = 0;
	fd = accept4(s->lw.fd, (struct sockaddr *)&ss, &sslen, SOCK_CLOEXEC | SOCK_NONBLOCK);
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
	if ((c = conn_new(s, fd)) == NULL) {
		log_warn("connection");
		close(fd);
		return NULL;
	}
	return c;
}

static void
accept_some(struct server *s)
{
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int done;
		struct conn *c = accept_conn(s, &done);

		if (done)
			return;
		/* The front server usually writes its request right after
		 * connecting: serve it now; epoll only if it must wait. */
		if (c != NULL)
			conn_run(s, c);
	}
}

/*
 * A reader that takes bytes counts as progress even before the socket says
 * it is writable again: a unix socket wakes its writer only when three
 * quarters of its buffer (about 200 KB) have drained, which a reader at
 * 100 KB/s takes longer than a short --timeout to do. The socket's send
 * queue shrinks as the reader goes, 36 KB (one kernel buffer) at a time;
 * conn_flush notes its size after each write, each sweep compares.
 */
static void
check_reader(struct conn *c, int64_t now)
{
	int q = send_queue(c->w.fd);

	if (q >= 0 && c->outq >= 0 && q < c->outq)
		c->last_active = now;
	c->outq = q;
}

/* Closes connections that made no progress for --timeout: idle kept ones,
 * peers that never finished a request (slowloris), readers that stopped. */
static void
sweep(struct server *s, int64_t now)
{
	int64_t limit = s->cf->timeout * 1000;
	struct conn *c, *next;

	for (c = s->conns; c != NULL; c = next) {
		next = c->next;
		if (c->state == CONN_WRITE)
			check_reader(c, now);
		if (now - c->last_active < limit)
			continue;
		if (c->state == CONN_WAIT) {
			log_warnx("upload: no answer within %lld s; 503 sent",
			    (long long)s->cf->timeout);
			conn_reply(s, c, 1);
			continue;
		}
		if (c->state == CONN_WRITE) {
			log_warnx("peer took no byte for %lld s; response cut",
			    (long long)s->cf->timeout);
			stats_inc(ST_ERRORS);
		}
		conn_close(s, c);
	}
}

static void
stop_listening(struct server *s)
{
	struct conn *first = NULL;
	int n = 0;

	/*
	 * Take the whole queue first and serve it afterwards: a connection
	 * that arrives while this worker is busy answering would otherwise
	 * be queued behind a socket about to close, and reset with it.
	 * Between the last accept and close() only microseconds pass.
	 */
	for (;;) {
		int done;
		struct conn *c = accept_conn(s, &done);

		if (c != NULL) {
			n++;
			if (first == NULL)
				first = c;
		} else if (done) {
			break;
		}
	}
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->lw.fd, NULL);
	close(s->lw.fd);
	s->lw.fd = -1;
	/* New connections are at the head of the list, the first taken
	 * last; serve them oldest first. */
	for (struct conn *c = first; c != NULL && n > 0; n--) {
		struct conn *prev = c->prev;

		conn_run(s, c);
		c = prev;
	}
}

/*
 * Closes kept connections that have nothing buffered, at the end of the
 * grace period. The front server may be writing a request into one at this
 * very moment; nginx retries a request that fails on a cached connection,
 * but on a pool that is going away the retry has nowhere to go. During the
 * grace period every request on a kept connection is still served, so the
 * idle ones left by then are the ones the front server is not using. A
 * connection that has not sent its first request is never closed here: the
 * front server connected to send one; it gets --timeout like any other.
 */
static void
close_idle_kept(struct server *s)
{
	struct conn *c, *next;

	for (c = s->conns; c != NULL; c = next) {
		unsigned char b;
		ssize_t n;

		next = c->next;
		if (c->served == 0 || c->state != CONN_READ || c->ilen > c->ioff ||
		    c->in.id != 0)
			continue;
		n = recv(c->w.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			conn_close(s, c);
	}
}

/* SIGTERM or SIGINT: start the stop sequence. */
static void
read_signals(struct server *s)
{
	struct signalfd_siginfo si;

	while (read(s->sw.fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if ((si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) && !s->stopping) {
			s->stopping = 1;
			s->grace_end = clock_ms() + STOP_GRACE_MS;
			s->stop_deadline = s->grace_end + s->cf->timeout * 1000 + 1000;
		}
	}
}

static int
watch_fd(struct server *s, struct watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	return epoll_ctl(s->epfd, EPOLL_CTL_ADD, w->fd, &ev);
}

/*
 * Dispositions first, so that nothing can stop this process from here on
 * but SIGTERM, SIGINT (both read from the signalfd) and SIGKILL. This also
 * holds when the worker runs alone (--workers 0). Returns 0, or -1.
 */
static int
server_setup(struct server *s, const struct conf *cf, int listen_fd, int upload_fd)
{
	struct sigaction sa;
	struct rlimit rl;
	sigset_t stop;
	static const int ignored[] = { SIGHUP, SIGUSR1, SIGUSR2, SIGPIPE };

	memset(s, 0, sizeof(*s));
	s->cf = cf;
	s->epfd = s->sw.fd = -1;
	s->lw.kind = W_LISTEN;
	s->lw.fd = listen_fd;
	s->sw.kind = W_SIGNAL;
	s->upload_fd = upload_fd;
	handler_init(&s->handler, upload_fd);

	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigprocmask(SIG_BLOCK, &stop, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
		sigaction(ignored[i], &sa, NULL);

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	if ((s->sw.fd = signalfd(-1, &stop, SFD_NONBLOCK | SFD_CLOEXEC)) == -1) {
		log_err("signalfd");
		return -1;
	}
	if ((s->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1) {
		log_err("epoll_create1");
		return -1;
	}
	(void)fcntl(listen_fd, F_SETFL, fcntl(listen_fd, F_GETFL) | O_NONBLOCK);
	/* EPOLLEXCLUSIVE: a new connection wakes one idle worker, not all. */
	if (watch_fd(s, &s->lw, EPOLLIN | EPOLLEXCLUSIVE) == -1 ||
	    watch_fd(s, &s->sw, EPOLLIN) == -1) {
		log_err("epoll_ctl");
		return -1;
	}
	return 0;
}

/*
 * One step of the stop sequence, before each wait. Returns the wait's
 * timeout in ms, or -2 when the worker may return.
 */
static int
stop_step(struct server *s)
{
	int64_t t = clock_ms();

	if (s->lw.fd >= 0 && t >= s->grace_end) {
		stop_listening(s);
		close_idle_kept(s);
	}
	if (s->lw.fd < 0 && s->nconns == 0)
		return -2;
	if (t > s->stop_deadline) {
		log_warnx("stopping with %zu connections unfinished", s->nconns);
		return -2;
	}
	return s->lw.fd >= 0 ? (int)(s->grace_end - t) + 1 : 200;
}

static int
server_loop(struct server *s)
{
	struct epoll_event evs[MAX_EVENTS];
	int64_t last_sweep = clock_ms();

	for (;;) {
		int n, timeout = s->nconns ? SWEEP_MS : -1;
		int64_t now;

		if (s->stopping && (timeout = stop_step(s)) == -2)
			return 0;
		n = epoll_wait(s->epfd, evs, MAX_EVENTS, timeout);
		if (n == -1 && errno != EINTR) {
			log_err("epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			struct watch *w = evs[i].data.ptr;

			switch (w->kind) {
			case W_LISTEN:
				if (s->lw.fd >= 0)
					accept_some(s);
				break;
			case W_SIGNAL:
				read_signals(s);
				break;
			case W_CONN:
				/* Closed by an earlier event of this batch. */
				if (w->fd >= 0)
					conn_event(s, (struct conn *)w, evs[i].events);
				break;
			case W_REPLY:
				if (w->fd >= 0)
					conn_reply(s, (struct conn *)(void *)((char *)w -
					    offsetof(struct conn, rw)), 0);
				break;
			}
		}
		spare_trim(s);
		now = clock_ms();
		if (s->nconns && now - last_sweep >= SWEEP_MS) {
			sweep(s, now);
			last_sweep = now;
		}
	}
}

static void
server_teardown(struct server *s)
{
	struct conn *c;

	while (s->conns != NULL)
		conn_close(s, s->conns);
	while ((c = s->spare) != NULL) {
		s->spare = c->next;
		out_free(&c->out);
		fcgi_in_free(&c->in);
		free(c->ibuf);
		free(c);
	}
	if (s->lw.fd >= 0)
		close(s->lw.fd);
	if (s->sw.fd >= 0)
		close(s->sw.fd);
	if (s->epfd >= 0)
		close(s->epfd);
}

int
server_run(const struct conf *cf, int listen_fd, int upload_fd)
{
	struct server s;
	int rc = 1;

	if (server_setup(&s, cf, listen_fd, upload_fd) == 0)
		rc = server_loop(&s);
	server_teardown(&s);
	return rc;
}
