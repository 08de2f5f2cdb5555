/*
 * Unit tests for variant.c: the size and format a request gets, variant
 * names and their parsing, and the list an original needs. Pure functions,
 * one case a line.
 */
#include <stdio.h>
#include <string.h>

#include "tap.h"
#include "variant.h"

int
main(void)
{
	struct variant_conf vc = { .sizes = { 32, 64, 128, 256, 512 }, .nsizes = 5,
	    .formats = VARIANT_FMT(SNIFF_WEBP) };
	static const struct {
		int64_t n;
		unsigned want;
	} sizes[] = {
		{ 1, 32 }, { 32, 32 }, { 33, 64 }, { 64, 64 }, { 100, 128 },
		{ 256, 256 }, { 257, 512 }, { 512, 512 }, { 513, 512 }, { 4096, 512 },
	};
	static const struct {
		enum sniff_type want;
		int bare, negotiate, avif, webp;
		unsigned formats;
		enum sniff_type stored, got;
		int vary;
	} fmts[] = {
		/* want        bare neg avif webp formats                                        stored      got         vary */
		{ SNIFF_NONE, 1, 0, 1, 1, VARIANT_FMT(SNIFF_WEBP), SNIFF_PNG, SNIFF_PNG, 0 },
		{ SNIFF_NONE, 0, 0, 1, 1, VARIANT_FMT(SNIFF_WEBP), SNIFF_JPEG, SNIFF_JPEG, 0 },
		{ SNIFF_WEBP, 0, 0, 0, 0, VARIANT_FMT(SNIFF_WEBP), SNIFF_PNG, SNIFF_WEBP, 0 },
		{ SNIFF_WEBP, 0, 0, 0, 0, 0, SNIFF_PNG, SNIFF_PNG, 0 },
		{ SNIFF_AVIF, 0, 0, 0, 0, VARIANT_FMT(SNIFF_WEBP), SNIFF_PNG, SNIFF_PNG, 0 },
		{ SNIFF_AVIF, 0, 0, 0, 0, VARIANT_FMT(SNIFF_AVIF), SNIFF_GIF, SNIFF_AVIF, 0 },
		{ SNIFF_NONE, 1, 1, 1, 1, VARIANT_FMT(SNIFF_WEBP) | VARIANT_FMT(SNIFF_AVIF), SNIFF_PNG, SNIFF_AVIF, 1 },
		{ SNIFF_NONE, 1, 1, 1, 1, VARIANT_FMT(SNIFF_WEBP), SNIFF_PNG, SNIFF_WEBP, 1 },
		{ SNIFF_NONE, 1, 1, 0, 1, VARIANT_FMT(SNIFF_WEBP) | VARIANT_FMT(SNIFF_AVIF), SNIFF_PNG, SNIFF_WEBP, 1 },
		{ SNIFF_NONE, 1, 1, 0, 0, VARIANT_FMT(SNIFF_WEBP), SNIFF_PNG, SNIFF_PNG, 1 },
		{ SNIFF_NONE, 0, 1, 1, 1, VARIANT_FMT(SNIFF_WEBP), SNIFF_PNG, SNIFF_PNG, 0 },
		{ SNIFF_WEBP, 0, 1, 1, 1, VARIANT_FMT(SNIFF_WEBP) | VARIANT_FMT(SNIFF_AVIF), SNIFF_PNG, SNIFF_WEBP, 0 },
	};
	static const struct {
		const char *name;
		int ok;
		int64_t id;
		const char *tag;
		enum sniff_type type;
	} parse[] = {
		{ "1000.1f-2a.png", 1, 1000, "1f-2a", SNIFF_PNG },
		{ "-1.9046-187c0d7f5a1e3b00.avif", 1, -1, "9046-187c0d7f5a1e3b00", SNIFF_AVIF },
		{ "1000.1f-2a.jpg", 1, 1000, "1f-2a", SNIFF_JPEG },
		{ "1000.1f-2a.jpeg", 0, 0, NULL, SNIFF_NONE },
		{ "01000.1f-2a.png", 0, 0, NULL, SNIFF_NONE },
		{ "1000.1F-2a.png", 0, 0, NULL, SNIFF_NONE },
		{ "1000.1f2a.png", 0, 0, NULL, SNIFF_NONE },
		{ "1000.-2a.png", 0, 0, NULL, SNIFF_NONE },
		{ "1000.1f-.png", 0, 0, NULL, SNIFF_NONE },
		{ "1000.1f-2-a.png", 0, 0, NULL, SNIFF_NONE },
		{ "1000.png", 0, 0, NULL, SNIFF_NONE },
		{ ".tmp-1000-x.png", 0, 0, NULL, SNIFF_NONE },
		{ "1000.1f-2a.png.png", 0, 0, NULL, SNIFF_NONE },
	};
	char buf[VARIANT_NAME_MAX], tag[VARIANT_TAG_MAX];
	struct variant_want w[64];
	struct timespec mt = { .tv_sec = 1700000000, .tv_nsec = 123456789 };
	size_t n;

	for (size_t i = 0; i < NELEM(sizes); i++)
		ok(variant_pick_size(&vc, sizes[i].n) == sizes[i].want, "s=%lld -> %u",
		    (long long)sizes[i].n, sizes[i].want);
	{
		struct variant_conf none = { .nsizes = 0 };

		ok(variant_pick_size(&none, 64) == 0, "no sizes configured -> 0 (the original)");
	}
	for (size_t i = 0; i < NELEM(fmts); i++) {
		struct variant_conf f = { .formats = fmts[i].formats, .negotiate = fmts[i].negotiate };
		int vary = -1;

		ok(variant_pick_format(&f, fmts[i].want, fmts[i].bare, fmts[i].avif,
		    fmts[i].webp, fmts[i].stored, &vary) == fmts[i].got && vary == fmts[i].vary,
		    "format case %zu", i);
	}

	variant_tag(tag, 36934, &mt);
	ok(strcmp(tag, "9046-17979cfe3d85cd15") == 0, "tag: size and mtime in ns, hex (%s)", tag);
	ok(variant_name(buf, sizeof(buf), 64, 1000, tag, SNIFF_WEBP) == 0 &&
	    strcmp(buf, ".v/64/1000.9046-17979cfe3d85cd15.webp") == 0, "name: %s", buf);
	ok(variant_name(buf, sizeof(buf), 0, -1, tag, SNIFF_PNG) == 0 &&
	    strcmp(buf, ".v/full/-1.9046-17979cfe3d85cd15.png") == 0, "full size: %s", buf);
	{
		struct timespec big = { .tv_sec = INT32_MAX, .tv_nsec = 999999999 };

		variant_tag(tag, UINT64_MAX, &big);
		ok(variant_name(buf, sizeof(buf), 4096, INT64_MIN, tag, SNIFF_AVIF) == 0 &&
		    strlen(buf) < VARIANT_NAME_MAX, "the longest name fits: %s (%zu)", buf, strlen(buf));
	}
	ok(variant_name(buf, sizeof(buf), 64, 1, "1-1", SNIFF_NONE) == -1, "no name for SNIFF_NONE");
	ok(variant_name(buf, 10, 64, 1000, "1-1", SNIFF_PNG) == -1, "a name that does not fit: -1");

	for (size_t i = 0; i < NELEM(parse); i++) {
		int64_t id = 0;
		enum sniff_type t = SNIFF_NONE;
		int rc = variant_parse(parse[i].name, &id, tag, &t);

		ok(parse[i].ok ? rc == 0 && id == parse[i].id && strcmp(tag, parse[i].tag) == 0 &&
		    t == parse[i].type : rc == -1, "parse %s", parse[i].name);
	}

	n = variant_wants(&vc, SNIFF_PNG, w, NELEM(w));
	ok(n == 11, "PNG original, 5 sizes, WebP: 5 PNG + 5 WebP + full WebP = %zu", n);
	ok(w[0].size == 32 && w[0].type == SNIFF_PNG && w[1].size == 32 && w[1].type == SNIFF_WEBP &&
	    w[10].size == 0 && w[10].type == SNIFF_WEBP, "in order: by size, stored first, full last");
	n = variant_wants(&vc, SNIFF_WEBP, w, NELEM(w));
	ok(n == 5, "WebP original: the 5 sizes only (%zu)", n);
	vc.formats |= VARIANT_FMT(SNIFF_AVIF);
	n = variant_wants(&vc, SNIFF_JPEG, w, NELEM(w));
	ok(n == 17, "JPEG original with WebP and AVIF: 15 sizes + 2 full (%zu)", n);
	ok(variant_wants(&vc, SNIFF_JPEG, w, 3) == 17, "a short array still counts them all");
	return tap_done();
}
