/*
 * Unit tests for resolve.c: its retries after transient errors (issue 14),
 * then its memory of missing ids (the second table below).
 *
 * Retries after transient errors:
 * through the resolve_test_fault seam, one call of a lookup fails a given
 * number of times with a given errno, as a distributed file system does
 * while another host renames over the name. Table-driven: the call, the
 * errno, how many times, and whether the avatar must still be found and
 * how many retries /metrics must count. A transient error retried must
 * find the avatar; any other error must not be retried; retries are
 * bounded.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "images.h"
#include "log.h"
#include "resolve.h"
#include "stats.h"
#include "tap.h"

/* The fault now armed: call fails `left` more times with err, on 7.png
 * only (a walk also looks at 7.jpg, 7.gif...). */
static const char *fault_call;
static int fault_err, fault_left;

int
resolve_test_fault(const char *call, const char *name)
{
	if (fault_call == NULL || fault_left == 0 || strcmp(call, fault_call) != 0 ||
	    strcmp(name, "7.png") != 0)
		return 0;
	fault_left--;
	return fault_err;
}

static const struct {
	const char *call;
	int err, times;
	int found;		/* the avatar is served */
	int retries;		/* counted in estale_retries */
} cases[] = {
	/* call      errno    times found retries */
	{ NULL,      0,       0,    1,    0 },
	{ "fstatat", ESTALE,  1,    1,    1 },
	{ "open",    ESTALE,  1,    1,    1 },
	{ "fstat",   ESTALE,  1,    1,    1 },
	{ "read",    ESTALE,  1,    1,    1 },
	{ "read",    ESTALE,  2,    1,    2 },
	{ "open",    ESTALE,  3,    1,    3 },	/* the last retry allowed */
	{ "open",    ESTALE,  4,    0,    3 },	/* bounded: then it does not count */
	{ "fstatat", ESTALE,  9,    0,    3 },
	/* Gone between fstatat and open (an extension change): look again. */
	{ "open",    ENOENT,  1,    1,    1 },
	/* Not transient: refused at once, never retried. */
	{ "open",    EACCES,  1,    0,    0 },
	{ "fstat",   EIO,     1,    0,    0 },
	{ "read",    EIO,     1,    0,    0 },
	{ "fstatat", EACCES,  1,    0,    0 },
};

/* A total from the JSON counters, by name. */
static long
counter(const char *key)
{
	static char buf[8192];
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	if (stats_json(buf, sizeof(buf)) < 0 || (p = strstr(buf, pat)) == NULL)
		return -1;
	return strtol(p + strlen(pat), NULL, 10);
}

static long
retries_now(void)
{
	return counter("estale_retries");
}

/*
 * Missing ids: a lookup of an id with no file is answered from memory
 * (missing_known counts it) only while the directory is exactly as it was
 * when the id was last walked and found missing, and only when it had not
 * changed for 2 s before that walk. Steps, in order, on one directory:
 * what is done to it, the id looked up, whether it must be found, and
 * whether that lookup must have come from memory.
 */
enum step_do { NOTHING, SETTLE, ADD_8, DEL_8, ADD_9, ADD_BAD_10 };
static const struct {
	enum step_do what;
	int64_t id;
	int found, from_memory;
	const char *why;
} steps[] = {
	{ NOTHING,    8,  0, 0, "8 missing in a directory just made" },
	{ NOTHING,    8,  0, 0, "not remembered: the directory changed under 2 s ago" },
	{ SETTLE,     8,  0, 0, "8 missing, walked, now remembered" },
	{ NOTHING,    8,  0, 1, "8 missing again: from memory" },
	{ NOTHING,    8,  0, 1, "and again" },
	{ ADD_8,      8,  1, 0, "8.jpg made: found at once" },
	{ DEL_8,      8,  0, 0, "8.jpg removed: missing, walked" },
	{ SETTLE,     8,  0, 0, "walked again, remembered" },
	{ NOTHING,    8,  0, 1, "from memory" },
	{ ADD_9,      8,  0, 0, "another name made: walked again" },
	{ ADD_8,      8,  1, 0, "8.jpg made again: found" },
	{ ADD_BAD_10, 10, 0, 0, "10.png is no image: not found" },
	{ SETTLE,     10, 0, 0, "walked" },
	{ NOTHING,    10, 0, 0, "a name that is there but does not count is never remembered" },
};

/* Writes len bytes as dir/name, under a temporary name renamed into
 * place, as the store does. */
static int
put_file(const char *dir, const char *name, const unsigned char *data, size_t len)
{
	char tmp[128], path[128];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s/.tmp-%s", dir, name);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644)) == -1)
		return -1;
	if (write(fd, data, len) != (ssize_t)len || close(fd) == -1)
		return -1;
	return rename(tmp, path);
}

