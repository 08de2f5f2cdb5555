/*
 * vmake: writes the variant files of one original (see vmake.h). Pixels
 * come from image.c's image_variants; this file only names, checks,
 * writes and removes files, and never includes libvips. Every path is one
 * name inside a directory opened without following a symlink.
 */
#include "vmake.h"
#include "ext.h"
#include "image.h"
#include "log.h"
#include "store.h"
#include "variant.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Every variant one original can need: each size and the full size, in
 * each of the five types. */
#define WANTS_MAX ((VARIANT_SIZES_MAX + 1) * 5)
#define NTYPES (SNIFF_AVIF + 1)
/* ".tmp-" id host pid rand, as store.c makes them. */
#define TMP_NAME_MAX 96

/* One call's state: the original, the directories opened so far, and the
 * full-size files made in this call (a no-upscaling copy needs them). */
struct run {
	const struct conf *c;
	int dirfd;
	int64_t id;
	char tag[VARIANT_TAG_MAX];
	const void *orig;
	size_t origlen;
	enum sniff_type stored;
	int vfd;			/* .v, or -1 until needed */
	struct { unsigned size; int fd; } sub[VARIANT_SIZES_MAX + 1];
	size_t nsub;
	struct { unsigned char *bytes; size_t len; } full[NTYPES];
	struct image_want todo[WANTS_MAX];
	size_t ntodo;
	struct vmake_result *res;
};

/* The directory of one size (0: full), opened once per run. */
static int
size_dir(struct run *r, unsigned size, int create)
{
	char sub[16];
	int fd;

	for (size_t i = 0; i < r->nsub; i++)
		if (r->sub[i].size == size)
			return r->sub[i].fd;
	if (r->vfd == -1 && (r->vfd = store_open_dir(r->dirfd, VARIANT_DIR, create)) == -1)
		return -1;
	if (variant_subdir(sub, sizeof(sub), size) == -1) {
		errno = EINVAL;
		return -1;
	}
	/* "SIZE" of ".v/SIZE". */
	if ((fd = store_open_dir(r->vfd, sub + sizeof(VARIANT_DIR), create)) == -1)
		return -1;
	if (r->nsub == sizeof(r->sub) / sizeof(r->sub[0])) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
	r->sub[r->nsub].size = size;
	r->sub[r->nsub++].fd = fd;
	return fd;
}

/* The variant's file name inside its size directory: "ID.TAG.EXT". */
static int
base_name(const struct run *r, unsigned size, enum sniff_type type, char *buf, size_t len)
{
	char path[VARIANT_NAME_MAX];

	if (variant_name(path, sizeof(path), size, r->id, r->tag, type) == -1)
		return -1;
	snprintf(buf, len, "%s", strrchr(path, '/') + 1);
	return 0;
}

/* A variant counts as there only when it is a non-empty regular file: an
 * empty one is what a crash between create and write can leave. */
static int
present(struct run *r, unsigned size, enum sniff_type type)
{
	char name[VARIANT_NAME_MAX];
	struct stat st;
	int fd = size_dir(r, size, 0);

	return fd != -1 && base_name(r, size, type, name, sizeof(name)) == 0 &&
	    store_fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
	    st.st_size > 0;
}

/*
 * Writes one variant: a temporary file in its size directory, renamed
 * into place, so a reader finds it whole or not at all. Named as the
 * store's temporary files, so a killed writer's leftover is one that
 * store_clean_tmp, run on the size directory, removes; the read path only
 * builds "ID.TAG.EXT" names and never opens one. No fsync (vmake.h).
 * Returns 0 or -1 with errno set.
 */
static int
put(struct run *r, unsigned size, enum sniff_type type, const void *bytes, size_t len)
{
	char tmp[TMP_NAME_MAX], name[VARIANT_NAME_MAX];
	int dfd, err;

	if (base_name(r, size, type, name, sizeof(name)) == -1) {
		errno = EINVAL;
		return -1;
	}
	if ((dfd = size_dir(r, size, 1)) == -1)
		return -1;
	if ((err = store_write_tmp(dfd, r->id, bytes, len, 0, tmp, sizeof(tmp))) != 0) {
		errno = err;
		return -1;
	}
	if (store_renameat(dfd, tmp, name) == -1) {
		err = errno;
		goto fail;
	}
	return 0;
fail:
	unlinkat(dfd, tmp, 0);
	errno = err;
	return -1;
}

/*
 * No upscaling: a size not below the original's long side is a copy of
 * the full-size file of that type: the original itself for the stored
 * type, else the full-size variant, made earlier in this run (missing
 * full sizes are asked for first) or read back when it was already there.
 */
static int
copy_full(struct run *r, unsigned size, enum sniff_type type)
{
	char name[VARIANT_NAME_MAX];
	unsigned char *buf = NULL;
	struct stat st;
	size_t len = 0;
	int fd, rc;

	if (type == r->stored)
		return put(r, size, type, r->orig, r->origlen);
	if (r->full[type].bytes != NULL)
		return put(r, size, type, r->full[type].bytes, r->full[type].len);
	if ((fd = size_dir(r, 0, 0)) == -1 || base_name(r, 0, type, name, sizeof(name)) == -1)
		return -1;
	/* Never more than its pixels, 4 bytes each, and a header. */
	if ((buf = store_read_file(fd, name, (size_t)r->c->max_pixels * 4 + 65536, &len, &st)) == NULL)
		return -1;
	rc = put(r, size, type, buf, len);
	free(buf);
	return rc;
}

