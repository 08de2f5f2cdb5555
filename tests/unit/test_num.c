/* Unit tests for num.c: the strict decimal parser behind ids and options. */
#include <stdint.h>
#include <string.h>

#include "num.h"
#include "tap.h"

static const struct {
	const char *in;
	int ok;
	int64_t want;
} cases[] = {
	{ "0", 1, 0 },
	{ "1000", 1, 1000 },
	{ "-1", 1, -1 },
	{ "9223372036854775807", 1, INT64_MAX },
	{ "-9223372036854775808", 1, INT64_MIN },
	{ "9223372036854775808", 0, 0 },	/* overflow by one */
	{ "-9223372036854775809", 0, 0 },
	{ "99999999999999999999999", 0, 0 },
	{ "", 0, 0 },
	{ "-", 0, 0 },
	{ "-0", 0, 0 },
	{ "00", 0, 0 },
	{ "01", 0, 0 },
	{ "+1", 0, 0 },
	{ " 1", 0, 0 },
	{ "1 ", 0, 0 },
	{ "1a", 0, 0 },
	{ "0x10", 0, 0 },
	{ "1e3", 0, 0 },
	{ "\xd9\xa1", 0, 0 },		/* ARABIC-INDIC DIGIT ONE */
	{ "\xef\xbc\x91", 0, 0 },	/* FULLWIDTH DIGIT ONE */
	{ "--1", 0, 0 },
};

int
main(void)
{
	int64_t v;
	uint64_t u;

	for (size_t i = 0; i < NELEM(cases); i++) {
		int rc = num_parse(cases[i].in, strlen(cases[i].in), INT64_MIN, INT64_MAX, &v);
		ok(cases[i].ok ? rc == 0 && v == cases[i].want : rc == -1,
		    "num_parse \"%s\" %s", cases[i].in, cases[i].ok ? "accepted" : "rejected");
	}
	ok(num_parse("12", 1, 0, 100, &v) == 0 && v == 1, "length bounds the parse");
	ok(num_parse_str("5", 0, 4, &v) == -1, "above max rejected");
	ok(num_parse_str("-5", -4, 4, &v) == -1, "below min rejected");
	ok(num_parse_size("64M", 1ULL << 40, &u) == 0 && u == 64ULL << 20, "size with M");
	ok(num_parse_size("2k", 1ULL << 40, &u) == 0 && u == 2048, "size with k");
	ok(num_parse_size("1G", 1ULL << 20, &u) == -1, "size above max rejected");
	ok(num_parse_size("M", 1ULL << 40, &u) == -1, "suffix alone rejected");
	ok(num_parse_size("-1", 1ULL << 40, &u) == -1, "negative size rejected");
	ok(num_parse_size("18014398509481984K", UINT64_MAX, &u) == -1, "size overflow rejected");
	return tap_done();
}
