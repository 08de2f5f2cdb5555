/* Unit tests for cond.c: ETag format and the 304 rules. */
#include <string.h>

#include "cond.h"
#include "tap.h"

#define ETAG "\"a-b-c\""
#define LONG ((const char *)1)	/* present, but too long to keep */
#define T 784111777	/* Sun, 06 Nov 1994 08:49:37 GMT */

static const struct {
	const char *inm, *ims;
	int want;
	const char *what;
} cases[] = {
	{ NULL, NULL, 0, "no validators" },
	{ ETAG, NULL, 1, "exact etag" },
	{ "W/" ETAG, NULL, 1, "weak form matches (weak comparison)" },
	{ "\"x\", " ETAG, NULL, 1, "second in list" },
	{ "\"x\",\"y\"", NULL, 0, "list without it" },
	{ "*", NULL, 1, "star" },
	{ " * ", NULL, 1, "star with spaces" },
	{ "\"a-b-c", NULL, 0, "unterminated" },
	{ "a-b-c", NULL, 0, "unquoted" },
	{ "\"a-b-c\"x", NULL, 0, "junk after tag" },
	{ "\"a-b\"", NULL, 0, "prefix of tag" },
	{ "", NULL, 0, "empty header" },
	{ "\"x\"", "Sun, 06 Nov 1994 08:49:37 GMT", 0, "If-None-Match wins over IMS" },
	{ "", "Sun, 06 Nov 1994 08:49:37 GMT", 0, "an empty If-None-Match still silences IMS" },
	{ "garbage", "Sun, 06 Nov 1994 08:49:37 GMT", 0, "a malformed If-None-Match still silences IMS" },
	{ LONG, NULL, 0, "an overlong If-None-Match is no match" },
	{ LONG, "Sun, 06 Nov 1994 08:49:37 GMT", 0, "an overlong If-None-Match still silences IMS (RFC 9110 13.1.3)" },
	{ NULL, "Sun, 06 Nov 1994 08:49:37 GMT", 1, "IMS equal" },
	{ NULL, "Sun, 06 Nov 1994 08:49:38 GMT", 1, "IMS later" },
	{ NULL, "Sun, 06 Nov 1994 08:49:36 GMT", 0, "IMS earlier" },
	{ NULL, "yesterday", 0, "IMS unparsable" },
	{ NULL, "Sunday, 06-Nov-94 08:49:37 GMT", 1, "IMS rfc850" },
};

int
main(void)
{
	char e[COND_ETAG_LEN];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ok(cond_not_modified(cases[i].inm != NULL,
		    cases[i].inm == LONG ? NULL : cases[i].inm, cases[i].ims, ETAG, T) == cases[i].want,
		    "%s", cases[i].what);
	/* size, then mtime in ns: nothing else goes in. */
	cond_etag(e, 0x10, 1500000000123456789LL);
	ok(strcmp(e, "\"10-14d1120d8271cd15\"") == 0, "etag format %s", e);
	cond_etag(e, UINT64_MAX, INT64_MIN);
	ok(strlen(e) == COND_ETAG_LEN - 1 && e[0] == '"' && e[strlen(e) - 1] == '"',
	    "largest etag fits exactly: %s", e);
	{
		char e2[COND_ETAG_LEN];
		cond_etag(e2, 0x10, 1500000000123456790LL);
		cond_etag(e, 0x10, 1500000000123456789LL);
		ok(strcmp(e, e2) != 0, "a nanosecond of mtime changes the etag");
		cond_etag(e2, 0x11, 1500000000123456789LL);
		ok(strcmp(e, e2) != 0, "a byte of size changes the etag");
	}
	return tap_done();
}
