/*
 * store: the write side of the avatars directory (the read side is
 * resolve.c). An avatar is the file ID.EXT, EXT one of ext.h's list.
 *
 * What readers see. A put writes a temporary file in the same directory,
 * fsyncs it, renames it over ID.EXT, then unlinks every other extension of
 * the id, then fsyncs the directory. rename() replaces a name atomically,
 * so a reader that opens ID.EXT gets the old file or the new one, whole.
 * The other extensions are unlinked only AFTER the rename: between the two
 * steps both ID.new and ID.old exist (a reader trying .png first may still
 * get the old one, which is whole), and there is never an instant when
 * the id has no file at all. Unlinking first would open exactly that gap.
 * A reader's walk through the extensions is not one atomic look, though:
 * when a put changes the extension between two of its fstatat calls (it
 * missed ID.png before the rename, and ID.jpg is gone after the unlink),
 * the walk finds nothing. So a walk that finds nothing should walk again;
 * test_store's reader, with puts back to back, saw this about once in
 * 3000 lookups.
 *
 * Concurrent writers of one id take a lock (an fcntl lock on one byte,
 * chosen by the id, of the file ".store.lock" in the directory) around
 * rename-and-unlink, so two puts with different extensions cannot each
 * unlink the other's new file; the last put to take the lock wins. Writing
 * and fsyncing the temporary file, the slow part, happen outside the lock.
 * fcntl locks, unlike flock on a directory, are carried by NFS to the
 * server, so they should also hold between hosts sharing the directory
 * (not yet tested across hosts).
 *
 * Temporary files are named ".tmp-ID-HOST-PID-RAND": the leading dot means
 * the read path, which only ever opens "ID.EXT", can never serve one. HOST
 * is a hash of this boot and pid namespace, so store_clean_tmp can tell
 * whether PID names a process it can see.
 *
 * Every call works through the directory descriptor (openat, renameat,
 * unlinkat); no symlink is followed: renameat and unlinkat act on a link
 * itself, and files are created with O_EXCL | O_NOFOLLOW.
 * The caller decides whether to log; nothing here logs but the debug line
 * of a retried call (store_fstatat below).
 *
 * Shared directories. On a distributed file system (GlusterFS, NFS,
 * CephFS) another host may rename over a name this mount looked up a
 * moment ago, and a call on that name may fail once with ESTALE. The
 * store's stats, renames and unlinks are made again then (store_fstatat),
 * so a put does not fail, nor misjudge whether the id had a file before.
 */
#ifndef AVATAR_STORE_H
#define AVATAR_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

/* Temporary files of a writer that is not known to be alive are removed
 * by store_clean_tmp once they are this old (seconds since last written).
 * A writer holds its file for one write and one fsync of at most
 * --upload-max bytes already in memory: seconds even on a slow disk. */
#define STORE_TMP_MAX_AGE 60

/* Immediate retries of a call that failed with ESTALE. */
#define STORE_RETRIES 3

/* The prefix of every temporary file and the lock file's name. */
#define STORE_TMP_PREFIX ".tmp-"
#define STORE_LOCK_NAME ".store.lock"

/*
 * Stores len bytes as ID.ext (ext with its dot, one of ext.h's list) and
 * removes every other extension of the id. *replaced is set to 1 when the
 * id had a file before (the answer is 200, else 201). Returns 0, or an
 * errno value: EINVAL for an unknown ext; anything else is the
 * filesystem's (ENOSPC, EDQUOT, EACCES, EIO...), and then the previous
 * avatar is untouched unless the rename had already happened.
 */
int store_put(int dirfd, int64_t id, const char *ext, const void *bytes, size_t len,
    int *replaced);

/* Removes every extension of the id. Returns 0, ENOENT when there was
 * nothing to remove (404), or another errno value. */
int store_delete(int dirfd, int64_t id);

/*
 * What a writer makes from an avatar (its variants, vmake.h) follows the
 * avatar through these. before: the new file is written and synced, its
 * size and mtime final, and no reader can see it yet (called outside the
 * lock: it may take long). replaced: once for each file the id had
 * before, after the change is in place and while the id's lock is held
 * (keep it short), with that file's stat (of the file a symlink led to).
 */
