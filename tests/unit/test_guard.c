/* Unit tests for guard.c: which byte streams reach libfcgi. Each case
 * builds a record sequence; the libfcgi crash records are among them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "tap.h"

static unsigned char buf[2 * GUARD_MAX];
static size_t len;

static void
rec(unsigned type, unsigned id, const void *content, size_t clen, unsigned pad)
{
	unsigned char h[8] = { 1, (unsigned char)type, (unsigned char)(id >> 8), (unsigned char)id,
	    (unsigned char)(clen >> 8), (unsigned char)clen, (unsigned char)pad, 0 };
	memcpy(buf + len, h, 8);
	len += 8;
	if (clen)
		memcpy(buf + len, content, clen);
	len += clen;
	memset(buf + len, 0, pad);
	len += pad;
}

static void
begin(unsigned id, unsigned role)
{
	unsigned char b[8] = { (unsigned char)(role >> 8), (unsigned char)role, 0, 0, 0, 0, 0, 0 };
	rec(1, id, b, 8, 0);
}

/* A well-formed GET with one parameter. */
static void
good(unsigned id)
{
	static const unsigned char kv[] = "\x0e\x03REQUEST_METHODGET";
	begin(id, 1);
	rec(4, id, kv, sizeof(kv) - 1, 3);
	rec(4, id, NULL, 0, 0);
	rec(5, id, NULL, 0, 0);
}

static enum guard_result
check(size_t *used, const char **why)
{
	return guard_check(buf, len, used, why);
}

