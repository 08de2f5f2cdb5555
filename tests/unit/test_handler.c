/*
 * Unit tests for handler.c, resolve.c and resp.c together: a temporary
 * avatars directory, every mode, and a memory sink that captures the CGI
 * response. Table-driven: request path, method and expected status,
 * Content-Type and Cache-Control.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cond.h"
#include "conf.h"
#include "handler.h"
#include "images.h"
#include "log.h"
#include "resolve.h"
#include "stats.h"
#include "tap.h"
#include "variant.h"

static char out[256 * 1024];
static size_t outlen;

static int
mem_write(void *ctx, const void *buf, size_t len)
{
	(void)ctx;
	if (outlen + len > sizeof(out))
		return -1;
	memcpy(out + outlen, buf, len);
	outlen += len;
	return 0;
}

/* The sink's file method: the whole file into the captured output. */
static int
mem_file(void *ctx, int fd, uint64_t size)
{
	(void)ctx;
	if (outlen + size > sizeof(out) ||
	    pread(fd, out + outlen, (size_t)size, 0) != (ssize_t)size)
		return -1;
	outlen += (size_t)size;
	return 0;
}

/* Real images: the read path refuses files cut short (sniff_whole). */
#define PNG IMG_PNG
#define JPG IMG_JPEG
#define GIF IMG_GIF
#define WEBP IMG_WEBP

static char dir[64];

static void
put_file(const char *name, const void *data, size_t len)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, data, len) != (ssize_t)len) {
		perror(path);
		exit(1);
	}
	close(fd);
}

static struct conf c;
static struct handler hd;

static void
set(struct req_params *p, const char *name, const char *val)
{
	if (val != NULL)
		req_params_set(p, name, strlen(name), val, strlen(val));
}

/* Runs one request; extra: more parameters as "NAME=value", or NULL. */
static int
run_with(const char *method, const char *uri, const char *inm, const char *ims,
    const char *const *extra)
{
	static struct req_params p;
	struct req r;
	struct sink s = { .write = mem_write, .body = mem_write, .file = mem_file };

	memset(&p, 0, sizeof(p));
	set(&p, "REQUEST_METHOD", method);
	set(&p, "DOCUMENT_URI", uri);
	set(&p, "HTTP_IF_NONE_MATCH", inm);
	set(&p, "HTTP_IF_MODIFIED_SINCE", ims);
	for (; extra != NULL && *extra != NULL; extra++) {
		const char *eq = strchr(*extra, '=');

		req_params_set(&p, *extra, (size_t)(eq - *extra), eq + 1, strlen(eq + 1));
	}
	req_parse(&p, &r);
	outlen = 0;
	memset(out, 0, sizeof(out));
	return handler_run(&c, &hd, &r, &s);
}

static int
run(const char *method, const char *uri, const char *inm, const char *ims)
{
	return run_with(method, uri, inm, ims, NULL);
}

/* Runs one request with a query string, Origin and
 * Access-Control-Request-Method, each NULL when not sent. */
static int
run_cors(const char *method, const char *uri, const char *query,
    const char *origin, const char *acrm)
{
	char q[128], o[128], m[64];
	const char *extra[4] = { NULL };
	size_t n = 0;

	if (query != NULL) {
		snprintf(q, sizeof(q), "QUERY_STRING=%s", query);
		extra[n++] = q;
	}
	if (origin != NULL) {
		snprintf(o, sizeof(o), "HTTP_ORIGIN=%s", origin);
		extra[n++] = o;
	}
	if (acrm != NULL) {
		snprintf(m, sizeof(m), "HTTP_ACCESS_CONTROL_REQUEST_METHOD=%s", acrm);
		extra[n++] = m;
	}
	return run_with(method, uri, NULL, NULL, extra);
}

/* Value of header name in the captured response, or "" . */
static const char *
header(const char *name)
{
	/* A few buffers in turn, so one message may show several headers. */
	static char bufs[8][512];
	static size_t turn;
	char *v = bufs[turn++ % 8];
	char *end = strstr(out, "\r\n\r\n"), *p = out;
	size_t n = strlen(name);

	v[0] = '\0';
	while (p && end && p < end) {
		char *eol = strstr(p, "\r\n");
		if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
			size_t l = (size_t)(eol - p - n - 2);
			memcpy(v, p + n + 2, l);
			v[l] = '\0';
			return v;
		}
		p = eol + 2;
	}
	return v;
}

static const unsigned char *
body(size_t *len)
{
	char *end = strstr(out, "\r\n\r\n");
	*len = outlen - (size_t)(end + 4 - out);
	return (unsigned char *)end + 4;
}

static int
body_is(const void *want, size_t wlen)
{
	size_t len;
	const unsigned char *b = body(&len);
	return len == wlen && memcmp(b, want, wlen) == 0;
}

static void
setup_conf(enum conf_mode mode)
{
	handler_init(&hd, -1);
	memset(&c, 0, sizeof(c));
	snprintf(c.dir, sizeof(c.dir), "%s", dir);
	snprintf(c.dir_abs, sizeof(c.dir_abs), "%s", dir);
	c.dirfd = open(dir, O_RDONLY | O_DIRECTORY);
	c.mode = mode;
	strcpy(c.accel_prefix, "/_avatars/");
	c.default_id = -1;
	c.missing = MISSING_DEFAULT;
	c.max_age = 300;
	c.swr = 86400;
	c.versioned_max_age = 31536000;
	c.default_max_age = 60;
	c.cors_any = 1;
	strcpy(c.cors_origin, "*");
	c.cors_max_age = 7200;
	c.timeout = 5;
	c.cache_size = 1 << 20;
	c.cache_file_max = 64 * 1024;
	resolve_init(c.dirfd, mode == MODE_BYTES, c.cache_file_max, c.cache_size);
}

