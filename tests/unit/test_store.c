/* Unit tests for store.c: put, replace, delete, the order of rename and
 * unlink, concurrent writers, writers killed at every step, and the removal
 * of the temporary files they leave. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ext.h"
#include "store.h"
#include "tap.h"

static char dir[] = "/tmp/test_store.XXXXXX";
static int dfd;

/* ---- the test seam: store_put calls this at each step ---- */

static const char *kill_at;		/* SIGKILL ourselves at this step */
static const char *stop_at;		/* SIGSTOP ourselves at this step */
static int64_t watch_id;		/* check the directory at "renamed" */
static const char *watch_old, *watch_new;
static int watch_ok = -1;

static int exists(int64_t id, const char *ext);

void
store_test_point(const char *step)
{
	if (kill_at != NULL && strcmp(step, kill_at) == 0)
		raise(SIGKILL);
	if (stop_at != NULL && strcmp(step, stop_at) == 0)
		raise(SIGSTOP);
	if (watch_old != NULL && strcmp(step, "renamed") == 0)
		watch_ok = exists(watch_id, watch_new) && exists(watch_id, watch_old);
}

/* ---- helpers ---- */

static int
exists(int64_t id, const char *ext)
{
	char name[64];
	struct stat st;

	snprintf(name, sizeof(name), "%lld%s", (long long)id, ext);
	return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Reads a whole file beneath the directory (never through a symlink);
 * returns its length or -1. */
static ssize_t
slurp(const char *name, char *buf, size_t cap)
{
	ssize_t n, got = 0;
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd == -1)
		return -1;
	while ((n = read(fd, buf + got, cap - (size_t)got)) > 0)
		got += n;
	close(fd);
	return n == -1 ? -1 : got;
}

static int
content_is(const char *name, const char *want)
{
	char buf[256];
	ssize_t n = slurp(name, buf, sizeof(buf) - 1);

	if (n < 0)
		return 0;
	buf[n] = '\0';
	return strcmp(buf, want) == 0;
}

/* The directory's names, sorted, space-separated, lock file left out. */
static const char *
listing(void)
{
	static char out[4096];
	struct dirent **ents;
	int n = scandir(dir, &ents, NULL, alphasort);

	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		const char *s = ents[i]->d_name;

		if (strcmp(s, ".") != 0 && strcmp(s, "..") != 0 &&
		    strcmp(s, STORE_LOCK_NAME) != 0 && strlen(out) + strlen(s) + 2 < sizeof(out)) {
			if (out[0])
				strcat(out, " ");
			strcat(out, s);
		}
		free(ents[i]);
	}
	free(ents);
	return out;
}

static int
count_tmp(void)
{
	const char *l = listing();
	int n = 0;

	for (const char *p = l; (p = strstr(p, STORE_TMP_PREFIX)) != NULL; p++)
		n++;
	return n;
}

static void
touch(const char *name, const char *text)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd == -1 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
		perror(name);
		exit(1);
	}
	close(fd);
}

static void
wipe(void)
{
	char cmd[200];

	snprintf(cmd, sizeof(cmd), "find '%s' -mindepth 1 -delete", dir);
	if (system(cmd) != 0)
		exit(1);
}

static int
put(int64_t id, const char *ext, const char *text, int *replaced)
{
	return store_put(dfd, id, ext, text, strlen(text), replaced);
}

/* ---- put, replace, delete: a table run in order on one directory ---- */

