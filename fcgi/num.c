/*
 * num: strict decimal parsing. Never touches errno, never allocates.
 */
#include "num.h"

#include <string.h>

int
num_parse(const char *s, size_t len, int64_t min, int64_t max, int64_t *out)
{
	size_t i = 0;
	int neg = 0;
	/* Accumulate as a negative number: INT64_MIN has no positive twin. */
	int64_t v = 0;

	if (len == 0)
		return -1;
	if (s[0] == '-') {
		neg = 1;
		i = 1;
		if (len == 1)
			return -1;
	}
	if (s[i] == '0' && (len - i > 1 || neg))
		return -1;	/* leading zero or "-0": not canonical */
	for (; i < len; i++) {
		int d;

		if (s[i] < '0' || s[i] > '9')
			return -1;
		d = s[i] - '0';
		if (v < (INT64_MIN + d) / 10)
			return -1;
		v = v * 10 - d;
	}
	if (!neg) {
		if (v == INT64_MIN)
			return -1;
		v = -v;
	}
	if (v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int
num_parse_str(const char *s, int64_t min, int64_t max, int64_t *out)
{
	return num_parse(s, strlen(s), min, max, out);
}

int
num_parse_size(const char *s, uint64_t max, uint64_t *out)
{
	size_t len = strlen(s);
	uint64_t mult = 1;
	int64_t v;

	if (len > 0) {
		switch (s[len - 1]) {
		case 'K': case 'k': mult = 1ULL << 10; len--; break;
		case 'M': case 'm': mult = 1ULL << 20; len--; break;
		case 'G': case 'g': mult = 1ULL << 30; len--; break;
		default: break;
		}
	}
	if (num_parse(s, len, 0, INT64_MAX, &v) == -1)
		return -1;
	if ((uint64_t)v > max / mult)
		return -1;
	*out = (uint64_t)v * mult;
	return 0;
}