#define LIVE "public, max-age=300, stale-while-revalidate=86400"
#define SHORT "public, max-age=60"
#define YEAR "public, max-age=31536000, immutable"

/* Status, Content-Type, Cache-Control for each path in bytes mode. */
static const struct {
	const char *method, *uri;
	int status;
	const char *type, *cc;
	const unsigned char *body;
	size_t blen;
} table[] = {
	{ "GET", "/1000", 200, "image/png", LIVE, PNG, sizeof(PNG) - 1 },
	{ "GET", "/1000.png", 200, "image/png", LIVE, PNG, sizeof(PNG) - 1 },
	{ "GET", "/avatar/1000.webp", 200, "image/png", LIVE, PNG, sizeof(PNG) - 1 },
	{ "GET", "/1001", 200, "image/jpeg", LIVE, JPG, sizeof(JPG) - 1 },
	{ "GET", "/1002", 200, "image/gif", LIVE, GIF, sizeof(GIF) - 1 },
	{ "GET", "/1003", 200, "image/webp", LIVE, WEBP, sizeof(WEBP) - 1 },
	{ "GET", "/1004", 200, "image/gif", LIVE, GIF, sizeof(GIF) - 1 },
	{ "GET", "/-1", 200, "image/jpeg", LIVE, JPG, sizeof(JPG) - 1 },
	{ "GET", "/999", 200, "image/jpeg", SHORT, JPG, sizeof(JPG) - 1 },
	{ "GET", "/abc", 200, "image/jpeg", SHORT, JPG, sizeof(JPG) - 1 },
	{ "GET", "/01000", 200, "image/jpeg", SHORT, JPG, sizeof(JPG) - 1 },
	{ "GET", "/../etc/passwd", 200, "image/jpeg", SHORT, JPG, sizeof(JPG) - 1 },
	{ "GET", "/2000", 200, "image/jpeg", SHORT, JPG, sizeof(JPG) - 1 },
	{ "GET", "/2001", 200, "image/jpeg", SHORT, JPG, sizeof(JPG) - 1 },
	{ "GET", "/2002", 200, "image/jpeg", SHORT, JPG, sizeof(JPG) - 1 },
	{ "GET", "/2003", 200, "image/jpeg", SHORT, JPG, sizeof(JPG) - 1 },
	{ "GET", "/2004", 200, "image/jpeg", SHORT, JPG, sizeof(JPG) - 1 },
	{ "GET", "/2005", 200, "image/png", LIVE, PNG, sizeof(PNG) - 1 },
	{ "GET", "/2006", 200, "image/jpeg", SHORT, JPG, sizeof(JPG) - 1 },	/* 20 bytes of PNG */
	{ "GET", "/2007", 200, "image/jpeg", SHORT, JPG, sizeof(JPG) - 1 },	/* a PNG cut by 1 byte */
	{ "GET", "/2008", 200, "image/jpeg", SHORT, JPG, sizeof(JPG) - 1 },	/* a JPEG without EOI */
	{ "GET", "/2009", 200, "image/gif", LIVE, GIF, sizeof(GIF) - 1 },	/* a GIF, whole */
	{ "HEAD", "/1000", 200, "image/png", LIVE, (const unsigned char *)"", 0 },
	{ "POST", "/1000", 405, "text/plain", "no-store", NULL, 0 },
	{ "PUT", "/1000", 405, "text/plain", "no-store", NULL, 0 },
	{ "DELETE", "/1000", 405, "text/plain", "no-store", NULL, 0 },
	{ "GET", "/status", 200, "application/json", "no-store", NULL, 0 },
	{ "GET", "/metrics", 200, "text/plain; version=0.0.4; charset=utf-8", "no-store", NULL, 0 },
};

/*
 * Cache policy and cross-origin headers, bytes mode. One case a line:
 * request (method, path, query, Origin, Access-Control-Request-Method),
 * then status, Cache-Control, Access-Control-Allow-Origin, and one more
 * header with the value it must have ("" = absent).
 */
