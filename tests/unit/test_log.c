/* Unit tests for log.c: escaping of request data and level parsing. */
#include <string.h>

#include "log.h"
#include "tap.h"

static const struct {
	const char *in;
	size_t len;
	const char *want;
} cases[] = {
	{ "/1000", 5, "/1000" },
	{ "/1\r\nSet-Cookie: x", 17, "/1\\x0d\\x0aSet-Cookie: x" },
	{ "\x1b[31m", 5, "\\x1b[31m" },
	{ "a\0b", 3, "a\\x00b" },
	{ "back\\slash", 10, "back\\x5cslash" },
	{ "\xff\x80", 2, "\\xff\\x80" },
	{ "\x7f", 1, "\\x7f" },
};

int
main(void)
{
	char out[64], tiny[12];

	for (size_t i = 0; i < NELEM(cases); i++) {
		log_escape(out, sizeof(out), cases[i].in, cases[i].len);
		ok(strcmp(out, cases[i].want) == 0, "escape case %zu -> %s", i, out);
	}
	log_escape(tiny, sizeof(tiny), "0123456789abcdef", 16);
	ok(strlen(tiny) < sizeof(tiny) && strstr(tiny, "...") != NULL,
	    "long input truncated with ... (%s)", tiny);
	log_escape(tiny, sizeof(tiny), "\r\r\r\r\r\r", 6);
	ok(strlen(tiny) < sizeof(tiny), "escapes never overflow");
	ok(log_level_parse("error") == LOG_LVL_ERROR && log_level_parse("warn") == LOG_LVL_WARN &&
	    log_level_parse("info") == LOG_LVL_INFO && log_level_parse("debug") == LOG_LVL_DEBUG,
	    "level names");
	ok(log_level_parse("verbose") == -1 && log_level_parse("") == -1, "unknown levels rejected");
	log_set_level(LOG_LVL_WARN);
	ok(log_enabled(LOG_LVL_ERROR) && log_enabled(LOG_LVL_WARN) &&
	    !log_enabled(LOG_LVL_INFO), "threshold");
	return tap_done();
}
