/*
 * reqparse: request parameters to a request. This file never touches the
 * filesystem; no byte of the path leaves it except as the canonical number.
 */
#include "reqparse.h"
#include "num.h"

#include <string.h>
#include <strings.h>

static const char *const method_names[] = {
	[REQ_GET] = "GET",
	[REQ_HEAD] = "HEAD",
	[REQ_OPTIONS] = "OPTIONS",
	[REQ_PUT] = "PUT",
	[REQ_DELETE] = "DELETE",
	[REQ_OTHER] = "other",
};

const char *
req_method_name(enum req_method m)
{
	return method_names[m];
}

/* Methods are case-sensitive (RFC 9110 section 9.1): "get" is not GET. */
static enum req_method
method_of(const char *s)
{
	for (int m = REQ_GET; m < REQ_OTHER; m++)
		if (strcmp(s, method_names[m]) == 0)
			return (enum req_method)m;
	return REQ_OTHER;
}

/* Returns the last '/'-separated segment of s[0..len). */
static const char *
last_segment(const char *s, size_t len, size_t *seglen)
{
	const char *slash = memrchr(s, '/', len);
	const char *seg = slash ? slash + 1 : s;

	*seglen = len - (size_t)(seg - s);
	return seg;
}

/*
 * The extensions a path may end in, and the format each asks for. The
 * ones a stored file may have (ext.h) mean "as stored", whatever the
 * file's real type, so no URL that worked before changes what it returns;
 * .webp also names WebP when WebP variants are made, and .avif exists
 * only as a variant.
 */
static const struct {
	const char *ext;
	enum sniff_type want;
} path_exts[] = {
	{ ".png", SNIFF_NONE }, { ".jpg", SNIFF_NONE }, { ".jpeg", SNIFF_NONE },
	{ ".gif", SNIFF_NONE }, { ".webp", SNIFF_WEBP }, { ".avif", SNIFF_AVIF },
};

int
req_parse_target(const char *path, size_t len, int64_t *id, enum sniff_type *want,
    int *bare)
{
	size_t seglen;
	const char *seg = last_segment(path, len, &seglen);

	*want = SNIFF_NONE;
	*bare = 1;
	for (size_t i = 0; i < sizeof(path_exts) / sizeof(path_exts[0]); i++) {
		size_t elen = strlen(path_exts[i].ext);

		if (seglen > elen &&
		    strncasecmp(seg + seglen - elen, path_exts[i].ext, elen) == 0) {
			seglen -= elen;
			*want = path_exts[i].want;
			*bare = 0;
			break;
		}
	}
	return num_parse(seg, seglen, INT64_MIN, INT64_MAX, id);
}

int
req_parse_id(const char *path, size_t len, int64_t *id)
{
	enum sniff_type want;
	int bare;

	return req_parse_target(path, len, id, &want, &bare);
}

/*
 * Whether an Accept header (RFC 9110 section 12.5.1) names type with a
 * non-zero weight. Only exact media types count: a wildcard stands for
 * "anything", which is exactly what a client that cannot decode AVIF
 * sends too, so it never selects a format.
 */
static int
accepts(const char *val, size_t vlen, const char *type)
{
	size_t tlen = strlen(type), off = 0;

	while (off < vlen) {
		const char *p = val + off, *comma = memchr(p, ',', vlen - off);
		size_t n = comma ? (size_t)(comma - p) : vlen - off, i = 0, te;
		const char *semi;

		off += n + 1;
		while (i < n && (p[i] == ' ' || p[i] == '\t'))
			i++;
		semi = memchr(p + i, ';', n - i);
		te = semi ? (size_t)(semi - p) : n;
		while (te > i && (p[te - 1] == ' ' || p[te - 1] == '\t'))
			te--;
		if (te - i != tlen || strncasecmp(p + i, type, tlen) != 0)
			continue;
		if (semi == NULL)
			return 1;
		/* q=0 (or 0.0, 0.000) means "not acceptable". */
		for (const char *q = semi; q + 2 <= p + n; q++)
			if (q[0] == 'q' && q[1] == '=') {
				for (q += 2; q < p + n && (*q == '0' || *q == '.'); q++)
					;
				return q < p + n && *q >= '1' && *q <= '9';
			}
		return 1;
	}
	return 0;
}

/*
 * Copies val[0..vlen) into dst as a C string when it fits whole and holds
 * no NUL (a NUL would silently shorten it). Returns the new state.
 */
static enum req_state
store(char *dst, size_t cap, const char *val, size_t vlen)
{
	if (vlen >= cap || memchr(val, '\0', vlen) != NULL) {
		dst[0] = '\0';
		return REQ_BAD;
	}
	memcpy(dst, val, vlen);
	dst[vlen] = '\0';
	return REQ_OK;
}