static const struct {
	const char *method, *uri, *query, *origin, *acrm;
	int status;
	const char *cc, *acao, *name, *value;
} policy[] = {
	{ "GET", "/1000", NULL, NULL, NULL, 200, LIVE, "*", "Cross-Origin-Resource-Policy", "cross-origin" },
	{ "GET", "/1000", NULL, NULL, NULL, 200, LIVE, "*", "Timing-Allow-Origin", "*" },
	{ "GET", "/1000", NULL, NULL, NULL, 200, LIVE, "*", "Vary", "" },
	{ "GET", "/1000", "v=3", NULL, NULL, 200, YEAR, "*", "Cross-Origin-Resource-Policy", "cross-origin" },
	{ "GET", "/1000.png", "s=80&v=abc", NULL, NULL, 200, YEAR, "*", "Content-Type", "image/png" },
	{ "HEAD", "/1000", "v=3", NULL, NULL, 200, YEAR, "*", "Content-Length", "67" },
	{ "GET", "/1000", "v=", NULL, NULL, 200, LIVE, "*", "Timing-Allow-Origin", "*" },
	{ "GET", "/1000", "V=3", NULL, NULL, 200, LIVE, "*", "Timing-Allow-Origin", "*" },
	{ "GET", "/1000", "x=1", "https://a.example", NULL, 200, LIVE, "*", "Vary", "" },
	{ "GET", "/999", "v=3", NULL, NULL, 200, SHORT, "*", "Cross-Origin-Resource-Policy", "cross-origin" },
	{ "GET", "/abc", NULL, NULL, NULL, 200, SHORT, "*", "Timing-Allow-Origin", "*" },
	{ "POST", "/1000", NULL, NULL, NULL, 405, "no-store", "*", "Allow", "GET, HEAD, OPTIONS" },
	{ "PUT", "/1000", "expires=1&sig=x", NULL, NULL, 405, "no-store", "*", "Allow", "GET, HEAD, OPTIONS" },
	{ "DELETE", "/1000", NULL, NULL, NULL, 405, "no-store", "*", "Allow", "GET, HEAD, OPTIONS" },
	{ "PATCH", "/1000", NULL, NULL, NULL, 405, "no-store", "*", "Cross-Origin-Resource-Policy", "cross-origin" },
	{ "OPTIONS", "/1000", NULL, NULL, NULL, 204, "no-store", "*", "Allow", "GET, HEAD, OPTIONS" },
	{ "OPTIONS", "/1000", NULL, NULL, NULL, 204, "no-store", "*", "Access-Control-Allow-Methods", "" },
	{ "OPTIONS", "/1000", NULL, NULL, NULL, 204, "no-store", "*", "Content-Length", "" },
	{ "OPTIONS", "/1000", NULL, "https://a.example", "GET", 204, "no-store", "*", "Access-Control-Allow-Methods", "GET, HEAD" },
	{ "OPTIONS", "/1000", NULL, "https://a.example", "GET", 204, "no-store", "*", "Access-Control-Max-Age", "7200" },
	{ "OPTIONS", "/1000", NULL, "https://a.example", "GET", 204, "no-store", "*", "Access-Control-Allow-Headers", "" },
	{ "OPTIONS", "/1000", NULL, "https://a.example", "PUT", 204, "no-store", "*", "Access-Control-Allow-Methods", "GET, HEAD" },
	{ "OPTIONS", "/999", NULL, "https://a.example", "PATCH", 204, "no-store", "*", "Access-Control-Allow-Methods", "GET, HEAD" },
	{ "OPTIONS", "/1000", NULL, NULL, "GET", 204, "no-store", "*", "Access-Control-Allow-Methods", "" },
	{ "GET", "/status", NULL, "https://a.example", NULL, 200, "no-store", "", "Cross-Origin-Resource-Policy", "" },
	{ "OPTIONS", "/metrics", NULL, "https://a.example", "GET", 204, "no-store", "", "Allow", "GET, HEAD, OPTIONS" },
};

/* The same with writes on (c.writes): PUT and DELETE exist. */
static const struct {
	const char *method, *uri, *origin, *acrm;
	int status;
	const char *name, *value;
} writes[] = {
	{ "POST", "/1000", NULL, NULL, 405, "Allow", "GET, HEAD, OPTIONS, PUT, DELETE" },
	{ "OPTIONS", "/1000", NULL, NULL, 204, "Allow", "GET, HEAD, OPTIONS, PUT, DELETE" },
	{ "OPTIONS", "/1000", "https://a.example", "PUT", 204, "Access-Control-Allow-Methods", "GET, HEAD, PUT, DELETE" },
	{ "OPTIONS", "/1000", "https://a.example", "PUT", 204, "Access-Control-Allow-Headers", "Content-Type" },
	{ "OPTIONS", "/status", NULL, NULL, 204, "Allow", "GET, HEAD, OPTIONS" },
	{ "POST", "/metrics", NULL, NULL, 405, "Allow", "GET, HEAD, OPTIONS" },
};

/* --cors-origin with a list: the request's Origin decides. */
static const struct {
	const char *origin;	/* NULL: no Origin header */
	const char *acao;	/* "" = absent */
} origins[] = {
	{ "https://a.example", "https://a.example" },
	{ "https://b.example:8443", "https://b.example:8443" },
	{ "https://c.example", "" },
	{ "https://a.example.evil", "" },
	{ "https://a.exampl", "" },
	{ "HTTPS://A.EXAMPLE", "" },
	{ "null", "" },
	{ "*", "" },
	{ "", "" },
	{ NULL, "" },
};


/* ---- sizes and formats: the read side only (files made here by hand) ---- */

__attribute__((format(printf, 1, 2)))
static int
diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	return 0;
}

/* The variant name of (size, type) for the avatar file name in dir. */
static void
vname(char *buf, size_t len, const char *orig, int64_t id, unsigned size,
    enum sniff_type t)
{
	char path[256], tag[VARIANT_TAG_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, orig);
	if (stat(path, &st) == -1) {
		perror(path);
		exit(1);
	}
	variant_tag(tag, (uint64_t)st.st_size, &st.st_mtim);
	if (variant_name(buf, len, size, id, tag, t) == -1)
		exit(1);
}

static void
put_variant(const char *orig, int64_t id, unsigned size, enum sniff_type t,
    const void *data, size_t dlen)
{
	char name[VARIANT_NAME_MAX], sub[32], path[256];

	vname(name, sizeof(name), orig, id, size, t);
	snprintf(path, sizeof(path), "%s/" VARIANT_DIR, dir);
	mkdir(path, 0755);
	variant_subdir(sub, sizeof(sub), size);
	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	mkdir(path, 0755);
	put_file(name, data, dlen);
}

static int
run_accept(const char *uri, const char *query, const char *accept)
{
	char q[128], a[128];
	const char *extra[3] = { NULL };
	size_t n = 0;

	if (query != NULL) {
		snprintf(q, sizeof(q), "QUERY_STRING=%s", query);
		extra[n++] = q;
	}
	if (accept != NULL) {
		snprintf(a, sizeof(a), "HTTP_ACCEPT=%s", accept);
		extra[n++] = a;
	}
	return run_with("GET", uri, NULL, NULL, extra);
}

