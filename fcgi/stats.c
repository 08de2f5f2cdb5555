/*
 * stats: the shared counter page and its two renderings.
 */
#include "stats.h"
#include "clock.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/mman.h>
#include <time.h>

#ifndef AVATAR_VERSION
#define AVATAR_VERSION "0"
#endif

struct slot {
	/* A cache line per slot so workers never share one. */
	uint64_t v[ST_NCOUNTERS];
} __attribute__((aligned(64)));

struct shared {
	int64_t started;	/* CLOCK_MONOTONIC seconds */
	int64_t started_wall;
	uint64_t workers_alive;
	uint64_t workers_current;
	uint64_t workers_draining;
	uint64_t restarts;
	struct slot slot[STATS_SLOTS];
	struct slot shared;	/* stats_add_shared's, many writers */
};

static struct shared *sh;
static struct slot *mine;

static const struct {
	const char *json, *prom, *help;
} names[ST_NCOUNTERS] = {
	[ST_REQUESTS] = { "requests", "avatar_requests_total", "Requests answered." },
	[ST_HITS] = { "hits", "avatar_hits_total", "Requested avatars served (200)." },
	[ST_DEFAULTS] = { "defaults", "avatar_defaults_total", "Default avatars served for a missing one (200)." },
	[ST_NOT_MODIFIED] = { "not_modified", "avatar_not_modified_total", "Answers 304 Not Modified." },
	[ST_NOT_FOUND] = { "not_found", "avatar_not_found_total", "Answers 404 Not Found." },
	[ST_METHOD_NOT_ALLOWED] = { "method_not_allowed", "avatar_method_not_allowed_total", "Answers 405 Method Not Allowed." },
	[ST_ERRORS] = { "errors", "avatar_errors_total", "Server errors, aborted responses and rejected peers." },
	[ST_VARIANT_MISSES] = { "variant_misses", "avatar_variant_misses_total", "Sizes or formats asked for before they were made (the best file there was served)." },
	[ST_VARIANT_JOBS] = { "variant_jobs", "avatar_variant_jobs_total", "Jobs sent to the upload processes to make missing variants." },
	[ST_VARIANTS_MADE] = { "variants_made", "avatar_variants_made_total", "Variant files written." },
	[ST_ESTALE_RETRIES] = { "estale_retries", "avatar_estale_retries_total", "File system calls made again after a transient error: ESTALE from a distributed file system during a concurrent rename, or a name gone between its stat and its open." },
	[ST_JOBS_KILLED] = { "jobs_killed", "avatar_upload_jobs_killed_total", "Upload processes killed because their job ran over --job-limit." },
	[ST_MISSING_KNOWN] = { "missing_known", "avatar_missing_known_total", "Lookups of an id with no file answered from memory: the directory had not changed since the id was last found missing." },
};

int
stats_init(void)
{
	void *p = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return -1;
	sh = p;
	sh->started = (clock_ms() / 1000);
	sh->started_wall = (int64_t)time(NULL);
	mine = &sh->slot[STATS_SLOTS - 1];
	return 0;
}

void
stats_use_slot(unsigned slot)
{
	if (sh != NULL && slot < STATS_SLOTS)
		mine = &sh->slot[slot];
}

void
stats_inc(enum stats_counter c)
{
	uint64_t v;

	if (mine == NULL)
		return;
	/* Single writer per slot: load and store, no read-modify-write. */
	v = __atomic_load_n(&mine->v[c], __ATOMIC_RELAXED);
	__atomic_store_n(&mine->v[c], v + 1, __ATOMIC_RELAXED);
}

void
stats_add_shared(enum stats_counter c, uint64_t n)
{
	if (sh != NULL)
		__atomic_fetch_add(&sh->shared.v[c], n, __ATOMIC_RELAXED);
}

void
stats_set_workers(unsigned alive, unsigned current, unsigned draining)
{
	if (sh == NULL)
		return;
	__atomic_store_n(&sh->workers_alive, alive, __ATOMIC_RELAXED);
	__atomic_store_n(&sh->workers_current, current, __ATOMIC_RELAXED);
	__atomic_store_n(&sh->workers_draining, draining, __ATOMIC_RELAXED);
}

