/*
 * resolve: lookups revalidated against the filesystem on every request with
 * one fstatat per candidate name (two for a symlink); a file is opened only
 * to be streamed, or when it is new or changed (a different inode, size,
 * mtime or ctime).
 *
 * Transient errors. On a distributed file system (GlusterFS, NFS, CephFS)
 * a name that another host renames a file over can fail for a moment with
 * ESTALE: this mount still knew the old file by a handle the server has
 * dropped. A file the walk just found under its name can also be gone by
 * the time it is opened (ENOENT), when a writer changes the extension. The
 * name itself is fine a moment later, so the whole lookup of that name
 * (fstatat, open, reads) is made again, at once, at most RESOLVE_RETRIES
 * times; each retry is counted (estale_retries) and logged at debug level.
 * Without this the candidate would count as refused and the client would
 * get the default avatar instead of the one that is there.
 *
 * Missing ids. A site's pages ask for the same missing ids over and over
 * (users without an avatar), and each miss walks every extension twice
 * (resolve_avatar). The absence is remembered instead, with what the
 * directory itself was (device, inode, size, mtime, ctime) just before
 * the second walk and again just after it, when both are the same: any
 * name made, renamed or removed in the directory since then changes its
 * mtime and ctime, so the next lookup of that id costs one fstat of the
 * directory while nothing changed, and a full walk once anything did. The
 * condition that makes this sound: the directory's ctime must be older
 * than MISSING_SETTLED_NS when the absence is seen. A change after that
 * then stamps the directory with a later time, never the same one, even
 * where timestamps are coarse (a tick, or a whole second on some network
 * file systems); a directory changed more recently than that is walked
 * every time, as before. Nor is an absence trusted for longer than
 * MISSING_TTL_MS (on the monotonic clock), which bounds what a file
 * system that does not stamp its directories, or a clock stepped back,
 * could cost. Absences live in a table of their own, one slot per hash of
 * the id, not in the cache: a flood of made-up ids can only push out other
 * missing ids, never the avatars the cache holds.
 */
#include "resolve.h"
#include "clock.h"
#include "ext.h"
#include "log.h"
#include "stats.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Immediate retries of one name's lookup after a transient error. The
 * GlusterFS trial of issue 14 needed one; four looks in a row failing
 * means the name is not settling, and the candidate does not count. */
#define RESOLVE_RETRIES 3

/* What load and look return besides 0 and -1: look at the name again. */
#define AGAIN (-3)

/* Missing ids (the top of the file): how long the directory must have
 * been unchanged for an absence to be remembered, and for how long it is
 * trusted at most. */
#define MISSING_SETTLED_NS (2 * 1000000000LL)
#define MISSING_TTL_MS 10000
/* Slots of the missing-id table: 1 << MISSING_BITS, 80 bytes each (1.3 MB
 * per worker at most). On the Zipf workload of make bench, a million ids
 * with 5 % missing, 12 bits kept 58 % of the misses, 14 bits 70 %, as
 * many as the LRU cache did when it held them. */
#define MISSING_BITS 14

static struct missing {
	int64_t id;
	int used;
	struct cache_ident dir;	/* the directory when id was found missing */
	int64_t seen_ms;	/* clock_ms() then */
} missing[1 << MISSING_BITS];

/* Weak: NULL unless a test defines it (resolve.h). */
extern int resolve_test_fault(const char *call, const char *name) __attribute__((weak));

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
	memset(missing, 0, sizeof(missing));
}

/* The test seam: a nonzero errno value from the test fails the call. */
static int
fault(const char *call, const char *name)
{
	int err;

	if (resolve_test_fault == NULL || (err = resolve_test_fault(call, name)) == 0)
		return 0;
	errno = err;
	return -1;
}