/*
 * 1000.png is a PNG; its 64 px PNG variant holds the GIF's bytes and its
 * full-size WebP the WebP's, so each answer shows which file it came
 * from. Nothing else is made: the 32 px size, the 64 px WebP and every
 * AVIF are "not made yet".
 */
static void
variant_cases(void)
{
	static const struct {
		const char *uri, *query, *accept;
		int negotiate;
		const unsigned char *body;
		size_t blen;
		const char *type, *cc;
		int vary_accept;
		const char *what;
	} vt[] = {
		{ "/1000", "s=64", NULL, 0, GIF, sizeof(GIF) - 1, "image/gif", LIVE, 0, "s=64: the 64 px file" },
		{ "/1000", "size=64", NULL, 0, GIF, sizeof(GIF) - 1, "image/gif", LIVE, 0, "size= is s=" },
		{ "/1000", "s=33", NULL, 0, GIF, sizeof(GIF) - 1, "image/gif", LIVE, 0, "s=33: the next size up, 64" },
		{ "/1000", "s=65", NULL, 0, GIF, sizeof(GIF) - 1, "image/gif", LIVE, 0, "s=65, above every size: the largest" },
		{ "/avatar/1000.png", "s=64", NULL, 0, GIF, sizeof(GIF) - 1, "image/gif", LIVE, 0, "/avatar/ID.png?s=64" },
		{ "/1000", "v=7&s=64", NULL, 0, GIF, sizeof(GIF) - 1, "image/gif", YEAR, 0, "versioned: a year" },
		{ "/1000", "s=0", NULL, 0, PNG, sizeof(PNG) - 1, "image/png", LIVE, 0, "s=0 is ignored" },
		{ "/1000", "s=064", NULL, 0, PNG, sizeof(PNG) - 1, "image/png", LIVE, 0, "s=064 is ignored" },
		{ "/1000", "s=4097", NULL, 0, PNG, sizeof(PNG) - 1, "image/png", LIVE, 0, "s=4097 is ignored" },
		{ "/1000", "s=abc", NULL, 0, PNG, sizeof(PNG) - 1, "image/png", LIVE, 0, "s=abc is ignored" },
		{ "/1000", "s=32", NULL, 0, PNG, sizeof(PNG) - 1, "image/png", SHORT, 0, "32 px not made: the original, short" },
		{ "/1000.webp", NULL, NULL, 0, WEBP, sizeof(WEBP) - 1, "image/webp", LIVE, 0, ".webp: the full-size WebP" },
		{ "/1000.WEBP", NULL, NULL, 0, WEBP, sizeof(WEBP) - 1, "image/webp", LIVE, 0, ".WEBP too" },
		{ "/1000.webp", "s=64", NULL, 0, GIF, sizeof(GIF) - 1, "image/gif", SHORT, 0, "64 px WebP not made: the 64 px stored type, short" },
		{ "/1000.avif", NULL, NULL, 0, PNG, sizeof(PNG) - 1, "image/png", LIVE, 0, "AVIF not configured: as stored" },
		{ "/1000", NULL, "image/avif,image/webp,*/*", 0, PNG, sizeof(PNG) - 1, "image/png", LIVE, 0, "Accept without --negotiate: as stored, no Vary" },
		{ "/1000", NULL, "image/avif,image/webp,*/*", 1, WEBP, sizeof(WEBP) - 1, "image/webp", LIVE, 1, "negotiate: WebP (AVIF not configured)" },
		{ "/1000", NULL, "image/webp;q=0, */*", 1, PNG, sizeof(PNG) - 1, "image/png", LIVE, 1, "negotiate: webp;q=0 is a no" },
		{ "/1000", NULL, "image/*", 1, PNG, sizeof(PNG) - 1, "image/png", LIVE, 1, "negotiate: image/* picks nothing" },
		{ "/1000", NULL, NULL, 1, PNG, sizeof(PNG) - 1, "image/png", LIVE, 1, "negotiate, no Accept: stored, Vary" },
		{ "/1000.png", NULL, "image/webp", 1, PNG, sizeof(PNG) - 1, "image/png", LIVE, 0, "negotiate: /ID.png is as stored, no Vary" },
		{ "/1000.webp", NULL, "image/png", 1, WEBP, sizeof(WEBP) - 1, "image/webp", LIVE, 0, "negotiate: /ID.webp is WebP, no Vary" },
		{ "/999", "s=64", NULL, 0, JPG, sizeof(JPG) - 1, "image/jpeg", SHORT, 0, "a missing id: the default avatar, short" },
	};
	char path[256];
	struct timespec ts[2];

	setup_conf(MODE_BYTES);
	c.variants.sizes[0] = 32;
	c.variants.sizes[1] = 64;
	c.variants.nsizes = 2;
	c.variants.formats = VARIANT_FMT(SNIFF_WEBP);
	put_variant("1000.png", 1000, 64, SNIFF_PNG, GIF, sizeof(GIF) - 1);
	put_variant("1000.png", 1000, 0, SNIFF_WEBP, WEBP, sizeof(WEBP) - 1);
	for (size_t i = 0; i < NELEM(vt); i++) {
		const char *vary;
		int st;

		c.variants.negotiate = vt[i].negotiate;
		st = run_accept(vt[i].uri, vt[i].query, vt[i].accept);
		vary = header("Vary");
		(void)(ok(st == 200 && strcmp(header("Content-Type"), vt[i].type) == 0 &&
		    strcmp(header("Cache-Control"), vt[i].cc) == 0 &&
		    body_is(vt[i].body, vt[i].blen) &&
		    (strstr(vary, "Accept") != NULL) == vt[i].vary_accept,
		    "variants: %s%s%s: %s", vt[i].uri, vt[i].query ? "?" : "",
		    vt[i].query ? vt[i].query : "", vt[i].what) ||
		    diag("got %d %s, %s, Vary: %s", st, header("Content-Type"),
		    header("Cache-Control"), vary));
	}
	c.variants.negotiate = 0;

	/* x-accel names the variant file, beneath the internal prefix. */
	c.mode = MODE_X_ACCEL;
	resolve_init(c.dirfd, 0, c.cache_file_max, c.cache_size);
	{
		char name[VARIANT_NAME_MAX], want[128];

		vname(name, sizeof(name), "1000.png", 1000, 64, SNIFF_PNG);
		snprintf(want, sizeof(want), "/_avatars/%s", name);
		(void)(ok(run_accept("/1000", "s=64", NULL) == 200 &&
		    strcmp(header("X-Accel-Redirect"), want) == 0,
		    "variants: x-accel: X-Accel-Redirect: %s", want) ||
		    diag("got %s", header("X-Accel-Redirect")));
	}
	c.mode = MODE_BYTES;
	resolve_init(c.dirfd, 1, c.cache_file_max, c.cache_size);

	/* A new original has a new tag: the old variants are never served,
	 * even with the same size (a rewrite in place, a new mtime). */
	ok(run_accept("/1000", "s=64", NULL) == 200 && body_is(GIF, sizeof(GIF) - 1),
	    "variants: the 64 px file again (cached)");
	snprintf(path, sizeof(path), "%s/1000.png", dir);
	clock_gettime(CLOCK_REALTIME, &ts[0]);
	ts[1] = ts[0];
	ts[1].tv_sec += 5;
	utimensat(AT_FDCWD, path, ts, 0);
	ok(run_accept("/1000", "s=64", NULL) == 200 && body_is(PNG, sizeof(PNG) - 1) &&
	    strcmp(header("Cache-Control"), SHORT) == 0,
	    "variants: the original rewritten: its old 64 px file is not served");
	ok(run_accept("/1000.webp", NULL, NULL) == 200 && body_is(PNG, sizeof(PNG) - 1),
	    "variants: nor its old WebP");
	snprintf(path, sizeof(path), "rm -rf -- '%s/.v'", dir);
	if (system(path) != 0)
		diag("could not remove the variants");
}

