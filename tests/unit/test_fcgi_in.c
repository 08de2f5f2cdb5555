/*
 * Unit tests for fcgi_in.c: byte streams in, a trace of parser events out,
 * one case a line. Each stream is fed the way the server feeds it (into a
 * bounded buffer, unused bytes kept for the next call) in pieces of every
 * size from one byte up, and must give the same trace each time. The
 * libfcgi crash records are among the cases.
 *
 * Trace: P<id>[k]{NAME=VALUE,...} when PARAMS end (k: FCGI_KEEP_CONN),
 * S<n> for n body bytes, E at the end of a request, A for an abort,
 * B(why) for a refusal, +<n> for bytes left unused at the end.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fcgi_in.h"
#include "tap.h"

/* The stream under test. */
static unsigned char src[512 * 1024];
static size_t srclen;

static void
put(const void *p, size_t n)
{
	if (srclen + n > sizeof(src))
		abort();
	memcpy(src + srclen, p, n);
	srclen += n;
}

static void
rec(unsigned type, unsigned id, const void *content, size_t clen, unsigned pad)
{
	unsigned char h[8] = { 1, (unsigned char)type, (unsigned char)(id >> 8), (unsigned char)id,
	    (unsigned char)(clen >> 8), (unsigned char)clen, (unsigned char)pad, 0 };
	static const unsigned char zeros[256];

	put(h, 8);
	if (clen)
		put(content, clen);
	put(zeros, pad);
}

static void
begin(unsigned id, unsigned role, unsigned flags)
{
	unsigned char b[8] = { (unsigned char)(role >> 8), (unsigned char)role,
	    (unsigned char)flags, 0, 0, 0, 0, 0 };
	rec(1, id, b, 8, 0);
}

/* A well-formed GET with one parameter, padded as libfcgi pads. */
static void
good(unsigned id, unsigned flags)
{
	static const unsigned char kv[] = "\x0e\x03REQUEST_METHODGET";
	begin(id, 1, flags);
	rec(4, id, kv, sizeof(kv) - 1, 3);
	rec(4, id, NULL, 0, 0);
	rec(5, id, NULL, 0, 0);
}

static void
reset(void)
{
	srclen = 0;
}

/*
 * How the server drives the parser: a buffer of cap bytes, filled step
 * bytes at a time. slow: the response to a request is not done until all
 * input is in (so an abort can reach it); otherwise it is done at once.
 */
static char tr[4096];
static int n_end;		/* FCGI_IN_END events seen */

static void
tr_add(const char *s, size_t n)
{
	size_t l = strlen(tr);

	if (n >= sizeof(tr) - l)
		n = sizeof(tr) - l - 1;
	memcpy(tr + l, s, n);
	tr[l + n] = '\0';
}

