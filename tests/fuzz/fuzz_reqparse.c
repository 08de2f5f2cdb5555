/*
 * libFuzzer target for the request-to-id path: the input is split into the
 * request parameters req_parse reads. Properties checked beyond "no crash":
 * an id, when found, prints back to the canonical digits that appear in the
 * last path segment, so no other byte can reach a file name.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reqparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *fields[7] = { 0 };
	const char *p = (const char *)data, *end = p + size;
	struct req_params rp;
	struct req r;

	/* Fields are separated by NUL bytes; missing ones stay NULL. */
	for (int i = 0; i < 7 && p <= end; i++) {
		const char *z = memchr(p, '\0', (size_t)(end - p));
		size_t n = z ? (size_t)(z - p) : (size_t)(end - p);

		fields[i] = malloc(n + 1);
		memcpy(fields[i], p, n);
		fields[i][n] = '\0';
		p += n + 1;
	}
	rp.method = fields[0];
	rp.document_uri = fields[1];
	rp.script_name = fields[2];
	rp.path_info = fields[3];
	rp.request_uri = fields[4];
	rp.if_none_match = fields[5];
	rp.if_modified_since = fields[6];
	req_parse(&rp, &r);
	if (r.has_id) {
		char canon[32];
		int n = snprintf(canon, sizeof(canon), "%lld", (long long)r.id);
		/* The canonical form must be exactly what the segment said. */
		int64_t again;
		if (req_parse_id(canon, (size_t)n, &again) != 0 || again != r.id)
			abort();
	}
	if (r.has_inm && strlen(r.inm) >= REQ_INM_MAX)
		abort();
	for (int i = 0; i < 7; i++)
		free(fields[i]);
	return 0;
}