struct store_hooks {
	void (*before)(void *ctx, const struct stat *st);
	void (*replaced)(void *ctx, const struct stat *old);
	void *ctx;
};

/* store_put and store_delete with hooks (hk may be NULL). */
int store_put_hooked(int dirfd, int64_t id, const char *ext, const void *bytes,
    size_t len, int *replaced, const struct store_hooks *hk);
int store_delete_hooked(int dirfd, int64_t id, const struct store_hooks *hk);

/*
 * Removes temporary files a killed writer left: those not written for
 * max_age seconds, and, at once, those whose writer ran on this host (same
 * boot, same pid namespace) and no longer exists. A live writer's file on
 * this host is kept, and so is one from another host until it is max_age
 * old: with a shared directory, another host's clock must be within
 * max_age of ours. Call at start-up (before this process puts anything)
 * with STORE_TMP_MAX_AGE. Returns the number removed, or -1 with errno set
 * when the directory cannot be read.
 */
int store_clean_tmp(int dirfd, int64_t max_age);

/*
 * Removes the temporary files a killed writer left in each variant size
 * directory (vmake.h: DIR/.v/SIZE/) as store_clean_tmp does in the avatars
 * directory: every subdirectory of .v, one pass each, no deeper. Call at
 * start-up with STORE_TMP_MAX_AGE, after store_clean_tmp. Returns the
 * number removed (0 when there is no .v), or -1 with errno set.
 */
int store_clean_tmp_variants(int dirfd, int64_t max_age);

/*
 * fstatat, openat, renameat and unlinkat (flags as theirs), made again at
 * once, at most STORE_RETRIES times, while the file system answers ESTALE;
 * each retry is counted (stats.h, estale_retries) and logged at debug
 * level. For this file and vmake.c, which writes in the same tree.
 */
int store_fstatat(int dirfd, const char *name, struct stat *st, int flags);
int store_openat(int dirfd, const char *name, int flags, mode_t mode);
int store_renameat(int dirfd, const char *from, const char *to);
int store_unlinkat(int dirfd, const char *name, int flags);

/*
 * Test seam: when a program defines this function, store_put calls it at
 * each step with the step's name, so a test can check the directory or
 * kill the writer at that exact point. Undefined (a weak symbol) in the
 * server, where it costs one comparison with NULL.
 */
void store_test_point(const char *step);

/*
 * The lock store_put and store_delete take for id, for other writers of
 * the id's files (vmake.c): returns a descriptor whose close releases it,
 * or -1 with errno set. Blocks while another holds it.
 */
int store_lock(int dirfd, int64_t id);

/*
 * Writes bytes to a new temporary file for id in directory dirfd (any
 * directory: vmake.c uses the variant size directories), named as
 * store_put's are (STORE_TMP_PREFIX, id, host, pid, random), so
 * store_clean_tmp run on that directory removes it when its writer is
 * gone; fsynced when durable is set. Mode 0644 less the umask. Returns 0
 * with the name in tmp (the caller renames it into place), or an errno
 * value, and then no file is left.
 */
int store_write_tmp(int dirfd, int64_t id, const void *bytes, size_t len,
    int durable, char *tmp, size_t tmplen);

/*
 * For the writers of derived trees (vmake.c's .v, publish.c's .pub): a
 * directory beneath dfd opened without following a symlink, made first
 * (mode 0755: the front server reads it as its own user) when create is
 * set; a descriptor, or -1 with errno set.
 */
int store_open_dir(int dfd, const char *name, int create);

/*
 * Reads the whole regular file name beneath dfd (never through a symlink;
 * O_NONBLOCK, so a FIFO planted under the name cannot hang the caller) of
 * at most max bytes. Returns a malloc'd buffer with *len and *st set, or
 * NULL with errno set: EINVAL when not a regular file, EFBIG when larger
 * than max, EIO when it shrank while read.
 */
unsigned char *store_read_file(int dfd, const char *name, size_t max, size_t *len,
    struct stat *st);

#endif