/* Keeps the start of a path for the log; cut, and cut at a NUL. */
static void
store_log(char *dst, size_t cap, const char *val, size_t vlen)
{
	size_t n = vlen < cap - 1 ? vlen : cap - 1;
	const char *z = memchr(val, '\0', n);

	if (z != NULL)
		n = (size_t)(z - val);
	memcpy(dst, val, n);
	dst[n] = '\0';
}

static void
store_seg(struct req_seg *g, const char *val, size_t vlen)
{
	size_t seglen;
	const char *seg;

	memset(g, 0, sizeof(*g));
	if (vlen == 0)
		return;
	seg = last_segment(val, vlen, &seglen);
	g->state = store(g->s, sizeof(g->s), seg, seglen);
	g->len = g->state == REQ_OK ? seglen : 0;
}

static int
name_is(const char *a, size_t alen, const char *b)
{
	return alen == strlen(b) && memcmp(a, b, alen) == 0;
}

/*
 * A query string is "&"-separated name[=value] pairs. v: any non-empty
 * value marks the URL as versioned (an empty one is a template bug, not a
 * version, so it must not make a URL immutable). s/size: the first valid
 * one counts. expires/sig authorise a write: a malformed or repeated one
 * makes the pair unusable, so that two values cannot be played against
 * each other.
 */
void
req_parse_query(const char *query, size_t len, struct req_query *q)
{
	const char *p = query, *end = query + len;

	memset(q, 0, sizeof(*q));
	q->given = 1;
	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *pe = amp ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(pe - p));
		const char *name = p, *val = eq ? eq + 1 : pe;
		size_t nlen = (size_t)((eq ? eq : pe) - p), vlen = (size_t)(pe - val);
		int64_t n;

		if (name_is(name, nlen, "v")) {
			if (vlen > 0)
				q->versioned = 1;
		} else if (name_is(name, nlen, "s") || name_is(name, nlen, "size")) {
			if (!q->has_size &&
			    num_parse(val, vlen, REQ_SIZE_MIN, REQ_SIZE_MAX, &n) == 0) {
				q->has_size = 1;
				q->size = n;
			}
		} else if (name_is(name, nlen, "expires")) {
			if (q->expires_state == REQ_ABSENT &&
			    num_parse(val, vlen, 0, INT64_MAX, &n) == 0) {
				q->expires_state = REQ_OK;
				q->expires = n;
			} else {
				q->expires_state = REQ_BAD;
				q->expires = 0;
			}
		} else if (name_is(name, nlen, "sig")) {
			if (q->sig_state == REQ_ABSENT && vlen > 0)
				q->sig_state = store(q->sig, sizeof(q->sig), val, vlen);
			else {
				q->sig_state = REQ_BAD;
				q->sig[0] = '\0';
			}
		}
		p = pe + 1;
	}
}

void
req_params_set(struct req_params *p, const char *name, size_t nlen,
    const char *val, size_t vlen)
{
	int64_t n;

	if (name_is(name, nlen, "REQUEST_METHOD"))
		p->method_state = store(p->method, sizeof(p->method), val, vlen);
	else if (name_is(name, nlen, "DOCUMENT_URI")) {
		store_seg(&p->document_uri, val, vlen);
		store_log(p->log_doc, sizeof(p->log_doc), val, vlen);
	} else if (name_is(name, nlen, "SCRIPT_NAME"))
		store_seg(&p->script_name, val, vlen);
	else if (name_is(name, nlen, "PATH_INFO"))
		store_seg(&p->path_info, val, vlen);
	else if (name_is(name, nlen, "REQUEST_URI")) {
		/* The raw target: the query is cut off and nothing is
		 * percent-decoded, so "%31" is not an id. */
		const char *qm = memchr(val, '?', vlen);
		size_t plen = qm ? (size_t)(qm - val) : vlen;

		store_seg(&p->request_uri, val, plen);
		/* "?x" alone still names the empty path: keep it present. */
		if (vlen > 0 && p->request_uri.state == REQ_ABSENT)
			p->request_uri.state = REQ_OK;
		if (qm != NULL)
			req_parse_query(qm + 1, vlen - plen - 1, &p->request_uri_query);
		else
			memset(&p->request_uri_query, 0, sizeof(p->request_uri_query));
		store_log(p->log_uri, sizeof(p->log_uri), val, vlen);
	} else if (name_is(name, nlen, "QUERY_STRING"))
		req_parse_query(val, vlen, &p->query_string);
	else if (name_is(name, nlen, "HTTP_IF_NONE_MATCH"))
		p->inm_state = store(p->inm, sizeof(p->inm), val, vlen);
	else if (name_is(name, nlen, "HTTP_IF_MODIFIED_SINCE"))
		p->ims_state = store(p->ims, sizeof(p->ims), val, vlen);
	else if (name_is(name, nlen, "HTTP_ACCEPT")) {
		p->accept_avif = accepts(val, vlen, "image/avif");
		p->accept_webp = accepts(val, vlen, "image/webp");
	} else if (name_is(name, nlen, "HTTP_ORIGIN"))
		p->origin_state = store(p->origin, sizeof(p->origin), val, vlen);
	else if (name_is(name, nlen, "REMOTE_ADDR")) {
		if (store(p->remote_addr, sizeof(p->remote_addr), val, vlen) != REQ_OK)
			p->remote_addr[0] = '\0';
	} else if (name_is(name, nlen, "HTTP_ACCESS_CONTROL_REQUEST_METHOD"))
		p->acrm_state = store(p->acrm, sizeof(p->acrm), val, vlen);
	else if (name_is(name, nlen, "CONTENT_LENGTH")) {
		/* nginx sends an empty CONTENT_LENGTH for a request without a
		 * body: that is no length, not a malformed one. */
		if (vlen == 0)
			p->content_length_state = REQ_ABSENT;
		else if (num_parse(val, vlen, 0, INT64_MAX, &n) == 0) {
			p->content_length_state = REQ_OK;
			p->content_length = n;
		} else
			p->content_length_state = REQ_BAD;
	}
}