static const char *
run(size_t step, size_t cap, int slow)
{
	static unsigned char buf[64 * 1024];
	struct fcgi_in p;
	size_t fed = 0, off = 0, len = 0, body = 0, used;
	int answering = 0;

	fcgi_in_init(&p);
	tr[0] = '\0';
	for (;;) {
		struct fcgi_in_event ev;

		/* Fill, as recv would, after moving unused bytes forward. */
		memmove(buf, buf + off, len - off);
		len -= off;
		off = 0;
		if (fed < srclen && len < cap) {
			size_t n = srclen - fed;

			if (n > step)
				n = step;
			if (n > cap - len)
				n = cap - len;
			memcpy(buf + len, src + fed, n);
			len += n;
			fed += n;
		}
		for (;;) {
			used = fcgi_in_feed(&p, buf + off, len - off, &ev);
			off += used;
			if (ev.type != FCGI_IN_STDIN && ev.type != FCGI_IN_MORE && body > 0) {
				char n[32];

				snprintf(n, sizeof(n), "S%zu ", body);
				tr_add(n, strlen(n));
				body = 0;
			}
			if (ev.type == FCGI_IN_MORE)
				break;
			if (ev.type == FCGI_IN_BAD) {
				tr_add("B(", 2);
				tr_add(ev.why, strlen(ev.why));
				tr_add(")", 1);
				fcgi_in_free(&p);
				return tr;
			}
			if (ev.type == FCGI_IN_PARAMS) {
				size_t pos = 0, nl, vl;
				const char *name, *value;
				char id[32];

				snprintf(id, sizeof(id), "P%u%s{", p.id, p.keep_conn ? "k" : "");
				tr_add(id, strlen(id));
				while (fcgi_in_param(&p, &pos, &name, &nl, &value, &vl)) {
					tr_add(name, nl);
					tr_add("=", 1);
					tr_add(value, vl);
					tr_add(",", 1);
				}
				tr_add("} ", 2);
			} else if (ev.type == FCGI_IN_STDIN) {
				body += ev.len;
			} else if (ev.type == FCGI_IN_END || ev.type == FCGI_IN_ABORT) {
				tr_add(ev.type == FCGI_IN_END ? "E " : "A ", 2);
				n_end += ev.type == FCGI_IN_END;
				answering = ev.type == FCGI_IN_END && slow;
				if (!answering)
					fcgi_in_next_request(&p);
			}
		}
		/* Nothing more can come in: the answer under way ends, and
		 * what waited behind it is parsed; else the stream is over. */
		if (fed == srclen || len - off == cap) {
			if (!answering)
				break;
			answering = 0;
			fcgi_in_next_request(&p);
		}
	}
	if (body > 0) {
		char n[32];

		snprintf(n, sizeof(n), "S%zu ", body);
		tr_add(n, strlen(n));
	}
	if (len - off > 0) {
		char n[32];

		snprintf(n, sizeof(n), "+%zu", len - off);
		tr_add(n, strlen(n));
	}
	fcgi_in_free(&p);
	return tr;
}

/* The trace at every piece size from 1 byte to the whole stream (or
 * max_step), in a buffer of cap bytes; "" and a diag when they differ. */
static const char *
every_split(size_t cap, int slow, size_t max_step)
{
	static char first[4096];
	size_t top = max_step && max_step < srclen ? max_step : srclen;

	snprintf(first, sizeof(first), "%s", run(srclen ? srclen : 1, cap, slow));
	for (size_t step = 1; step <= top; step++)
		if (strcmp(run(step, cap, slow), first) != 0) {
			printf("# step %zu: %s\n# whole:   %s\n", step, tr, first);
			return "";
		}
	return first;
}

static const unsigned char kv_get[] = "\x0e\x03REQUEST_METHODGET";

