/*
 * stats: request counters shared by all worker processes. One mapping is
 * made before the pool forks; each worker owns one slot and is its only
 * writer, so the hot path is a plain relaxed store, no lock and no locked
 * instruction. Readers sum the slots. Slots are never cleared, so totals
 * only grow, across worker restarts too.
 */
#ifndef AVATAR_STATS_H
#define AVATAR_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * One slot for each process the pool may have at once (seated workers and
 * those still draining after a reload; pool.c never has more), and the
 * last one for a single process (--workers 0).
 */
#define STATS_SLOTS 513

enum stats_counter {
	ST_REQUESTS,		/* every request answered */
	ST_HITS,		/* 200 with the requested avatar */
	ST_DEFAULTS,		/* 200 with the default avatar */
	ST_NOT_MODIFIED,	/* 304 */
	ST_NOT_FOUND,		/* 404 */
	ST_METHOD_NOT_ALLOWED,	/* 405 */
	ST_ERRORS,		/* 5xx, aborted responses, rejected peers */
	ST_VARIANT_MISSES,	/* a size or format asked for was not made yet */
	ST_VARIANT_JOBS,	/* jobs sent to make an avatar's variants */
	ST_VARIANTS_MADE,	/* variant files written (upload processes) */
	ST_ESTALE_RETRIES,	/* file system calls made again (resolve.c, store.h) */
	ST_MISSING_KNOWN,	/* a missing id answered without a walk (resolve.c) */
	ST_JOBS_KILLED,		/* upload processes killed for --job-limit (upload.c) */
	ST_NCOUNTERS
};

/* Maps the shared page; returns 0 or -1 (errno set). */
int stats_init(void);
/* The slot this process writes from now on. */
void stats_use_slot(unsigned slot);
/* Adds one to a counter of this process's slot. */
void stats_inc(enum stats_counter c);
/* Adds n to a counter shared by many processes (the upload processes,
 * which have no slot of their own): an atomic add, for rare events. */
void stats_add_shared(enum stats_counter c, uint64_t n);
/*
 * Supervisor-side bookkeeping. alive: workers accepting connections, one
 * per seat of the pool; current: those of them started since the last
 * SIGHUP; draining: workers told to stop that still finish what they hold.
 */
void stats_set_workers(unsigned alive, unsigned current, unsigned draining);
void stats_add_restart(void);

/* Renders the totals. Return the length written (< size) or -1. */
int stats_json(char *buf, size_t size);
int stats_prometheus(char *buf, size_t size);

#endif
