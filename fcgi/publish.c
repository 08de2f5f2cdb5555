/*
 * publish: keeps DIR/.pub, the checked, untagged tree the fast path serves
 * (see publish.h). Names, checks, copies and removes files; libvips only
 * through image_check. Every path is one name inside a directory opened
 * without following a symlink.
 */
#include "publish.h"
#include "ext.h"
#include "image.h"
#include "log.h"
#include "reqparse.h"
#include "sniff.h"
#include "store.h"
#include "variant.h"
#include "vmake.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define NTYPES (SNIFF_AVIF + 1)
#define TMP_NAME_MAX 96
#define NAME_MAX_ID 32

/* One file read whole: its bytes and its stat. */
struct src {
	unsigned char *bytes;
	size_t len;
	struct stat st;
};

/* Reads a whole regular file of at most max bytes into s (store.h). */
static int
read_whole(int dfd, const char *name, size_t max, struct src *s)
{
	memset(s, 0, sizeof(*s));
	s->bytes = store_read_file(dfd, name, max, &s->len, &s->st);
	return s->bytes == NULL ? -1 : 0;
}

/* The published name dfd/name is the copy of a source with stat *st. */
static int
is_current(int dfd, const char *name, const struct stat *st)
{
	struct stat d;

	return fstatat(dfd, name, &d, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(d.st_mode) &&
	    d.st_size == st->st_size && d.st_mtim.tv_sec == st->st_mtim.tv_sec &&
	    d.st_mtim.tv_nsec == st->st_mtim.tv_nsec;
}

/* Writes bytes as dfd/name through a temporary file and a rename, with
 * the source's mtime. Returns 0 or -1 with errno set. */
static int
put_copy(int dfd, int64_t id, const char *name, const struct src *s)
{
	struct timespec times[2] = { s->st.st_mtim, s->st.st_mtim };
	char tmp[TMP_NAME_MAX];
	int err;

	if ((err = store_write_tmp(dfd, id, s->bytes, s->len, 0, tmp, sizeof(tmp))) != 0) {
		errno = err;
		return -1;
	}
	if (utimensat(dfd, tmp, times, AT_SYMLINK_NOFOLLOW) == -1 ||
	    renameat(dfd, tmp, dfd, name) == -1) {
		err = errno;
		unlinkat(dfd, tmp, 0);
		errno = err;
		return -1;
	}
	return 0;
}

/* Whether variant (size, type) is one this configuration makes for an
 * original of type stored. */
static int
wanted(const struct conf *c, enum sniff_type stored, unsigned size, enum sniff_type t)
{
	struct variant_want all[(VARIANT_SIZES_MAX + 1) * NTYPES];
	size_t n = variant_wants(&c->variants, stored, all, sizeof(all) / sizeof(all[0]));

	for (size_t i = 0; i < n && i < sizeof(all) / sizeof(all[0]); i++)
		if (all[i].size == size && all[i].type == t)
			return 1;
	return 0;
}

/* Reads the current variant (size, t) of the original with tag, or
 * returns -1 when it is not there or its bytes are not of type t. */
static int
read_variant(int dirfd, unsigned size, int64_t id, const char *tag, enum sniff_type t,
    struct src *s)
{
	char path[VARIANT_NAME_MAX];

	if (variant_name(path, sizeof(path), size, id, tag, t) == -1 ||
	    read_whole(dirfd, path, 64u << 20, s) == -1)
		return -1;
	if (sniff_type(s->bytes, s->len) != t) {
		free(s->bytes);
		s->bytes = NULL;
		return -1;
	}
	return 0;
}

/* Finds and reads id's original in the read path's order; a name that is
 * not a regular file does not count. Returns 0, or -1 (none usable). */
static int
read_original(const struct conf *c, int dirfd, int64_t id, struct src *s)
{
	char name[NAME_MAX_ID];
	const char *ext;

	for (size_t i = 0; (ext = ext_name(i)) != NULL; i++) {
		snprintf(name, sizeof(name), "%lld%s", (long long)id, ext);
		if (read_whole(dirfd, name, (size_t)c->upload_max, s) == 0)
			return 0;
		if (errno != ENOENT && errno != ELOOP && errno != EINVAL)
			return -1;	/* too large or unreadable: refused */
	}
	return -1;
}

/* One size directory's wanted content: per type, a source or none.
 * main: the stored type, in SIZE itself (the only name of the id there);
 * conv: the other formats, in SIZE/x. */
struct want_dir {
	unsigned size;			/* 0: full */
	struct src main[NTYPES];	/* bytes NULL: the name must not exist */
	struct src conv[NTYPES];
};

/* Fills w with what size directory w->size must hold for the original o
 * of type stored (o NULL: nothing). */
static void
plan_dir(const struct conf *c, int dirfd, int64_t id, const struct src *o,
    enum sniff_type stored, const char *tag, struct want_dir *w)
{
	if (o == NULL)
		return;
	if (w->size == 0)
		w->main[stored] = *o;	/* borrowed: not freed with the plan */
	else if (wanted(c, stored, w->size, stored))
		(void)read_variant(dirfd, w->size, id, tag, stored, &w->main[stored]);
	for (enum sniff_type t = SNIFF_PNG; t <= SNIFF_AVIF; t++)
		if (t != stored && wanted(c, stored, w->size, t))
			(void)read_variant(dirfd, w->size, id, tag, t, &w->conv[t]);
}

/* Writes what files[] wants in dfd (phase 0) or removes what it does not
 * (phase 1), as stem.EXT (stem: the id's number, or PUBLISH_DEFAULT). */
static int
apply_names(int dfd, int64_t id, const char *stem, const struct src *files, int phase,
    struct publish_result *res)
{
	char name[NAME_MAX_ID];
	int rc = 0;

	for (enum sniff_type t = SNIFF_PNG; t <= SNIFF_AVIF; t++) {
		snprintf(name, sizeof(name), "%s%s", stem, variant_ext(t));
		if (phase == 0 && files[t].bytes != NULL) {
			if (is_current(dfd, name, &files[t].st))
				res->kept++;
			else if (put_copy(dfd, id, name, &files[t]) == 0)
				res->written++;
			else
				rc = -1;
		} else if (phase == 1 && files[t].bytes == NULL) {
			if (unlinkat(dfd, name, 0) == 0)
				res->removed++;
		}
	}
	return rc;
}

/* One size directory and its x, names stem.EXT: phase 0 writes, phase 1
 * removes. */
static int
apply_dir(int pubfd, int64_t id, const char *stem, const struct want_dir *w, int phase,
    struct publish_result *res)
{
	char sub[16];
	int fd, xfd, rc = 0;

	if (variant_subdir(sub, sizeof(sub), w->size) == -1)
		return -1;
	/* ".v/64" -> "64": the same size names as .v. */
	if ((fd = store_open_dir(pubfd, strchr(sub, '/') + 1, phase == 0)) == -1)
		return phase == 0 ? -1 : 0;
	if (apply_names(fd, id, stem, w->main, phase, res) == -1)
		rc = -1;
	if ((xfd = store_open_dir(fd, PUBLISH_CONV, phase == 0)) == -1)
		rc = phase == 0 ? -1 : rc;
	else {
		if (apply_names(xfd, id, stem, w->conv, phase, res) == -1)
			rc = -1;
		close(xfd);
	}
	close(fd);
	return rc;
}

int
publish_id(const struct conf *c, int dirfd, int64_t id, struct publish_result *res)
{
	struct want_dir dirs[VARIANT_SIZES_MAX + 1];
	size_t ndirs = c->variants.nsizes + 1;
	struct image_limits lim;
	struct src o;
	enum sniff_type stored = SNIFF_NONE;
	char tag[VARIANT_TAG_MAX], name[NAME_MAX_ID], stem[NAME_MAX_ID];
	int lfd, pubfd = -1, have = 0, rc = 0, err = 0;

	memset(res, 0, sizeof(*res));
	memset(dirs, 0, sizeof(dirs));
	memset(&o, 0, sizeof(o));
	for (size_t i = 0; i < ndirs; i++)
		dirs[i].size = i == 0 ? 0 : c->variants.sizes[i - 1];
	if ((lfd = store_lock(dirfd, id)) == -1)
		return -1;
	if ((pubfd = store_open_dir(dirfd, PUBLISH_DIR, 1)) == -1) {
		err = errno;
		goto done;
	}
	if (read_original(c, dirfd, id, &o) == 0) {
		have = 1;
		stored = sniff_type(o.bytes, o.len);
		if (stored == SNIFF_NONE || stored == SNIFF_AVIF) {
			res->refused = 1;
			res->why = "type";
		} else if ((res->why = sniff_whole(stored, o.bytes,
		    o.len < SNIFF_HEAD_LEN ? o.len : SNIFF_HEAD_LEN,
		    o.bytes + (o.len < SNIFF_TAIL_LEN ? 0 : o.len - SNIFF_TAIL_LEN),
		    o.len < SNIFF_TAIL_LEN ? o.len : SNIFF_TAIL_LEN, o.len)) != NULL) {
			/* The read path's own rule: what it would refuse is
			 * never published, even when libvips decodes it. */
			res->refused = 1;
		} else {
			int fd = store_open_dir(pubfd, "full", 0);

			/* Checked when it was published, and unchanged since. */
			snprintf(name, sizeof(name), "%lld%s", (long long)id,
			    variant_ext(stored));
			if (fd == -1 || !is_current(fd, name, &o.st)) {
				image_limits_default(&lim);
				lim.max_bytes = (size_t)c->upload_max;
				lim.max_pixels = c->max_pixels;
				lim.max_frames = (unsigned)c->max_frames;
				lim.max_aspect = (unsigned)c->max_aspect;
				if (image_check(&lim, o.bytes, o.len, &res->why) != 0)
					res->refused = 1;
			}
			if (fd != -1)
				close(fd);
		}
	}
	if (have && !res->refused) {
		variant_tag(tag, (uint64_t)o.st.st_size, &o.st.st_mtim);
		for (size_t i = 0; i < ndirs; i++)
			plan_dir(c, dirfd, id, &o, stored, tag, &dirs[i]);
	}
	/* Every new name first, then what must go: a reader never finds an
	 * id it had a moment ago missing. The default avatar's files go out
	 * under PUBLISH_DEFAULT too, which are removed when a missing id is
	 * a 404 (an empty plan). */
	snprintf(stem, sizeof(stem), "%lld", (long long)id);
	for (int phase = 0; phase < 2; phase++)
		for (size_t i = 0; i < ndirs; i++) {
			struct want_dir none = { .size = dirs[i].size };

			if (apply_dir(pubfd, id, stem, &dirs[i], phase, res) == -1)
				err = errno;
			if (id == c->default_id && apply_dir(pubfd, id, PUBLISH_DEFAULT,
			    c->missing == MISSING_DEFAULT ? &dirs[i] : &none, phase, res) == -1)
				err = errno;
		}
done:
	for (size_t i = 0; i < ndirs; i++)
		for (size_t t = 0; t < NTYPES; t++) {
			if (dirs[i].main[t].bytes != o.bytes)
				free(dirs[i].main[t].bytes);
			free(dirs[i].conv[t].bytes);
		}
	free(o.bytes);
	if (pubfd != -1)
		close(pubfd);
	close(lfd);
	if (err != 0) {
		errno = err;
		rc = -1;
	}
	return rc;
}

/* Removes the temporary files a killed publisher left in .pub's
 * directories (store_clean_tmp's rules). */
static void
clean_tmp(const struct conf *c, int dirfd)
{
	int pubfd = store_open_dir(dirfd, PUBLISH_DIR, 0);

	if (pubfd == -1)
		return;
	for (size_t i = 0; i <= c->variants.nsizes; i++) {
		char sub[16];
		int fd, xfd;

		if (variant_subdir(sub, sizeof(sub), i == 0 ? 0 : c->variants.sizes[i - 1]) == -1 ||
		    (fd = store_open_dir(pubfd, strchr(sub, '/') + 1, 0)) == -1)
			continue;
		(void)store_clean_tmp(fd, STORE_TMP_MAX_AGE);
		if ((xfd = store_open_dir(fd, PUBLISH_CONV, 0)) != -1) {
			(void)store_clean_tmp(xfd, STORE_TMP_MAX_AGE);
			close(xfd);
		}
		close(fd);
	}
	close(pubfd);
}

/* The id an avatar's file name names ("1000.png"), or -1 for another name
 * (temporary files, .v, .pub, the lock). */
static int
name_id(const char *name, int64_t *id)
{
	const char *dot = strrchr(name, '.');

	if (dot == NULL || dot == name)
		return -1;
	for (size_t i = 0; ext_name(i) != NULL; i++)
		if (strcmp(dot, ext_name(i)) == 0)
			return req_parse_id(name, strlen(name), id);
	return -1;
}

/* Variants, then the published names, of one id. Returns 1 when its
 * original was refused, 0 otherwise, -1 on a write error. */
static int
publish_one(const struct conf *c, int64_t id, struct publish_result *sum)
{
	struct vmake_result vr;
	struct publish_result r;

	if ((c->variants.nsizes > 0 || c->variants.formats != 0) &&
	    vmake_id(c, c->dirfd, id, &vr) == -1 && errno != ENOENT && errno != EINVAL)
		log_warn("publish: %lld: variants", (long long)id);
	if (publish_id(c, c->dirfd, id, &r) == -1) {
		log_warn("publish: %lld", (long long)id);
		return -1;
	}
	if (r.refused)
		log_warnx("publish: %lld: not published: %s", (long long)id,
		    r.why ? r.why : "refused");
	sum->written += r.written;
	sum->kept += r.kept;
	sum->removed += r.removed;
	sum->refused += r.refused;
	return r.refused;
}

/* Brings the PUBLISH_DEFAULT names in line with the options, whether or
 * not the default id has an original or was published before: the last
 * run may have had another --default-id or --missing. Not counted. */
static void
publish_default(const struct conf *c)
{
	struct publish_result r;

	if (publish_id(c, c->dirfd, c->default_id, &r) == -1)
		log_warn("publish: the default avatar (%lld)", (long long)c->default_id);
}

/* Every id with an original, then every published id without one, then
 * the default avatar's names if neither pass published its id. */
static int
publish_all(const struct conf *c, struct publish_result *sum, unsigned *ids)
{
	int rc = 0, seen_default = 0;

	for (int pass = 0; pass < 2; pass++) {
		int fd = pass == 0 ? dup(c->dirfd) : openat(c->dirfd, PUBLISH_DIR "/full",
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		struct dirent *e;
		DIR *d;

		if (fd == -1 || (d = fdopendir(fd)) == NULL) {
			if (fd != -1)
				close(fd);
			continue;
		}
		while ((e = readdir(d)) != NULL) {
			char name[NAME_MAX_ID];
			struct stat st;
			int64_t id;
			int have = 0;

			if (pass == 0 && name_id(e->d_name, &id) == -1)
				continue;
			if (pass == 1) {
				const char *dot = strrchr(e->d_name, '.');

				if (dot == NULL || e->d_name[0] == '.' ||
				    req_parse_id(e->d_name, strlen(e->d_name), &id) == -1)
					continue;
				for (size_t i = 0; ext_name(i) != NULL && !have; i++) {
					snprintf(name, sizeof(name), "%lld%s", (long long)id,
					    ext_name(i));
					have = fstatat(c->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
				}
				if (have)
					continue;
			}
			(*ids)++;
			seen_default |= id == c->default_id;
			if (publish_one(c, id, sum) == -1)
				rc = -1;
		}
		closedir(d);
	}
	if (!seen_default)
		publish_default(c);
	return rc;
}

int
publish_main(int argc, char **argv)
{
	static struct conf c;
	struct publish_result sum;
	const char *why;
	unsigned ids = 0;
	int rc;

	conf_load(&c, argc, argv);
	log_set_level((enum log_level)c.log_level);
	if (image_init("avatar.fcgi", &why) == -1) {
		fprintf(stderr, "avatar.fcgi publish: libvips: %s\n", why);
		return 2;
	}
	memset(&sum, 0, sizeof(sum));
	clean_tmp(&c, c.dirfd);
	rc = publish_all(&c, &sum, &ids);
	printf("publish: %u ids, %u files written, %u kept, %u removed, %d refused\n",
	    ids, sum.written, sum.kept, sum.removed, sum.refused);
	return rc == -1 ? 1 : 0;
}

/*
 * The watcher. inotify reports names changed in the avatars directory
 * itself (not in .v or .pub, which are directories of their own); each
 * name of an avatar is published again. A queue overflow means changes
 * were lost: everything is published again (a re-run only compares
 * stats). Events are handled in the order read, one read's worth at a
 * time, each id once per read.
 */
int
publish_watch(const struct conf *c)
{
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	char path[64];
	const char *why;
	sigset_t all;
	int fd;

	(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
	(void)prctl(PR_SET_NAME, "avatar-publish");
	/* The manager's mask is inherited: SIGTERM ends this process at
	 * once (a cut publish leaves a temporary file, cleaned below on the
	 * next start, never a half-written name). */
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	if (image_init("avatar.fcgi", &why) == -1) {
		log_warnx("publish: libvips: %s", why);
		return 1;
	}
	clean_tmp(c, c->dirfd);
	publish_default(c);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", c->dirfd);
	if ((fd = inotify_init1(IN_CLOEXEC)) == -1 ||
	    inotify_add_watch(fd, path, IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM |
	    IN_DELETE | IN_CREATE | IN_ATTRIB | IN_ONLYDIR) == -1) {
		log_warn("publish: inotify on %s", c->dir);
		return 1;
	}
	for (;;) {
		int64_t ids[64];
		size_t nids = 0;
		int overflow = 0;
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_warn("publish: inotify read");
			return 1;
		}
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)(void *)p;
			int64_t id;
			size_t k;

			p += sizeof(*ev) + ev->len;
			if (ev->mask & IN_Q_OVERFLOW)
				overflow = 1;
			if (ev->len == 0 || name_id(ev->name, &id) == -1)
				continue;
			for (k = 0; k < nids && ids[k] != id; k++)
				;
			if (k == nids && nids < sizeof(ids) / sizeof(ids[0]))
				ids[nids++] = id;
			else if (k == nids)
				overflow = 1;
		}
		if (overflow) {
			struct publish_result sum;
			unsigned count = 0;

			memset(&sum, 0, sizeof(sum));
			log_warnx("publish: events lost; publishing every id again");
			(void)publish_all(c, &sum, &count);
			continue;
		}
		for (size_t k = 0; k < nids; k++) {
			struct publish_result sum;

			memset(&sum, 0, sizeof(sum));
			if (publish_one(c, ids[k], &sum) == 0)
				log_debug("publish: %lld: written %u, removed %u",
				    (long long)ids[k], sum.written, sum.removed);
		}
	}
}