enum op { PUT, DEL, TOUCH, LINK };
static const struct {
	enum op op;
	int64_t id;
	const char *ext, *text;
	int want_rc, want_replaced;
	const char *want_ls;	/* the directory afterwards */
} steps[] = {
	{ PUT, 1000, ".png", "A", 0, 0, "1000.png" },
	{ PUT, 1000, ".png", "B", 0, 1, "1000.png" },
	{ PUT, 1000, ".jpg", "C", 0, 1, "1000.jpg" },
	{ PUT, 1001, ".webp", "D", 0, 0, "1000.jpg 1001.webp" },
	{ PUT, 1000, ".bmp", "E", EINVAL, 0, "1000.jpg 1001.webp" },
	{ PUT, 1000, "png", "E", EINVAL, 0, "1000.jpg 1001.webp" },
	{ PUT, 1000, ".jpg/../x", "E", EINVAL, 0, "1000.jpg 1001.webp" },
	{ TOUCH, 1000, ".png", "old", 0, 0, "1000.jpg 1000.png 1001.webp" },
	{ TOUCH, 1000, ".jpeg", "old", 0, 0, "1000.jpeg 1000.jpg 1000.png 1001.webp" },
	{ TOUCH, 1000, ".gif", "old", 0, 0, "1000.gif 1000.jpeg 1000.jpg 1000.png 1001.webp" },
	{ TOUCH, 1000, ".webp", "old", 0, 0,
	  "1000.gif 1000.jpeg 1000.jpg 1000.png 1000.webp 1001.webp" },
	{ PUT, 1000, ".gif", "F", 0, 1, "1000.gif 1001.webp" },
	{ DEL, 1000, NULL, NULL, 0, 0, "1001.webp" },
	{ DEL, 1000, NULL, NULL, ENOENT, 0, "1001.webp" },
	{ PUT, -1, ".png", "G", 0, 0, "-1.png 1001.webp" },
	{ TOUCH, -1, ".jpg", "old", 0, 0, "-1.jpg -1.png 1001.webp" },
	{ DEL, -1, NULL, NULL, 0, 0, "1001.webp" },
	{ DEL, 1001, NULL, NULL, 0, 0, "" },
	/* Symlinks in the store are replaced or removed, never followed. */
	{ LINK, 7, ".png", "../outside", 0, 0, "7.png" },
	{ PUT, 7, ".png", "H", 0, 1, "7.png" },
	{ LINK, 7, ".gif", "../outside", 0, 0, "7.gif 7.png" },
	{ DEL, 7, NULL, NULL, 0, 0, "" },
};

static void
test_steps(void)
{
	char outside[300], name[64];

	snprintf(outside, sizeof(outside), "%s.outside", dir);
	{
		FILE *f = fopen(outside, "w");
		fputs("outside", f);
		fclose(f);
	}
	for (size_t i = 0; i < NELEM(steps); i++) {
		int rc = 0, replaced = -1;

		snprintf(name, sizeof(name), "%lld%s", (long long)steps[i].id,
		    steps[i].ext ? steps[i].ext : "");
		switch (steps[i].op) {
		case PUT:
			rc = put(steps[i].id, steps[i].ext, steps[i].text, &replaced);
			break;
		case DEL:
			rc = store_delete(dfd, steps[i].id);
			break;
		case TOUCH:
			touch(name, steps[i].text);
			break;
		case LINK:
			{
				char target[300];
				snprintf(target, sizeof(target), "%s.outside", dir);
				if (symlinkat(target, dfd, name) == -1)
					perror("symlinkat");
			}
			break;
		}
		ok(rc == steps[i].want_rc && strcmp(listing(), steps[i].want_ls) == 0 &&
		    (steps[i].op != PUT || rc != 0 || (replaced == steps[i].want_replaced &&
		    content_is(name, steps[i].text))),
		    "%s %lld%s: rc %d, replaced %d, left [%s]",
		    steps[i].op == PUT ? "put" : steps[i].op == DEL ? "delete" :
		    steps[i].op == TOUCH ? "(make)" : "(symlink)", (long long)steps[i].id,
		    steps[i].ext ? steps[i].ext : "", rc, replaced, listing());
	}
	{
		char buf[32];
		FILE *f = fopen(outside, "r");
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);

		fclose(f);
		buf[n] = '\0';
		ok(strcmp(buf, "outside") == 0, "the symlinks' target is untouched");
		unlink(outside);
	}
	ok(count_tmp() == 0, "no temporary file left by any of the above");
}

/* ---- the order: the new name is in place before the old one goes ---- */

