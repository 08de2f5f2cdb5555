/*
 * pool: the supervisor. Pre-forks N workers that share the listening
 * socket, restarts any that dies (with a back-off so a crash loop cannot
 * spin the CPU), replaces them all on SIGHUP (new ones first, then the old
 * ones drain; any number of SIGHUPs, deaths and kills ends in exactly N
 * workers started after the last SIGHUP), and on SIGTERM or SIGINT lets
 * every worker drain and exits 0. SIGUSR1, SIGUSR2 and SIGPIPE are ignored.
 *
 * Signal contract with the worker: fn runs with SIGTERM and SIGINT still
 * blocked (a stop sent to a worker that is still starting waits for it),
 * SIGHUP, SIGUSR1, SIGUSR2 and SIGPIPE ignored, and without the
 * supervisor's signalfd. The worker takes SIGTERM and SIGINT its own way
 * from there (server.h: a signalfd of its own).
 */
#ifndef AVATAR_POOL_H
#define AVATAR_POOL_H

#include <stdint.h>
#include <sys/types.h>

/* Called in each new worker with its stats slot; returns the exit status. */
typedef int pool_worker_fn(unsigned slot, void *arg);

/*
 * A process the supervisor keeps alive beside its workers (the upload
 * manager, upload.h): pid is the one running now; when it dies, start()
 * forks another, with the workers' back-off, until a stop begins. At a
 * stop the pool does not wait for it: it ends by itself once the workers
 * are gone.
 */
struct pool_sidecar {
	const char *name;	/* for the log */
	pid_t pid;
	/* Forks it; returns the new pid, or -1. not_inherited: a descriptor
	 * of the supervisor the new process must close. */
	pid_t (*start)(int not_inherited);
};

/*
 * Runs the pool until it is told to stop; returns the exit status.
 * drain_seconds bounds how long workers may take to finish. on_stop runs in
 * the supervisor when a stop begins, before the workers are told: it lets
 * go of the supervisor's copy of the listening socket, so that the workers
 * are its last holders and the last of them to stop accepting closes it.
 * side: NULL, or a process to keep alive beside the workers.
 */
int pool_run(unsigned nworkers, unsigned drain_seconds, pool_worker_fn *fn,
    void *arg, void (*on_stop)(void), const struct pool_sidecar *side);

/*
 * The crash back-off, for the pool's workers and for any other process
 * kept running the same way. A death within a second of the start (times
 * in clock_ms) counts one more quick death in a row in *fails; any other
 * death resets the count. Returns when the process may start again: at
 * once after one that lived a while, else 100 ms doubling up to 5 s.
 */
int64_t pool_backoff(unsigned *fails, int64_t started, int64_t now);

#endif
