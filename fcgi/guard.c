/*
 * guard: the FastCGI 1.0 record grammar for one responder request:
 *   BEGIN_REQUEST, PARAMS*, empty PARAMS, STDIN*, empty STDIN
 * all with the same nonzero request id. Field names follow the spec.
 */
#include "guard.h"

#include <stdint.h>
#include <string.h>

#define FCGI_VERSION_1		1
#define FCGI_BEGIN_REQUEST	1
#define FCGI_PARAMS		4
#define FCGI_STDIN		5
#define FCGI_RESPONDER		1
#define FCGI_HEADER_LEN		8

struct header {
	unsigned version, type, requestId, contentLength, paddingLength;
};

static void
read_header(const unsigned char *p, struct header *h)
{
	h->version = p[0];
	h->type = p[1];
	h->requestId = (unsigned)p[2] << 8 | p[3];
	h->contentLength = (unsigned)p[4] << 8 | p[5];
	h->paddingLength = p[6];
}

/*
 * Checks the name-value pairs of the PARAMS stream, whose records may split
 * a pair anywhere, so the stream is first gathered into one buffer. Each
 * length is one byte, or four with the high bit set; both lengths together
 * must fit in what is left of the stream.
 */
static int
params_ok(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint32_t len[2];

		for (int k = 0; k < 2; k++) {
			if (i >= n)
				return 0;
			if (s[i] & 0x80) {
				if (n - i < 4)
					return 0;
				len[k] = ((uint32_t)(s[i] & 0x7f) << 24) |
				    ((uint32_t)s[i + 1] << 16) |
				    ((uint32_t)s[i + 2] << 8) | s[i + 3];
				i += 4;
			} else {
				len[k] = s[i++];
			}
		}
		if (len[0] == 0 || len[0] > n - i || len[1] > n - i - len[0])
			return 0;
		i += len[0] + len[1];
	}
	return 1;
}

enum guard_result
guard_check(const unsigned char *buf, size_t len, size_t *used, const char **why)
{
	static unsigned char params[GUARD_MAX];
	size_t off = 0, plen = 0;
	unsigned id = 0;
	enum { BEGIN, IN_PARAMS, IN_STDIN } state = BEGIN;

	*why = NULL;
	for (;;) {
		struct header h;
		size_t reclen;
		const unsigned char *content;

		if (len - off < FCGI_HEADER_LEN)
			goto more;
		read_header(buf + off, &h);
		if (h.version != FCGI_VERSION_1) {
			*why = "unsupported FastCGI version";
			return GUARD_BAD;
		}
		if (h.requestId == 0) {
			/* Management records (FCGI_GET_VALUES): nginx and
			 * lighttpd never send them, and libfcgi's handler of
			 * them overflows a stack buffer. */
			*why = "management record";
			return GUARD_BAD;
		}
		reclen = FCGI_HEADER_LEN + h.contentLength + h.paddingLength;
		if (off + reclen > GUARD_MAX) {
			*why = "request larger than 64 KiB";
			return GUARD_BAD;
		}
		if (len - off < reclen)
			goto more;
		content = buf + off + FCGI_HEADER_LEN;

		switch (state) {
		case BEGIN:
			if (h.type != FCGI_BEGIN_REQUEST || h.contentLength != 8) {
				*why = "first record is not BEGIN_REQUEST";
				return GUARD_BAD;
			}
			if (((unsigned)content[0] << 8 | content[1]) != FCGI_RESPONDER) {
				*why = "role is not RESPONDER";
				return GUARD_BAD;
			}
			id = h.requestId;
			state = IN_PARAMS;
			break;
		case IN_PARAMS:
			if (h.requestId != id || h.type != FCGI_PARAMS) {
				*why = "unexpected record in PARAMS";
				return GUARD_BAD;
			}
			if (h.contentLength == 0) {
				if (!params_ok(params, plen)) {
					*why = "malformed PARAMS lengths";
					return GUARD_BAD;
				}
				state = IN_STDIN;
				break;
			}
			memcpy(params + plen, content, h.contentLength);
			plen += h.contentLength;
			break;
		case IN_STDIN:
			if (h.requestId != id || h.type != FCGI_STDIN) {
				*why = "unexpected record in STDIN";
				return GUARD_BAD;
			}
			if (h.contentLength == 0) {
				off += reclen;
				/* Nothing may follow: a front server sends the
				 * next request only after END_REQUEST, and
				 * libfcgi would swallow pipelined bytes. */
				if (off != len) {
					*why = "bytes after the end of the request";
					return GUARD_BAD;
				}
				*used = off;
				return GUARD_COMPLETE;
			}
			break;
		}
		off += reclen;
	}
more:
	if (len >= GUARD_MAX) {
		*why = "request larger than 64 KiB";
		return GUARD_BAD;
	}
	return GUARD_MORE;
}
