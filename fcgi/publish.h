/*
 * publish: the published tree, DIR/.pub, that a front server's fast path
 * serves without asking the responder (conf/nginx/avatar-fastpath.conf,
 * docs/fastpath.md). Runs only where image work may run: the upload
 * processes, the watcher and the publish command, never a read worker.
 *
 * Layout. Names carry no tag and their extension is the TRUE type of the
 * bytes, so a front server may take the Content-Type from the extension:
 *     DIR/.pub/full/ID.EXT    the original (checked), stored type
 *     DIR/.pub/SIZE/ID.EXT    the SIZE variant in the stored type
 *     DIR/.pub/full/x/ID.EXT  the full size in another format (.webp, .avif)
 *     DIR/.pub/SIZE/x/ID.EXT  the SIZE variant in another format
 * and, in each of those directories, the default avatar's files once more
 * as default.EXT (PUBLISH_DEFAULT), so a front server answers a missing
 * id itself. Those names follow --default-id and --missing: under
 * --missing 404 there are none, and the front server asks the responder.
 * A size directory holds one name per id (two for a moment while a new
 * type replaces an old one: the new is written before the old goes), so
 * a front server asks for "as stored" by trying .png, .jpg, .gif and .webp
 * there, and for a format by trying the stored type's name (the stored
 * type may be that format) and then x/.
 *
 * What gets in. The original is read into memory, its type taken from its
 * bytes, and it is decoded whole under the upload limits (image_check)
 * before those same bytes are written; a file that is not an image, is cut
 * short or fails the limits is never published (its id goes to the
 * responder, which answers as in every other mode). Variants are copied
 * from their tagged names in .v, those of the CURRENT original only, and
 * only when their bytes sniff as their extension says; a variant not made
 * is not published (the responder answers for it and sends a job). Every file is a
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
/* The subdirectory of each size for the formats besides the stored one. */
#define PUBLISH_CONV "x"
/* The stem the default avatar's files are published under as well, beside
 * its id's (with --missing default only): a front server answers a missing
 * id with DIR/.pub/SIZE/default.EXT and never needs to know the options. */
#define PUBLISH_DEFAULT "default"

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
