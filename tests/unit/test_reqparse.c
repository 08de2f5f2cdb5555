/* Unit tests for reqparse.c: request parameters to id, nasty paths included. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reqparse.h"
#include "tap.h"

/* One case a line: which parameter carries the path, and the result. */
static const struct {
	const char *doc, *script, *info, *uri;
	enum req_kind kind;
	int has_id;
	int64_t id;
} paths[] = {
	{ "/1000", NULL, NULL, NULL, REQ_AVATAR, 1, 1000 },
	{ "/avatar/1000", NULL, NULL, NULL, REQ_AVATAR, 1, 1000 },
	{ "/a/1000", NULL, NULL, NULL, REQ_AVATAR, 1, 1000 },
	{ "/1000.png", NULL, NULL, NULL, REQ_AVATAR, 1, 1000 },
	{ "/1000.jpg", NULL, NULL, NULL, REQ_AVATAR, 1, 1000 },
	{ "/1000.jpeg", NULL, NULL, NULL, REQ_AVATAR, 1, 1000 },
	{ "/1000.gif", NULL, NULL, NULL, REQ_AVATAR, 1, 1000 },
	{ "/1000.webp", NULL, NULL, NULL, REQ_AVATAR, 1, 1000 },
	{ "/1000.PNG", NULL, NULL, NULL, REQ_AVATAR, 1, 1000 },
	{ "/1000.png.png", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/1000.txt", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/1000.", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/.png", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/-1", NULL, NULL, NULL, REQ_AVATAR, 1, -1 },
	{ "/0", NULL, NULL, NULL, REQ_AVATAR, 1, 0 },
	{ "/-0", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/01000", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/+1000", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/ 1000", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/1000 ", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/1000/", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/9223372036854775807", NULL, NULL, NULL, REQ_AVATAR, 1, INT64_MAX },
	{ "/9223372036854775808", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/-9223372036854775808.png", NULL, NULL, NULL, REQ_AVATAR, 1, INT64_MIN },
	{ "/../etc/passwd", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/../1000", NULL, NULL, NULL, REQ_AVATAR, 1, 1000 },	/* the number alone reaches a file name */
	{ "/..", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/%2e%2e/%2e%2e/etc/passwd", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/1%2f..%2fx", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/%31%30", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/1\r\nSet-Cookie: x", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/1\x1b[31m", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/\xd9\xa1", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/status", NULL, NULL, NULL, REQ_STATUS, 0, 0 },
	{ "/avatar/metrics", NULL, NULL, NULL, REQ_METRICS, 0, 0 },
	{ "/status.png", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/statusx", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	/* Without DOCUMENT_URI: PATH_INFO, then SCRIPT_NAME, then REQUEST_URI. */
	{ NULL, "/avatar.fcgi", "/42", NULL, REQ_AVATAR, 1, 42 },
	{ NULL, "/42", NULL, NULL, REQ_AVATAR, 1, 42 },
	{ "", "/42", "", NULL, REQ_AVATAR, 1, 42 },
	{ NULL, NULL, NULL, "/42?v=3", REQ_AVATAR, 1, 42 },
	{ NULL, NULL, NULL, "/42.png?v=/7", REQ_AVATAR, 1, 42 },
	{ NULL, NULL, NULL, "/x?/42", REQ_AVATAR, 0, 0 },
	{ NULL, NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/7", "/8", "/9", "/10", REQ_AVATAR, 1, 7 },
};

static const struct {
	const char *method;
	enum req_method want;
} methods[] = {
	{ "GET", REQ_GET }, { "HEAD", REQ_HEAD }, { "POST", REQ_OTHER },
	{ "PUT", REQ_OTHER }, { "get", REQ_OTHER }, { "GETX", REQ_OTHER },
	{ "", REQ_OTHER }, { NULL, REQ_OTHER },
};

int
main(void)
{
	struct req_params p;
	struct req r;
	char *longpath;

	for (size_t i = 0; i < NELEM(paths); i++) {
		memset(&p, 0, sizeof(p));
		p.method = "GET";
		p.document_uri = paths[i].doc;
		p.script_name = paths[i].script;
		p.path_info = paths[i].info;
		p.request_uri = paths[i].uri;
		req_parse(&p, &r);
		ok(r.kind == paths[i].kind && r.has_id == paths[i].has_id &&
		    (!r.has_id || r.id == paths[i].id),
		    "path case %zu: kind %d has_id %d id %lld", i,
		    r.kind, r.has_id, (long long)r.id);
	}
	for (size_t i = 0; i < NELEM(methods); i++) {
		memset(&p, 0, sizeof(p));
		p.method = methods[i].method;
		p.document_uri = "/1";
		req_parse(&p, &r);
		ok(r.method == methods[i].want, "method %s", methods[i].method ? methods[i].method : "(none)");
	}

	/* A very long path: still parsed, no id, nothing overflows. */
	longpath = malloc(70000);
	memset(longpath, '1', 69999);
	longpath[0] = '/';
	longpath[69999] = '\0';
	memset(&p, 0, sizeof(p));
	p.method = "GET";
	p.document_uri = longpath;
	req_parse(&p, &r);
	ok(!r.has_id, "70 kB of digits is not an id");
	memcpy(longpath + 69990, "/1000.png", 10);
	req_parse(&p, &r);
	ok(r.has_id && r.id == 1000, "long path with a good last segment");
	free(longpath);

	/* Validator headers: kept when they fit, ignored (not cut) when not. */
	memset(&p, 0, sizeof(p));
	p.method = "GET";
	p.document_uri = "/1";
	p.if_none_match = "\"abc\"";
	p.if_modified_since = "Sun, 06 Nov 1994 08:49:37 GMT";
	req_parse(&p, &r);
	ok(r.has_inm && strcmp(r.inm, "\"abc\"") == 0, "If-None-Match copied");
	ok(r.has_ims && strcmp(r.ims, p.if_modified_since) == 0, "If-Modified-Since copied");
	{
		char big[REQ_INM_MAX + 10];
		memset(big, 'a', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		p.if_none_match = big;
		req_parse(&p, &r);
		ok(!r.has_inm, "overlong If-None-Match ignored, not truncated");
	}
	return tap_done();
}
