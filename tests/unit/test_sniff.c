/* Unit tests for sniff.c: type from magic bytes, never from the name. */
#include <string.h>

#include <stdlib.h>

#include "images.h"
#include "sniff.h"
#include "tap.h"

static const struct {
	const char *name;
	const char *bytes;
	size_t len;
	enum sniff_type want;
} cases[] = {
	{ "png", "\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16, SNIFF_PNG },
	{ "png truncated", "\x89PNG\r\n\x1a", 7, SNIFF_NONE },
	{ "jpeg jfif", "\xff\xd8\xff\xe0\0\x10JFIF", 10, SNIFF_JPEG },
	{ "jpeg exif", "\xff\xd8\xff\xe1", 4, SNIFF_JPEG },
	{ "jpeg two bytes", "\xff\xd8", 2, SNIFF_NONE },
	{ "gif87a", "GIF87a\x01\0", 8, SNIFF_GIF },
	{ "gif89a", "GIF89a\x01\0", 8, SNIFF_GIF },
	{ "gif90a", "GIF90a\x01\0", 8, SNIFF_NONE },
	{ "webp", "RIFF\x24\0\0\0WEBPVP8 ", 16, SNIFF_WEBP },
	{ "riff wave", "RIFF\x24\0\0\0WAVEfmt ", 16, SNIFF_NONE },
	{ "webp short", "RIFF\x24\0\0\0WEB", 11, SNIFF_NONE },
	{ "empty", "", 0, SNIFF_NONE },
	{ "html", "<html><body>", 12, SNIFF_NONE },
	{ "svg", "<svg xmlns=", 11, SNIFF_NONE },
};

/*
 * sniff_whole: a real 1x1 image of each format, changed as the case says:
 * cut: drop the last n bytes; junk: append n bytes of 'x'; keep: keep only
 * the first n bytes; flip: invert the byte at offset n.
 */
enum change { NONE, CUT, JUNK, KEEP, FLIP };
static const struct {
	const char *name;
	const unsigned char *img;
	size_t len;
	enum change how;
	size_t n;
	int whole;
} whole[] = {
	{ "png as made", IMG_PNG, sizeof(IMG_PNG) - 1, NONE, 0, 1 },
	{ "png cut by 1", IMG_PNG, sizeof(IMG_PNG) - 1, CUT, 1, 0 },
	{ "png cut by 12 (no IEND)", IMG_PNG, sizeof(IMG_PNG) - 1, CUT, 12, 0 },
	{ "png with 100 bytes after IEND", IMG_PNG, sizeof(IMG_PNG) - 1, JUNK, 100, 1 },
	{ "png with 4000 bytes after IEND", IMG_PNG, sizeof(IMG_PNG) - 1, JUNK, 4000, 1 },
	{ "png with 5000 bytes after IEND", IMG_PNG, sizeof(IMG_PNG) - 1, JUNK, 5000, 0 },
	{ "png: the issue's 20 bytes", IMG_PNG, sizeof(IMG_PNG) - 1, KEEP, 20, 0 },
	{ "png: signature and IHDR only", IMG_PNG, sizeof(IMG_PNG) - 1, KEEP, 33, 0 },
	{ "png: IHDR renamed", IMG_PNG, sizeof(IMG_PNG) - 1, FLIP, 12, 0 },
	{ "png: IHDR length wrong", IMG_PNG, sizeof(IMG_PNG) - 1, FLIP, 11, 0 },
	{ "png: IEND CRC wrong", IMG_PNG, sizeof(IMG_PNG) - 1, FLIP, 66, 0 },
	{ "jpeg as made", IMG_JPEG, sizeof(IMG_JPEG) - 1, NONE, 0, 1 },
	{ "jpeg cut by 1", IMG_JPEG, sizeof(IMG_JPEG) - 1, CUT, 1, 0 },
	{ "jpeg cut by 2 (no EOI)", IMG_JPEG, sizeof(IMG_JPEG) - 1, CUT, 2, 0 },
	{ "jpeg with 100 bytes after EOI", IMG_JPEG, sizeof(IMG_JPEG) - 1, JUNK, 100, 1 },
	{ "jpeg: first 96 bytes", IMG_JPEG, sizeof(IMG_JPEG) - 1, KEEP, 96, 0 },
	{ "jpeg: EOI broken", IMG_JPEG, sizeof(IMG_JPEG) - 1, FLIP, 159, 0 },
	{ "gif as made", IMG_GIF, sizeof(IMG_GIF) - 1, NONE, 0, 1 },
	{ "gif cut by 1 (no trailer)", IMG_GIF, sizeof(IMG_GIF) - 1, CUT, 1, 0 },
	{ "gif: first 20 bytes", IMG_GIF, sizeof(IMG_GIF) - 1, KEEP, 20, 0 },
	{ "gif with junk after the trailer", IMG_GIF, sizeof(IMG_GIF) - 1, JUNK, 1, 0 },
	{ "webp as made", IMG_WEBP, sizeof(IMG_WEBP) - 1, NONE, 0, 1 },
	{ "webp cut by 1", IMG_WEBP, sizeof(IMG_WEBP) - 1, CUT, 1, 0 },
	{ "webp with 10 bytes after the RIFF chunk", IMG_WEBP, sizeof(IMG_WEBP) - 1, JUNK, 10, 1 },
	{ "webp: RIFF size 2^32-1", IMG_WEBP, sizeof(IMG_WEBP) - 1, FLIP, 7, 0 },
	{ "webp: first 20 bytes", IMG_WEBP, sizeof(IMG_WEBP) - 1, KEEP, 20, 0 },
};

/* Applies a case and runs sniff_whole as resolve.c does. */
static const char *
check(size_t i)
{
	size_t len = whole[i].len, hlen, tlen;
	unsigned char *b = malloc(len + 8192);
	const char *why;

	memcpy(b, whole[i].img, len);
	switch (whole[i].how) {
	case NONE: break;
	case CUT: len -= whole[i].n; break;
	case JUNK: memset(b + len, 'x', whole[i].n); len += whole[i].n; break;
	case KEEP: len = whole[i].n; break;
	case FLIP: b[whole[i].n] ^= 0xff; break;
	}
	hlen = len < SNIFF_HEAD_LEN ? len : SNIFF_HEAD_LEN;
	tlen = len < SNIFF_TAIL_LEN ? len : SNIFF_TAIL_LEN;
	why = sniff_whole(sniff_type(b, hlen), b, hlen, b + len - tlen, tlen, len);
	free(b);
	return why;
}

int
main(void)
{
	for (size_t i = 0; i < NELEM(cases); i++)
		ok(sniff_type((const unsigned char *)cases[i].bytes, cases[i].len) == cases[i].want,
		    "sniff %s", cases[i].name);
	ok(strcmp(sniff_mime(SNIFF_PNG), "image/png") == 0, "png mime");
	ok(strcmp(sniff_mime(SNIFF_JPEG), "image/jpeg") == 0, "jpeg mime");
	ok(strcmp(sniff_mime(SNIFF_GIF), "image/gif") == 0, "gif mime");
	ok(strcmp(sniff_mime(SNIFF_WEBP), "image/webp") == 0, "webp mime");
	ok(sniff_mime(SNIFF_NONE) == NULL, "no mime for unknown bytes");
	for (size_t i = 0; i < NELEM(whole); i++) {
		const char *why = check(i);

		ok((why == NULL) == whole[i].whole, "%s: %s", whole[i].name, why ? why : "whole");
	}
	ok(sniff_whole(SNIFF_NONE, (const unsigned char *)"x", 1, (const unsigned char *)"x", 1, 1) != NULL,
	    "unknown type is never whole");
	return tap_done();
}