/* image_variants' callback: one want's outcome, written or counted. */
static int
on_variant(void *ctx, size_t i, const struct image_out *o)
{
	struct run *r = ctx;
	const struct image_want *w = &r->todo[i];
	const char *what = "write";
	int rc;

	if (o->status != 0) {
		/* An animation has no AVIF (image.h): not an error; the read
		 * path answers with the stored type. */
		if (w->type == SNIFF_AVIF && strcmp(o->error, "animation") == 0) {
			r->res->skipped++;
			return 0;
		}
		r->res->failed++;
		log_warnx("variants: %lld: %u%s: %d %s %s", (long long)r->id, w->side,
		    variant_ext(w->type), o->status, o->error, o->detail);
		return 0;
	}
	if (o->bytes == NULL) {
		what = "copy";
		if ((rc = copy_full(r, w->side, w->type)) == 0)
			r->res->copied++;
	} else if ((rc = put(r, w->side, w->type, o->bytes, o->len)) == 0) {
		r->res->made++;
		if (w->side == 0 && (r->full[w->type].bytes = malloc(o->len)) != NULL) {
			memcpy(r->full[w->type].bytes, o->bytes, o->len);
			r->full[w->type].len = o->len;
		}
	}
	if (rc != 0) {
		r->res->failed++;
		log_warn("variants: %lld: %u%s: %s", (long long)r->id, w->side,
		    variant_ext(w->type), what);
	}
	return 0;
}

/* Lists the missing variants in r->todo: full sizes first, so that a copy
 * for no upscaling finds its full-size file made. */
static void
list_missing(struct run *r, const struct variant_want *all, size_t n)
{
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < n; i++) {
			if ((all[i].size == 0) != (pass == 0))
				continue;
			if (present(r, all[i].size, all[i].type)) {
				r->res->kept++;
				continue;
			}
			r->todo[r->ntodo].side = all[i].size;
			r->todo[r->ntodo++].type = all[i].type;
		}
}

int
vmake_bytes(const struct conf *c, int dirfd, int64_t id, const void *bytes, size_t len,
    enum sniff_type type, const struct stat *st, struct vmake_result *res)
{
	struct variant_want all[WANTS_MAX];
	struct image_limits lim;
	struct run r;
	unsigned w = 0, h = 0;
	size_t n;
	int status;

	memset(res, 0, sizeof(*res));
	memset(&r, 0, sizeof(r));
	r.c = c;
	r.dirfd = dirfd;
	r.id = id;
	r.orig = bytes;
	r.origlen = len;
	r.stored = type;
	r.vfd = -1;
	r.res = res;
	if (type == SNIFF_NONE) {
		/* Not an image: nothing to name its variants by. */
		res->status = 415;
		res->why = "type";
		return -1;
	}
	variant_tag(r.tag, (uint64_t)st->st_size, &st->st_mtim);
	n = variant_wants(&c->variants, type, all, WANTS_MAX);
	list_missing(&r, all, n < WANTS_MAX ? n : WANTS_MAX);
	if (r.ntodo > 0) {
		conf_image_limits(c, &lim);	/* max_side and crop do not apply (image.h) */
		status = image_variants(&lim, bytes, len, r.todo, r.ntodo, on_variant, &r,
		    &w, &h, &res->why);
		if (status != 0)
			res->status = status;
	}
	for (size_t i = 0; i < r.nsub; i++)
		close(r.sub[i].fd);
	if (r.vfd != -1)
		close(r.vfd);
	for (size_t t = 0; t < NTYPES; t++)
		free(r.full[t].bytes);
	return res->status != 0 ? -1 : 0;
}

int
vmake_id(const struct conf *c, int dirfd, int64_t id, struct vmake_result *res)
{
	char name[32];
	unsigned char *buf = NULL;
	struct stat st;
	const char *ext;
	size_t len = 0;
	int lfd, err = ENOENT;

	memset(res, 0, sizeof(*res));
	if ((lfd = store_lock(dirfd, id)) == -1)
		return -1;
	/* The read path's order; a name that is not a regular file does not
	 * count, as there. */
	for (size_t i = 0; buf == NULL && (ext = ext_name(i)) != NULL; i++) {
		snprintf(name, sizeof(name), "%lld%s", (long long)id, ext);
		if ((buf = store_read_file(dirfd, name, (size_t)c->upload_max, &len, &st)) != NULL)
			break;
		if (errno == EFBIG || (errno != ENOENT && errno != ELOOP && errno != EINVAL)) {
			/* Too large to be one of ours, or unreadable: refused,
			 * not skipped, or an older name would be used instead. */
			err = errno;
			break;
		}
	}
	if (buf != NULL) {
		err = 0;
		if (vmake_bytes(c, dirfd, id, buf, len, sniff_type(buf, len), &st, res) != 0)
			err = EINVAL;
		free(buf);
	}
	close(lfd);
	errno = err;
	return err != 0 ? -1 : 0;
}

void
vmake_drop(const struct conf *c, int dirfd, int64_t id, const struct stat *old)
{
	struct run r;

	memset(&r, 0, sizeof(r));
	r.dirfd = dirfd;
	r.id = id;
	r.vfd = -1;
	variant_tag(r.tag, (uint64_t)old->st_size, &old->st_mtim);
	/* The old type is not known (the original may be gone): every
	 * type's name, in every size this configuration makes. */
	for (size_t i = 0; i <= c->variants.nsizes; i++) {
		unsigned size = i < c->variants.nsizes ? c->variants.sizes[i] : 0;
		char name[VARIANT_NAME_MAX];
		int fd = size_dir(&r, size, 0);

		if (fd == -1)
			continue;
		for (enum sniff_type t = SNIFF_PNG; t <= SNIFF_AVIF; t++)
			if (base_name(&r, size, t, name, sizeof(name)) == 0)
				(void)store_unlinkat(fd, name, 0);
	}
	for (size_t i = 0; i < r.nsub; i++)
		close(r.sub[i].fd);
	if (r.vfd != -1)
		close(r.vfd);
}
