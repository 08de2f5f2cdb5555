/*
 * image: checks, cleans and re-encodes one uploaded avatar with libvips.
 * The only module that includes <vips/vips.h>. Decoding costs tens to
 * hundreds of milliseconds, so it runs in upload processes only, never in
 * a worker that serves GETs. This module never touches the filesystem and
 * never logs: it returns a status and a reason, and the caller decides.
 *
 * The checks run in this order, each before any work the next would do, so
 * no limit can be bypassed by a later step:
 *   1. body size               > max_bytes          413 "max-bytes"
 *   2. type by magic bytes     not PNG/JPEG/GIF/WebP 415 "type"
 *   3. header only, no pixels  unreadable header    422 "decode"
 *                              width x height       422 "max-pixels"
 *                              long side / short    422 "max-aspect"
 *                              frames               422 "max-frames"
 *                              width x height x frames 422 "max-pixels"
 *                              JPEG scans > 100     422 "max-scans"
 *   4. full decode, any decoder error (truncated, bad CRC, bad Huffman
 *      data, a GIF without its trailer) refuses the whole image, as does
 *      a failure anywhere in the pipeline that makes the new image
 *                                                     422 "decode"
 * Then the image is normalised: EXIF orientation applied, converted to 8-bit
 * sRGB (CMYK, 16-bit, grey, ICC-tagged inputs), cropped to a square (unless
 * IMAGE_CROP_NONE), scaled down to max_side (never up) and re-encoded in the
 * family it came in, with no metadata at all (no EXIF, GPS, XMP, ICC,
 * comments). PNG and WebP keep their alpha, GIF its transparency; GIF and
 * WebP keep their frames, delays and loop count. A file that is two formats
 * at once (GIF/HTML, JPEG/ZIP) is decoded as the image its magic bytes name;
 * only the re-encoded pixels are returned, so nothing else survives (a GIF
 * with bytes after its trailer is refused instead, by the trailer rule).
 *
 * Cost, measured on libvips 8.14 (Debian 12): a 2 MB 3000x2000 JPEG takes
 * 150 to 180 ms of CPU and 40 MB above the process's 31 MB after image_init;
 * every refusal before step 4 costs under 1 ms. The worst accepted inputs at
 * the default limits: an interlaced 16-bit PNG of 16.8 MP (libpng decodes
 * it whole: 250 MB, 1.8 s) and a progressive JPEG of 16.8 MP (150 MB).
 */
#ifndef AVATAR_IMAGE_H
#define AVATAR_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "sniff.h"

enum image_crop { IMAGE_CROP_CENTRE, IMAGE_CROP_ATTENTION, IMAGE_CROP_NONE };

struct image_limits {
	size_t max_bytes;		/* upload body size */
	uint64_t max_pixels;		/* pixels decoded: width x height x frames */
	unsigned max_frames;		/* frames of an animated GIF or WebP */
	unsigned max_aspect;		/* longer side at most this many times the shorter */
	unsigned max_side;		/* output side; images are never scaled up */
	enum image_crop crop;		/* animations are always cropped at the centre */
	int quality;			/* JPEG and lossy WebP quality, 1..100 */
};

/* The defaults: 8 MiB, 16.8 MP (as imgproxy), 100 frames, 20:1, 1024, centre, 85. */
#define IMAGE_MAX_BYTES		(8u << 20)
#define IMAGE_MAX_PIXELS	16800000u
#define IMAGE_MAX_FRAMES	100u
#define IMAGE_MAX_ASPECT	20u
#define IMAGE_MAX_SIDE		1024u
#define IMAGE_QUALITY		85
/* Not an option: no encoder writes more than about ten scans, and each one
 * costs a pass over every coefficient (image.c). */
#define IMAGE_MAX_SCANS		100u

struct image_out {
	int status;			/* 0, or the HTTP status: 413, 415, 422, 500 */
	const char *error;		/* the limit that refused ("max-pixels"...); NULL if ok */
	char detail[160];		/* libvips' reason, printable ASCII only; "" if none */
	unsigned char *bytes;		/* the new image; owned, free with image_out_free */
	size_t len;
	enum sniff_type type;		/* always the type of bytes */
	const char *ext;		/* ".png", ".jpg", ".gif", ".webp" */
	const char *mime;
	unsigned width, height;		/* of one frame */
	unsigned frames;		/* 1 for a still image */
};

/* Fills *l with the defaults above. */
void image_limits_default(struct image_limits *l);

/* "centre", "attention" or "none" to *crop; returns 0, or -1 for anything else. */
int image_crop_parse(const char *s, enum image_crop *crop);

/*
 * Starts libvips for this process: once, in the process that will call
 * image_process, after any fork (libvips keeps threads). Turns the
 * operation cache off, uses one thread, and blocks every loader and saver
 * except PNG, JPEG, GIF and WebP. Returns 0, or -1 with a reason in *why.
 */
int image_init(const char *argv0, const char **why);

/*
 * Checks and normalises the image in buf[0..len). Always fills *out: on
 * success status 0 and the new bytes; otherwise status and error say which
 * check refused. Call image_out_free afterwards in either case.
 */
int image_process(const struct image_limits *l, const void *buf, size_t len,
    struct image_out *out);

void image_out_free(struct image_out *out);

/*
 * Variants of an original that is already in the store (cleaned by
 * image_process, or a hand-filled file the batch command is checking). The
 * original is decoded once, under the same limits and checks as an upload
 * (steps 1 to 4 above; max_side, crop and the square are not applied: the
 * original's shape is kept). Then, for each want[i], in order:
 *   side 0      the original's own size, encoded as type;
 *   side > 0    fitted in side x side (shrink only), encoded as type; when
 *               side is not below the original's long side, emit is called
 *               with out->bytes NULL and status 0: the caller copies the
 *               full-size file of that type instead (no upscaling).
 * type is SNIFF_PNG, SNIFF_JPEG, SNIFF_GIF, SNIFF_WEBP or SNIFF_AVIF. An
 * animation stays animated in GIF and WebP; AVIF, which libvips 8.14 cannot
 * save animated, gets status 415 "animation" for an animated original, and
 * the caller falls back to the stored type. Quality: l->quality for JPEG,
 * lossy WebP and AVIF (AVIF at its fastest effort: all
 * the default sizes and the full size of a 1024x1024 photo add 250 to
 * 330 ms of CPU to the 300 ms of PNG or JPEG and WebP).
 * Metadata is stripped from every output.
 *
 * emit is called once per want, in order, with out filled like
 * image_process's (status 0 and bytes, or bytes NULL as above, or a status
 * and an error for that one variant); its out is freed after it returns.
 * A non-zero return from emit stops the loop. Returns 0, or the status of
 * the original's own refusal (413, 415, 422, 500) with *why set to the
 * limit's name, and then emit is never called. *width and *height: the
 * original's (one frame), when it decoded.
 */
struct image_want {
	unsigned side;			/* 0: the original's size */
	enum sniff_type type;
};
typedef int image_emit_fn(void *ctx, size_t i, const struct image_out *out);
int image_variants(const struct image_limits *l, const void *buf, size_t len,
    const struct image_want *want, size_t n, image_emit_fn *emit, void *ctx,
    unsigned *width, unsigned *height, const char **why);

/*
 * Checks that buf[0..len) is an image an upload could have stored: the
 * same admission and a whole decode of every frame as image_variants, and
 * nothing encoded. Returns 0, or the refusal's status with *why set.
 * For the published tree (publish.h): a hand-filled file is served by the
 * front server only after this.
 */
int image_check(const struct image_limits *l, const void *buf, size_t len,
    const char **why);

#endif