static void s_good(void) { good(1, 0); }
static void s_good_keep(void) { good(7, 1); }
static void s_pipelined(void) { good(1, 1); good(2, 1); good(3, 0); }
static void s_body(void)
{
	begin(1, 1, 0);
	rec(4, 1, kv_get, sizeof(kv_get) - 1, 0);
	rec(4, 1, NULL, 0, 0);
	rec(5, 1, "hello", 5, 3);
	rec(5, 1, "world!", 6, 0);
	rec(5, 1, NULL, 0, 7);
}
static void s_split_pair(void)
{
	begin(1, 1, 0);
	rec(4, 1, "\x0e\x03REQUEST", 9, 0);
	rec(4, 1, "_METHODGET", 10, 6);
	rec(4, 1, NULL, 0, 0);
	rec(5, 1, NULL, 0, 0);
}
static void s_long_lengths(void)
{
	/* Both lengths in the four-byte form, which may encode small ones. */
	static const unsigned char p[] = "\x80\x00\x00\x01\x80\x00\x00\x03Nabc";

	begin(1, 1, 0);
	rec(4, 1, p, sizeof(p) - 1, 4);
	rec(4, 1, NULL, 0, 0);
	rec(5, 1, NULL, 0, 0);
}
static void s_begin_padded(void)
{
	unsigned char b[8] = { 0, 1, 0 };
	rec(1, 1, b, 8, 8);
	rec(4, 1, kv_get, sizeof(kv_get) - 1, 0);
	rec(4, 1, NULL, 0, 255);
	rec(5, 1, NULL, 0, 1);
}
static void s_abort_in_params(void)
{
	good(1, 1);
	begin(2, 1, 1);
	rec(4, 2, "\x0e\x03REQ", 5, 0);
	rec(2, 2, NULL, 0, 0);
	good(3, 0);
}
static void s_abort_in_stdin(void)
{
	begin(1, 1, 1);
	rec(4, 1, kv_get, sizeof(kv_get) - 1, 0);
	rec(4, 1, NULL, 0, 0);
	rec(5, 1, "abc", 3, 0);
	rec(2, 1, NULL, 0, 0);
	good(2, 0);
}
static void s_abort_late(void) { good(1, 1); rec(2, 1, NULL, 0, 0); good(2, 0); }
static void s_abort_padded(void) { good(1, 1); rec(2, 1, "xy", 2, 6); good(2, 0); }
static void s_abort_other(void)
{
	begin(1, 1, 1);
	rec(2, 9, NULL, 0, 0);
}
static void s_partial(void) { put("\x01\x01\x00", 3); }
static void s_partial_begin(void) { begin(1, 1, 0); srclen -= 3; }
static void s_version2(void) { good(1, 0); src[0] = 2; }
static void s_get_values_4(void)
{
	/* FCGI_GET_VALUES naming FCGI_MPXS_CONNS four times: libfcgi's
	 * ProcessManagementRecord overflows its 64-byte buffer on this. */
	unsigned char gv[68];

	for (int i = 0; i < 4; i++)
		memcpy(gv + 17 * i, "\x0f\x00" "FCGI_MPXS_CONNS", 17);
	rec(9, 0, gv, sizeof(gv), 0);
}
static void s_mgmt_empty(void) { rec(9, 0, NULL, 0, 0); }
static void s_mgmt_after(void) { good(1, 1); rec(9, 0, NULL, 0, 0); }
static void s_unknown_type(void) { rec(0x7f, 0, "abcdefgh", 8, 0); }
static void s_params_40000000(void)
{
	/* PARAMS lengths 0x40000000 + 0x40000000: libfcgi mallocs 2 GiB and
	 * aborts (CVE-2025-23016). Refused as soon as the lengths are in,
	 * without waiting for the end of PARAMS. */
	unsigned char p[12] = { 0xc0, 0, 0, 0, 0xc0, 0, 0, 0, 'A', 'B', 'C', 'D' };
	begin(1, 1, 0);
	rec(4, 1, p, 12, 0);
}
static void s_params_7ffffffe(void)
{
	unsigned char p[5] = { 0xff, 0xff, 0xff, 0xfe, 0 };
	begin(1, 1, 0);
	rec(4, 1, p, 5, 0);
}
static void s_params_3fffffff(void)
{
	unsigned char p[6] = { 0xbf, 0xff, 0xff, 0xff, 1, 'x' };
	begin(1, 1, 0);
	rec(4, 1, p, 6, 0);
}
static void s_pair_short(void)
{
	begin(1, 1, 0);
	rec(4, 1, "\x03\x01" "ab", 4, 0);	/* name says 3, only 2 + value missing */
	rec(4, 1, NULL, 0, 0);
	rec(5, 1, NULL, 0, 0);
}
static void s_empty_name(void)
{
	begin(1, 1, 0);
	rec(4, 1, "\x00\x01x", 3, 0);
	rec(4, 1, NULL, 0, 0);
}
static void s_too_big(void)
{
	/* A request head over 64 KiB: refused when the header saying so is in. */
	static unsigned char chunk[65535];
	memset(chunk, 'a', sizeof(chunk));
	chunk[0] = 0x01;
	chunk[1] = 0x80;
	chunk[2] = 0;
	chunk[3] = 0;
	chunk[4] = 0;
	begin(1, 1, 0);
	rec(4, 1, chunk, 600, 0);
	rec(4, 1, chunk, sizeof(chunk), 0);
}
static void s_max_params(void)
{
	/* Just under the bound: BEGIN (16) + one PARAMS record + its end. */
	static unsigned char v[65535];
	size_t vlen = 64 * 1024 - 16 - 8 - 8 - 4 - 1 - 1;
	memset(v, 'v', sizeof(v));
	v[0] = 1;
	v[1] = (unsigned char)(0x80 | (vlen >> 24));
	v[2] = (unsigned char)(vlen >> 16);
	v[3] = (unsigned char)(vlen >> 8);
	v[4] = (unsigned char)vlen;
	v[5] = 'N';
	begin(1, 1, 0);
	rec(4, 1, v, 6 + vlen, 0);
	rec(4, 1, NULL, 0, 0);
	rec(5, 1, NULL, 0, 0);
}
static void s_many_records(void)
{
	begin(1, 1, 0);
	for (int i = 0; i < 5000; i++)
		rec(4, 1, "\x01\x01XY", 4, 4);
}
static void s_authorizer(void) { begin(1, 2, 0); rec(4, 1, NULL, 0, 0); }
static void s_begin_short(void) { unsigned char b[4] = { 0, 1 }; rec(1, 1, b, 4, 0); }
static void s_params_first(void) { rec(4, 1, NULL, 0, 0); }
static void s_id_switch(void) { begin(1, 1, 0); rec(4, 2, NULL, 0, 0); }
static void s_multiplex(void) { begin(1, 1, 1); begin(2, 1, 1); }
static void s_data(void) { begin(1, 1, 0); rec(4, 1, NULL, 0, 0); rec(8, 1, NULL, 0, 0); }
static void s_stdin_early(void) { begin(1, 1, 0); rec(5, 1, NULL, 0, 0); }
static void s_begin_twice(void) { begin(1, 1, 0); rec(4, 1, NULL, 0, 0); begin(1, 1, 0); }

