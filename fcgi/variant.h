/*
 * variant: which file answers a request for a size or a format, by name
 * only. Pure: no I/O, no allocation, no state. The read path (handler.c)
 * asks it for a name and looks the name up like any avatar; the write side
 * (vmake.c) and the batch command ask it for the names they must make.
 *
 * Layout. A variant of avatar ID is the file
 *     DIR/.v/SIZE/ID.TAG.EXT
 * SIZE is a configured size in pixels, or "full" for the original's own
 * size in another format. EXT is the variant's format (".png", ".jpg",
 * ".gif", ".webp", ".avif"). TAG ties the variant to the very original it
 * was made from: the original's size and mtime in nanoseconds, in hex
 * ("9046-187c0d7f5a1e3b00"), the same two numbers as its ETag. A replaced
 * or rewritten original has another tag, so a variant made from an older
 * one is never even looked up: no variant can be stale. Old tags are
 * removed by the writer that replaced them (vmake_drop) and by
 * `avatar.fcgi variants --prune`. The directory starts with a dot, and no
 * client path reaches it: the read path only ever opens ID.EXT for a path
 * and builds variant names itself; the shipped front-server configs serve
 * the tree only through the internal X-Accel-Redirect location and
 * lighttpd's x-sendfile-docroot.
 *
 * Sizes. A size variant fits the original in SIZE x SIZE (the write path's
 * square crop makes it exactly SIZE x SIZE) and is never larger than the
 * original: where SIZE is not below the original's long side, the variant
 * is a copy of the full-size file of that format.
 */
#ifndef AVATAR_VARIANT_H
#define AVATAR_VARIANT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "sniff.h"

/* The directory of all variants, inside the avatars directory. */
#define VARIANT_DIR ".v"
/* Most sizes --sizes may list. */
#define VARIANT_SIZES_MAX 16
/* The longest variant name with its NUL:
 * ".v/" + "full" or a size (4) + "/" + an id (20) + "." + tag (33) + ".avif" */
#define VARIANT_NAME_MAX 72

/* What variants to make and serve (conf.c fills it from --sizes,
 * --formats and --negotiate). */
struct variant_conf {
	unsigned sizes[VARIANT_SIZES_MAX];	/* ascending, distinct */
	size_t nsizes;
	unsigned formats;	/* bits: VARIANT_FMT(SNIFF_WEBP), VARIANT_FMT(SNIFF_AVIF) */
	int negotiate;		/* pick a format from Accept for /ID */
};
#define VARIANT_FMT(t) (1u << (unsigned)(t))

/*
 * The configured size for a request of n pixels: the smallest size not
 * below n, or the largest when n is above all of them. 0 when no size is
 * configured.
 */
unsigned variant_pick_size(const struct variant_conf *vc, int64_t n);

/*
 * The format to send. want: what the URL's extension asks for (SNIFF_NONE
 * for /ID and for the extensions of stored formats, which keep meaning "as
 * stored"); bare: the URL has no extension; accept_avif/accept_webp: the
 * request's Accept header allows them (only used with negotiate, and only
 * for a bare URL: /ID.png stays "as stored").
 * stored: the original's true type. Returns stored when the wanted format
 * is not configured. *vary_accept is set when the answer depends on Accept.
 */
enum sniff_type variant_pick_format(const struct variant_conf *vc,
    enum sniff_type want, int bare, int accept_avif, int accept_webp,
    enum sniff_type stored, int *vary_accept);

/* The tag of an original from its size and mtime: "%llx-%llx", at most 33
 * bytes with the NUL. */
#define VARIANT_TAG_MAX 34
void variant_tag(char tag[VARIANT_TAG_MAX], uint64_t size, const struct timespec *mtime);

/*
 * The name of a variant: size 0 is "full". Returns 0, or -1 when the type
 * has no extension or the name does not fit (never for the sizes conf.c
 * accepts).
 */
int variant_name(char *buf, size_t len, unsigned size, int64_t id,
    const char *tag, enum sniff_type type);

/* The subdirectory of a size: ".v/64" or ".v/full". Same returns. */
int variant_subdir(char *buf, size_t len, unsigned size);

/*
 * Parses a file name found in a size directory back into id, tag and type,
 * for --prune. Returns 0, or -1 for a name this module never makes.
 */
int variant_parse(const char *name, int64_t *id, char tag[VARIANT_TAG_MAX],
    enum sniff_type *type);

/* ".png", ".jpg", ".gif", ".webp", ".avif"; NULL for SNIFF_NONE. */
const char *variant_ext(enum sniff_type type);

/*
 * The list of variants an original of type stored needs: every size in the
 * stored type and in each configured format, and the full size in each
 * configured format that is not the stored one. Fills up to max entries
 * and returns how many there are.
 */
struct variant_want {
	unsigned size;			/* 0: full */
	enum sniff_type type;
};
size_t variant_wants(const struct variant_conf *vc, enum sniff_type stored,
    struct variant_want *out, size_t max);

#endif