/* A transient error of a distributed file system: see the top of the file. */
static int
transient(int err)
{
	return err == ESTALE;
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

	if (fault("open", name) == -1)
		return -1;
	memset(&how, 0, sizeof(how));
	how.flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
	fd = (int)syscall(SYS_openat2, dirfd_, name, &how, sizeof(how));
	if (fd == -1 && errno == ENOSYS)
		fd = openat(dirfd_, name, O_RDONLY | O_NONBLOCK | O_NOCTTY |
		    O_CLOEXEC | O_NOFOLLOW);
	return fd;
}

/* Reads len bytes at off; -1 with errno set (EIO when the file ends
 * first: it shrank, which is no transient error). */
static int
read_full(const char *name, int fd, unsigned char *buf, size_t len, off_t off)
{
	size_t got = 0;

	if (fault("read", name) == -1)
		return -1;
	while (got < len) {
		ssize_t n = pread(fd, buf + got, len - got, off + (off_t)got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return -1;
		}
		got += (size_t)n;
	}
	return 0;
}

/* Fills *a from entry e, without a descriptor. */
static void
from_entry(const struct cache_entry *e, struct avatar *a)
{
	memset(a, 0, sizeof(*a));
	a->id = e->id;
	a->fd = -1;
	memcpy(a->name, e->name, sizeof(a->name));
	a->ident = e->ident;
	a->type = e->type;
	a->body = e->body;
	a->body_len = e->body_len;
}

/* Notes on a new entry what name itself was when it was looked up. */
static struct cache_entry *
remember(struct cache_entry *e, const struct stat *lst)
{
	if (e != NULL && S_ISLNK(lst->st_mode)) {
		e->is_link = 1;
		cache_ident_from_stat(&e->link, lst);
	}
	return e;
}

/*
 * Opens, checks and (in bytes mode) loads one candidate; lst is what
 * fstatat without following found under name just before. known: NULL, or
 * the entry for name, still valid but held without its bytes (a file over
 * file_max, streamed). Returns 0 with *a filled, -1 when the candidate
 * does not count, or AGAIN (errno set) after a transient error or when
 * the name was gone by the time it was opened.
 */