static const struct {
	const char *name;
	void (*build)(void);
	int slow;
	const char *want;
} cases[] = {
	{ "GET", s_good, 0, "P1{REQUEST_METHOD=GET,} E " },
	{ "GET, keep-conn", s_good_keep, 0, "P7k{REQUEST_METHOD=GET,} E " },
	{ "three pipelined", s_pipelined, 0,
	  "P1k{REQUEST_METHOD=GET,} E P2k{REQUEST_METHOD=GET,} E P3{REQUEST_METHOD=GET,} E " },
	{ "pipelined, response slow", s_pipelined, 1,
	  "P1k{REQUEST_METHOD=GET,} E P2k{REQUEST_METHOD=GET,} E P3{REQUEST_METHOD=GET,} E " },
	{ "body in two records", s_body, 0, "P1{REQUEST_METHOD=GET,} S11 E " },
	{ "pair split across records", s_split_pair, 0, "P1{REQUEST_METHOD=GET,} E " },
	{ "four-byte lengths", s_long_lengths, 0, "P1{N=abc,} E " },
	{ "padding everywhere", s_begin_padded, 0, "P1{REQUEST_METHOD=GET,} E " },
	{ "ABORT in PARAMS, between requests", s_abort_in_params, 0,
	  "P1k{REQUEST_METHOD=GET,} E A P3{REQUEST_METHOD=GET,} E " },
	{ "ABORT in STDIN", s_abort_in_stdin, 0, "P1k{REQUEST_METHOD=GET,} S3 A P2{REQUEST_METHOD=GET,} E " },
	{ "ABORT after the answer: moot", s_abort_late, 0,
	  "P1k{REQUEST_METHOD=GET,} E P2{REQUEST_METHOD=GET,} E " },
	{ "ABORT during the answer", s_abort_late, 1,
	  "P1k{REQUEST_METHOD=GET,} E A P2{REQUEST_METHOD=GET,} E " },
	{ "ABORT with content, during the answer", s_abort_padded, 1,
	  "P1k{REQUEST_METHOD=GET,} E A P2{REQUEST_METHOD=GET,} E " },
	{ "ABORT for another request", s_abort_other, 0, "B(ABORT_REQUEST for another request)" },
	{ "3 bytes of a header", s_partial, 0, "+3" },
	{ "BEGIN_REQUEST cut short", s_partial_begin, 0, "+13" },
	{ "version 2", s_version2, 0, "B(unsupported FastCGI version)" },
	{ "GET_VALUES x4", s_get_values_4, 0, "B(management record)" },
	{ "empty management record", s_mgmt_empty, 0, "B(management record)" },
	{ "management record after a request", s_mgmt_after, 0,
	  "P1k{REQUEST_METHOD=GET,} E B(management record)" },
	{ "unknown type, id 0", s_unknown_type, 0, "B(management record)" },
	{ "PARAMS 0x40000000+0x40000000", s_params_40000000, 0, "B(malformed PARAMS lengths)" },
	{ "PARAMS 0x7ffffffe+0", s_params_7ffffffe, 0, "B(malformed PARAMS lengths)" },
	{ "PARAMS 0x3fffffff", s_params_3fffffff, 0, "B(malformed PARAMS lengths)" },
	{ "pair longer than the stream", s_pair_short, 0, "B(malformed PARAMS lengths)" },
	{ "empty name", s_empty_name, 0, "B(malformed PARAMS lengths)" },
	{ "PARAMS over 64 KiB", s_too_big, 0, "B(PARAMS larger than 64 KiB)" },
	{ "5000 tiny PARAMS records", s_many_records, 0, "B(PARAMS larger than 64 KiB)" },
	{ "AUTHORIZER role", s_authorizer, 0, "B(role is not RESPONDER)" },
	{ "BEGIN_REQUEST of 4 bytes", s_begin_short, 0, "B(malformed BEGIN_REQUEST)" },
	{ "PARAMS before BEGIN_REQUEST", s_params_first, 0, "B(first record is not BEGIN_REQUEST)" },
	{ "request id switch", s_id_switch, 0, "B(unexpected record in PARAMS)" },
	{ "two requests interleaved", s_multiplex, 0, "B(unexpected record in PARAMS)" },
	{ "DATA record", s_data, 0, "P1{} B(unexpected record in STDIN)" },
	{ "STDIN before the end of PARAMS", s_stdin_early, 0, "B(unexpected record in PARAMS)" },
	{ "BEGIN_REQUEST in STDIN", s_begin_twice, 0, "P1{} B(unexpected record in STDIN)" },
};