static void
test_order(void)
{
	int replaced;

	wipe();
	touch("50.jpg", "old");
	watch_id = 50;
	watch_old = ".jpg";
	watch_new = ".png";
	watch_ok = -1;
	ok(put(50, ".png", "new", &replaced) == 0 && watch_ok == 1,
	    "right after the rename, 50.png (new) and 50.jpg (old) both exist: "
	    "the id never has no file");
	watch_old = NULL;
	ok(strcmp(listing(), "50.png") == 0, "then 50.jpg is gone");
}

/* ---- the lock: held from before the rename until the unlinks are done ---- */

static void
test_lock(void)
{
	struct flock fl;
	pid_t a, b;
	int sa, sb, lfd, replaced;

	wipe();
	touch("60.gif", "old");
	/* Writer A stops right after its rename, before its unlinks. */
	if ((a = fork()) == 0) {
		stop_at = "renamed";
		_exit(put(60, ".png", "A", &replaced) != 0);
	}
	waitpid(a, &sa, WUNTRACED);
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	lfd = openat(dfd, STORE_LOCK_NAME, O_RDWR);
	ok(WIFSTOPPED(sa) && lfd != -1 && fcntl(lfd, F_OFD_GETLK, &fl) == 0 &&
	    fl.l_type == F_WRLCK, "a writer between rename and unlink holds the id's lock");
	close(lfd);
	/* Writer B, another extension, must wait for A, then win. */
	if ((b = fork()) == 0)
		_exit(put(60, ".jpg", "B", &replaced) != 0);
	kill(a, SIGCONT);
	waitpid(a, &sa, 0);
	waitpid(b, &sb, 0);
	ok(WIFEXITED(sa) && WEXITSTATUS(sa) == 0 && WIFEXITED(sb) && WEXITSTATUS(sb) == 0 &&
	    strcmp(listing(), "60.jpg") == 0 && content_is("60.jpg", "B"),
	    "two puts with different extensions: the last one to take the lock is "
	    "the only file left [%s]", listing());
}

/* ---- concurrent writers and readers of one id ---- */

#define PAYLOAD 65536
#define WRITERS 6
#define PUTS 15

/* Writer w's payload: one byte value throughout, so a torn file shows. */
static void
payload(char *buf, int w)
{
	memset(buf, 'a' + w, PAYLOAD);
}

static int
whole(const char *buf, ssize_t n)
{
	if (n != PAYLOAD || buf[0] < 'a' || buf[0] >= 'a' + WRITERS)
		return 0;
	for (ssize_t i = 1; i < n; i++)
		if (buf[i] != buf[0])
			return 0;
	return 1;
}

/* A reader as resolve.c reads: the first extension that exists. Counts
 * torn reads (must be 0) and lookups that found no file. */
static void
reader(int fdout)
{
	static char buf[PAYLOAD + 16];
	int torn = 0, found = 0, none = 0;

	for (int round = 0; round < 3000; round++) {
		const char *e;
		int hit = 0;

		for (size_t i = 0; (e = ext_name(i)) != NULL && !hit; i++) {
			char name[32];
			ssize_t n;

			snprintf(name, sizeof(name), "9%s", e);
			if ((n = slurp(name, buf, sizeof(buf))) < 0)
				continue;
			hit = 1;
			if (!whole(buf, n))
				torn++;
		}
		found += hit;
		none += !hit;
	}
	dprintf(fdout, "%d %d %d\n", torn, found, none);
	_exit(0);
}

