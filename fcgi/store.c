/*
 * store: atomic put, delete, and removal of stale temporary files in the
 * avatars directory. See store.h for the order of steps and why readers
 * never see a torn file or no file. This file never reads an avatar and
 * never follows a symlink; every path is one name inside the directory.
 */
#include "store.h"
#include "ext.h"
#include "log.h"
#include "num.h"
#include "stats.h"
#include "variant.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Weak: NULL unless a test defines it (see store.h). */
extern void store_test_point(const char *step) __attribute__((weak));

#define NAME_MAX_ 96	/* ".tmp-" id host pid rand, or id ext */
#define HOST_UNKNOWN "0000000000000000"

static void
point(const char *step)
{
	if (store_test_point != NULL)
		store_test_point(step);
}

static int
ext_known(const char *ext)
{
	const char *e;

	for (size_t i = 0; (e = ext_name(i)) != NULL; i++)
		if (strcmp(e, ext) == 0)
			return 1;
	return 0;
}

static uint64_t
fnv1a(uint64_t h, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/*
 * Sixteen hex digits that differ between hosts, boots and pid namespaces:
 * the scope in which a pid means one process. HOST_UNKNOWN when /proc
 * cannot tell; then no pid is ever trusted.
 */
static void
host_key(char out[17])
{
	char boot[64], ns[64];
	ssize_t nb = -1, nn;
	int fd;

	if ((fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC)) != -1) {
		nb = read(fd, boot, sizeof(boot));
		close(fd);
	}
	nn = readlink("/proc/self/ns/pid", ns, sizeof(ns));
	if (nb < 32 || nn <= 0) {
		memcpy(out, HOST_UNKNOWN, 17);
		return;
	}
	snprintf(out, 17, "%016llx", (unsigned long long)
	    fnv1a(fnv1a(0xcbf29ce484222325ULL, boot, (size_t)nb), ns, (size_t)nn));
	if (strcmp(out, HOST_UNKNOWN) == 0)
		out[0] = '1';
}

static uint64_t
random64(void)
{
	static uint64_t counter;
	uint64_t r;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) == (ssize_t)sizeof(r))
		return r;
	/* No entropy yet (early boot): unique enough with O_EXCL retries. */
	return ((uint64_t)time(NULL) << 20) ^ ((uint64_t)getpid() << 40) ^ ++counter;
}

