/*
 * libFuzzer target for the FastCGI record parser: whole byte streams as a
 * peer would send them (so the regression files of tests/corpus/fcgi-regress
 * are inputs as they are). Beyond "no crash", the oracle: the events (and every parameter
 * and body byte they carry) are the same whether the stream comes whole or
 * in pieces, as it must be for a parser fed by recv(); no parameter lies
 * outside the 64 KiB bound; body bytes never exceed the bytes given; and
 * every request that ends had a BEGIN_REQUEST, a PARAMS end and an
 * empty STDIN of its own (at least 24 bytes).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fcgi_in.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* FNV-1a over the event stream. */
static void
mix(uint64_t *h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) {
		*h ^= b[i];
		*h *= 0x100000001b3ULL;
	}
}

/* Feeds data in pieces of step bytes through a buffer of cap bytes, the
 * server's way; answers are done at once. Returns the hash of the events. */
static uint64_t
run(const uint8_t *data, size_t size, size_t step, size_t cap)
{
	static unsigned char buf[70 * 1024];
	struct fcgi_in p;
	size_t fed = 0, off = 0, len = 0, body = 0, ends = 0;
	uint64_t h = 0xcbf29ce484222325ULL;

	fcgi_in_init(&p);
	for (;;) {
		struct fcgi_in_event ev;
		size_t n;

		memmove(buf, buf + off, len - off);
		len -= off;
		off = 0;
		n = size - fed < step ? size - fed : step;
		if (n > cap - len)
			n = cap - len;
		memcpy(buf + len, data + fed, n);
		len += n;
		fed += n;
		for (;;) {
			off += fcgi_in_feed(&p, buf + off, len - off, &ev);
			if (off > len)
				abort();
			if (ev.type == FCGI_IN_MORE)
				break;
			if (ev.type != FCGI_IN_STDIN)
				mix(&h, &ev.type, sizeof(ev.type));
			if (ev.type == FCGI_IN_BAD) {
				mix(&h, ev.why, strlen(ev.why));
				goto done;
			}
			if (ev.type == FCGI_IN_PARAMS) {
				size_t pos = 0, nl, vl, total = 0;
				const char *name, *value;

				mix(&h, &p.id, sizeof(p.id));
				while (fcgi_in_param(&p, &pos, &name, &nl, &value, &vl)) {
					total += nl + vl;
					if (nl == 0 || total > FCGI_IN_PARAMS_MAX)
						abort();
					mix(&h, name, nl);
					mix(&h, value, vl);
				}
			} else if (ev.type == FCGI_IN_STDIN) {
				if (ev.len == 0 || ev.data < buf || ev.data + ev.len > buf + len)
					abort();
				body += ev.len;
				/* Pieces differ with the split; the bytes do not. */
				mix(&h, ev.data, ev.len);
			} else {
				if (ev.type == FCGI_IN_END)
					ends++;
				fcgi_in_next_request(&p);
			}
		}
		if (fed == size || len - off == cap)
			break;
	}
done:
	if (body > size || ends * 24 > size)
		abort();
	fcgi_in_free(&p);
	return h;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t step;

	if (size < 1 || size > 64 * 1024)
		return 0;
	/* A piece size from 1 to 16 bytes that the input decides, without
	 * taking a byte of the stream for it. */
	step = (size * 7 + data[size / 2]) % 16 + 1;
	if (run(data, size, size, 70 * 1024) != run(data, size, step, 70 * 1024) ||
	    run(data, size, size, 70 * 1024) != run(data, size, step + 5, 64))
		abort();
	return 0;
}