static void
missing_ids(void)
{
	char dir[] = "/tmp/test_resolve_missing.XXXXXX", path[128];
	static const unsigned char junk[] = "not an image at all, just text";
	struct avatar a;
	int dfd;

	if (mkdtemp(dir) == NULL || (dfd = open(dir, O_RDONLY | O_DIRECTORY)) == -1) {
		ok(0, "a directory for the missing ids");
		return;
	}
	resolve_init(dfd, 0, 1 << 20, 1 << 20);
	for (size_t i = 0; i < NELEM(steps); i++) {
		long before;
		int rc, done = 0;

		switch (steps[i].what) {
		case NOTHING:
			done = 1;
			break;
		case SETTLE:
			/* Longer than the 2 s the directory must stay unchanged. */
			done = usleep(1100000) == 0 && usleep(1100000) == 0;
			break;
		case ADD_8:
			done = put_file(dir, "8.jpg", IMG_JPEG, sizeof(IMG_JPEG) - 1) == 0;
			break;
		case DEL_8:
			snprintf(path, sizeof(path), "%s/8.jpg", dir);
			done = unlink(path) == 0;
			break;
		case ADD_9:
			done = put_file(dir, "9.png", IMG_PNG, sizeof(IMG_PNG) - 1) == 0;
			break;
		case ADD_BAD_10:
			done = put_file(dir, "10.png", junk, sizeof(junk) - 1) == 0;
			break;
		}
		before = counter("missing_known");
		rc = resolve_avatar(steps[i].id, &a);
		ok(done && (rc == 0) == steps[i].found &&
		    counter("missing_known") - before == steps[i].from_memory,
		    "missing ids, step %zu: %s", i + 1, steps[i].why);
		if (rc == 0)
			resolve_release(&a);
	}
	/* Many other missing ids, each remembered (the directory is still
	 * settled): they take nothing from the cache, which holds 8.jpg's
	 * entry as before; a flood of made-up ids cannot push avatars out. */
	{
		size_t used = cache_used();
		int all_missing = 1;

		for (int64_t id = 100000; id < 120000; id++)
			all_missing &= resolve_avatar(id, &a) == -1;
		ok(all_missing && cache_used() == used && used > 0,
		    "missing ids: 20000 other missing ids leave the cache as it was (%zu bytes)", used);
	}
	for (const char *const *n = (const char *const[]){ "8.jpg", "9.png", "10.png", NULL }; *n; n++) {
		snprintf(path, sizeof(path), "%s/%s", dir, *n);
		unlink(path);
	}
	close(dfd);
	rmdir(dir);
}

int
main(void)
{
	char dir[] = "/tmp/test_resolve.XXXXXX", path[64];
	struct avatar a;
	int dfd, fd;

	log_set_level(LOG_LVL_ERROR);
	if (mkdtemp(dir) == NULL || stats_init() == -1)
		return 1;
	snprintf(path, sizeof(path), "%s/7.png", dir);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644)) == -1 ||
	    write(fd, IMG_PNG, sizeof(IMG_PNG) - 1) != (ssize_t)(sizeof(IMG_PNG) - 1) ||
	    close(fd) == -1)
		return 1;
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY)) == -1)
		return 1;
	/* Bytes mode: every lookup after a cache drop opens and reads. */
	resolve_init(dfd, 1, 1 << 20, 1 << 20);

	for (size_t i = 0; i < NELEM(cases); i++) {
		long before = retries_now(), counted;
		int rc;

		cache_drop(7, 0);
		fault_call = cases[i].call;
		fault_err = cases[i].err;
		fault_left = cases[i].times;
		rc = resolve_avatar(7, &a);
		counted = retries_now() - before;
		ok((rc == 0) == cases[i].found && (rc != 0 || strcmp(a.name, "7.png") == 0),
		    "%s %s x%d: %s", cases[i].call ? cases[i].call : "no fault",
		    cases[i].err ? strerror(cases[i].err) : "", cases[i].times,
		    cases[i].found ? "7.png found" : "not found");
		ok(counted == cases[i].retries, "  %d retries counted (%ld)",
		    cases[i].retries, counted);
		if (rc == 0)
			resolve_release(&a);
		fault_call = NULL;
	}
	/* After every fault, the same lookup finds the file again. */
	cache_drop(7, 0);
	ok(resolve_avatar(7, &a) == 0, "7.png found once the faults are gone");
	resolve_release(&a);

	close(dfd);
	unlink(path);
	rmdir(dir);

	missing_ids();
	return tap_done();
}