static int
write_all(int fd, const unsigned char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int store_tmp_create(int dirfd, int64_t id, char *tmp, size_t tmplen);

/*
 * Writes the bytes to a new temporary file in dirfd, and makes them
 * durable when durable is set. Returns 0 with its name in tmp, or an errno
 * value (and no file is left).
 */
int
store_write_tmp(int dirfd, int64_t id, const void *bytes, size_t len, int durable,
    char *tmp, size_t tmplen)
{
	int fd, err;

	if ((fd = store_tmp_create(dirfd, id, tmp, tmplen)) == -1)
		return errno;
	point("created");
	if (write_all(fd, bytes, len) == -1)
		goto fail;
	point("written");
	/* The data must be on disk before the name points at it, or a crash
	 * after the rename could leave ID.EXT empty or torn. */
	if (durable && fsync(fd) == -1)
		goto fail;
	if (close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	point("synced");
	return 0;
fail:
	err = errno;
	if (fd != -1)
		close(fd);
	unlinkat(dirfd, tmp, 0);
	return err;
}

/*
 * Locks the id's byte of the lock file; returns the descriptor (closing it
 * unlocks) or -1 with errno set. An open file description lock is private
 * to this descriptor, so it also excludes other descriptors of one
 * process; kernels without it get a classic per-process fcntl lock, which
 * is the same here since each call opens its own descriptor and holds one
 * lock at a time.
 */
static int
lock_id(int dirfd, int64_t id)
{
	struct flock fl;
	struct stat st;
	int fd, rc, err;

	fd = openat(dirfd, STORE_LOCK_NAME, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC |
	    O_NOCTTY, 0644);
	if (fd == -1)
		return -1;
	err = fstat(fd, &st) == -1 ? errno : !S_ISREG(st.st_mode) ? EINVAL : 0;
	if (err != 0) {
		close(fd);
		errno = err;
		return -1;
	}
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	/* One byte per id, spread over 2^20 offsets: ids that share a byte
	 * only wait for each other, which is harmless. */
	fl.l_start = (off_t)(((uint64_t)id * 0x9e3779b97f4a7c15ULL) >> 44);
	fl.l_len = 1;
	while ((rc = fcntl(fd, F_OFD_SETLKW, &fl)) == -1 && errno == EINTR)
		;
	if (rc == -1 && errno == EINVAL)
		while ((rc = fcntl(fd, F_SETLKW, &fl)) == -1 && errno == EINTR)
			;
	if (rc == -1) {
		err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

static void
id_name(char *buf, size_t len, int64_t id, const char *ext)
{
	snprintf(buf, len, "%lld%s", (long long)id, ext);
}

/* Tells the hooks about each file an id had before, once the new state
 * is in place; a NULL hook set does nothing. */
static void
tell_replaced(const struct store_hooks *hk, const struct stat *old, size_t n)
{
	if (hk == NULL || hk->replaced == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		hk->replaced(hk->ctx, &old[i]);
}

int
store_put_hooked(int dirfd, int64_t id, const char *ext, const void *bytes,
    size_t len, int *replaced, const struct store_hooks *hk)
{
	char tmp[NAME_MAX_], name[NAME_MAX_], other[NAME_MAX_];
	struct stat st, old[8];
	size_t nold = 0;
	const char *e;
	int lfd, err = 0;

	*replaced = 0;
	if (!ext_known(ext))
		return EINVAL;
	if ((err = store_write_tmp(dirfd, id, bytes, len, 1, tmp, sizeof(tmp))) != 0)
		return err;
	/* The new file's size and mtime are final now (a rename keeps them):
	 * what is made from it can be named after it before anyone sees it. */
	if (hk != NULL && hk->before != NULL) {
		if (store_fstatat(dirfd, tmp, &st, AT_SYMLINK_NOFOLLOW) == -1) {
			err = errno;
			unlinkat(dirfd, tmp, 0);
			return err;
		}
		hk->before(hk->ctx, &st);
	}
	if ((lfd = lock_id(dirfd, id)) == -1) {
		err = errno;
		unlinkat(dirfd, tmp, 0);
		return err;
	}
	point("locked");
	for (size_t i = 0; (e = ext_name(i)) != NULL; i++) {
		id_name(other, sizeof(other), id, e);
		if (store_fstatat(dirfd, other, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			*replaced = 1;
			/* What a reader saw: the file a link leads to. */
			if (nold < sizeof(old) / sizeof(old[0]) &&
			    store_fstatat(dirfd, other, &old[nold], 0) == 0)
				nold++;
		}
	}
	id_name(name, sizeof(name), id, ext);
	if (store_renameat(dirfd, tmp, name) == -1) {
		err = errno;
		unlinkat(dirfd, tmp, 0);
		goto done;
	}
	point("renamed");
	/* Only now, with the new file in place, do the other names go. */
	for (size_t i = 0; (e = ext_name(i)) != NULL; i++) {
		if (strcmp(e, ext) == 0)
			continue;
		id_name(other, sizeof(other), id, e);
		if (store_unlinkat(dirfd, other, 0) == -1 && errno != ENOENT && err == 0)
			err = errno;
	}
	point("unlinked");
	/* The rename and the unlinks are directory changes: durable only
	 * once the directory itself is synced. */
	if (fsync(dirfd) == -1 && err == 0)
		err = errno;
	point("done");
	tell_replaced(hk, old, nold);
done:
	close(lfd);
	return err;
}

int
store_put(int dirfd, int64_t id, const char *ext, const void *bytes, size_t len,
    int *replaced)
{
	return store_put_hooked(dirfd, id, ext, bytes, len, replaced, NULL);
}

int
store_delete_hooked(int dirfd, int64_t id, const struct store_hooks *hk)
{
	char name[NAME_MAX_];
	struct stat old[8];
	size_t nold = 0;
	const char *e;
	int lfd, err = 0, removed = 0;

	if ((lfd = lock_id(dirfd, id)) == -1)
		return errno;
	for (size_t i = 0; (e = ext_name(i)) != NULL; i++) {
		id_name(name, sizeof(name), id, e);
		if (nold < sizeof(old) / sizeof(old[0]) &&
		    store_fstatat(dirfd, name, &old[nold], 0) == 0)
			nold++;
		if (store_unlinkat(dirfd, name, 0) == 0)
			removed++;
		else if (errno != ENOENT && err == 0)
			err = errno;
	}
	if (removed > 0 && fsync(dirfd) == -1 && err == 0)
		err = errno;
	tell_replaced(hk, old, nold);
	close(lfd);
	if (err == 0 && removed == 0)
		err = ENOENT;
	return err;
}

int
store_delete(int dirfd, int64_t id)
{
	return store_delete_hooked(dirfd, id, NULL);
}

/*
 * Reads HOST and PID out of ".tmp-ID-HOST-PID-RAND" (ID may be negative,
 * so the fields are taken from the right). Returns 0, or -1 when the name
 * is not one this module makes.
 */
static int
tmp_owner(const char *name, char host[17], pid_t *pid)
{
	const char *end = name + strlen(name), *dash[3];
	const char *p = end;
	int64_t v;

	for (int k = 0; k < 3; k++) {
		while (p > name && p[-1] != '-')
			p--;
		if (p == name)
			return -1;
		dash[k] = --p;	/* dash[0] before RAND, [1] before PID, [2] before HOST */
	}
	if (dash[1] - dash[2] - 1 != 16)
		return -1;
	memcpy(host, dash[2] + 1, 16);
	host[16] = '\0';
	if (num_parse(dash[1] + 1, (size_t)(dash[0] - dash[1] - 1), 1, INT_MAX, &v) == -1)
		return -1;
	*pid = (pid_t)v;
	return 0;
}

int
store_clean_tmp(int dirfd, int64_t max_age)
{
	char ours[17], host[17];
	struct dirent *de;
	struct stat st;
	DIR *d;
	pid_t pid;
	time_t now = time(NULL);
	int fd, n = 0;

	host_key(ours);
	/* A descriptor of our own: closedir closes it, and reading moves its
	 * offset, neither of which the caller's dirfd may suffer. */
	if ((fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		int stale;

		if (strncmp(de->d_name, STORE_TMP_PREFIX, strlen(STORE_TMP_PREFIX)) != 0)
			continue;
		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
		    !S_ISREG(st.st_mode))
			continue;
		stale = now - st.st_mtime >= max_age;
		/* On this host and pid namespace, a pid that no longer exists
		 * is a writer that was killed: its file can go at once. */
		if (!stale && strcmp(ours, HOST_UNKNOWN) != 0 &&
		    tmp_owner(de->d_name, host, &pid) == 0 && strcmp(host, ours) == 0 &&
		    kill(pid, 0) == -1 && errno == ESRCH)
			stale = 1;
		if (stale && unlinkat(fd, de->d_name, 0) == 0)
			n++;
	}
	closedir(d);
	return n;
}

int
store_lock(int dirfd, int64_t id)
{
	return lock_id(dirfd, id);
}

static int
store_tmp_create(int dirfd, int64_t id, char *tmp, size_t tmplen)
{
	char host[17];
	int fd = -1;

	host_key(host);
	for (int tries = 0; tries < 8; tries++) {
		snprintf(tmp, tmplen, STORE_TMP_PREFIX "%lld-%s-%ld-%016llx",
		    (long long)id, host, (long)getpid(), (unsigned long long)random64());
		/* 0644 (less the umask): in x-accel and x-sendfile modes the
		 * front server opens the file as its own user. */
		fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC | O_NOCTTY, 0644);
		if (fd != -1 || errno != EEXIST)
			break;
	}
	return fd;
}

/*
 * Whether a call that failed should be made again: only after ESTALE, at
 * most STORE_RETRIES times (store.h). Counts and logs the retry.
 */
static int
retry_stale(int *tries, const char *call, const char *name)
{
	if (errno != ESTALE || *tries >= STORE_RETRIES)
		return 0;
	++*tries;
	stats_add_shared(ST_ESTALE_RETRIES, 1);
	log_debug("store: %s %s: %s; made again", call, name, strerror(ESTALE));
	return 1;
}

int
store_fstatat(int dirfd, const char *name, struct stat *st, int flags)
{
	int rc, tries = 0;

	while ((rc = fstatat(dirfd, name, st, flags)) == -1 &&
	    retry_stale(&tries, "fstatat", name))
		;
	return rc;
}

int
store_openat(int dirfd, const char *name, int flags, mode_t mode)
{
	int fd, tries = 0;

	while ((fd = openat(dirfd, name, flags, mode)) == -1 &&
	    retry_stale(&tries, "open", name))
		;
	return fd;
}

int
store_renameat(int dirfd, const char *from, const char *to)
{
	int rc, tries = 0;

	while ((rc = renameat(dirfd, from, dirfd, to)) == -1 &&
	    retry_stale(&tries, "rename", to))
		;
	return rc;
}

int
store_unlinkat(int dirfd, const char *name, int flags)
{
	int rc, tries = 0;

	while ((rc = unlinkat(dirfd, name, flags)) == -1 &&
	    retry_stale(&tries, "unlink", name))
		;
	return rc;
}

/*
 * Every size directory of .v gets store_clean_tmp: the sizes of this
 * configuration, and those of an older one that --prune has not removed
 * yet, since a writer of either may have died there. One readdir of .v,
 * one of each size directory; subdirectories of a size directory are not
 * vmake's and are left alone.
 */
int
store_clean_tmp_variants(int dirfd, int64_t max_age)
{
	struct dirent *de;
	DIR *d;
	int vfd, fd, n = 0, err = 0;

	vfd = openat(dirfd, VARIANT_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (vfd == -1)
		return errno == ENOENT ? 0 : -1;
	if ((d = fdopendir(vfd)) == NULL) {
		err = errno;
		close(vfd);
		errno = err;
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		int k;

		if (de->d_name[0] == '.')
			continue;
		fd = openat(vfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd == -1)
			continue;	/* not a directory, or gone meanwhile */
		if ((k = store_clean_tmp(fd, max_age)) > 0)
			n += k;
		close(fd);
	}
	closedir(d);
	return n;
}

int
store_open_dir(int dfd, const char *name, int create)
{
	if (create && mkdirat(dfd, name, 0755) == -1 && errno != EEXIST)
		return -1;
	return openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

unsigned char *
store_read_file(int dfd, const char *name, size_t max, size_t *len, struct stat *st)
{
	unsigned char *buf = NULL;
	size_t got = 0;
	int fd, err = 0;

	fd = store_openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0);
	if (fd == -1)
		return NULL;
	if (fstat(fd, st) == -1)
		err = errno;
	else if (!S_ISREG(st->st_mode))
		err = EINVAL;
	else if ((uint64_t)st->st_size > max)
		err = EFBIG;
	else if ((buf = malloc(st->st_size > 0 ? (size_t)st->st_size : 1)) == NULL)
		err = ENOMEM;
	while (err == 0 && got < (size_t)st->st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st->st_size - got);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			err = n == 0 ? EIO : errno;	/* shrank while read */
		else
			got += (size_t)n;
	}
	close(fd);
	if (err != 0) {
		free(buf);
		errno = err;
		return NULL;
	}
	*len = got;
	return buf;
}