static int
segment_is(const struct req_seg *g, const char *word)
{
	return g->state == REQ_OK && name_is(g->s, g->len, word);
}

/*
 * A decoded path (DOCUMENT_URI, PATH_INFO, SCRIPT_NAME) cannot tell "/1000"
 * from "/%31000", but an id and a reserved name count only as the client
 * wrote them, as the fast path's nginx map and lighttpd script read them.
 * So when the front server also passes the raw REQUEST_URI, the last
 * segment there must hold no percent escape (and fit, as any id does);
 * else the request names neither. When REQUEST_URI is itself the path,
 * this changes nothing (such a segment is no id or name anyway). Only the
 * last segment is looked at, so a server-side rewrite of some other URL to
 * /ID still works.
 */
static int
raw_segment_plain(const struct req_params *p)
{
	const struct req_seg *raw = &p->request_uri;

	if (raw->state == REQ_ABSENT)
		return 1;
	return raw->state == REQ_OK && memchr(raw->s, '%', raw->len) == NULL;
}

void
req_parse(const struct req_params *p, struct req *r)
{
	const struct req_seg *seg = NULL;

	memset(r, 0, sizeof(*r));
	r->method = p->method_state == REQ_OK ? method_of(p->method) : REQ_OTHER;

	/*
	 * DOCUMENT_URI is nginx's decoded, normalised path. Without it, the
	 * last segment of SCRIPT_NAME + PATH_INFO is PATH_INFO's when that is
	 * set, else SCRIPT_NAME's; then REQUEST_URI's path.
	 */
	if (p->document_uri.state != REQ_ABSENT)
		seg = &p->document_uri;
	else if (p->path_info.state != REQ_ABSENT)
		seg = &p->path_info;
	else if (p->script_name.state != REQ_ABSENT)
		seg = &p->script_name;
	else if (p->request_uri.state != REQ_ABSENT)
		seg = &p->request_uri;

	r->kind = REQ_AVATAR;
	if (!raw_segment_plain(p))
		seg = NULL;
	if (seg != NULL) {
		if (segment_is(seg, "status"))
			r->kind = REQ_STATUS;
		else if (segment_is(seg, "metrics"))
			r->kind = REQ_METRICS;
		else if (seg->state == REQ_OK)
			r->has_id = req_parse_target(seg->s, seg->len, &r->id,
			    &r->want, &r->bare) == 0;
	}

	r->q = p->query_string.given ? p->query_string : p->request_uri_query;
	r->inm_state = p->inm_state;
	memcpy(r->inm, p->inm, sizeof(r->inm));
	r->ims_state = p->ims_state;
	memcpy(r->ims, p->ims, sizeof(r->ims));
	memcpy(r->remote_addr, p->remote_addr, sizeof(r->remote_addr));
	r->accept_avif = p->accept_avif;
	r->accept_webp = p->accept_webp;
	r->origin_state = p->origin_state;
	memcpy(r->origin, p->origin, sizeof(r->origin));
	r->has_acrm = p->acrm_state != REQ_ABSENT;
	r->acrm = p->acrm_state == REQ_OK ? method_of(p->acrm) : REQ_OTHER;
	r->content_length_state = p->content_length_state;
	r->content_length = p->content_length;
	memcpy(r->log_path, p->log_doc[0] != '\0' ? p->log_doc : p->log_uri,
	    sizeof(r->log_path));
}
