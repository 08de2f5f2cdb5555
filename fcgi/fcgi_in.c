/*
 * fcgi_in: FastCGI records in, request events out. Field names follow the
 * specification. Content is taken as it arrives, so a record may be split
 * anywhere; only a record header (8 bytes) and the 8-byte BEGIN_REQUEST
 * body are waited for whole. Nothing here trusts a length before checking
 * it against what it describes and against FCGI_IN_PARAMS_MAX.
 */
#include "fcgi_in.h"

#include <fastcgi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { P_BEGIN, P_PARAMS, P_STDIN, P_DONE, P_BAD };

static const char bad_params[] = "malformed PARAMS lengths";

void
fcgi_in_init(struct fcgi_in *p)
{
	memset(p, 0, sizeof(*p));
	p->phase = P_BEGIN;
}

void
fcgi_in_free(struct fcgi_in *p)
{
	free(p->params);
	fcgi_in_init(p);
}

void
fcgi_in_next_request(struct fcgi_in *p)
{
	if (p->phase == P_BAD)
		return;
	p->phase = P_BEGIN;
	p->id = 0;
	p->keep_conn = 0;
	p->head_bytes = 0;
	p->plen = p->pchecked = 0;
}

/*
 * One name-value pair at s[i..n): each length is one byte, or four with
 * the high bit set. Returns 1 with the lengths and the offset of the name,
 * 0 when the pair is not all there yet, -1 when it can never be valid.
 */
static int
pair_at(const unsigned char *s, size_t n, size_t i, uint32_t len[2], size_t *at)
{
	for (int k = 0; k < 2; k++) {
		if (i >= n)
			return 0;
		if (s[i] & 0x80) {
			if (n - i < 4)
				return 0;
			len[k] = ((uint32_t)(s[i] & 0x7f) << 24) |
			    ((uint32_t)s[i + 1] << 16) | ((uint32_t)s[i + 2] << 8) | s[i + 3];
			i += 4;
		} else {
			len[k] = s[i++];
		}
	}
	/* An empty name names nothing; a pair longer than a whole request
	 * may be is refused now, not waited for. */
	if (len[0] == 0 || (uint64_t)len[0] + len[1] > FCGI_IN_PARAMS_MAX)
		return -1;
	if ((uint64_t)len[0] + len[1] > n - i)
		return 0;
	*at = i;
	return 1;
}

/* Checks the pairs that became whole since the last call. */
static int
check_pairs(struct fcgi_in *p)
{
	for (;;) {
		uint32_t len[2];
		size_t at;
		int r = pair_at(p->params, p->plen, p->pchecked, len, &at);

		if (r <= 0)
			return r;
		p->pchecked = at + len[0] + len[1];
	}
}

int
fcgi_in_param(const struct fcgi_in *p, size_t *pos, const char **name,
    size_t *nlen, const char **value, size_t *vlen)
{
	uint32_t len[2];
	size_t at;

	if (*pos >= p->pchecked || pair_at(p->params, p->pchecked, *pos, len, &at) != 1)
		return 0;
	*name = (const char *)p->params + at;
	*nlen = len[0];
	*value = *name + len[0];
	*vlen = len[1];
	*pos = at + len[0] + len[1];
	return 1;
}

size_t
fcgi_in_params_len(const struct fcgi_in *p)
{
	return p->pchecked;
}

/* Room for n more PARAMS bytes; the caller has bounded plen + n. */
static int
params_room(struct fcgi_in *p, size_t n)
{
	size_t cap = p->pcap ? p->pcap : 1024;
	unsigned char *np;

	if (p->plen + n <= p->pcap)
		return 0;
	while (cap < p->plen + n)
		cap *= 2;
	if (cap > FCGI_IN_PARAMS_MAX)
		cap = FCGI_IN_PARAMS_MAX;
	if ((np = realloc(p->params, cap)) == NULL)
		return -1;
	p->params = np;
	p->pcap = cap;
	return 0;
}

static size_t
bad(struct fcgi_in *p, struct fcgi_in_event *ev, const char *why, size_t used)
{
	p->phase = P_BAD;
	ev->type = FCGI_IN_BAD;
	ev->why = why;
	return used;
}

static size_t
event(struct fcgi_in_event *ev, enum fcgi_in_ev type, size_t used)
{
	ev->type = type;
	return used;
}

/* Starts reading the content and padding of the record whose header was just taken. */
static void
record(struct fcgi_in *p, const FCGI_Header *h, size_t clen)
{
	p->type = h->type;
	p->rid = (unsigned)h->requestIdB1 << 8 | h->requestIdB0;
	p->cleft = clen;
	p->pleft = h->paddingLength;
	p->in_record = 1;
}

/* Takes content and padding bytes of the current record. Returns bytes used. */
static size_t
content(struct fcgi_in *p, const unsigned char *buf, size_t len,
    struct fcgi_in_event *ev, int *stop)
{
	size_t n;

