/*
 * cond: ETag formatting and If-None-Match / If-Modified-Since evaluation.
 */
#include "cond.h"
#include "httpdate.h"

#include <stdio.h>
#include <string.h>

void
cond_etag(char out[COND_ETAG_LEN], uint64_t size, int64_t mtime_ns)
{
	snprintf(out, COND_ETAG_LEN, "\"%llx-%llx\"",
	    (unsigned long long)size, (unsigned long long)mtime_ns);
}

static int
is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * Walks a comma-separated list of entity-tags. Returns 1 on a match, 0 when
 * the list is well formed without a match, and 0 as well for a malformed
 * list: a header we cannot read must not turn a 200 into a 304.
 */
static int
inm_matches(const char *p, const char *etag)
{
	size_t etaglen = strlen(etag);

	for (;;) {
		const char *start;

		while (is_ows(*p) || *p == ',')
			p++;
		if (*p == '\0')
			return 0;
		if (*p == '*') {
			p++;
			while (is_ows(*p))
				p++;
			if (*p != '\0' && *p != ',')
				return 0;
			return 1;
		}
		if (p[0] == 'W' && p[1] == '/')
			p += 2;
		if (*p != '"')
			return 0;
		start = p++;
		while (*p != '"') {
			/* etagc = %x21 / %x23-7E / obs-text */
			if (*p == '\0' || (unsigned char)*p < 0x21 || *p == 0x7f)
				return 0;
			p++;
		}
		p++;
		{
			const char *end = p;

			while (is_ows(*p))
				p++;
			if (*p != ',' && *p != '\0')
				return 0;
			if ((size_t)(end - start) == etaglen &&
			    memcmp(start, etag, etaglen) == 0)
				return 1;
		}
	}
}

int
cond_not_modified(int has_inm, const char *if_none_match,
    const char *if_modified_since, const char *etag, time_t mtime)
{
	time_t since;

	if (has_inm)
		return if_none_match != NULL && inm_matches(if_none_match, etag);
	if (if_modified_since != NULL &&
	    httpdate_parse(if_modified_since, &since) == 0)
		return mtime <= since;
	return 0;
}
