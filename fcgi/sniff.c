/*
 * sniff: magic numbers of the four avatar formats, and a cheap check that
 * a file of one of them is whole. Pure; no I/O.
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
	/* AVIF: an ISO BMFF file whose first box is "ftyp" with the major
	 * brand "avif" (still) or "avis" (sequence), as libheif writes it. */
	if (n >= 12 && memcmp(h + 4, "ftyp", 4) == 0 &&
	    (memcmp(h + 8, "avif", 4) == 0 || memcmp(h + 8, "avis", 4) == 0))
		return SNIFF_AVIF;
	return SNIFF_NONE;
}

static uint32_t
be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
	    (uint32_t)p[3];
}

static uint32_t
le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

const char *
sniff_whole(enum sniff_type type, const unsigned char *head, size_t hlen,
    const unsigned char *tail, size_t tlen, uint64_t size)
{
	/* An IEND chunk: length 0, type, and the CRC of "IEND". */
	static const unsigned char iend[12] = "\0\0\0\0IEND\xae\x42\x60\x82";

	switch (type) {
	case SNIFF_PNG:
		if (size < 57)
			return "shorter than the smallest PNG (57 bytes)";
		if (hlen < 16 || memcmp(head + 8, "\0\0\0\x0dIHDR", 8) != 0)
			return "PNG without an IHDR chunk after the signature";
		if (memmem(tail, tlen, iend, sizeof(iend)) == NULL)
			return "PNG without its IEND chunk at the end (truncated?)";
		return NULL;
	case SNIFF_JPEG:
		if (size < 97)
			return "shorter than the smallest JPEG (97 bytes)";
		if (memmem(tail, tlen, "\xff\xd9", 2) == NULL)
			return "JPEG without its end marker (truncated?)";
		return NULL;
	case SNIFF_GIF:
		if (size < 26)
			return "shorter than the smallest GIF (26 bytes)";
		if (tlen < 1 || tail[tlen - 1] != 0x3b)
			return "GIF without its trailer at the end (truncated?)";
		return NULL;
	case SNIFF_WEBP:
		if (size < 26)
			return "shorter than the smallest WebP (26 bytes)";
		if (hlen < 12 || (uint64_t)le32(head + 4) + 8 > size)
			return "WebP shorter than its RIFF header says (truncated?)";
		return NULL;
	case SNIFF_AVIF:
		/* Only variants are AVIF, and only this program writes them:
		 * the check is that more than the ftyp box is there. An ISO
		 * BMFF file has no end marker to look for. */
		if (hlen < 12 || be32(head) < 16 || (uint64_t)be32(head) + 8 > size)
			return "AVIF with nothing after its ftyp box (truncated?)";
		return NULL;
	case SNIFF_NONE:
		break;
	}
	return "not a PNG, JPEG, GIF, WebP or AVIF image";
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
		[SNIFF_AVIF] = "image/avif",
	};
	return mime[type];
}
