/*
 * publish: the published tree, DIR/.pub, that a front server's fast path
 * serves without asking the responder (conf/nginx/avatar-fastpath.conf,
 * docs/fastpath.md). Runs only where image work may run: the upload
 * processes, the watcher and the publish command, never a read worker.
 *
 * Layout. Names carry no tag and their extension is the TRUE type of the
 * bytes, so a front server may take the Content-Type from the extension:
 *     DIR/.pub/full/ID.EXT    the original (checked), and its full-size
 *                             variants in the other formats (.webp, .avif)
 *     DIR/.pub/SIZE/ID.EXT    the SIZE variants, stored type and formats
 * A front server asks for the stored type by trying .png, .jpg, .gif and
 * .webp in that order: the formats besides the stored one are only ever
 * WebP and AVIF (variant.h), and a size's other formats are published only
 * together with its stored-type file, so the first name found is always
 * the stored type.
 *
 * What gets in. The original is read into memory, its type taken from its
 * bytes, and it is decoded whole under the upload limits (image_check)
 * before those same bytes are written; a file that is not an image, is cut
 * short or fails the limits is never published (its id goes to the
 * responder, which answers as in every other mode). Variants are copied
 * from their tagged names in .v, those of the CURRENT original only, and
 * only when their bytes sniff as their extension says. Every file is a
 * copy written to a temporary name and renamed, never a hard link: a hand
 * edit of an original in place (cp over it) must not change a published
 * file's bytes behind its name. A copy keeps its source's mtime, so
 * Last-Modified is the same as the responder's.
 *
 * Consistency. Everything of one id is done under the store's lock for
 * the id. A name that must no longer be there (another type after a type
 * change, a size whose variant is not made for the current original, an
 * id deleted) is removed after the new names are in place. publish_id is
 * idempotent: a published file whose size and mtime are its source's is
 * kept without reading it, so a re-run over a published store costs one
 * fstatat per name.
 */
#ifndef AVATAR_PUBLISH_H
#define AVATAR_PUBLISH_H

#include <stdint.h>

#include "conf.h"

/* The published tree's directory, inside the avatars directory. */
#define PUBLISH_DIR ".pub"

struct publish_result {
	unsigned written;	/* files copied in */
	unsigned kept;		/* already current */
	unsigned removed;	/* names taken out */
	int refused;		/* the original was not published (why says why) */
	const char *why;
};

/*
 * Brings id's published names in line with its current original and
 * variants (makes no variant: call vmake_id first). Returns 0, or -1 with
 * errno set when the tree could not be written.
 */
int publish_id(const struct conf *c, int dirfd, int64_t id, struct publish_result *res);

/*
 * The watcher: a process that follows the avatars directory with inotify
 * and, for each ID.EXT created, written, renamed or removed behind the
 * service's back, makes its missing variants and publishes it again.
 * Returns only on SIGTERM (0) or when inotify cannot be used (1).
 */
int publish_watch(const struct conf *c);

/* `avatar.fcgi publish [options]`: makes the missing variants of every
 * avatar and publishes it; removes published ids that have no original.
 * Exit status 0, 1 when some original was refused, 2 on bad options. */
int publish_main(int argc, char **argv);

#endif