static void
test_concurrent(void)
{
	static char buf[PAYLOAD + 16];
	pid_t kids[WRITERS + 1];
	int p[2], torn = -1, found = 0, none = 0, bad_rc = 0, replaced;
	ssize_t n;
	FILE *f;
	const char *e;
	int files = 0;

	wipe();
	payload(buf, 0);
	store_put(dfd, 9, ".png", buf, PAYLOAD, &replaced);
	if (pipe(p) == -1)
		exit(1);
	if ((kids[WRITERS] = fork()) == 0) {
		close(p[0]);
		reader(p[1]);
	}
	close(p[1]);
	for (int w = 0; w < WRITERS; w++) {
		if ((kids[w] = fork()) == 0) {
			int rc = 0;

			payload(buf, w);
			for (int k = 0; k < PUTS; k++)
				rc |= store_put(dfd, 9, ext_name((size_t)(w + k) % 5), buf,
				    PAYLOAD, &replaced);
			_exit(rc != 0);
		}
	}
	for (int w = 0; w <= WRITERS; w++) {
		int st;

		waitpid(kids[w], &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			bad_rc++;
	}
	f = fdopen(p[0], "r");
	if (fscanf(f, "%d %d %d", &torn, &found, &none) != 3)
		torn = -1;
	fclose(f);
	ok(bad_rc == 0, "%d writers x %d puts to one id, 5 extensions in turn: every put "
	    "succeeded", WRITERS, PUTS);
	ok(torn == 0, "a concurrent reader never read a torn file (%d reads)", found);
	if (none > 0)
		printf("# %d of %d lookups found no file: an extension change slipped "
		    "between two of the reader's fstatat calls (see store.h)\n", none,
		    found + none);
	for (size_t i = 0; (e = ext_name(i)) != NULL; i++) {
		char name[32];

		snprintf(name, sizeof(name), "9%s", e);
		if ((n = slurp(name, buf, sizeof(buf))) >= 0) {
			files++;
			if (!whole(buf, n))
				files += 100;
		}
	}
	ok(files == 1, "afterwards exactly one whole file for the id [%s]", listing());
	ok(count_tmp() == 0, "and no temporary file");
}

/* ---- writers killed at every step ---- */

static const char *const kill_steps[] = {
	"created", "written", "synced", "locked", "renamed", "unlinked", "done", NULL,
};

/* The avatar a reader gets for the id: the first extension that exists. */
static const char *
reader_sees(int64_t id, char *buf, size_t cap)
{
	const char *e;

	for (size_t i = 0; (e = ext_name(i)) != NULL; i++) {
		char name[32];
		ssize_t n;

		snprintf(name, sizeof(name), "%lld%s", (long long)id, e);
		if ((n = slurp(name, buf, cap - 1)) >= 0) {
			buf[n] = '\0';
			return buf;
		}
	}
	return NULL;
}

static void
test_killed(void)
{
	static char big[1 << 20];
	char seen[1 << 20 | 64];
	int intact = 0, tmp_seen = 0, cleaned = 0, relock = 0;
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();

	printf("# seed %u\n", seed);
	srand(seed);
	memset(big, 'N', sizeof(big) - 1);
	for (int it = 0; it < 20; it++) {
		const char *step = kill_steps[it % 8];	/* NULL: a kill at a random time */
		const char *ext = rand() % 2 ? ".png" : ".jpg";
		const char *got;
		int replaced, st, ntmp;
		pid_t pid;

		wipe();
		touch(rand() % 2 ? "77.png" : "77.webp", "OLD");
		if ((pid = fork()) == 0) {
			kill_at = step;
			store_put(dfd, 77, ext, big, sizeof(big) - 1, &replaced);
			_exit(step != NULL ? 3 : 0);	/* the kill did not happen */
		}
		if (step == NULL) {
			struct timespec ts = { 0, (long)(rand() % 3000) * 1000 };
			nanosleep(&ts, NULL);
			kill(pid, SIGKILL);
		}
		waitpid(pid, &st, 0);
		got = reader_sees(77, seen, sizeof(seen));
		if (got != NULL && (strcmp(got, "OLD") == 0 || strcmp(got, big) == 0) &&
		    (step == NULL || (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)))
			intact++;
		else
			printf("# killed at %s: reader sees %.10s [%s]\n", step ? step : "random",
			    got ? got : "(nothing)", listing());
		ntmp = count_tmp();
		tmp_seen += ntmp > 0;
		/* Fresh files (max age an hour): only the dead pid lets them go. */
		if (store_clean_tmp(dfd, 3600) == ntmp && count_tmp() == 0)
			cleaned++;
		else
			printf("# killed at %s: after cleanup [%s]\n", step ? step : "random",
			    listing());
		/* The dead writer's lock went with it: a new put gets through. */
		if (put(77, ".gif", "NEXT", &replaced) == 0 && strcmp(listing(), "77.gif") == 0)
			relock++;
	}
	ok(intact == 20, "20 writers killed (at each step, and at random times): "
	    "the old avatar or the new one, whole, every time (%d)", intact);
	ok(tmp_seen >= 3, "kills before the rename left temporary files (%d times)", tmp_seen);
	ok(cleaned == 20, "store_clean_tmp removed every one at once: its writer is dead (%d)",
	    cleaned);
	ok(relock == 20, "and the next put to the id went through (%d)", relock);
}

/* ---- cleanup spares live writers and other hosts' fresh files ---- */

static int
find_tmp(char *name, size_t len)
{
	const char *l = listing(), *p = strstr(l, STORE_TMP_PREFIX);
	size_t n;

	if (p == NULL)
		return -1;
	n = strcspn(p, " ");
	if (n >= len)
		return -1;
	memcpy(name, p, n);
	name[n] = '\0';
	return 0;
}

static void
test_clean(void)
{
	char tmp[128], foreign[128];
	struct timespec old[2];
	int replaced, st;
	pid_t pid;

	wipe();
	touch("1.png", "keep");
	touch(".tmpfile", "not ours");
	/* A live writer, stopped between writing and renaming. */
	if ((pid = fork()) == 0) {
		stop_at = "synced";
		_exit(put(2, ".png", "live", &replaced) != 0);
	}
	waitpid(pid, &st, WUNTRACED);
	ok(WIFSTOPPED(st) && find_tmp(tmp, sizeof(tmp)) == 0,
	    "a writer stopped after its fsync holds %s", tmp);
	ok(store_clean_tmp(dfd, STORE_TMP_MAX_AGE) == 0 && count_tmp() == 1,
	    "cleanup keeps a live writer's file");
	kill(pid, SIGCONT);
	waitpid(pid, &st, 0);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0 && content_is("2.png", "live"),
	    "and that writer then completes its put");

	/* Another host's file (other host key, pid 1): its pid says nothing
	 * here, only its age counts. */
	snprintf(foreign, sizeof(foreign), STORE_TMP_PREFIX "3-0123456789abcdef-1-00000000000000ff");
	touch(foreign, "other host");
	snprintf(tmp, sizeof(tmp), STORE_TMP_PREFIX "-5-0123456789abcdef-999999-1");
	touch(tmp, "other host, negative id");
	ok(store_clean_tmp(dfd, STORE_TMP_MAX_AGE) == 0 && count_tmp() == 2,
	    "another host's fresh files are kept [%s]", listing());
	old[0].tv_sec = old[1].tv_sec = time(NULL) - STORE_TMP_MAX_AGE - 1;
	old[0].tv_nsec = old[1].tv_nsec = 0;
	utimensat(dfd, foreign, old, AT_SYMLINK_NOFOLLOW);
	ok(store_clean_tmp(dfd, STORE_TMP_MAX_AGE) == 1 && count_tmp() == 1,
	    "once older than %d s, one is removed", STORE_TMP_MAX_AGE);
	utimensat(dfd, tmp, old, AT_SYMLINK_NOFOLLOW);
	ok(store_clean_tmp(dfd, STORE_TMP_MAX_AGE) == 1 && count_tmp() == 0,
	    "and so is the other");
	/* Old non-temporary files are none of its business. */
	utimensat(dfd, "1.png", old, 0);
	utimensat(dfd, ".tmpfile", old, 0);
	if (mkdirat(dfd, STORE_TMP_PREFIX "dir-0123456789abcdef-1-1", 0755) == 0)
		utimensat(dfd, STORE_TMP_PREFIX "dir-0123456789abcdef-1-1", old, 0);
	ok(store_clean_tmp(dfd, STORE_TMP_MAX_AGE) == 0 &&
	    strcmp(listing(), ".tmp-dir-0123456789abcdef-1-1 .tmpfile 1.png 2.png") == 0,
	    "avatars, other dot files and directories are left alone [%s]", listing());
}


