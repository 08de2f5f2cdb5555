/*
 * sniff: the image type of a file from its first bytes, never from its name.
 * The original service stored a JPEG as -1.png and sent image/png; browsers
 * told "nosniff" then refuse to draw it. This module only looks at bytes.
 */
#ifndef AVATAR_SNIFF_H
#define AVATAR_SNIFF_H

#include <stddef.h>
#include <stdint.h>

enum sniff_type { SNIFF_NONE, SNIFF_PNG, SNIFF_JPEG, SNIFF_GIF, SNIFF_WEBP, SNIFF_AVIF };

/* Bytes of a file's start a caller must read to tell every type apart
 * and check its header (sniff_whole): a PNG's IHDR ends at byte 16. */
#define SNIFF_HEAD_LEN 16
/* Bytes of a file's end sniff_whole looks for the end marker in. */
#define SNIFF_TAIL_LEN 4096

/* Returns the type of an image whose first n bytes are head, or SNIFF_NONE. */
enum sniff_type sniff_type(const unsigned char *head, size_t n);

/*
 * A cheap check that an image of a known type is whole, for the read path:
 * a file cut short (an interrupted copy, a partial upload written in
 * place) must not be served as an avatar for its whole lifetime. It looks
 * only at the size, the first bytes and the last ones:
 *   PNG   at least 57 bytes (signature, IHDR, one IDAT, IEND); IHDR right
 *         after the signature; the IEND chunk within the last
 *         SNIFF_TAIL_LEN bytes.
 *   JPEG  at least 97 bytes (SOI, one quantisation table, a frame and a
 *         scan header, a byte of data, EOI); the EOI marker FF D9 within
 *         the last SNIFF_TAIL_LEN bytes (it cannot occur in scan data).
 *   GIF   at least 26 bytes (header, screen and image descriptors, an
 *         empty image, trailer); the last byte is the trailer 0x3B.
 *   WebP  at least 26 bytes (RIFF header, one chunk); the RIFF size says
 *         no more bytes than the file has.
 * Bytes after an end marker are allowed (they do not stop a browser from
 * drawing the image). This is not validation: a file can pass and still
 * not decode; the write path decodes every upload.
 *
 * head: the first min(size, SNIFF_HEAD_LEN) bytes; tail: the last
 * min(size, SNIFF_TAIL_LEN). Returns NULL when the image looks whole,
 * else a short reason for a log line.
 */
const char *sniff_whole(enum sniff_type type, const unsigned char *head,
    size_t hlen, const unsigned char *tail, size_t tlen, uint64_t size);
/* "image/png" etc.; NULL for SNIFF_NONE. */
const char *sniff_mime(enum sniff_type type);

#endif
