/*
 * resp: the headers and cache policy of every answer, for the three modes,
 * and body output.
 */
#include "resp.h"
#include "clock.h"
#include "cond.h"
#include "httpdate.h"
#include "log.h"
#include "sniff.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The reason phrase of each status this program sends. */
static const char *
reason(enum resp_status st)
{
	switch (st) {
	case RESP_OK: return "OK";
	case RESP_CREATED: return "Created";
	case RESP_NO_CONTENT: return "No Content";
	case RESP_NOT_MODIFIED: return "Not Modified";
	case RESP_BAD_REQUEST: return "Bad Request";
	case RESP_FORBIDDEN: return "Forbidden";
	case RESP_NOT_FOUND: return "Not Found";
	case RESP_METHOD_NOT_ALLOWED: return "Method Not Allowed";
	case RESP_LENGTH_REQUIRED: return "Length Required";
	case RESP_PAYLOAD_TOO_LARGE: return "Content Too Large";
	case RESP_UNSUPPORTED_MEDIA_TYPE: return "Unsupported Media Type";
	case RESP_UNPROCESSABLE: return "Unprocessable Content";
	case RESP_SERVER_ERROR: return "Internal Server Error";
	case RESP_UNAVAILABLE: return "Service Unavailable";
	}
	return "Unknown";
}

/*
 * One header block. Its size bounds what goes in: room for the longest
 * X-Sendfile path conf accepts (CONF_PATH_MAX) and two echoed origins of
 * REQ_ORIGIN_MAX bytes each, plus 1 KiB for every other header. Anything
 * that still does not fit is logged and the response fails rather than
 * going out cut.
 */
struct hdr {
	char buf[CONF_PATH_MAX + 2 * REQ_ORIGIN_MAX + 1024];
	size_t len;
	int overflow;
};

