/* Unit tests for sniff.c: type from magic bytes, never from the name. */
#include <string.h>

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
	return tap_done();
}