int
main(void)
{
	size_t used;
	const char *why;
	unsigned char big[8];

	len = 0; good(1);
	ok(check(&used, &why) == GUARD_COMPLETE && used == len, "whole GET is complete");
	{
		size_t full = len;
		int all_more = 1;
		for (size_t cut = 0; cut < full; cut++) {
			len = cut;
			if (check(&used, &why) != GUARD_MORE)
				all_more = 0;
		}
		ok(all_more, "every proper prefix asks for more");
		len = full;
	}
	len = 0; good(1);
	rec(1, 2, "\0\1\0\0\0\0\0\0", 8, 0);
	ok(check(&used, &why) == GUARD_BAD, "bytes after the request are refused");

	len = 0; good(1); buf[0] = 2;
	ok(check(&used, &why) == GUARD_BAD, "version 2 refused");

	/* FCGI_GET_VALUES naming FCGI_MPXS_CONNS four times: libfcgi's
	 * ProcessManagementRecord overflows its 64-byte buffer on this. */
	{
		unsigned char gv[80];
		size_t n = 0;
		for (int i = 0; i < 4; i++) {
			gv[n++] = 15; gv[n++] = 0;
			memcpy(gv + n, "FCGI_MPXS_CONNS", 15);
			n += 15;
		}
		len = 0;
		rec(9, 0, gv, n, 0);
		ok(check(&used, &why) == GUARD_BAD, "GET_VALUES x4 refused (%s)", why);
	}
	len = 0; rec(9, 0, NULL, 0, 0);
	ok(check(&used, &why) == GUARD_BAD, "any management record refused");

	/* PARAMS lengths 0x40000000 + 0x40000000: libfcgi mallocs 2 GiB and
	 * aborts. The guard checks them against the bytes present. */
	len = 0; begin(1, 1);
	{
		unsigned char p[16] = { 0xc0, 0, 0, 0, 0xc0, 0, 0, 0, 'A', 'B', 'C', 'D' };
		rec(4, 1, p, 12, 0);
	}
	rec(4, 1, NULL, 0, 0); rec(5, 1, NULL, 0, 0);
	ok(check(&used, &why) == GUARD_BAD, "PARAMS 0x40000000+0x40000000 refused");
	len = 0; begin(1, 1);
	{
		unsigned char p[12] = { 0xff, 0xff, 0xff, 0xfe, 0 };
		rec(4, 1, p, 5, 0);
	}
	rec(4, 1, NULL, 0, 0); rec(5, 1, NULL, 0, 0);
	ok(check(&used, &why) == GUARD_BAD, "PARAMS 0x7ffffffe+0 refused");
	len = 0; begin(1, 1);
	{
		unsigned char p[8] = { 0xbf, 0xff, 0xff, 0xff, 1, 'x' };
		rec(4, 1, p, 6, 0);
	}
	ok(check(&used, &why) == GUARD_BAD || check(&used, &why) == GUARD_MORE,
	    "PARAMS 0x3fffffff never complete");
	rec(4, 1, NULL, 0, 0); rec(5, 1, NULL, 0, 0);
	ok(check(&used, &why) == GUARD_BAD, "PARAMS 0x3fffffff refused once the stream ends");

	len = 0; begin(1, 1);
	rec(4, 1, "\x03\x01" "ab", 4, 0);	/* name says 3, only 2 + value missing */
	rec(4, 1, NULL, 0, 0); rec(5, 1, NULL, 0, 0);
	ok(check(&used, &why) == GUARD_BAD, "pair longer than the stream refused");

	len = 0; begin(1, 1);
	rec(4, 1, "\x00\x01x", 3, 0);
	rec(4, 1, NULL, 0, 0); rec(5, 1, NULL, 0, 0);
	ok(check(&used, &why) == GUARD_BAD, "empty name refused");

	/* A pair split across two PARAMS records is legal. */
	len = 0; begin(1, 1);
	rec(4, 1, "\x0e\x03REQUEST", 9, 0);
	rec(4, 1, "_METHODGET", 10, 6);
	rec(4, 1, NULL, 0, 0); rec(5, 1, NULL, 0, 0);
	ok(check(&used, &why) == GUARD_COMPLETE, "pair split across records accepted");

	len = 0; begin(1, 2);
	rec(4, 1, NULL, 0, 0); rec(5, 1, NULL, 0, 0);
	ok(check(&used, &why) == GUARD_BAD, "AUTHORIZER role refused");

	len = 0; rec(4, 1, NULL, 0, 0);
	ok(check(&used, &why) == GUARD_BAD, "PARAMS before BEGIN_REQUEST refused");

	len = 0; begin(1, 1); rec(4, 2, NULL, 0, 0);
	ok(check(&used, &why) == GUARD_BAD, "request id switch refused");

	len = 0; begin(1, 1); rec(2, 1, NULL, 0, 0);
	ok(check(&used, &why) == GUARD_BAD, "ABORT_REQUEST refused");

	len = 0; begin(1, 1); rec(4, 1, NULL, 0, 0); rec(8, 1, NULL, 0, 0);
	ok(check(&used, &why) == GUARD_BAD, "DATA record refused");

	/* STDIN with a body, then its end. */
	len = 0; begin(1, 1); rec(4, 1, NULL, 0, 0);
	rec(5, 1, "hello", 5, 3);
	ok(check(&used, &why) == GUARD_MORE, "body without end waits");
	rec(5, 1, NULL, 0, 0);
	ok(check(&used, &why) == GUARD_COMPLETE, "body with end completes");

	/* Size limit: a request bigger than GUARD_MAX is refused, not waited for. */
	len = 0; begin(1, 1);
	{
		static unsigned char chunk[65535];
		memset(chunk, 'a', sizeof(chunk));
		rec(4, 1, chunk, sizeof(chunk), 0);
	}
	ok(check(&used, &why) == GUARD_BAD, "request over 64 KiB refused");
	len = 0; begin(1, 1);
	memcpy(big, "\x01\x04\x00\x01\xff\xff\x00\x00", 8);
	memcpy(buf + len, big, 8); len += 8;
	ok(check(&used, &why) == GUARD_BAD, "a header announcing too much is refused at once");

	/* Truncated header bytes only. */
	len = 3; memcpy(buf, "\x01\x01\x00", 3);
	ok(check(&used, &why) == GUARD_MORE, "3 bytes wait for more");

	/* Random garbage never crashes and never completes by accident. */
	srand(1);
	{
		int completes = 0;
		for (int i = 0; i < 20000; i++) {
			len = (size_t)(rand() % 200);
			for (size_t j = 0; j < len; j++)
				buf[j] = (unsigned char)rand();
			if (check(&used, &why) == GUARD_COMPLETE)
				completes++;
		}
		ok(completes == 0, "20000 random buffers: none complete");
	}
	return tap_done();
}
