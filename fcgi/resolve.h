/*
 * resolve: id to avatar file. The only module that opens avatar files. A
 * file counts when it is a regular file, reached beneath the avatars
 * directory (openat2 RESOLVE_BENEATH: a symlink out of it, "..", or a
 * magic link fail), its first bytes are a PNG, JPEG, GIF or WebP, and it
 * does not look cut short (sniff_whole: size, start and end only).
 * Files are opened O_NONBLOCK so a FIFO swapped in cannot hang a worker.
 */
#ifndef AVATAR_RESOLVE_H
#define AVATAR_RESOLVE_H

#include <stddef.h>
#include <stdint.h>

#include "cache.h"
#include "sniff.h"

struct avatar {
	int64_t id;
	char name[CACHE_NAME_MAX];
	struct cache_ident ident;
	enum sniff_type type;
	const unsigned char *body;	/* the bytes, when held in the cache */
	size_t body_len;
	int fd;				/* >= 0: stream the body from here */
};

/*
 * dirfd: the avatars directory. want_body: bytes mode (keep bodies, hand
 * out descriptors for files over file_max). cache_limit: bytes of memory.
 */
void resolve_init(int dirfd, int want_body, size_t file_max, size_t cache_limit);

/* Tries ID.png, .jpg, .jpeg, .gif, .webp in that order. Returns 0 and fills
 * *a, or -1 when no candidate counts (each odd candidate is logged). */
int resolve_avatar(int64_t id, struct avatar *a);

/*
 * Looks up one variant file, name (variant.h) beneath the directory, with
 * the same checks as an avatar, cached under (id, kind), kind != 0.
 * Returns 0 and fills *a, or -1 when it is missing or does not count.
 */
int resolve_variant(int64_t id, uint32_t kind, const char *name, struct avatar *a);

/* Closes a->fd if open. */
void resolve_release(struct avatar *a);

/*
 * Test seam: when a program defines this function, every file system call
 * of a lookup ("fstatat", "open", "fstat", "read") asks it first with the
 * name looked up; a nonzero errno value returned fails that call with it,
 * so a test can play a distributed file system's ESTALE. Undefined (a weak
 * symbol) in the server, where it costs one comparison with NULL.
 */
int resolve_test_fault(const char *call, const char *name);

#endif
