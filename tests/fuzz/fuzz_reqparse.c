/*
 * libFuzzer target for the request parser. The first input byte is a
 * separator; the rest, split on it, gives the values of the parameters
 * below in order (missing ones are not sent), so values may hold any byte,
 * NUL included.
 *
 * The oracle is an independent, deliberately plain reimplementation of the
 * rules, written from the manual rather than from reqparse.c: which
 * parameter names the path, its last segment, the id rule (canonical
 * signed 64-bit decimal plus at most one extension out of five), the
 * method, the "v" of the query, and If-None-Match kept whole or marked
 * unusable. Any disagreement aborts. The parameters are also given in the
 * reverse order, which must not change anything.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "reqparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { F_METHOD, F_DOC, F_SCRIPT, F_INFO, F_URI, F_QUERY, F_INM, F_IMS,
    F_ORIGIN, F_ACRM, F_CL, NFIELDS };

static const char *const names[NFIELDS] = {
	"REQUEST_METHOD", "DOCUMENT_URI", "SCRIPT_NAME", "PATH_INFO",
	"REQUEST_URI", "QUERY_STRING", "HTTP_IF_NONE_MATCH",
	"HTTP_IF_MODIFIED_SINCE", "HTTP_ORIGIN",
	"HTTP_ACCESS_CONTROL_REQUEST_METHOD", "CONTENT_LENGTH",
};

struct field {
	const char *v;		/* NULL: not sent */
	size_t len;
};

static int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * The id rule, from the manual: a segment is an id when it is "0", or an
 * optional '-' followed by a nonzero digit and more digits, within the
 * signed 64-bit range, optionally followed by exactly one of .png .jpg
 * .jpeg .gif .webp in any case.
 */
static int
oracle_id(const char *seg, size_t len, int64_t *id)
{
	/* An avatar's extensions, and the two that also name a format. */
	static const char *const ext[] = { "png", "jpg", "jpeg", "gif", "webp", "avif" };
	size_t i = 0, start, ndig;
	int neg = 0;
	uint64_t mag = 0;

	if (i < len && seg[i] == '-') {
		neg = 1;
		i++;
	}
	start = i;
	while (i < len && is_digit(seg[i]))
		i++;
	ndig = i - start;
	if (ndig == 0 || ndig > 19)
		return 0;
	if (seg[start] == '0' && (ndig > 1 || neg))
		return 0;
	if (i < len) {
		int found = 0;

		if (seg[i] != '.')
			return 0;
		for (size_t e = 0; e < sizeof(ext) / sizeof(ext[0]); e++)
			if (len - i - 1 == strlen(ext[e]) &&
			    strncasecmp(seg + i + 1, ext[e], len - i - 1) == 0)
				found = 1;
		if (!found)
			return 0;
	}
	for (size_t k = start; k < start + ndig; k++)
		mag = mag * 10 + (uint64_t)(seg[k] - '0');	/* 19 digits fit */
	if (mag > (uint64_t)INT64_MAX + (neg ? 1 : 0))
		return 0;
	*id = neg ? (int64_t)(0 - mag) : (int64_t)mag;
	return 1;
}

static int
same(const struct field *f, const char *s)
{
	return f->len == strlen(s) && memcmp(f->v, s, f->len) == 0;
}

/* The "v" rule: some &-separated pair is named exactly v and has a value. */
static int
oracle_versioned(const char *q, size_t len)
{
	size_t i = 0;

	while (i <= len) {
		size_t j = i;

		while (j < len && q[j] != '&')
			j++;
		if (j - i >= 3 && q[i] == 'v' && q[i + 1] == '=')
			return 1;
		i = j + 1;
	}
	return 0;
}