int
main(void)
{
	for (size_t i = 0; i < NELEM(cases); i++) {
		const char *got;

		reset();
		cases[i].build();
		/* Long streams: every split up to 300 bytes, and whole. */
		got = every_split(16 * 1024, cases[i].slow, 300);
		ok(strcmp(got, cases[i].want) == 0, "%s: %s", cases[i].name, got);
	}

	/* Just under the 64 KiB bound: accepted, in any buffer size. */
	reset();
	s_max_params();
	ok(strncmp(every_split(16 * 1024, 0, 64), "P1{N=vvvv", 9) == 0 &&
	    strcmp(tr + strlen(tr) - 3, ", E") != 0, "64 KiB of PARAMS accepted: %.20s...", tr);
	ok(strncmp(run(1, 16, 0), "P1{N=", 5) == 0, "the same through a 16-byte buffer");

	/* A 300 KB body streams through a 16 KiB buffer. */
	reset();
	begin(1, 1, 0);
	rec(4, 1, kv_get, sizeof(kv_get) - 1, 0);
	rec(4, 1, NULL, 0, 0);
	for (int i = 0; i < 5; i++) {
		static unsigned char b[60000];
		rec(5, 1, b, sizeof(b), 0);
	}
	rec(5, 1, NULL, 0, 0);
	ok(strcmp(run(7000, 16 * 1024, 0), "P1{REQUEST_METHOD=GET,} S300000 E ") == 0 &&
	    strcmp(run(1, 16 * 1024, 0), "P1{REQUEST_METHOD=GET,} S300000 E ") == 0,
	    "300 kB body through a 16 KiB buffer: %s", tr);

	/* Random garbage never crashes and never makes a request. */
	srand(1);
	{
		n_end = 0;
		for (int i = 0; i < 20000; i++) {
			reset();
			srclen = (size_t)(rand() % 200);
			for (size_t j = 0; j < srclen; j++)
				src[j] = (unsigned char)rand();
			run((size_t)(rand() % 50) + 1, 64, rand() & 1);
		}
		ok(n_end == 0, "20000 random streams: no request (%d)", n_end);
	}
	return tap_done();
}
