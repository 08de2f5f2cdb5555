/*
 * vmake: makes the variant files of one original (names from variant.h,
 * pixels from image.c's image_variants). Runs only where image work may
 * run: the upload processes and the batch command `avatar.fcgi variants`,
 * never in a read worker.
 *
 * Files. Each variant is written to a temporary file in its size directory
 * (".tmp-" names, as store.c's, so store_clean_tmp-style cleaning and the
 * read path's "ID.TAG.EXT only" rule both hold) and renamed into place, so
 * a reader finds a variant whole or not at all. Variants are not fsynced:
 * they are derived data; a variant cut short by a crash is refused by the
 * read path's whole-file check like any file, and vmake counts a file as
 * present only when it is a non-empty regular file, so the next job for
 * that id makes it again.
 *
 * Idempotent: a variant whose name exists is kept, so a second run over
 * the same original does nothing but one fstatat per variant.
 *
 * Temporary files are named as store.c's (".tmp-ID-HOST-PID-RAND", made
 * by store_tmp_create), so store_clean_tmp run on a size directory removes
 * those a killed process left. Directories are made 0755 and files 0644
 * (less the umask): the front server may read them as its own user.
 *
 * No upscaling: a size not below the original's long side is a copy of
 * the full-size file of its type, the original's own bytes for the stored
 * type, else the ".v/full" variant (made first when missing).
 *
 * AVIF of an animation: libvips 8.14 cannot write one, so nothing is
 * written under the .avif names (not even the stored type's bytes, which
 * would make the name lie about its content); it counts as skipped, not
 * failed, and the read path falls back to the stored type. image.c sees
 * from the header alone that such a list makes nothing, so asking again
 * (a lazy job) costs no decode.
 */
#ifndef AVATAR_VMAKE_H
#define AVATAR_VMAKE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "conf.h"
#include "sniff.h"

struct vmake_result {
	unsigned made;		/* variant files written */
	unsigned kept;		/* already there */
	unsigned copied;	/* copies of the full-size file (no upscaling) */
	unsigned failed;	/* could not be made (logged) */
	unsigned skipped;	/* AVIF of an animation: never made (above) */
	int status;		/* 0, or the original's refusal (image.c's status) */
	const char *why;	/* that refusal's limit name */
};

/*
 * Makes every missing variant of the original bytes[0..len) of id, whose
 * true type is type and whose file has size and mtime as in *st (the tag:
 * for an upload, the stat of its temporary file before the rename). Returns
 * 0, or -1 when nothing could be made (res->status says why).
 */
int vmake_bytes(const struct conf *c, int dirfd, int64_t id,
    const void *bytes, size_t len, enum sniff_type type, const struct stat *st,
    struct vmake_result *res);

/*
 * Makes the missing variants of id's current original: takes the store's
 * lock for id (so two processes never make the same variant twice), finds
 * and reads the original as the read path would, checks the names, and
 * only decodes when one is missing. Returns 0 (res filled; nothing to do
 * counts as success), or -1 with errno ENOENT when the id has no original,
 * EINVAL when the original was refused (res->status and res->why say
 * why; nothing was written), EFBIG when it is larger than --upload-max
 * (it cannot be one the write path stored), or another errno value.
 * Unlike the read path, a symlink is not followed (O_NOFOLLOW): such an
 * id gets no variants and is served as it is. The lock is held while the
 * variants are made, so a put of the same id waits for them.
 */
int vmake_id(const struct conf *c, int dirfd, int64_t id, struct vmake_result *res);

/* Removes every variant name of id made from an original with size and
 * mtime as in *old (that original was replaced or deleted): every type in
 * every size of this configuration and the full size, since the old type
 * is not known. Missing names are fine; sizes no longer configured are
 * left to --prune. */
void vmake_drop(const struct conf *c, int dirfd, int64_t id, const struct stat *old);

#endif