__attribute__((format(printf, 2, 3)))
static void
hdr_add(struct hdr *h, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (h->overflow)
		return;
	va_start(ap, fmt);
	n = vsnprintf(h->buf + h->len, sizeof(h->buf) - h->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(h->buf) - h->len)
		h->overflow = 1;
	else
		h->len += (size_t)n;
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

/*
 * The cache policy, in one place.
 *  - An avatar at a versioned URL (?v=<something>) names one version
 *    forever: a year and immutable, so browsers do not even revalidate
 *    on reload. The page changes the URL when the avatar changes.
 *  - An avatar at an unversioned URL: a short max-age plus
 *    stale-while-revalidate, so a replaced avatar shows within minutes
 *    (one view after max-age shows the old one while the cache
 *    revalidates, with a cheap 304 when nothing changed).
 *  - The default avatar, and a 404, stand for "no avatar yet": short
 *    and without stale-while-revalidate, whatever the URL says, since
 *    the user may upload one any minute.
 *  - Everything else (405, 5xx, OPTIONS, answers to writes, the
 *    counters): no-store.
 */
static void
cache_policy(const struct conf *c, const struct req *r, enum resp_status st,
    int is_default, char *buf, size_t len)
{
	if (r->method != REQ_GET && r->method != REQ_HEAD)
		snprintf(buf, len, "no-store");
	else if ((st == RESP_OK || st == RESP_NOT_MODIFIED) && r->kind == REQ_AVATAR &&
	    !is_default) {
		if (r->q.versioned && c->versioned_max_age > 0)
			snprintf(buf, len, "public, max-age=%lld, immutable",
			    (long long)c->versioned_max_age);
		else if (c->swr > 0)
			snprintf(buf, len, "public, max-age=%lld, stale-while-revalidate=%lld",
			    (long long)c->max_age, (long long)c->swr);
		else
			snprintf(buf, len, "public, max-age=%lld", (long long)c->max_age);
	} else if (st == RESP_OK || st == RESP_NOT_MODIFIED || st == RESP_NOT_FOUND)
		snprintf(buf, len, "public, max-age=%lld", (long long)c->default_max_age);
	else
		snprintf(buf, len, "no-store");
}

/*
 * Cross-origin headers, on every answer about an avatar (the counters are
 * for local scrapers, not pages). Cross-Origin-Resource-Policy lets pages
 * with Cross-Origin-Embedder-Policy: require-corp embed avatars;
 * Access-Control-Allow-Origin lets <img crossorigin>, canvas read-back and
 * fetch() use them; Timing-Allow-Origin gives other origins Resource Timing
 * sizes. With a list of origins, the request's Origin is echoed when it is
 * on the list, and Vary: Origin keeps shared caches from handing one
 * origin's answer to another.
 */
static void
hdr_cors(struct hdr *h, const struct conf *c, const struct req *r, int vary_accept)
{
	if (r->kind != REQ_AVATAR)
		return;
	hdr_add(h, "Cross-Origin-Resource-Policy: cross-origin\r\n");
	if (c->cors_any) {
		hdr_add(h, "Access-Control-Allow-Origin: *\r\nTiming-Allow-Origin: *\r\n");
		if (vary_accept)
			hdr_add(h, "Vary: Accept\r\n");
		return;
	}
	if (r->origin_state == REQ_OK &&
	    conf_cors_allows(c, r->origin, strlen(r->origin)))
		hdr_add(h, "Access-Control-Allow-Origin: %s\r\nTiming-Allow-Origin: %s\r\n",
		    r->origin, r->origin);
	/* One Vary line: nginx's $upstream_http_vary, which the x-accel
	 * config adds back, holds only the first of several. */
	hdr_add(h, "Vary: %sOrigin\r\n", vary_accept ? "Accept, " : "");
}

/* The methods a resource answers: the write path adds PUT and DELETE to
 * avatars when it runs. */
static const char *
methods(const struct conf *c, const struct req *r, int for_cors)
{
	if (r->kind == REQ_AVATAR && c->writes)
		return for_cors ? "GET, HEAD, PUT, DELETE" : "GET, HEAD, OPTIONS, PUT, DELETE";
	return for_cors ? "GET, HEAD" : "GET, HEAD, OPTIONS";
}

/* Status line, type, lifetime, nosniff and CORS: every answer's start. */
static void
hdr_start(struct hdr *h, const struct conf *c, const struct req *r,
    enum resp_status st, const char *type, const char *cache_control,
    int vary_accept)
{
	hdr_add(h, "Status: %d %s\r\n", (int)st, reason(st));
	if (type != NULL)
		hdr_add(h, "Content-Type: %s\r\n", type);
	hdr_add(h, "Cache-Control: %s\r\nX-Content-Type-Options: nosniff\r\n",
	    cache_control);
	hdr_cors(h, c, r, vary_accept);
}

int
resp_plain(const struct conf *c, const struct req *r, enum resp_status st,
    const char *type, const char *cache_control, const char *body,
    size_t len, struct sink *s)
{
	struct hdr h = { .len = 0 };
	char cc[80];

	if (cache_control == NULL) {
		cache_policy(c, r, st, 0, cc, sizeof(cc));
		cache_control = cc;
	}
	hdr_start(&h, c, r, st, type, cache_control, 0);
	if (st == RESP_METHOD_NOT_ALLOWED)
		hdr_add(&h, "Allow: %s\r\n", methods(c, r, 0));
	/* Every upload slot was busy, or an upload took too long: the
	 * client may try again shortly. */
	if (st == RESP_UNAVAILABLE)
		hdr_add(&h, "Retry-After: 2\r\n");
	hdr_add(&h, "Content-Length: %zu\r\n\r\n", len);
	if (send_hdr(&h, s) == -1)
		return -1;
	/* write, not body: callers pass stack buffers (write.c) that are
	 * gone before the first send; these bodies are small. */
	if (r->method != REQ_HEAD && len > 0 && s->write(s->ctx, body, len) == -1)
		return -1;
	return (int)st;
}

/*
 * OPTIONS: 204 with Allow. A CORS preflight (Origin and
 * Access-Control-Request-Method) also gets the methods and request headers
 * a page may use and how long the browser may remember that. The answer
 * is the same whichever method was asked about: the browser checks it
 * against the list. Content-Type is the one non-safelisted header a write
 * needs (an image type is not a "simple" one). Not stored by caches: the
 * browser's preflight cache follows Access-Control-Max-Age instead, and a
 * stale answer would outlive a change of --cors-origin or of the write
 * path.
 */
int
resp_options(const struct conf *c, const struct req *r, struct sink *s)
{
	struct hdr h = { .len = 0 };

	hdr_start(&h, c, r, RESP_NO_CONTENT, NULL, "no-store", 0);
	hdr_add(&h, "Allow: %s\r\n", methods(c, r, 0));
	if (r->kind == REQ_AVATAR && r->has_acrm && r->origin_state != REQ_ABSENT) {
		hdr_add(&h, "Access-Control-Allow-Methods: %s\r\n", methods(c, r, 1));
		if (c->writes)
			hdr_add(&h, "Access-Control-Allow-Headers: Content-Type\r\n");
		hdr_add(&h, "Access-Control-Max-Age: %lld\r\n", (long long)c->cors_max_age);
	}
	hdr_add(&h, "\r\n");
	return send_hdr(&h, s) == -1 ? -1 : (int)RESP_NO_CONTENT;
}

/*
 * Every mode answers conditional requests here, from the same ETag and
 * Last-Modified, so a tag means the same thing whoever sends the file.
 * x-accel: nginx serves the file and keeps only some of our headers on the
 * internal redirect; the shipped config adds the others back from
 * $upstream_http_* and turns its own ETag off. x-sendfile: lighttpd keeps
 * every header we send and checks its conditionals against our ETag.
 */
int
resp_avatar(const struct conf *c, const struct req *r, const struct avatar *a,
    unsigned flags, struct sink *s)
{
	struct hdr h = { .len = 0 };
	char cc[80], etag[COND_ETAG_LEN], lm[HTTPDATE_LEN];
	const char *type = sniff_mime(a->type);
	enum resp_status st = RESP_OK;

	cond_etag(etag, (uint64_t)a->ident.size,
	    (int64_t)a->ident.mtime.tv_sec * 1000000000 + a->ident.mtime.tv_nsec);
	if (httpdate_format(a->ident.mtime.tv_sec, lm) == -1)
		lm[0] = '\0';
	if (cond_not_modified(r->inm_state != REQ_ABSENT,
	    r->inm_state == REQ_OK ? r->inm : NULL,
	    r->ims_state == REQ_OK ? r->ims : NULL, etag, a->ident.mtime.tv_sec))
		st = RESP_NOT_MODIFIED;
	cache_policy(c, r, st, (flags & RESP_SHORT_LIFE) != 0, cc, sizeof(cc));
	hdr_start(&h, c, r, st, type, cc, (flags & RESP_VARY_ACCEPT) != 0);
	hdr_add(&h, "ETag: %s\r\n", etag);
	if (lm[0] != '\0')
		hdr_add(&h, "Last-Modified: %s\r\n", lm);
	if (st == RESP_OK) {
		switch (c->mode) {
		case MODE_X_ACCEL:
			hdr_add(&h, "X-Accel-Redirect: %s%s\r\n", c->accel_prefix, a->name);
			break;
		case MODE_X_SENDFILE:
			hdr_add(&h, "X-Sendfile: %s/%s\r\n", c->dir_abs, a->name);
			break;
		case MODE_BYTES:
			hdr_add(&h, "Content-Length: %llu\r\n",
			    (unsigned long long)a->ident.size);
			break;
		}
	}
	hdr_add(&h, "\r\n");
	if (send_hdr(&h, s) == -1)
		return -1;
	if (st != RESP_OK || r->method == REQ_HEAD || c->mode != MODE_BYTES)
		return (int)st;
	if (a->body != NULL || a->ident.size == 0)
		return s->body(s->ctx, a->body, a->body_len) == -1 ? -1 : (int)st;
	/* A file too big to cache: the sink reads it as the peer takes it. */
	return s->file(s->ctx, a->fd, (uint64_t)a->ident.size) == -1 ? -1 : (int)st;
}
