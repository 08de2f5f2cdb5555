/*
 * reqparse: request path to id. This file never touches the filesystem; no
 * byte of the request leaves it except as the canonical number.
 */
#include "reqparse.h"
#include "num.h"

#include <string.h>
#include <strings.h>

static const char *const extensions[] = { ".png", ".jpg", ".jpeg", ".gif", ".webp" };

/* Returns the last '/'-separated segment of s[0..len). */
static const char *
last_segment(const char *s, size_t len, size_t *seglen)
{
	const char *slash = memrchr(s, '/', len);
	const char *seg = slash ? slash + 1 : s;

	*seglen = len - (size_t)(seg - s);
	return seg;
}

int
req_parse_id(const char *path, size_t len, int64_t *id)
{
	size_t seglen;
	const char *seg = last_segment(path, len, &seglen);

	for (size_t i = 0; i < sizeof(extensions) / sizeof(extensions[0]); i++) {
		size_t elen = strlen(extensions[i]);

		if (seglen > elen &&
		    strncasecmp(seg + seglen - elen, extensions[i], elen) == 0) {
			seglen -= elen;
			break;
		}
	}
	return num_parse(seg, seglen, INT64_MIN, INT64_MAX, id);
}

static int
is_nonempty(const char *s)
{
	return s != NULL && s[0] != '\0';
}

/* Copies an optional header value only when it fits whole. */
static int
copy_value(char *dst, size_t dstlen, const char *src)
{
	size_t n;

	if (src == NULL)
		return 0;
	n = strlen(src);
	if (n >= dstlen)
		return 0;
	memcpy(dst, src, n + 1);
	return 1;
}

void
req_parse(const struct req_params *p, struct req *r)
{
	const char *path = NULL;
	size_t len = 0, seglen;
	const char *seg;

	memset(r, 0, sizeof(*r));
	if (p->method != NULL && strcmp(p->method, "GET") == 0)
		r->method = REQ_GET;
	else if (p->method != NULL && strcmp(p->method, "HEAD") == 0)
		r->method = REQ_HEAD;
	else
		r->method = REQ_OTHER;

	/*
	 * DOCUMENT_URI is nginx's decoded, normalised path. Without it, the
	 * last segment of SCRIPT_NAME + PATH_INFO is PATH_INFO's when that is
	 * set, else SCRIPT_NAME's. REQUEST_URI is the raw target: the query
	 * is cut off and nothing is percent-decoded, so "%31" is not an id.
	 */
	if (is_nonempty(p->document_uri)) {
		path = p->document_uri;
		len = strlen(path);
	} else if (is_nonempty(p->path_info)) {
		path = p->path_info;
		len = strlen(path);
	} else if (is_nonempty(p->script_name)) {
		path = p->script_name;
		len = strlen(path);
	} else if (is_nonempty(p->request_uri)) {
		const char *q;

		path = p->request_uri;
		q = strchr(path, '?');
		len = q ? (size_t)(q - path) : strlen(path);
	}

	r->kind = REQ_AVATAR;
	if (path != NULL) {
		seg = last_segment(path, len, &seglen);
		if (seglen == 6 && memcmp(seg, "status", 6) == 0)
			r->kind = REQ_STATUS;
		else if (seglen == 7 && memcmp(seg, "metrics", 7) == 0)
			r->kind = REQ_METRICS;
		else
			r->has_id = req_parse_id(path, len, &r->id) == 0;
	}
	r->has_inm = copy_value(r->inm, sizeof(r->inm), p->if_none_match);
	r->has_ims = copy_value(r->ims, sizeof(r->ims), p->if_modified_since);
}
