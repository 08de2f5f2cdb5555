/*
 * handler: the responder's policy in one place.
 */
#include "handler.h"
#include "log.h"
#include "resolve.h"
#include "stats.h"

#include <string.h>

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

int
handler_run(const struct conf *c, const struct req *r, struct sink *s)
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
	st = resp_avatar(c, r, &a, is_default, s);
	resolve_release(&a);
done:
	count(r, st, is_default);
	return st;
}
