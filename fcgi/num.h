/*
 * num: the one way this program turns text into numbers. Every caller gives
 * an explicit range; nothing here accepts what strtol would silently wrap,
 * truncate or skip (spaces, '+', trailing junk, overflow).
 */
#ifndef AVATAR_NUM_H
#define AVATAR_NUM_H

#include <stddef.h>
#include <stdint.h>

/*
 * Parses exactly len bytes as a canonical signed decimal: "0", or an
 * optional '-' and a nonzero digit followed by digits. Rejects "", "-0",
 * "+1", "01", " 1", non-ASCII digits and anything outside [min, max].
 * Returns 0 and sets *out, or -1.
 */
int num_parse(const char *s, size_t len, int64_t min, int64_t max, int64_t *out);

/* As num_parse on a NUL-terminated string. */
int num_parse_str(const char *s, int64_t min, int64_t max, int64_t *out);

/*
 * Parses a byte count: canonical non-negative decimal with an optional K, M
 * or G suffix (powers of 1024). Returns 0 and sets *out, or -1 on syntax
 * error, overflow or a result above max.
 */
int num_parse_size(const char *s, uint64_t max, uint64_t *out);

#endif
