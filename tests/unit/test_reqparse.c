/* Unit tests for reqparse.c: FastCGI parameters to a request, nasty paths,
 * methods, query strings and headers included. One case a line. */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ext.h"
#include "reqparse.h"
#include "tap.h"

static void
set(struct req_params *p, const char *name, const char *val)
{
	if (val != NULL)
		req_params_set(p, name, strlen(name), val, strlen(val));
}

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
	{ "/01", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/01000", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/+1", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/+1000", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/ 1000", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/1000 ", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/1000/", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/9223372036854775807", NULL, NULL, NULL, REQ_AVATAR, 1, INT64_MAX },
	{ "/9223372036854775807.jpeg", NULL, NULL, NULL, REQ_AVATAR, 1, INT64_MAX },
	{ "/9223372036854775808", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/-9223372036854775808.png", NULL, NULL, NULL, REQ_AVATAR, 1, INT64_MIN },
	{ "/-9223372036854775808.jpeg", NULL, NULL, NULL, REQ_AVATAR, 1, INT64_MIN },
	{ "/-9223372036854775809", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/000000000000000000000000000001", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/../etc/passwd", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/../1000", NULL, NULL, NULL, REQ_AVATAR, 1, 1000 },	/* the number alone reaches a file name */
	{ "/..", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/%2e%2e/%2e%2e/etc/passwd", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/1%2f..%2fx", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/%31", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/%31%30", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/1\r\nSet-Cookie: x", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/1\x1b[31m", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/\xd9\xa1", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/status", NULL, NULL, NULL, REQ_STATUS, 0, 0 },
	{ "/avatar/metrics", NULL, NULL, NULL, REQ_METRICS, 0, 0 },
	{ "/status.png", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/statusx", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/Status", NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	/* Without DOCUMENT_URI: PATH_INFO, then SCRIPT_NAME, then REQUEST_URI. */
	{ NULL, "/avatar.fcgi", "/42", NULL, REQ_AVATAR, 1, 42 },
	{ NULL, "/42", NULL, NULL, REQ_AVATAR, 1, 42 },
	{ "", "/42", "", NULL, REQ_AVATAR, 1, 42 },
	{ NULL, NULL, NULL, "/42?v=3", REQ_AVATAR, 1, 42 },
	{ NULL, NULL, NULL, "/42.png?v=/7", REQ_AVATAR, 1, 42 },
	{ NULL, NULL, NULL, "/x?/42", REQ_AVATAR, 0, 0 },
	{ NULL, NULL, NULL, "?42", REQ_AVATAR, 0, 0 },
	{ NULL, NULL, NULL, "/status?x", REQ_STATUS, 0, 0 },
	{ NULL, NULL, NULL, NULL, REQ_AVATAR, 0, 0 },
	{ "/7", "/8", "/9", "/10", REQ_AVATAR, 1, 7 },
	{ "/x", "/8", "/9", "/10", REQ_AVATAR, 0, 0 },	/* the first present one decides */
	/* A decoded path counts only if the raw REQUEST_URI's last segment
	 * holds no escape: /%31000 is no id behind any front server. */
	{ "/1000", NULL, NULL, "/%31000", REQ_AVATAR, 0, 0 },
	{ "/1000", NULL, NULL, "/avatar/%31000?v=1", REQ_AVATAR, 0, 0 },
	{ "/1000.png", NULL, NULL, "/1%30%30%30.png?s=64", REQ_AVATAR, 0, 0 },
	{ "/1000", NULL, NULL, "/%25/1000", REQ_AVATAR, 1, 1000 },	/* another segment */
	{ "/1000", NULL, NULL, "/1000?x=%31", REQ_AVATAR, 1, 1000 },	/* the query */
	{ "/1000", NULL, NULL, "/u/1000", REQ_AVATAR, 1, 1000 },	/* a rewrite */
	{ "/1000", NULL, NULL, "/user?id=1000", REQ_AVATAR, 1, 1000 },	/* a rewrite */
	{ "/status", NULL, NULL, "/%73tatus", REQ_AVATAR, 0, 0 },
	{ "/1000", NULL, NULL, "/1000000000000000000000000000000000000", REQ_AVATAR, 0, 0 },
	{ NULL, "/avatar.fcgi", "/42", "/%342", REQ_AVATAR, 0, 0 },
	{ NULL, "", "/42", "/42", REQ_AVATAR, 1, 42 },
	{ NULL, NULL, NULL, "/%342", REQ_AVATAR, 0, 0 },
};

static const struct {
	const char *method;	/* NULL: no REQUEST_METHOD */
	enum req_method want;
} methods[] = {
	{ "GET", REQ_GET },
	{ "HEAD", REQ_HEAD },
	{ "OPTIONS", REQ_OPTIONS },
	{ "PUT", REQ_PUT },
	{ "DELETE", REQ_DELETE },
	{ "POST", REQ_OTHER },
	{ "PATCH", REQ_OTHER },
	{ "TRACE", REQ_OTHER },
	{ "get", REQ_OTHER },
	{ "GETX", REQ_OTHER },
	{ "GE", REQ_OTHER },
	{ "", REQ_OTHER },
	{ "GETGETGETGETGETGET", REQ_OTHER },	/* longer than the field */
	{ NULL, REQ_OTHER },
};

/* The query string: what each one says. */
static const struct {
	const char *query;
	int versioned, has_size;
	int64_t size;
	enum req_state expires_state;
	int64_t expires;
	enum req_state sig_state;
	const char *sig;
} queries[] = {
	{ "", 0, 0, 0, REQ_ABSENT, 0, REQ_ABSENT, "" },
	{ "v=3", 1, 0, 0, REQ_ABSENT, 0, REQ_ABSENT, "" },
	{ "v=1700000000", 1, 0, 0, REQ_ABSENT, 0, REQ_ABSENT, "" },
	{ "v=%0d%0aSet-Cookie:x", 1, 0, 0, REQ_ABSENT, 0, REQ_ABSENT, "" },
	{ "x=1&v=abc", 1, 0, 0, REQ_ABSENT, 0, REQ_ABSENT, "" },
	{ "v=", 0, 0, 0, REQ_ABSENT, 0, REQ_ABSENT, "" },
	{ "v", 0, 0, 0, REQ_ABSENT, 0, REQ_ABSENT, "" },
	{ "v&v=", 0, 0, 0, REQ_ABSENT, 0, REQ_ABSENT, "" },
	{ "V=1", 0, 0, 0, REQ_ABSENT, 0, REQ_ABSENT, "" },
	{ "%76=1", 0, 0, 0, REQ_ABSENT, 0, REQ_ABSENT, "" },
	{ "vv=1", 0, 0, 0, REQ_ABSENT, 0, REQ_ABSENT, "" },
	{ "xv=1", 0, 0, 0, REQ_ABSENT, 0, REQ_ABSENT, "" },
	{ "s=80", 0, 1, 80, REQ_ABSENT, 0, REQ_ABSENT, "" },
	{ "size=120&v=2", 1, 1, 120, REQ_ABSENT, 0, REQ_ABSENT, "" },
	{ "s=4096", 0, 1, 4096, REQ_ABSENT, 0, REQ_ABSENT, "" },
	{ "s=4097", 0, 0, 0, REQ_ABSENT, 0, REQ_ABSENT, "" },
	{ "s=0", 0, 0, 0, REQ_ABSENT, 0, REQ_ABSENT, "" },
	{ "s=080", 0, 0, 0, REQ_ABSENT, 0, REQ_ABSENT, "" },
	{ "s=-80", 0, 0, 0, REQ_ABSENT, 0, REQ_ABSENT, "" },
	{ "s=80px", 0, 0, 0, REQ_ABSENT, 0, REQ_ABSENT, "" },
	{ "s=", 0, 0, 0, REQ_ABSENT, 0, REQ_ABSENT, "" },
	{ "s=abc&size=64", 0, 1, 64, REQ_ABSENT, 0, REQ_ABSENT, "" },
	{ "s=80&s=90", 0, 1, 80, REQ_ABSENT, 0, REQ_ABSENT, "" },
	{ "expires=1700000000&sig=ab12", 0, 0, 0, REQ_OK, 1700000000, REQ_OK, "ab12" },
	{ "sig=ab12&expires=0", 0, 0, 0, REQ_OK, 0, REQ_OK, "ab12" },
	{ "expires=1&expires=1", 0, 0, 0, REQ_BAD, 0, REQ_ABSENT, "" },
	{ "expires=-1", 0, 0, 0, REQ_BAD, 0, REQ_ABSENT, "" },
	{ "expires=01", 0, 0, 0, REQ_BAD, 0, REQ_ABSENT, "" },
	{ "expires=", 0, 0, 0, REQ_BAD, 0, REQ_ABSENT, "" },
	{ "expires=99999999999999999999", 0, 0, 0, REQ_BAD, 0, REQ_ABSENT, "" },
	{ "sig=a&sig=a", 0, 0, 0, REQ_ABSENT, 0, REQ_BAD, "" },
	{ "sig=", 0, 0, 0, REQ_ABSENT, 0, REQ_BAD, "" },
	{ "sig", 0, 0, 0, REQ_ABSENT, 0, REQ_BAD, "" },
	{ "sig=a=b", 0, 0, 0, REQ_ABSENT, 0, REQ_OK, "a=b" },
	{ "&&v=1&&", 1, 0, 0, REQ_ABSENT, 0, REQ_ABSENT, "" },
};

/* Which query counts: QUERY_STRING when given, else REQUEST_URI's. */
static const struct {
	const char *query_string, *request_uri;
	int versioned;
} sources[] = {
	{ "v=1", NULL, 1 },
	{ NULL, "/1?v=1", 1 },
	{ "", "/1?v=1", 0 },		/* nginx's empty $query_string is a query */
	{ "v=1", "/1", 1 },
	{ NULL, "/1", 0 },
	{ NULL, "/1?", 0 },
	{ NULL, "/1?x=1&v=2", 1 },
};

/* Header fields: kept whole, or marked present but unusable. */
static const struct {
	const char *name, *val;
	size_t vlen;		/* 0: strlen(val) */
	enum req_state want;
} headers[] = {
	{ "HTTP_IF_NONE_MATCH", "\"abc\"", 0, REQ_OK },
	{ "HTTP_IF_NONE_MATCH", "", 0, REQ_OK },	/* present and empty */
	{ "HTTP_IF_NONE_MATCH", "\"a\"\0\"b\"", 7, REQ_BAD },	/* a NUL would cut it */
	{ "HTTP_IF_MODIFIED_SINCE", "Sun, 06 Nov 1994 08:49:37 GMT", 0, REQ_OK },
	{ "HTTP_ORIGIN", "https://app.example", 0, REQ_OK },
	{ "HTTP_ACCESS_CONTROL_REQUEST_METHOD", "PUT", 0, REQ_OK },
	{ "CONTENT_LENGTH", "100", 0, REQ_OK },
	{ "CONTENT_LENGTH", "0", 0, REQ_OK },
	{ "CONTENT_LENGTH", "", 0, REQ_ABSENT },	/* nginx without a body */
	{ "CONTENT_LENGTH", "-1", 0, REQ_BAD },
	{ "CONTENT_LENGTH", "01", 0, REQ_BAD },
	{ "CONTENT_LENGTH", "1e3", 0, REQ_BAD },
	{ "CONTENT_LENGTH", " 1", 0, REQ_BAD },
	{ "CONTENT_LENGTH", "99999999999999999999", 0, REQ_BAD },
	{ "HTTP_IF_NONE_MATCHX", "\"abc\"", 0, REQ_ABSENT },	/* another name */
	{ "http_if_none_match", "\"abc\"", 0, REQ_ABSENT },
};

static enum req_state
state_of(const struct req *r, const char *name)
{
	if (strcmp(name, "HTTP_IF_NONE_MATCH") == 0)
		return r->inm_state;
	if (strcmp(name, "HTTP_IF_MODIFIED_SINCE") == 0)
		return r->ims_state;
	if (strcmp(name, "HTTP_ORIGIN") == 0)
		return r->origin_state;
	if (strcmp(name, "HTTP_ACCESS_CONTROL_REQUEST_METHOD") == 0)
		return r->has_acrm ? REQ_OK : REQ_ABSENT;
	if (strcmp(name, "CONTENT_LENGTH") == 0)
		return r->content_length_state;
	/* An unknown name must leave every field absent. */
	return r->inm_state;
}

/* A value of exactly n bytes of c, with a leading '"'. */
static char *
filled(size_t n, char c)
{
	char *s = malloc(n + 1);

	memset(s, c, n);
	s[0] = '"';
	s[n] = '\0';
	return s;
}

int
main(void)
{
	struct req_params p;
	struct req r;
	char *longpath;

	for (size_t i = 0; i < NELEM(paths); i++) {
		memset(&p, 0, sizeof(p));
		set(&p, "REQUEST_METHOD", "GET");
		set(&p, "DOCUMENT_URI", paths[i].doc);
		set(&p, "SCRIPT_NAME", paths[i].script);
		set(&p, "PATH_INFO", paths[i].info);
		set(&p, "REQUEST_URI", paths[i].uri);
		req_parse(&p, &r);
		ok(r.kind == paths[i].kind && r.has_id == paths[i].has_id &&
		    (!r.has_id || r.id == paths[i].id),
		    "path case %zu: kind %d has_id %d id %lld", i,
		    r.kind, r.has_id, (long long)r.id);
		/* The same parameters in the opposite order: same answer. */
		memset(&p, 0, sizeof(p));
		set(&p, "REQUEST_URI", paths[i].uri);
		set(&p, "PATH_INFO", paths[i].info);
		set(&p, "SCRIPT_NAME", paths[i].script);
		set(&p, "DOCUMENT_URI", paths[i].doc);
		set(&p, "REQUEST_METHOD", "GET");
		req_parse(&p, &r);
		ok(r.kind == paths[i].kind && r.has_id == paths[i].has_id &&
		    (!r.has_id || r.id == paths[i].id),
		    "path case %zu, parameters reversed", i);
	}
	for (size_t i = 0; i < NELEM(methods); i++) {
		memset(&p, 0, sizeof(p));
		set(&p, "REQUEST_METHOD", methods[i].method);
		set(&p, "DOCUMENT_URI", "/1");
		req_parse(&p, &r);
		ok(r.method == methods[i].want, "method %s -> %s",
		    methods[i].method ? methods[i].method : "(none)", req_method_name(r.method));
	}
	memset(&p, 0, sizeof(p));
	req_params_set(&p, "REQUEST_METHOD", 14, "GET\0", 4);
	req_parse(&p, &r);
	ok(r.method == REQ_OTHER, "method with a NUL is no method");

	for (size_t i = 0; i < NELEM(queries); i++) {
		memset(&p, 0, sizeof(p));
		set(&p, "DOCUMENT_URI", "/1");
		set(&p, "QUERY_STRING", queries[i].query);
		req_parse(&p, &r);
		ok(r.q.given && r.q.versioned == queries[i].versioned &&
		    r.q.has_size == queries[i].has_size &&
		    (!r.q.has_size || r.q.size == queries[i].size) &&
		    r.q.expires_state == queries[i].expires_state &&
		    (r.q.expires_state != REQ_OK || r.q.expires == queries[i].expires) &&
		    r.q.sig_state == queries[i].sig_state &&
		    strcmp(r.q.sig, queries[i].sig) == 0,
		    "query \"%s\": v %d size %d/%lld expires %d/%lld sig %d \"%s\"",
		    queries[i].query, r.q.versioned, r.q.has_size, (long long)r.q.size,
		    r.q.expires_state, (long long)r.q.expires, r.q.sig_state, r.q.sig);
	}
	{
		char *sig = malloc(REQ_SIG_MAX + 8);

		strcpy(sig, "sig=");
		memset(sig + 4, 'a', REQ_SIG_MAX - 1);
		sig[4 + REQ_SIG_MAX - 1] = '\0';
		req_parse_query(sig, strlen(sig), &r.q);
		ok(r.q.sig_state == REQ_OK && strlen(r.q.sig) == REQ_SIG_MAX - 1, "longest sig kept");
		strcat(sig, "a");
		req_parse_query(sig, strlen(sig), &r.q);
		ok(r.q.sig_state == REQ_BAD && r.q.sig[0] == '\0', "overlong sig unusable, not cut");
		free(sig);
	}
	for (size_t i = 0; i < NELEM(sources); i++) {
		memset(&p, 0, sizeof(p));
		set(&p, "DOCUMENT_URI", "/1");
		set(&p, "QUERY_STRING", sources[i].query_string);
		set(&p, "REQUEST_URI", sources[i].request_uri);
		req_parse(&p, &r);
		ok(r.q.versioned == sources[i].versioned, "query from QUERY_STRING %s, REQUEST_URI %s",
		    sources[i].query_string ? sources[i].query_string : "(none)",
		    sources[i].request_uri ? sources[i].request_uri : "(none)");
	}

	for (size_t i = 0; i < NELEM(headers); i++) {
		size_t vlen = headers[i].vlen ? headers[i].vlen : strlen(headers[i].val);

		memset(&p, 0, sizeof(p));
		set(&p, "DOCUMENT_URI", "/1");
		req_params_set(&p, headers[i].name, strlen(headers[i].name), headers[i].val, vlen);
		req_parse(&p, &r);
		ok(state_of(&r, headers[i].name) == headers[i].want, "%s: %.*s -> state %d",
		    headers[i].name, (int)vlen, headers[i].val, state_of(&r, headers[i].name));
	}

	/* Values: copied, and they outlive the caller's buffer. */
	{
		char buf[64];

		memset(&p, 0, sizeof(p));
		strcpy(buf, "\"abc\"");
		set(&p, "HTTP_IF_NONE_MATCH", buf);
		strcpy(buf, "https://app.example");
		set(&p, "HTTP_ORIGIN", buf);
		strcpy(buf, "DELETE");
		set(&p, "HTTP_ACCESS_CONTROL_REQUEST_METHOD", buf);
		strcpy(buf, "1234");
		set(&p, "CONTENT_LENGTH", buf);
		strcpy(buf, "/1000.png");
		set(&p, "DOCUMENT_URI", buf);
		memset(buf, 'x', sizeof(buf));
		req_parse(&p, &r);
		ok(strcmp(r.inm, "\"abc\"") == 0, "If-None-Match copied");
		ok(strcmp(r.origin, "https://app.example") == 0, "Origin copied");
		ok(r.has_acrm && r.acrm == REQ_DELETE, "Access-Control-Request-Method DELETE");
		ok(r.content_length == 1234, "CONTENT_LENGTH 1234");
		ok(r.has_id && r.id == 1000, "id copied");
		ok(strcmp(r.log_path, "/1000.png") == 0, "path kept for the log");
	}

	/* A parameter given twice keeps its last value. */
	memset(&p, 0, sizeof(p));
	set(&p, "DOCUMENT_URI", "/1");
	set(&p, "DOCUMENT_URI", "/2");
	set(&p, "QUERY_STRING", "v=1");
	set(&p, "QUERY_STRING", "s=64");
	req_parse(&p, &r);
	ok(r.has_id && r.id == 2 && !r.q.versioned && r.q.size == 64, "last value wins");
	set(&p, "DOCUMENT_URI", "/" "11111111111111111111111111111111111111");
	req_parse(&p, &r);
	ok(!r.has_id, "an overlong segment replaces a good one and is no id");

	/* A very long path: still parsed, no id, nothing overflows. */
	longpath = malloc(70000);
	memset(longpath, '1', 69999);
	longpath[0] = '/';
	longpath[69999] = '\0';
	memset(&p, 0, sizeof(p));
	set(&p, "REQUEST_METHOD", "GET");
	set(&p, "DOCUMENT_URI", longpath);
	req_parse(&p, &r);
	ok(!r.has_id && r.kind == REQ_AVATAR, "70 kB of digits is not an id");
	ok(strlen(r.log_path) == REQ_LOG_MAX - 1, "the log keeps the start of a long path");
	memcpy(longpath + 69990, "/1000.png", 10);
	set(&p, "DOCUMENT_URI", longpath);
	req_parse(&p, &r);
	ok(r.has_id && r.id == 1000, "long path with a good last segment");
	free(longpath);

	/* Validator headers: kept when they fit, marked (not cut) when not. */
	{
		char *fits = filled(REQ_INM_MAX - 1, 'a'), *over = filled(REQ_INM_MAX, 'a');
		char *ims = filled(REQ_IMS_MAX, 'a');

		memset(&p, 0, sizeof(p));
		set(&p, "HTTP_IF_NONE_MATCH", fits);
		req_parse(&p, &r);
		ok(r.inm_state == REQ_OK && strcmp(r.inm, fits) == 0, "longest If-None-Match kept whole");
		set(&p, "HTTP_IF_NONE_MATCH", over);
		req_parse(&p, &r);
		ok(r.inm_state == REQ_BAD && r.inm[0] == '\0',
		    "overlong If-None-Match: present but unusable, not truncated");
		set(&p, "HTTP_IF_MODIFIED_SINCE", ims);
		req_parse(&p, &r);
		ok(r.ims_state == REQ_BAD, "overlong If-Modified-Since unusable");
		free(fits);
		free(over);
		free(ims);
	}
	{
		char *o = filled(REQ_ORIGIN_MAX, 'o');

		memset(&p, 0, sizeof(p));
		set(&p, "HTTP_ORIGIN", o);
		req_parse(&p, &r);
		ok(r.origin_state == REQ_BAD, "overlong Origin unusable");
		free(o);
	}
	memset(&p, 0, sizeof(p));
	set(&p, "HTTP_ACCESS_CONTROL_REQUEST_METHOD", "PATCH");
	req_parse(&p, &r);
	ok(r.has_acrm && r.acrm == REQ_OTHER, "preflight for an unknown method");

	/* Every extension of the one list (ext.h) is stripped, in any case. */
	for (size_t i = 0; ext_name(i) != NULL; i++) {
		char path[32];
		int64_t id;

		snprintf(path, sizeof(path), "/77%s", ext_name(i));
		ok(req_parse_id(path, strlen(path), &id) == 0 && id == 77, "%s", path);
		for (char *c = path; *c; c++)
			*c = (char)toupper((unsigned char)*c);
		ok(req_parse_id(path, strlen(path), &id) == 0 && id == 77, "%s", path);
	}

	/* The extension's format and the Accept header, for variants. */
	{
		static const struct {
			const char *path;
			enum sniff_type want;
			int bare;
		} fmts[] = {
			{ "/77", SNIFF_NONE, 1 },
			{ "/77.png", SNIFF_NONE, 0 },
			{ "/77.jpg", SNIFF_NONE, 0 },
			{ "/77.jpeg", SNIFF_NONE, 0 },
			{ "/77.gif", SNIFF_NONE, 0 },
			{ "/77.webp", SNIFF_WEBP, 0 },
			{ "/77.WebP", SNIFF_WEBP, 0 },
			{ "/77.avif", SNIFF_AVIF, 0 },
			{ "/avatar/77.AVIF", SNIFF_AVIF, 0 },
		};
		static const struct {
			const char *accept;
			int avif, webp;
		} acc[] = {
			{ "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8", 1, 1 },
			{ "image/webp,*/*", 0, 1 },
			{ "image/*", 0, 0 },
			{ "*/*", 0, 0 },
			{ "IMAGE/AVIF", 1, 0 },
			{ " image/avif ; q=0.5 , image/webp;q=0", 1, 0 },
			{ "image/avif;q=0.000, image/webp;q=1", 0, 1 },
			{ "image/avifx, ximage/webp", 0, 0 },
			{ "image/avif;q=0.001", 1, 0 },
			{ "", 0, 0 },
			{ ",,,", 0, 0 },
		};

		for (size_t i = 0; i < NELEM(fmts); i++) {
			memset(&p, 0, sizeof(p));
			set(&p, "DOCUMENT_URI", fmts[i].path);
			req_parse(&p, &r);
			ok(r.has_id && r.id == 77 && r.want == fmts[i].want &&
			    r.bare == fmts[i].bare, "format of %s", fmts[i].path);
		}
		for (size_t i = 0; i < NELEM(acc); i++) {
			memset(&p, 0, sizeof(p));
			set(&p, "DOCUMENT_URI", "/77");
			set(&p, "HTTP_ACCEPT", acc[i].accept);
			req_parse(&p, &r);
			ok(r.accept_avif == acc[i].avif && r.accept_webp == acc[i].webp,
			    "Accept: \"%s\" -> avif %d, webp %d", acc[i].accept,
			    acc[i].avif, acc[i].webp);
		}
	}
	return tap_done();
}