	*stop = 0;
	if (p->cleft > 0) {
		n = p->cleft < len ? p->cleft : len;
		p->cleft -= n;
		if (p->type == FCGI_PARAMS) {
			/* Bounded by FCGI_IN_PARAMS_MAX through head_bytes. */
			memcpy(p->params + p->plen, buf, n);
			p->plen += n;
			if (check_pairs(p) == -1) {
				*stop = 1;
				return bad(p, ev, bad_params, n);
			}
		} else if (p->type == FCGI_STDIN) {
			*stop = 1;
			ev->type = FCGI_IN_STDIN;
			ev->data = buf;
			ev->len = n;
		}
		/* Anything else (an ABORT_REQUEST's content) is skipped. */
		return n;
	}
	n = p->pleft < len ? p->pleft : len;
	p->pleft -= n;
	if (p->pleft == 0)
		p->in_record = 0;
	return n;
}

size_t
fcgi_in_feed(struct fcgi_in *p, const unsigned char *buf, size_t len,
    struct fcgi_in_event *ev)
{
	size_t off = 0;

	memset(ev, 0, sizeof(*ev));
	if (p->phase == P_BAD)
		return bad(p, ev, "connection already failed", 0);
	for (;;) {
		FCGI_Header h;
		size_t clen, reclen;
		unsigned rid;

		if (p->in_record) {
			int stop;

			if (off == len)
				return event(ev, FCGI_IN_MORE, off);
			off += content(p, buf + off, len - off, ev, &stop);
			if (stop)
				return off;
			continue;
		}
		if (len - off < FCGI_HEADER_LEN)
			return event(ev, FCGI_IN_MORE, off);
		memcpy(&h, buf + off, sizeof(h));
		rid = (unsigned)h.requestIdB1 << 8 | h.requestIdB0;
		clen = (size_t)h.contentLengthB1 << 8 | h.contentLengthB0;
		reclen = FCGI_HEADER_LEN + clen + h.paddingLength;
		if (h.version != FCGI_VERSION_1)
			return bad(p, ev, "unsupported FastCGI version", off);
		if (rid == FCGI_NULL_REQUEST_ID) {
			/* FCGI_GET_VALUES and the like: no front server we
			 * know sends them, and they are libfcgi's weak spot. */
			return bad(p, ev, "management record", off);
		}

		if (p->phase == P_DONE) {
			/* The request is being answered: only its abort may
			 * be taken now; anything else waits its turn. */
			if (h.type != FCGI_ABORT_REQUEST || rid != p->id)
				return event(ev, FCGI_IN_MORE, off);
			record(p, &h, clen);
			return event(ev, FCGI_IN_ABORT, off + FCGI_HEADER_LEN);
		}
		if (h.type == FCGI_ABORT_REQUEST) {
			record(p, &h, clen);
			off += FCGI_HEADER_LEN;
			/* An abort of a request already answered is moot. */
			if (p->phase == P_BEGIN)
				continue;
			if (rid != p->id)
				return bad(p, ev, "ABORT_REQUEST for another request", off);
			/* The request ends here; the answer is END_REQUEST. */
			p->phase = P_DONE;
			return event(ev, FCGI_IN_ABORT, off);
		}

		switch (p->phase) {
		case P_BEGIN: {
			FCGI_BeginRequestBody b;

			if (h.type != FCGI_BEGIN_REQUEST)
				return bad(p, ev, "first record is not BEGIN_REQUEST", off);
			if (clen != sizeof(b))
				return bad(p, ev, "malformed BEGIN_REQUEST", off);
			if (len - off < FCGI_HEADER_LEN + sizeof(b))
				return event(ev, FCGI_IN_MORE, off);
			memcpy(&b, buf + off + FCGI_HEADER_LEN, sizeof(b));
			if (((unsigned)b.roleB1 << 8 | b.roleB0) != FCGI_RESPONDER)
				return bad(p, ev, "role is not RESPONDER", off);
			p->id = rid;
			p->keep_conn = (b.flags & FCGI_KEEP_CONN) != 0;
			p->head_bytes = reclen;
			p->plen = p->pchecked = 0;
			p->phase = P_PARAMS;
			record(p, &h, 0);
			off += FCGI_HEADER_LEN + sizeof(b);
			continue;
		}
		case P_PARAMS:
			if (h.type != FCGI_PARAMS || rid != p->id)
				return bad(p, ev, "unexpected record in PARAMS", off);
			p->head_bytes += reclen;
			if (p->head_bytes > FCGI_IN_PARAMS_MAX)
				return bad(p, ev, "PARAMS larger than 64 KiB", off);
			record(p, &h, clen);
			off += FCGI_HEADER_LEN;
			if (clen == 0) {
				if (p->pchecked != p->plen)
					return bad(p, ev, bad_params, off);
				p->phase = P_STDIN;
				return event(ev, FCGI_IN_PARAMS, off);
			}
			if (params_room(p, clen) == -1)
				return bad(p, ev, "out of memory for PARAMS", off);
			continue;
		case P_STDIN:
			if (h.type != FCGI_STDIN || rid != p->id)
				return bad(p, ev, "unexpected record in STDIN", off);
			record(p, &h, clen);
			off += FCGI_HEADER_LEN;
			if (clen == 0) {
				p->phase = P_DONE;
				return event(ev, FCGI_IN_END, off);
			}
			continue;
		}
		return bad(p, ev, "parser state lost", off);
	}
}
