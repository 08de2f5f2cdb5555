/*
 * resolve: lookups revalidated against the filesystem on every request with
 * one fstatat per candidate name; a file is opened only when it is new or
 * changed (a different inode, size, mtime or ctime).
 */
#include "resolve.h"
#include "ext.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int dirfd_ = -1;
static int want_body;
static size_t file_max;

void
resolve_init(int dfd, int body, size_t fmax, size_t cache_limit)
{
	dirfd_ = dfd;
	want_body = body;
	file_max = fmax;
	cache_init(cache_limit);
}

/*
 * openat2 keeps every step of the path beneath the directory, symlinks
 * included. Kernels before 5.6 lack it: then symlinks are refused
 * outright with O_NOFOLLOW, which is stricter, never looser.
 */
static int
open_beneath(const char *name)
{
	struct open_how how;
	int fd;

	memset(&how, 0, sizeof(how));
	how.flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
	fd = (int)syscall(SYS_openat2, dirfd_, name, &how, sizeof(how));
	if (fd == -1 && errno == ENOSYS)
		fd = openat(dirfd_, name, O_RDONLY | O_NONBLOCK | O_NOCTTY |
		    O_CLOEXEC | O_NOFOLLOW);
	return fd;
}

static int
read_full(int fd, unsigned char *buf, size_t len, off_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, buf + got, len - got, off + (off_t)got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

/*
 * Opens, checks and (in bytes mode) loads one candidate. Returns 0 with *a
 * filled, or -1 when the candidate does not count.
 */
static int
load(int64_t id, const char *name, struct avatar *a)
{
	struct stat st, st2;
	unsigned char head[SNIFF_HEAD_LEN];
	unsigned char *body = NULL;
	struct cache_entry *e;
	enum sniff_type type;
	size_t hlen;
	int fd, tries = 0;

	if ((fd = open_beneath(name)) == -1) {
		if (errno == ENOENT)
			return -1;
		if (errno == EXDEV || errno == ELOOP)
			log_warnx("%s: refused: leads outside the avatars directory", name);
		else
			log_warn("%s: open", name);
		return -1;
	}
again:
	if (fstat(fd, &st) == -1) {
		log_warn("%s: fstat", name);
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		log_warnx("%s: refused: not a regular file", name);
		goto fail;
	}
	hlen = st.st_size < SNIFF_HEAD_LEN ? (size_t)st.st_size : SNIFF_HEAD_LEN;
	if (read_full(fd, head, hlen, 0) == -1) {
		log_warn("%s: read", name);
		goto fail;
	}
	if ((type = sniff_type(head, hlen)) == SNIFF_NONE) {
		log_warnx("%s: refused: not a PNG, JPEG, GIF or WebP image", name);
		goto fail;
	}
	memset(a, 0, sizeof(*a));
	a->id = id;
	a->fd = -1;
	snprintf(a->name, sizeof(a->name), "%s", name);
	cache_ident_from_stat(&a->ident, &st);
	a->type = type;

	if (want_body && (size_t)st.st_size <= file_max) {
		if ((body = malloc(st.st_size ? (size_t)st.st_size : 1)) == NULL) {
			log_warn("%s: malloc", name);
			goto stream;
		}
		if (read_full(fd, body, (size_t)st.st_size, 0) == -1) {
			log_warn("%s: read", name);
			free(body);
			goto fail;
		}
		/* A file written in place while we read it: read it again, so
		 * what we hold is one version, whole. */
		if (fstat(fd, &st2) == -1 || st2.st_size != st.st_size ||
		    st2.st_mtim.tv_sec != st.st_mtim.tv_sec ||
		    st2.st_mtim.tv_nsec != st.st_mtim.tv_nsec) {
			free(body);
			if (++tries < 3)
				goto again;
			log_warnx("%s: changing while read; not served", name);
			goto fail;
		}
		if ((e = cache_put(id, name, &a->ident, type, body,
		    (size_t)st.st_size)) == NULL) {
			/* Larger than the whole cache: stream it instead. */
			goto stream;
		}
		a->body = e->body;
		a->body_len = e->body_len;
		close(fd);
		return 0;
	}
	(void)cache_put(id, name, &a->ident, type, NULL, 0);
	if (!want_body) {
		close(fd);
		return 0;
	}
stream:
	a->fd = fd;
	return 0;
fail:
	close(fd);
	return -1;
}

int
resolve_avatar(int64_t id, struct avatar *a)
{
	struct cache_entry *e = cache_get(id);
	char name[CACHE_NAME_MAX];
	struct cache_ident ci;
	struct stat st;
	const char *ext;

	for (size_t i = 0; (ext = ext_name(i)) != NULL; i++) {
		snprintf(name, sizeof(name), "%lld%s", (long long)id, ext);
		if (fstatat(dirfd_, name, &st, AT_SYMLINK_NOFOLLOW) == -1) {
			if (errno != ENOENT)
				log_warn("%s: fstatat", name);
			continue;
		}
		cache_ident_from_stat(&ci, &st);
		/* The fast path: the same regular file as last time. */
		if (S_ISREG(st.st_mode) && e != NULL &&
		    strcmp(e->name, name) == 0 && cache_ident_equal(&e->ident, &ci) &&
		    (!want_body || e->body != NULL)) {
			memset(a, 0, sizeof(*a));
			a->id = id;
			a->fd = -1;
			memcpy(a->name, e->name, sizeof(a->name));
			a->ident = e->ident;
			a->type = e->type;
			a->body = e->body;
			a->body_len = e->body_len;
			return 0;
		}
		if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
			log_warnx("%s: refused: not a regular file", name);
			continue;
		}
		if (load(id, name, a) == 0)
			return 0;
		/* Whatever was cached for this id is stale now. */
		cache_drop(id);
		e = NULL;
	}
	return -1;
}

void
resolve_release(struct avatar *a)
{
	if (a->fd >= 0) {
		close(a->fd);
		a->fd = -1;
	}
}
