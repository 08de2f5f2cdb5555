/*
 * cache: a per-worker, bounded map from avatar id to what was last learned
 * about its file: name, identity (device, inode, size, mtime, ctime), image
 * type and, in bytes mode, the bytes. An entry is only a hint: the caller
 * revalidates it against the file on every request, so a replaced avatar is
 * served at once. Entries and bodies never exceed the limit given to
 * cache_init; the hash table adds at most 16 bytes per entry held (it
 * doubles when the entries outnumber its buckets). No I/O.
 */
#ifndef AVATAR_CACHE_H
#define AVATAR_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "sniff.h"

/* A variant's name (variant.h's VARIANT_NAME_MAX) fits. */
#define CACHE_NAME_MAX 72

struct cache_ident {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
};

/*
 * Entries are keyed by id and kind: kind 0 is the avatar's own file, any
 * other value one of its variants (handler.c's numbering), so an avatar's
 * sizes and formats are cached side by side.
 */
struct cache_entry {
	int64_t id;
	uint32_t kind;
	char name[CACHE_NAME_MAX];	/* file name inside the directory */
	struct cache_ident ident;	/* the file that was opened */
	/* When name is a symlink: the link itself, so that the entry is only
	 * reused while the very same link still leads to the same file. */
	int is_link;
	struct cache_ident link;
	enum sniff_type type;
	unsigned char *body;		/* NULL when not held */
	size_t body_len;
	/* private */
	struct cache_entry *hnext, *lprev, *lnext;
	size_t cost;
};

/* limit: bytes of entries and bodies together. */
void cache_init(size_t limit);
/* Returns the entry for (id, kind) or NULL; a hit becomes most recently used. */
struct cache_entry *cache_get(int64_t id, uint32_t kind);
/*
 * Stores (replacing any old entry for id and kind) and takes ownership of body, a
 * malloc'd buffer or NULL. Returns the entry, or NULL when it cannot be
 * held within the limit (body is then freed).
 */
struct cache_entry *cache_put(int64_t id, uint32_t kind, const char *name,
    const struct cache_ident *ident, enum sniff_type type,
    unsigned char *body, size_t body_len);
void cache_drop(int64_t id, uint32_t kind);
/* Bytes currently held, for tests. */
size_t cache_used(void);
/* Buckets of the hash table, for tests: at least the entries held (unless
 * memory ran out when it was to double). */
size_t cache_buckets(void);

void cache_ident_from_stat(struct cache_ident *ci, const struct stat *st);
int cache_ident_equal(const struct cache_ident *a, const struct cache_ident *b);

#endif
