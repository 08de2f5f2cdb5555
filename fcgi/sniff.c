/*
 * sniff: magic numbers of the four avatar formats. Pure; no I/O.
 */
#include "sniff.h"

#include <string.h>

enum sniff_type
sniff_type(const unsigned char *h, size_t n)
{
	/* PNG signature, RFC 2083 section 3.1. */
	if (n >= 8 && memcmp(h, "\x89PNG\r\n\x1a\n", 8) == 0)
		return SNIFF_PNG;
	/* JPEG: SOI marker then the first marker's 0xFF. */
	if (n >= 3 && h[0] == 0xff && h[1] == 0xd8 && h[2] == 0xff)
		return SNIFF_JPEG;
	if (n >= 6 && (memcmp(h, "GIF87a", 6) == 0 || memcmp(h, "GIF89a", 6) == 0))
		return SNIFF_GIF;
	/* WebP: a RIFF container whose form type is WEBP. */
	if (n >= 12 && memcmp(h, "RIFF", 4) == 0 && memcmp(h + 8, "WEBP", 4) == 0)
		return SNIFF_WEBP;
	return SNIFF_NONE;
}

const char *
sniff_mime(enum sniff_type type)
{
	static const char *const mime[] = {
		[SNIFF_NONE] = NULL,
		[SNIFF_PNG] = "image/png",
		[SNIFF_JPEG] = "image/jpeg",
		[SNIFF_GIF] = "image/gif",
		[SNIFF_WEBP] = "image/webp",
	};
	return mime[type];
}