static int
load(int64_t id, uint32_t kind, const char *name, const struct stat *lst,
    const struct cache_entry *known, struct avatar *a)
{
	struct stat st, st2;
	unsigned char head[SNIFF_HEAD_LEN], tail[SNIFF_TAIL_LEN];
	unsigned char *body = NULL;
	struct cache_entry *e;
	enum sniff_type type;
	const char *why;
	size_t hlen, tlen;
	int fd, err, tries = 0;

	if ((fd = open_beneath(name)) == -1) {
		/* fstatat found the name a moment ago. */
		if (errno == ENOENT || transient(errno))
			return AGAIN;
		if (errno == EXDEV || errno == ELOOP)
			log_warnx("%s: refused: leads outside the avatars directory", name);
		else
			log_warn("%s: open", name);
		return -1;
	}
again:
	if (fault("fstat", name) == -1 || fstat(fd, &st) == -1) {
		if (transient(errno))
			goto retry;
		log_warn("%s: fstat", name);
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		log_warnx("%s: refused: not a regular file", name);
		goto fail;
	}
	/* The very file the entry was made from: its start and end were
	 * checked then and are not read again for every request. */
	if (known != NULL) {
		struct cache_ident ci;

		cache_ident_from_stat(&ci, &st);
		if (cache_ident_equal(&known->ident, &ci)) {
			from_entry(known, a);
			a->fd = fd;
			return 0;
		}
	}
	hlen = st.st_size < SNIFF_HEAD_LEN ? (size_t)st.st_size : SNIFF_HEAD_LEN;
	if (read_full(name, fd, head, hlen, 0) == -1) {
		if (transient(errno))
			goto retry;
		log_warn("%s: read", name);
		goto fail;
	}
	if ((type = sniff_type(head, hlen)) == SNIFF_NONE) {
		log_warnx("%s: refused: not a PNG, JPEG, GIF or WebP image", name);
		goto fail;
	}
	/* One more read, of the end: a file cut short is not an avatar. */
	tlen = st.st_size < SNIFF_TAIL_LEN ? (size_t)st.st_size : SNIFF_TAIL_LEN;
	if (read_full(name, fd, tail, tlen, st.st_size - (off_t)tlen) == -1) {
		if (transient(errno))
			goto retry;
		log_warn("%s: read", name);
		goto fail;
	}
	if ((why = sniff_whole(type, head, hlen, tail, tlen, (uint64_t)st.st_size)) != NULL) {
		log_warnx("%s: refused: %s", name, why);
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
		if (read_full(name, fd, body, (size_t)st.st_size, 0) == -1) {
			free(body);
			if (transient(errno))
				goto retry;
			log_warn("%s: read", name);
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
		if ((e = remember(cache_put(id, kind, name, &a->ident, type, body,
		    (size_t)st.st_size), lst)) == NULL) {
			/* Larger than the whole cache: stream it instead. */
			goto stream;
		}
		a->body = e->body;
		a->body_len = e->body_len;
		close(fd);
		return 0;
	}
	(void)remember(cache_put(id, kind, name, &a->ident, type, NULL, 0), lst);
	if (!want_body) {
		close(fd);
		return 0;
	}
stream:
	a->fd = fd;
	return 0;
retry:
	err = errno;
	close(fd);
	errno = err;
	return AGAIN;
fail:
	close(fd);
	return -1;
}

/*
 * Whether entry e still describes name, whose fstatat without following
 * gave lst. A regular file must be the same file. A symlink must be the
 * same link (its target string never changes in place: retargeting makes
 * a new link, with a new inode and ctime), and following it now must reach
 * the very file that was opened beneath the directory. A link retargeted
 * outside, or a directory link on its way swapped for one that leads
 * outside, reaches another file: the entry fails and the open, with its
 * RESOLVE_BENEATH guard, decides again.
 */
static int
still_valid(const struct cache_entry *e, const char *name, const struct stat *lst)
{
	struct cache_ident ci;
	struct stat st;

	cache_ident_from_stat(&ci, lst);
	if (S_ISREG(lst->st_mode))
		return cache_ident_equal(&e->ident, &ci);
	if (!e->is_link || !cache_ident_equal(&e->link, &ci))
		return 0;
	if (fstatat(dirfd_, name, &st, 0) == -1 || !S_ISREG(st.st_mode))
		return 0;
	cache_ident_from_stat(&ci, &st);
	return cache_ident_equal(&e->ident, &ci);
}

/*
 * One look at a candidate name of (id, kind). Returns 0 with *a filled, -1
 * when the name exists but does not count, -2 when there is no such name,
 * or AGAIN (errno set) to look again.
 */
static int
look(int64_t id, uint32_t kind, const char *name, struct avatar *a)
{
	struct cache_entry *e = cache_get(id, kind), *known = NULL;
	struct stat st;
	int rc;

	if (fault("fstatat", name) == -1 ||
	    fstatat(dirfd_, name, &st, AT_SYMLINK_NOFOLLOW) == -1) {
		if (transient(errno))
			return AGAIN;
		if (errno != ENOENT && errno != ENOTDIR)
			log_warn("%s: fstatat", name);
		return errno == ENOENT || errno == ENOTDIR ? -2 : -1;
	}
	if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
		log_warnx("%s: refused: not a regular file", name);
		return -1;
	}
	if (e != NULL && strcmp(e->name, name) == 0 && still_valid(e, name, &st)) {
		/* The fast path: the same file as last time. */
		if (!want_body || e->body != NULL) {
			from_entry(e, a);
			return 0;
		}
		known = e;
	}
	if ((rc = load(id, kind, name, &st, known, a)) == 0)
		return 0;
	/* Whatever was cached for this name is stale now. */
	cache_drop(id, kind);
	return rc;
}

/*
 * One candidate name of (id, kind), looked at again after a transient
 * error (the top of the file). Returns 0 with *a filled, -1 when the name
 * exists but does not count, or -2 when there is no such name.
 */