/* The names in an open directory, . and .. left out. */
static int
count_in(int fd)
{
	struct dirent *de;
	DIR *d;
	int n = 0, fd2 = dup(fd);

	if (fd2 == -1 || (d = fdopendir(fd2)) == NULL)
		return -1;
	rewinddir(d);
	while ((de = readdir(d)) != NULL)
		n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
	closedir(d);
	return n;
}

/* ---- cleanup in the variant size directories (vmake.h's .v/SIZE) ---- */

/* Files planted under .v: old ones date from before STORE_TMP_MAX_AGE;
 * ".tmp-" names of host 0123456789abcdef are another host's. */
static const struct {
	const char *path;
	int old, kept;
} vfiles[] = {
	{ ".v/64/.tmp-5-0123456789abcdef-1-00000000000000aa",	1, 0 },
	{ ".v/64/.tmp-5-0123456789abcdef-1-00000000000000bb",	0, 1 },	/* fresh: its writer may live */
	{ ".v/full/.tmp--5-0123456789abcdef-77-1",		1, 0 },
	{ ".v/512/.tmp-6-0123456789abcdef-1-1",			1, 0 },	/* a size no longer configured */
	{ ".v/64/5.2a-17f0.png",				1, 1 },	/* a variant */
	{ ".v/64/deeper/.tmp-7-0123456789abcdef-1-1",		1, 1 },	/* not vmake's */
	{ ".v/.tmp-8-0123456789abcdef-1-1",			1, 1 },	/* .v itself holds only sizes */
	{ ".tmp-9-0123456789abcdef-1-1",			1, 1 },	/* store_clean_tmp's, not this */
};