static void
feed(struct req_params *p, const struct field *f, int reverse)
{
	memset(p, 0, sizeof(*p));
	for (int k = 0; k < NFIELDS; k++) {
		int i = reverse ? NFIELDS - 1 - k : k;

		if (f[i].v != NULL)
			req_params_set(p, names[i], strlen(names[i]), f[i].v, f[i].len);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct req_params p;
	static struct req r, r2;
	struct field f[NFIELDS] = { { 0 } };
	const char *s, *end, *path = NULL, *seg;
	size_t plen = 0, seglen;
	char sep;
	int want_kind = REQ_AVATAR, want_id = 0, want_method = REQ_OTHER;
	int64_t id = 0;

	if (size == 0)
		return 0;
	sep = (char)data[0];
	s = (const char *)data + 1;
	end = (const char *)data + size;
	for (int i = 0; i < NFIELDS && s <= end; i++) {
		const char *z = memchr(s, sep, (size_t)(end - s));
		size_t n = z ? (size_t)(z - s) : (size_t)(end - s);

		f[i].v = s;
		f[i].len = n;
		s += n + 1;
	}

	feed(&p, f, 0);
	req_parse(&p, &r);

	/* The path: the first non-empty of these four. */
	if (f[F_DOC].v && f[F_DOC].len)
		path = f[F_DOC].v, plen = f[F_DOC].len;
	else if (f[F_INFO].v && f[F_INFO].len)
		path = f[F_INFO].v, plen = f[F_INFO].len;
	else if (f[F_SCRIPT].v && f[F_SCRIPT].len)
		path = f[F_SCRIPT].v, plen = f[F_SCRIPT].len;
	else if (f[F_URI].v && f[F_URI].len) {
		const char *qm = memchr(f[F_URI].v, '?', f[F_URI].len);

		path = f[F_URI].v;
		plen = qm ? (size_t)(qm - path) : f[F_URI].len;
	}
	/* The path counts only if the raw REQUEST_URI, when given, has a last
	 * segment that fits and holds neither '%' nor NUL. */
	if (path != NULL && f[F_URI].v && f[F_URI].len) {
		const char *qm = memchr(f[F_URI].v, '?', f[F_URI].len);
		const char *re = qm ? qm : f[F_URI].v + f[F_URI].len, *rs = re;

		while (rs > f[F_URI].v && rs[-1] != '/')
			rs--;
		if ((size_t)(re - rs) >= REQ_SEG_MAX || memchr(rs, '%', (size_t)(re - rs)) ||
		    memchr(rs, '\0', (size_t)(re - rs)))
			path = NULL;
	}
	if (path != NULL) {
		seg = path + plen;
		while (seg > path && seg[-1] != '/')
			seg--;
		seglen = (size_t)(path + plen - seg);
		if (seglen == 6 && memcmp(seg, "status", 6) == 0)
			want_kind = REQ_STATUS;
		else if (seglen == 7 && memcmp(seg, "metrics", 7) == 0)
			want_kind = REQ_METRICS;
		else
			want_id = oracle_id(seg, seglen, &id);
	}
	if (r.kind != want_kind || r.has_id != want_id || (want_id && r.id != id)) {
		fprintf(stderr, "id: got kind %d has_id %d id %lld, oracle kind %d has_id %d id %lld\n",
		    r.kind, r.has_id, (long long)r.id, want_kind, want_id, (long long)id);
		abort();
	}
	/* The format an id's extension asks for: only .webp and .avif name
	 * one; no extension at all is "bare". */
	if (want_id) {
		const char *dot = memchr(seg, '.', seglen);
		size_t xl = dot ? seglen - (size_t)(dot - seg) : 0;
		enum sniff_type want = SNIFF_NONE;

		if (xl == 5 && strncasecmp(dot, ".webp", 5) == 0)
			want = SNIFF_WEBP;
		else if (xl == 5 && strncasecmp(dot, ".avif", 5) == 0)
			want = SNIFF_AVIF;
		if (r.want != want || r.bare != (dot == NULL)) {
			fprintf(stderr, "format: got want %d bare %d, oracle %d %d\n",
			    r.want, r.bare, want, dot == NULL);
			abort();
		}
	}

	if (f[F_METHOD].v != NULL) {
		static const char *const m[] = { "GET", "HEAD", "OPTIONS", "PUT", "DELETE" };
		static const enum req_method e[] = { REQ_GET, REQ_HEAD, REQ_OPTIONS, REQ_PUT, REQ_DELETE };

		for (size_t i = 0; i < 5; i++)
			if (same(&f[F_METHOD], m[i]))
				want_method = e[i];
	}
	if ((int)r.method != want_method)
		abort();

	{
		const struct field *q = &f[F_QUERY];
		int want_v = 0;

		if (q->v != NULL)
			want_v = oracle_versioned(q->v, q->len);
		else if (f[F_URI].v != NULL) {
			const char *qm = memchr(f[F_URI].v, '?', f[F_URI].len);

			if (qm != NULL)
				want_v = oracle_versioned(qm + 1,
				    f[F_URI].len - (size_t)(qm + 1 - f[F_URI].v));
		}
		if (r.q.versioned != want_v)
			abort();
	}

	{
		const struct field *h = &f[F_INM];
		enum req_state want = REQ_ABSENT;

		if (h->v != NULL)
			want = h->len < REQ_INM_MAX && memchr(h->v, '\0', h->len) == NULL ?
			    REQ_OK : REQ_BAD;
		if (r.inm_state != want)
			abort();
		if (want == REQ_OK && (strlen(r.inm) != h->len || memcmp(r.inm, h->v, h->len) != 0))
			abort();
	}

	/* Order must not matter. */
	feed(&p, f, 1);
	req_parse(&p, &r2);
	if (r2.kind != r.kind || r2.has_id != r.has_id || r2.id != r.id ||
	    r2.method != r.method || r2.q.versioned != r.q.versioned ||
	    r2.q.has_size != r.q.has_size || r2.q.size != r.q.size ||
	    r2.inm_state != r.inm_state || strcmp(r2.inm, r.inm) != 0 ||
	    r2.origin_state != r.origin_state || r2.has_acrm != r.has_acrm ||
	    r2.content_length_state != r.content_length_state)
		abort();
	return 0;
}
