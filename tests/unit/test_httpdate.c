/* Unit tests for httpdate.c: IMF-fixdate out, three date forms in. */
#include <string.h>
#include <time.h>

#include "httpdate.h"
#include "tap.h"

static const struct {
	const char *in;
	int ok;
	time_t want;
} parse[] = {
	{ "Sun, 06 Nov 1994 08:49:37 GMT", 1, 784111777 },
	{ "Sunday, 06-Nov-94 08:49:37 GMT", 1, 784111777 },
	{ "Sun Nov  6 08:49:37 1994", 1, 784111777 },
	{ "Thu, 01 Jan 1970 00:00:00 GMT", 1, 0 },
	{ "Tue, 29 Feb 2000 12:00:00 GMT", 1, 951825600 },
	{ "Sun, 06 Nov 1994 08:49:37 UTC", 0, 0 },
	{ "Sun, 6 Nov 1994 08:49:37 GMT", 0, 0 },
	{ "Sun, 06 Nov 1994 08:49:37 GMT ", 0, 0 },
	{ "Sun, 06 Nov 1994 24:00:00 GMT", 0, 0 },
	{ "Sun, 32 Nov 1994 08:49:37 GMT", 0, 0 },
	{ "Sun, 06 Foo 1994 08:49:37 GMT", 0, 0 },
	{ "Sun, 06 Nov 94 08:49:37 GMT", 0, 0 },
	{ "", 0, 0 },
	{ "garbage", 0, 0 },
	{ "Sun, 06 Nov 1994 08:49:37 GMT\r\nX: y", 0, 0 },
	{ "Sunday, 06-Nov-1994 08:49:37 GMT", 0, 0 },
};

int
main(void)
{
	char buf[HTTPDATE_LEN];
	time_t t;

	for (size_t i = 0; i < sizeof(parse) / sizeof(parse[0]); i++) {
		int rc = httpdate_parse(parse[i].in, &t);
		ok(parse[i].ok ? rc == 0 && t == parse[i].want : rc == -1,
		    "parse case %zu", i);
	}
	ok(httpdate_format(784111777, buf) == 0 &&
	    strcmp(buf, "Sun, 06 Nov 1994 08:49:37 GMT") == 0, "format IMF-fixdate");
	ok(httpdate_format(0, buf) == 0 &&
	    strcmp(buf, "Thu, 01 Jan 1970 00:00:00 GMT") == 0, "format epoch");
	ok(httpdate_format(1795000000, buf) == 0 && httpdate_parse(buf, &t) == 0 &&
	    t == 1795000000, "format then parse round-trips");
	return tap_done();
}