void
stats_add_restart(void)
{
	if (sh != NULL)
		__atomic_store_n(&sh->restarts, sh->restarts + 1, __ATOMIC_RELAXED);
}

/* The supervisor writes these while workers read them. */
static uint64_t
load(const uint64_t *v)
{
	return __atomic_load_n(v, __ATOMIC_RELAXED);
}

static void
totals(uint64_t t[ST_NCOUNTERS])
{
	for (int c = 0; c < ST_NCOUNTERS; c++) {
		t[c] = 0;
		for (int s = 0; s < STATS_SLOTS; s++)
			t[c] += __atomic_load_n(&sh->slot[s].v[c], __ATOMIC_RELAXED);
		t[c] += __atomic_load_n(&sh->shared.v[c], __ATOMIC_RELAXED);
	}
}

/* Appends to buf at *off; returns -1 once the buffer is full. */
__attribute__((format(printf, 4, 5)))
static int
put(char *buf, size_t size, size_t *off, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf + *off, size - *off, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size - *off)
		return -1;
	*off += (size_t)n;
	return 0;
}

int
stats_json(char *buf, size_t size)
{
	uint64_t t[ST_NCOUNTERS];
	size_t off = 0;

	if (sh == NULL)
		return -1;
	totals(t);
	if (put(buf, size, &off, "{\"version\":\"%s\",\"uptime_seconds\":%lld,"
	    "\"workers_alive\":%llu,\"workers_current\":%llu,"
	    "\"workers_draining\":%llu,\"worker_restarts\":%llu", AVATAR_VERSION,
	    (long long)((clock_ms() / 1000) - sh->started),
	    (unsigned long long)load(&sh->workers_alive),
	    (unsigned long long)load(&sh->workers_current),
	    (unsigned long long)load(&sh->workers_draining),
	    (unsigned long long)load(&sh->restarts)) == -1)
		return -1;
	for (int c = 0; c < ST_NCOUNTERS; c++)
		if (put(buf, size, &off, ",\"%s\":%llu", names[c].json,
		    (unsigned long long)t[c]) == -1)
			return -1;
	if (put(buf, size, &off, "}\n") == -1)
		return -1;
	return (int)off;
}

int
stats_prometheus(char *buf, size_t size)
{
	uint64_t t[ST_NCOUNTERS];
	size_t off = 0;

	if (sh == NULL)
		return -1;
	totals(t);
	for (int c = 0; c < ST_NCOUNTERS; c++)
		if (put(buf, size, &off, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n",
		    names[c].prom, names[c].help, names[c].prom, names[c].prom,
		    (unsigned long long)t[c]) == -1)
			return -1;
	if (put(buf, size, &off,
	    "# HELP avatar_worker_restarts_total Workers restarted after dying.\n"
	    "# TYPE avatar_worker_restarts_total counter\n"
	    "avatar_worker_restarts_total %llu\n"
	    "# HELP avatar_workers Worker processes accepting connections.\n"
	    "# TYPE avatar_workers gauge\navatar_workers %llu\n"
	    "# HELP avatar_workers_current Accepting workers started since the last reload.\n"
	    "# TYPE avatar_workers_current gauge\navatar_workers_current %llu\n"
	    "# HELP avatar_workers_draining Workers told to stop, finishing what they hold.\n"
	    "# TYPE avatar_workers_draining gauge\navatar_workers_draining %llu\n"
	    "# HELP avatar_start_time_seconds Start time since the epoch.\n"
	    "# TYPE avatar_start_time_seconds gauge\navatar_start_time_seconds %lld\n"
	    "# HELP avatar_build_info Version of the responder.\n"
	    "# TYPE avatar_build_info gauge\navatar_build_info{version=\"%s\"} 1\n",
	    (unsigned long long)load(&sh->restarts),
	    (unsigned long long)load(&sh->workers_alive),
	    (unsigned long long)load(&sh->workers_current),
	    (unsigned long long)load(&sh->workers_draining),
	    (long long)sh->started_wall, AVATAR_VERSION) == -1)
		return -1;
	return (int)off;
}
