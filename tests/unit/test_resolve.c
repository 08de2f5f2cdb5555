/*
 * Unit tests for resolve.c's retries after transient errors (issue 14):
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

/* The estale_retries total from the JSON counters. */
static long
retries_now(void)
{
	static char buf[8192];
	const char *p;

	if (stats_json(buf, sizeof(buf)) < 0 || (p = strstr(buf, "\"estale_retries\":")) == NULL)
		return -1;
	return strtol(p + strlen("\"estale_retries\":"), NULL, 10);
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
	return tap_done();
}