static void
test_clean_variants(void)
{
	char made[128];
	struct timespec old[2];
	struct stat st;
	int fd, gone = 0, wrong = 0;
	pid_t pid;

	wipe();
	ok(store_clean_tmp_variants(dfd, STORE_TMP_MAX_AGE) == 0,
	    "no .v directory: nothing to do, no error");
	mkdirat(dfd, ".v", 0755);
	mkdirat(dfd, ".v/64", 0755);
	mkdirat(dfd, ".v/64/deeper", 0755);
	mkdirat(dfd, ".v/full", 0755);
	mkdirat(dfd, ".v/512", 0755);
	old[0].tv_sec = old[1].tv_sec = time(NULL) - STORE_TMP_MAX_AGE - 1;
	old[0].tv_nsec = old[1].tv_nsec = 0;
	for (size_t i = 0; i < NELEM(vfiles); i++) {
		touch(vfiles[i].path, "x");
		if (vfiles[i].old)
			utimensat(dfd, vfiles[i].path, old, AT_SYMLINK_NOFOLLOW);
	}
	/* A writer of this host that died just now: its file goes at once. */
	if ((pid = fork()) == 0) {
		int vfd = openat(dfd, ".v/64", O_RDONLY | O_DIRECTORY);

		_exit(vfd == -1 || store_write_tmp(vfd, 5, "x", 1, 0, made, sizeof(made)) != 0);
	}
	waitpid(pid, NULL, 0);
	fd = openat(dfd, ".v/64", O_RDONLY | O_DIRECTORY);
	ok(store_clean_tmp_variants(dfd, STORE_TMP_MAX_AGE) == 4,
	    "4 temporary files removed: 3 old ones of another host, 1 of a dead writer here");
	for (size_t i = 0; i < NELEM(vfiles); i++) {
		int there = fstatat(dfd, vfiles[i].path, &st, AT_SYMLINK_NOFOLLOW) == 0;

		wrong += there != vfiles[i].kept;
		gone += !there;
	}
	ok(wrong == 0 && gone == 3, "the old .tmp- files of every size directory went, the rest stayed");
	/* Left in .v/64: the fresh .tmp-, the variant, deeper/. */
	ok(fd != -1 && count_in(fd) == 3, "and the dead writer's file of this host too");
	if (fd != -1)
		close(fd);
}

int
main(void)
{
	char cmd[200];

	setvbuf(stdout, NULL, _IONBF, 0);
	if (mkdtemp(dir) == NULL || (dfd = open(dir, O_RDONLY | O_DIRECTORY)) == -1) {
		perror(dir);
		return 1;
	}
	test_steps();
	test_order();
	test_lock();
	test_concurrent();
	test_killed();
	test_clean();
	test_clean_variants();
	close(dfd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", dir);
	return tap_done();
}
