/*
 * handler: the responder's policy in one place.
 */
#include "handler.h"
#include "clock.h"
#include "log.h"
#include "resolve.h"
#include "stats.h"
#include "upload.h"
#include "variant.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

static const char not_found[] = "avatar not found\n";
static const char not_allowed[] = "method not allowed (see the Allow header)\n";

static void
count(const struct req *r, int status, int is_default)
{
	stats_inc(ST_REQUESTS);
	/* A scrape of the counters is a request, not an avatar served. */
	if (r->kind != REQ_AVATAR && status == RESP_OK)
		return;
	switch (status) {
	case RESP_OK: stats_inc(is_default ? ST_DEFAULTS : ST_HITS); break;
	case RESP_NOT_MODIFIED: stats_inc(ST_NOT_MODIFIED); break;
	case RESP_NOT_FOUND: stats_inc(ST_NOT_FOUND); break;
	case RESP_METHOD_NOT_ALLOWED: stats_inc(ST_METHOD_NOT_ALLOWED); break;
	case RESP_NO_CONTENT: break;	/* OPTIONS: a request, nothing served */
	default: stats_inc(ST_ERRORS); break;
	}
}

static int
reserved(const struct conf *c, const struct req *r, struct sink *s)
{
	static char buf[8192];
	int n;

	if (r->kind == REQ_STATUS)
		n = stats_json(buf, sizeof(buf));
	else
		n = stats_prometheus(buf, sizeof(buf));
	if (n < 0)
		return resp_plain(c, r, RESP_SERVER_ERROR, "text/plain", "no-store",
		    "counters unavailable\n", 21, s);
	return resp_plain(c, r, RESP_OK, r->kind == REQ_STATUS ?
	    "application/json" : "text/plain; version=0.0.4; charset=utf-8",
	    "no-store", buf, (size_t)n, s);
}

void
handler_init(struct handler *h, int queue_fd)
{
	memset(h, 0, sizeof(*h));
	h->queue_fd = queue_fd;
}

/*
 * Asks the upload processes to make id's missing variants, unless this
 * worker asked for the same id moments ago. A full queue is not an error:
 * the next request for the variant asks again.
 */
static void
request_variants(struct handler *h, int64_t id)
{
	size_t slot = (size_t)((uint64_t)id * 0x9e3779b97f4a7c15ULL >> 58) % HANDLER_RECENT;
	int64_t now = clock_ms();
	struct upload_job job = { .method = UPLOAD_VARIANTS, .id = id };

	if (h->queue_fd < 0)
		return;
	if (h->recent[slot].at_ms != 0 && h->recent[slot].id == id &&
	    now - h->recent[slot].at_ms < HANDLER_RECENT_MS)
		return;
	if (upload_submit(h->queue_fd, &job, NULL) == -1) {
		if (errno != EAGAIN)
			log_warn("variants: %lld: job not sent", (long long)id);
		return;
	}
	stats_inc(ST_VARIANT_JOBS);
	h->recent[slot].id = id;
	h->recent[slot].at_ms = now;
}

/* The cache's kind for a variant (never 0, the original's). */
static uint32_t
variant_kind(unsigned size, enum sniff_type t)
{
	return (uint32_t)(size + 1) << 4 | (uint32_t)t;
}

/*
 * Looks up the variant (size, type) of avatar a. Returns 0 with *v
 * filled, or -1 when it is not there (not made yet, or made from an
 * older original: the name holds the original's tag, so that one is
 * never even looked up).
 */
static int
find_variant(const struct avatar *a, unsigned size, enum sniff_type type,
    struct avatar *v)
{
	char tag[VARIANT_TAG_MAX], name[VARIANT_NAME_MAX];

	variant_tag(tag, (uint64_t)a->ident.size, &a->ident.mtime);
	if (variant_name(name, sizeof(name), size, a->id, tag, type) == -1)
		return -1;
	return resolve_variant(a->id, variant_kind(size, type), name, v);
}

/*
 * Answers with avatar a, or with the size and format the request asks for.
 * A variant that is not there yet is never made here (that takes tens of
 * milliseconds of image work, in the upload processes): the best file
 * that is there goes out at once, the same size in the stored type or else
 * the original, with the short lifetime, and a job is sent.
 */
static int
send_avatar(const struct conf *c, struct handler *h, const struct req *r,
    struct avatar *a, int is_default, struct sink *s)
{
	unsigned flags = is_default ? RESP_SHORT_LIFE : 0, size = 0;
	enum sniff_type type;
	struct avatar v;
	int vary, st;

	type = variant_pick_format(&c->variants, r->want, r->bare, r->accept_avif,
	    r->accept_webp, a->type, &vary);
	if (vary)
		flags |= RESP_VARY_ACCEPT;
	if (r->q.has_size)
		size = variant_pick_size(&c->variants, r->q.size);
	/* With a published tree, an avatar of its own reaches this worker
	 * only when the front server did not find it published (made or
	 * changed behind the service's back, its variants not made): the
	 * upload processes publish it (rate-limited as variant jobs are). */
	if (c->publish && !is_default)
		request_variants(h, a->id);
	if (size == 0 && type == a->type)
		return resp_avatar(c, r, a, flags, s);
	if (find_variant(a, size, type, &v) == -1) {
		request_variants(h, a->id);
		stats_inc(ST_VARIANT_MISSES);
		flags |= RESP_SHORT_LIFE;
		if (size == 0 || type == a->type ||
		    find_variant(a, size, a->type, &v) == -1)
			return resp_avatar(c, r, a, flags, s);
	}
	st = resp_avatar(c, r, &v, flags, s);
	resolve_release(&v);
	return st;
}

int
handler_run(const struct conf *c, struct handler *h, const struct req *r,
    struct sink *s)
{
	struct avatar a;
	int st, is_default = 0, found;

	switch (r->method) {
	case REQ_GET:
	case REQ_HEAD:
		break;
	case REQ_OPTIONS:
		st = resp_options(c, r, s);
		goto done;
	case REQ_PUT:
	case REQ_DELETE:
		/* The write path answers these once it runs (c->writes);
		 * until then they are methods this resource does not have. */
	case REQ_OTHER:
		st = resp_plain(c, r, RESP_METHOD_NOT_ALLOWED, "text/plain", NULL,
		    not_allowed, sizeof(not_allowed) - 1, s);
		goto done;
	}
	if (r->kind != REQ_AVATAR) {
		st = reserved(c, r, s);
		goto done;
	}
	found = r->has_id && resolve_avatar(r->id, &a) == 0;
	if (!found && c->missing == MISSING_DEFAULT) {
		is_default = 1;
		found = resolve_avatar(c->default_id, &a) == 0;
		if (!found)
			log_warnx("default avatar %lld is missing",
			    (long long)c->default_id);
	}
	if (!found) {
		st = resp_plain(c, r, RESP_NOT_FOUND, "text/plain", NULL,
		    not_found, sizeof(not_found) - 1, s);
		goto done;
	}
	st = send_avatar(c, h, r, &a, is_default, s);
	resolve_release(&a);
done:
	count(r, st, is_default);
	return st;
}
