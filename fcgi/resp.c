/*
 * resp: header formatting for the three modes and body output.
 */
#include "resp.h"
#include "clock.h"
#include "cond.h"
#include "httpdate.h"
#include "log.h"
#include "sniff.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *const reasons[] = {
	[0] = "OK",		/* 200 */
	[1] = "Not Modified",	/* 304 */
	[2] = "Not Found",	/* 404 */
	[3] = "Method Not Allowed", /* 405 */
	[4] = "Internal Server Error", /* 500 */
};

static const char *
reason(enum resp_status st)
{
	switch (st) {
	case RESP_OK: return reasons[0];
	case RESP_NOT_MODIFIED: return reasons[1];
	case RESP_NOT_FOUND: return reasons[2];
	case RESP_METHOD_NOT_ALLOWED: return reasons[3];
	case RESP_SERVER_ERROR: return reasons[4];
	}
	return "Unknown";
}

/* Room for the longest X-Sendfile path conf accepts (CONF_PATH_MAX) plus
 * 1 KiB for every other header. */
struct hdr {
	char buf[CONF_PATH_MAX + 1024];
	size_t len;
	int overflow;
};

__attribute__((format(printf, 2, 3)))
static void
hdr_add(struct hdr *h, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(h->buf + h->len, sizeof(h->buf) - h->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(h->buf) - h->len)
		h->overflow = 1;
	else
		h->len += (size_t)n;
}

static void
hdr_common(struct hdr *h, enum resp_status st, const char *type,
    const char *cache_control)
{
	hdr_add(h, "Status: %d %s\r\nContent-Type: %s\r\nCache-Control: %s\r\n"
	    "X-Content-Type-Options: nosniff\r\n", (int)st, reason(st), type,
	    cache_control);
}

/*
 * An overflow means a header grew past what struct hdr was sized for: a
 * bug, and one that would hit every answer of that kind. It is logged, at
 * most once a minute with the count since the last line, never silent.
 */
static int
send_hdr(struct hdr *h, struct sink *s)
{
	static int64_t next_ms;
	static unsigned long dropped;

	if (h->overflow) {
		int64_t now = clock_ms();

		dropped++;
		if (now >= next_ms) {
			log_errx("response headers longer than %zu bytes: %lu "
			    "answer(s) dropped", sizeof(h->buf), dropped);
			dropped = 0;
			next_ms = now + 60000;
		}
		return -1;
	}
	return s->write(s->ctx, h->buf, h->len);
}

int
resp_plain(const struct conf *c, const struct req *r, enum resp_status st,
    const char *type, const char *cache_control, const char *body,
    size_t len, struct sink *s)
{
	struct hdr h = { .len = 0 };
	char cc[64];

	(void)c;
	if (cache_control == NULL) {
		snprintf(cc, sizeof(cc), "public, max-age=%lld",
		    (long long)c->default_max_age);
		cache_control = cc;
	}
	hdr_common(&h, st, type, cache_control);
	if (st == RESP_METHOD_NOT_ALLOWED)
		hdr_add(&h, "Allow: GET, HEAD\r\n");
	hdr_add(&h, "Content-Length: %zu\r\n\r\n", len);
	if (send_hdr(&h, s) == -1)
		return -1;
	if (r->method != REQ_HEAD && len > 0 && s->body(s->ctx, body, len) == -1)
		return -1;
	return (int)st;
}

/* Copies a descriptor's bytes to the sink; -1 if the file ends early. */
static int
stream_fd(int fd, uint64_t size, struct sink *s)
{
	static unsigned char buf[64 * 1024];
	uint64_t off = 0;

	while (off < size) {
		size_t want = size - off < sizeof(buf) ? (size_t)(size - off) : sizeof(buf);
		ssize_t n = pread(fd, buf, want, (off_t)off);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		if (s->write(s->ctx, buf, (size_t)n) == -1)
			return -1;
		off += (uint64_t)n;
	}
	return 0;
}

int
resp_avatar(const struct conf *c, const struct req *r, const struct avatar *a,
    int is_default, struct sink *s)
{
	struct hdr h = { .len = 0 };
	char cc[64], etag[COND_ETAG_LEN], lm[HTTPDATE_LEN];
	const char *type = sniff_mime(a->type);
	enum resp_status st = RESP_OK;

	snprintf(cc, sizeof(cc), "public, max-age=%lld",
	    (long long)(is_default ? c->default_max_age : c->max_age));

	switch (c->mode) {
	case MODE_X_ACCEL:
		/* nginx serves the file, with its own ETag, Last-Modified,
		 * 304 and Range, keeping our Content-Type and Cache-Control. */
		hdr_common(&h, st, type, cc);
		hdr_add(&h, "X-Accel-Redirect: %s%s\r\n\r\n", c->accel_prefix, a->name);
		return send_hdr(&h, s) == -1 ? -1 : (int)st;
	case MODE_X_SENDFILE:
		hdr_common(&h, st, type, cc);
		hdr_add(&h, "X-Sendfile: %s/%s\r\n\r\n", c->dir_abs, a->name);
		return send_hdr(&h, s) == -1 ? -1 : (int)st;
	case MODE_BYTES:
		break;
	}

	cond_etag(etag, (uint64_t)a->ident.size,
	    (int64_t)a->ident.mtime.tv_sec * 1000000000 + a->ident.mtime.tv_nsec);
	if (httpdate_format(a->ident.mtime.tv_sec, lm) == -1)
		lm[0] = '\0';
	if (cond_not_modified(r->inm_state != REQ_ABSENT,
	    r->inm_state == REQ_OK ? r->inm : NULL,
	    r->ims_state == REQ_OK ? r->ims : NULL, etag, a->ident.mtime.tv_sec))
		st = RESP_NOT_MODIFIED;
	hdr_common(&h, st, type, cc);
	hdr_add(&h, "ETag: %s\r\n", etag);
	if (lm[0] != '\0')
		hdr_add(&h, "Last-Modified: %s\r\n", lm);
	if (st == RESP_OK)
		hdr_add(&h, "Content-Length: %llu\r\n",
		    (unsigned long long)a->ident.size);
	hdr_add(&h, "\r\n");
	if (send_hdr(&h, s) == -1)
		return -1;
	if (st != RESP_OK || r->method == REQ_HEAD)
		return (int)st;
	if (a->body != NULL || a->ident.size == 0)
		return s->body(s->ctx, a->body, a->body_len) == -1 ? -1 : (int)st;
	return stream_fd(a->fd, (uint64_t)a->ident.size, s) == -1 ? -1 : (int)st;
}