static int
try_name(int64_t id, uint32_t kind, const char *name, struct avatar *a)
{
	int rc;

	for (int retry = 0; (rc = look(id, kind, name, a)) == AGAIN; retry++) {
		if (retry == RESOLVE_RETRIES) {
			log_warn("%s: still failing after %d retries", name, retry);
			return -1;
		}
		stats_inc(ST_ESTALE_RETRIES);
		log_debug("%s: %s; looking it up again", name, strerror(errno));
	}
	return rc;
}

/* One walk through the extensions: 0 with *a filled, -1 when a name
 * existed but none counted, -2 when no name existed. */
static int
walk(int64_t id, struct avatar *a)
{
	char name[CACHE_NAME_MAX];
	const char *ext;
	int seen = 0;

	for (size_t i = 0; (ext = ext_name(i)) != NULL; i++) {
		int rc;

		snprintf(name, sizeof(name), "%lld%s", (long long)id, ext);
		if ((rc = try_name(id, 0, name, a)) == 0)
			return 0;
		seen |= rc == -1;
	}
	return seen ? -1 : -2;
}

static int64_t
ns_of(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000LL + t->tv_nsec;
}

static int64_t
now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return ns_of(&t);
}

/* The directory's identity now, or -1. */
static int
dir_ident(struct cache_ident *ci)
{
	struct stat st;

	if (fstat(dirfd_, &st) == -1)
		return -1;
	cache_ident_from_stat(ci, &st);
	return 0;
}

static struct missing *
missing_slot(int64_t id)
{
	return &missing[((uint64_t)id * 0x9e3779b97f4a7c15ULL) >> (64 - MISSING_BITS)];
}

/* Whether id was found missing, within MISSING_TTL_MS, in the directory
 * exactly as it is now (the top of the file). */
static int
known_missing(int64_t id)
{
	struct missing *m = missing_slot(id);
	struct cache_ident ci;

	if (!m->used || m->id != id)
		return 0;
	if (clock_ms() - m->seen_ms < MISSING_TTL_MS && dir_ident(&ci) == 0 &&
	    cache_ident_equal(&m->dir, &ci)) {
		stats_inc(ST_MISSING_KNOWN);
		return 1;
	}
	m->used = 0;
	return 0;
}

/* Remembers that id was missing from the directory as dir shows it. */
static void
remember_missing(int64_t id, const struct cache_ident *dir)
{
	struct missing *m = missing_slot(id);

	m->id = id;
	m->used = 1;
	m->dir = *dir;
	m->seen_ms = clock_ms();
}

/*
 * A walk is not one atomic look: a store put that changes the extension
 * renames ID.new into place and then unlinks ID.old, so a walk that passed
 * ID.new's name before the rename and reaches ID.old's after the unlink
 * finds no file at all, though the id always had one (store.h). When no
 * name existed, the walk is made once more; the second walk starts after
 * the unlink and finds ID.new. Its absence is remembered when the
 * directory did not change around it and had settled before it.
 */
int
resolve_avatar(int64_t id, struct avatar *a)
{
	struct cache_ident d0, d1;
	int64_t t0;
	int rc;

	if (known_missing(id))
		return -1;
	if ((rc = walk(id, a)) != -2)
		return rc;
	t0 = now_ns();
	if (dir_ident(&d0) == -1 || t0 - ns_of(&d0.ctime) <= MISSING_SETTLED_NS ||
	    t0 - ns_of(&d0.mtime) <= MISSING_SETTLED_NS)
		return walk(id, a) == 0 ? 0 : -1;
	if ((rc = walk(id, a)) != -2)
		return rc;
	if (dir_ident(&d1) == 0 && cache_ident_equal(&d0, &d1))
		remember_missing(id, &d0);
	return -1;
}

int
resolve_variant(int64_t id, uint32_t kind, const char *name, struct avatar *a)
{
	return try_name(id, kind, name, a) == 0 ? 0 : -1;
}

void
resolve_release(struct avatar *a)
{
	if (a->fd >= 0) {
		close(a->fd);
		a->fd = -1;
	}
}