int
main(void)
{
	char path[256], etag[128], lm[64];
	static unsigned char big[200 * 1024];

	strcpy(dir, "/tmp/avatar-unit-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return 1;
	stats_init();
	/* The refusals below are logged by design; keep the TAP output clean. */
	log_set_level(LOG_LVL_ERROR);
	put_file("1000.png", PNG, sizeof(PNG) - 1);
	put_file("1001.png", JPG, sizeof(JPG) - 1);	/* a JPEG under a .png name */
	put_file("1002.jpg", GIF, sizeof(GIF) - 1);
	put_file("1003.webp", WEBP, sizeof(WEBP) - 1);
	put_file("1004.gif", GIF, sizeof(GIF) - 1);
	put_file("-1.png", JPG, sizeof(JPG) - 1);	/* as in the original service */
	put_file("2000.png", "<html>", 6);		/* not an image */
	put_file("2001.png", "", 0);			/* empty */
	put_file("2006.png", PNG, 20);			/* cut short: refused */
	put_file("2007.png", PNG, sizeof(PNG) - 2);
	put_file("2008.jpg", JPG, sizeof(JPG) - 3);
	put_file("2009.gif", GIF, sizeof(GIF) - 1);
	snprintf(path, sizeof(path), "%s/2002.png", dir);
	mkdir(path, 0755);				/* a directory */
	snprintf(path, sizeof(path), "%s/2003.png", dir);
	mkfifo(path, 0644);				/* a FIFO must not hang */
	snprintf(path, sizeof(path), "%s/2004.png", dir);
	ok(symlink("/etc/passwd", path) == 0, "symlink out made");	/* escapes the directory */
	snprintf(path, sizeof(path), "%s/2005.png", dir);
	ok(symlink("1000.png", path) == 0, "symlink inside made");	/* stays inside: allowed */

	setup_conf(MODE_BYTES);
	for (size_t i = 0; i < NELEM(table); i++) {
		int st = run(table[i].method, table[i].uri, NULL, NULL);
		int good = st == table[i].status &&
		    strcmp(header("Content-Type"), table[i].type) == 0 &&
		    strcmp(header("Cache-Control"), table[i].cc) == 0 &&
		    strcmp(header("X-Content-Type-Options"), "nosniff") == 0 &&
		    (table[i].body == NULL || body_is(table[i].body, table[i].blen));
		ok(good, "bytes %s %s -> %d %s (%s)", table[i].method, table[i].uri,
		    st, header("Content-Type"), header("Cache-Control"));
	}
	run("POST", "/1", NULL, NULL);
	ok(strcmp(header("Allow"), "GET, HEAD, OPTIONS") == 0, "405 carries Allow");
	run("HEAD", "/1000", NULL, NULL);
	ok(atoi(header("Content-Length")) == (int)sizeof(PNG) - 1, "HEAD has the GET Content-Length");

	/* Validators and 304. */
	run("GET", "/1000", NULL, NULL);
	snprintf(etag, sizeof(etag), "%s", header("ETag"));
	snprintf(lm, sizeof(lm), "%s", header("Last-Modified"));
	ok(etag[0] == '"' && strlen(lm) == 29, "ETag %s and Last-Modified %s", etag, lm);
	ok(atoi(header("Content-Length")) == (int)sizeof(PNG) - 1, "Content-Length");
	ok(run("GET", "/1000", etag, NULL) == 304 && body_is("", 0) &&
	    strcmp(header("ETag"), etag) == 0, "If-None-Match -> 304 without body");
	ok(run("GET", "/1000", "\"other\"", NULL) == 200, "other etag -> 200");
	ok(run("GET", "/1000", NULL, lm) == 304, "If-Modified-Since equal -> 304");
	ok(run("GET", "/1000", NULL, "Thu, 01 Jan 1970 00:00:00 GMT") == 200, "older IMS -> 200");
	ok(run("GET", "/1000", "\"other\"", lm) == 200, "If-None-Match decides over IMS");
	ok(run("HEAD", "/1000", etag, NULL) == 304, "HEAD conditional -> 304");

	/* Replace by rename: served new at once, new ETag. */
	put_file("tmp.png", GIF, sizeof(GIF) - 1);
	{
		char from[256];
		snprintf(from, sizeof(from), "%s/tmp.png", dir);
		snprintf(path, sizeof(path), "%s/1000.png", dir);
		rename(from, path);
	}
	ok(run("GET", "/1000", etag, NULL) == 200 && strcmp(header("Content-Type"), "image/gif") == 0 &&
	    body_is(GIF, sizeof(GIF) - 1) && strcmp(header("ETag"), etag) != 0,
	    "renamed-over avatar served new at once");
	/* Deleted: falls back to the default. */
	unlink(path);
	ok(run("GET", "/1000", NULL, NULL) == 200 && strcmp(header("Cache-Control"), SHORT) == 0 &&
	    body_is(JPG, sizeof(JPG) - 1), "deleted avatar -> default");
	put_file("1000.png", PNG, sizeof(PNG) - 1);

	/* A file over cache-file-max is streamed whole, not cached. */
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char)(i * 7);
	/* A PNG's start (signature, IHDR) and end (IEND) around filler. */
	memcpy(big, PNG, 33);
	memcpy(big + sizeof(big) - 12, PNG + sizeof(PNG) - 1 - 12, 12);
	put_file("3000.png", big, sizeof(big));
	{
		size_t before = cache_used();
		ok(run("GET", "/3000", NULL, NULL) == 200 && body_is(big, sizeof(big)),
		    "200 kB file streamed whole");
		ok(cache_used() < before + 1024, "and not held in the cache");
		ok(run("GET", "/3000", NULL, NULL) == 200 && body_is(big, sizeof(big)),
		    "streamed whole again");
		/* Cut short in place: the next request checks it again. */
		put_file("3000.png", big, sizeof(big) - 1);
		ok(run("GET", "/3000", NULL, NULL) == 200 && body_is(JPG, sizeof(JPG) - 1),
		    "a streamed file cut short is refused at the next request");
		put_file("3000.png", big, sizeof(big));
		ok(run("GET", "/3000", NULL, NULL) == 200 && body_is(big, sizeof(big)),
		    "and served again once whole");
	}

	/* --missing 404 */
	c.missing = MISSING_404;
	ok(run("GET", "/999", NULL, NULL) == 404 && strcmp(header("Cache-Control"), SHORT) == 0,
	    "missing 404 policy");
	ok(run("GET", "/1000", NULL, NULL) == 200, "existing still 200 with missing 404");
	c.missing = MISSING_DEFAULT;
	c.default_id = 4242;
	ok(run("GET", "/999", NULL, NULL) == 404, "default missing too -> 404, not 500");
	c.default_id = -1;

	/* x-accel */
	setup_conf(MODE_X_ACCEL);
	ok(run("GET", "/1001.png", NULL, NULL) == 200 &&
	    strcmp(header("X-Accel-Redirect"), "/_avatars/1001.png") == 0 &&
	    strcmp(header("Content-Type"), "image/jpeg") == 0 && body_is("", 0),
	    "x-accel: redirect to the file, sniffed type, no body");
	ok(run("GET", "/1002", NULL, NULL) == 200 &&
	    strcmp(header("X-Accel-Redirect"), "/_avatars/1002.jpg") == 0,
	    "x-accel: real file name with its own extension");
	ok(run("GET", "/nope", NULL, NULL) == 200 &&
	    strcmp(header("X-Accel-Redirect"), "/_avatars/-1.png") == 0 &&
	    strcmp(header("Cache-Control"), SHORT) == 0,
	    "x-accel: default with short lifetime");
	ok(run("GET", "/2004", NULL, NULL) == 200 &&
	    strcmp(header("X-Accel-Redirect"), "/_avatars/-1.png") == 0,
	    "x-accel: symlink out of the directory is not redirected to");
	ok(run("POST", "/1000", NULL, NULL) == 405 && header("X-Accel-Redirect")[0] == '\0',
	    "x-accel: 405 not redirected");
	ok(run("GET", "/2007", NULL, NULL) == 200 &&
	    strcmp(header("X-Accel-Redirect"), "/_avatars/-1.png") == 0,
	    "x-accel: a PNG cut short is not redirected to");

	/* x-sendfile */
	setup_conf(MODE_X_SENDFILE);
	snprintf(path, sizeof(path), "%s/1003.webp", dir);
	ok(run("GET", "/1003", NULL, NULL) == 200 && strcmp(header("X-Sendfile"), path) == 0 &&
	    strcmp(header("Content-Type"), "image/webp") == 0, "x-sendfile: absolute path");
	ok(run("GET", "/2003", NULL, NULL) == 200 && strstr(header("X-Sendfile"), "/-1.png") != NULL,
	    "x-sendfile: FIFO skipped without hanging");

	/* Counters: everything above was counted by kind. */
	run("GET", "/status", NULL, NULL);
	{
		size_t len;
		const unsigned char *b = body(&len);
		ok(strstr((const char *)b, "\"method_not_allowed\":5") != NULL,
		    "status counts 405s: %.*s", (int)len, b);
		ok(strstr((const char *)b, "\"not_modified\":3") != NULL, "status counts 304s");
		ok(strstr((const char *)b, "\"not_found\":2") != NULL, "status counts 404s");
	}
	run("GET", "/metrics", NULL, NULL);
	ok(strstr(out, "# TYPE avatar_requests_total counter\n") != NULL &&
	    strstr(out, "avatar_not_modified_total 3\n") != NULL, "metrics in exposition format");


	/* Cache policy and CORS, bytes mode. */
	setup_conf(MODE_BYTES);
	for (size_t i = 0; i < NELEM(policy); i++) {
		int st = run_cors(policy[i].method, policy[i].uri, policy[i].query,
		    policy[i].origin, policy[i].acrm);

		ok(st == policy[i].status && strcmp(header("Cache-Control"), policy[i].cc) == 0 &&
		    strcmp(header("Access-Control-Allow-Origin"), policy[i].acao) == 0 &&
		    strcmp(header(policy[i].name), policy[i].value) == 0 &&
		    strcmp(header("X-Content-Type-Options"), "nosniff") == 0,
		    "%s %s?%s Origin %s ACRM %s -> %d, %s, ACAO \"%s\", %s \"%s\"",
		    policy[i].method, policy[i].uri, policy[i].query ? policy[i].query : "",
		    policy[i].origin ? policy[i].origin : "-", policy[i].acrm ? policy[i].acrm : "-",
		    st, header("Cache-Control"), header("Access-Control-Allow-Origin"),
		    policy[i].name, header(policy[i].name));
	}
	/* 304 and 404 carry the same policy and CORS headers as the 200. */
	{
		static const char *const v3[] = { "QUERY_STRING=v=3", NULL };

		run("GET", "/1000", NULL, NULL);
		snprintf(etag, sizeof(etag), "%s", header("ETag"));
		ok(run("GET", "/1000", etag, NULL) == 304 && strcmp(header("Cache-Control"), LIVE) == 0 &&
		    strcmp(header("Access-Control-Allow-Origin"), "*") == 0 &&
		    strcmp(header("Cross-Origin-Resource-Policy"), "cross-origin") == 0 &&
		    strcmp(header("Timing-Allow-Origin"), "*") == 0, "304: policy and CORS headers");
		ok(run_with("GET", "/1000", etag, NULL, v3) == 304 && strcmp(header("Cache-Control"), YEAR) == 0,
		    "304 at a versioned URL: immutable");
		c.missing = MISSING_404;
		ok(run_with("GET", "/999", NULL, NULL, v3) == 404 && strcmp(header("Cache-Control"), SHORT) == 0 &&
		    strcmp(header("Access-Control-Allow-Origin"), "*") == 0 &&
		    strcmp(header("Cross-Origin-Resource-Policy"), "cross-origin") == 0,
		    "404 (even versioned): short, with CORS headers");
		c.missing = MISSING_DEFAULT;
		c.swr = 0;
		ok(run("GET", "/1000", NULL, NULL) == 200 &&
		    strcmp(header("Cache-Control"), "public, max-age=300") == 0,
		    "--stale-while-revalidate 0: none");
		c.versioned_max_age = 0;
		ok(run_with("GET", "/1000", NULL, NULL, v3) == 200 &&
		    strcmp(header("Cache-Control"), "public, max-age=300") == 0,
		    "--versioned-max-age 0: versioned URLs as unversioned");
		c.swr = 86400;
		c.versioned_max_age = 31536000;
	}
	c.writes = 1;
	for (size_t i = 0; i < NELEM(writes); i++) {
		int st = run_cors(writes[i].method, writes[i].uri, NULL, writes[i].origin,
		    writes[i].acrm);

		ok(st == writes[i].status && strcmp(header(writes[i].name), writes[i].value) == 0,
		    "writes on: %s %s -> %d, %s \"%s\"", writes[i].method, writes[i].uri, st,
		    writes[i].name, header(writes[i].name));
	}
	/* What the write path will send through resp_plain: never cacheable. */
	{
		static const char *const methods[] = { "PUT", "DELETE", "POST" };

		for (size_t i = 0; i < NELEM(methods); i++) {
			static struct req_params p;
			struct req r;
			struct sink sk = { .write = mem_write, .body = mem_write, .file = mem_file };

			memset(&p, 0, sizeof(p));
			set(&p, "REQUEST_METHOD", methods[i]);
			set(&p, "DOCUMENT_URI", "/1000");
			req_parse(&p, &r);
			outlen = 0;
			memset(out, 0, sizeof(out));
			ok(resp_plain(&c, &r, RESP_OK, "text/plain", NULL, "ok\n", 3, &sk) == 200 &&
			    strcmp(header("Cache-Control"), "no-store") == 0 &&
			    strcmp(header("Access-Control-Allow-Origin"), "*") == 0,
			    "%s answered 200: no-store, with CORS", methods[i]);
		}
	}
	c.writes = 0;
	c.cors_any = 0;
	strcpy(c.cors_origin, "https://a.example,https://b.example:8443");
	for (size_t i = 0; i < NELEM(origins); i++) {
		run_cors("GET", "/1000", NULL, origins[i].origin, NULL);
		ok(strcmp(header("Access-Control-Allow-Origin"), origins[i].acao) == 0 &&
		    strcmp(header("Timing-Allow-Origin"), origins[i].acao) == 0 &&
		    strcmp(header("Vary"), "Origin") == 0 &&
		    strcmp(header("Cross-Origin-Resource-Policy"), "cross-origin") == 0,
		    "--cors-origin list, Origin %s -> ACAO \"%s\", Vary %s",
		    origins[i].origin ? origins[i].origin : "(none)",
		    header("Access-Control-Allow-Origin"), header("Vary"));
	}
	ok(run_cors("OPTIONS", "/1000", NULL, "https://b.example:8443", "GET") == 204 &&
	    strcmp(header("Access-Control-Allow-Origin"), "https://b.example:8443") == 0 &&
	    strcmp(header("Vary"), "Origin") == 0, "--cors-origin list: preflight echoes the origin");
	c.cors_any = 1;
	strcpy(c.cors_origin, "*");

	/*
	 * Every mode answers conditionals itself, with the same validators:
	 * ETag and Last-Modified on the 200, 304 without redirect or file.
	 */
	{
		static const enum conf_mode modes[] = { MODE_BYTES, MODE_X_ACCEL, MODE_X_SENDFILE };
		static const char *const names[] = { "bytes", "x-accel", "x-sendfile" };
		char first[128] = "";

		for (size_t i = 0; i < NELEM(modes); i++) {
			char tag[128], lmod[64];

			setup_conf(modes[i]);
			run("GET", "/1001", NULL, NULL);
			snprintf(tag, sizeof(tag), "%s", header("ETag"));
			snprintf(lmod, sizeof(lmod), "%s", header("Last-Modified"));
			if (i == 0)
				snprintf(first, sizeof(first), "%s", tag);
			ok(tag[0] == '"' && strcmp(tag, first) == 0 && strlen(lmod) == 29 &&
			    strcmp(header("Access-Control-Allow-Origin"), "*") == 0,
			    "%s: 200 with the same ETag %s, Last-Modified, CORS", names[i], tag);
			ok(run("GET", "/1001", tag, NULL) == 304 && body_is("", 0) &&
			    header("X-Accel-Redirect")[0] == '\0' && header("X-Sendfile")[0] == '\0' &&
			    strcmp(header("ETag"), tag) == 0 && strcmp(header("Cache-Control"), LIVE) == 0 &&
			    strcmp(header("Timing-Allow-Origin"), "*") == 0,
			    "%s: If-None-Match -> 304 from the responder", names[i]);
			ok(run("GET", "/1001", NULL, lmod) == 304, "%s: If-Modified-Since -> 304", names[i]);
			ok(run("GET", "/1001", "\"x\"", lmod) == 200 &&
			    (modes[i] == MODE_BYTES || header(modes[i] == MODE_X_ACCEL ?
			    "X-Accel-Redirect" : "X-Sendfile")[0] != '\0'),
			    "%s: If-None-Match that does not match decides over IMS -> 200", names[i]);
		}
	}

	/*
	 * The ETag of a copy (cp -a: same bytes, same mtime, another inode,
	 * another directory) is the same, so one host's tag gives a 304 on
	 * the other.
	 */
	{
		char dir2[64], tag[128], p1[256], p2[256];
		struct stat st1, st2;
		struct timespec ts[2];

		setup_conf(MODE_BYTES);
		run("GET", "/1001", NULL, NULL);
		snprintf(tag, sizeof(tag), "%s", header("ETag"));
		strcpy(dir2, "/tmp/avatar-unit2-XXXXXX");
		if (mkdtemp(dir2) == NULL)
			return 1;
		snprintf(p1, sizeof(p1), "%s/1001.png", dir);
		snprintf(p2, sizeof(p2), "%s/1001.png", dir2);
		{
			int fd = open(p2, O_WRONLY | O_CREAT | O_TRUNC, 0644);

			if (fd < 0 || write(fd, JPG, sizeof(JPG) - 1) != (ssize_t)sizeof(JPG) - 1)
				return 1;
			close(fd);
		}
		stat(p1, &st1);
		ts[0] = st1.st_atim;
		ts[1] = st1.st_mtim;
		utimensat(AT_FDCWD, p2, ts, 0);
		stat(p2, &st2);
		close(c.dirfd);
		c.dirfd = open(dir2, O_RDONLY | O_DIRECTORY);
		resolve_init(c.dirfd, 1, c.cache_file_max, c.cache_size);
		ok(st1.st_ino != st2.st_ino && run("GET", "/1001", NULL, NULL) == 200 &&
		    strcmp(header("ETag"), tag) == 0, "a copy in another directory: same ETag %s", tag);
		ok(run("GET", "/1001", tag, NULL) == 304, "the first host's ETag -> 304 on the copy");
		unlink(p2);
		rmdir(dir2);
	}

	variant_cases();

	/* Clean up the directory. */
	{
		static const char *const names[] = { "1000.png", "1001.png", "1002.jpg", "1003.webp",
		    "1004.gif", "-1.png", "2000.png", "2001.png", "2003.png", "2004.png", "2005.png",
		    "2006.png", "2007.png", "2008.jpg", "2009.gif", "3000.png" };
		for (size_t i = 0; i < NELEM(names); i++) {
			snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
			unlink(path);
		}
		snprintf(path, sizeof(path), "%s/2002.png", dir);
		rmdir(path);
		rmdir(dir);
	}
	return tap_done();
}
