/*
 * pool: fork, wait, restart. The supervisor never touches a connection.
 * Signals are taken synchronously through a signalfd, so no handler races
 * with the bookkeeping.
 */
#include "pool.h"
#include "clock.h"
#include "log.h"
#include "stats.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROCS (STATS_SLOTS - 1)

struct proc {
	pid_t pid;		/* 0: slot free */
	int current;		/* 1: counts towards the pool size */
	int64_t started;	/* ms */
	int64_t restart_at;	/* ms; a dead current slot waits until then */
	unsigned fails;		/* quick deaths in a row */
};

static struct proc procs[MAX_PROCS];
static sigset_t handled;

static void
spawn(unsigned slot, pool_worker_fn *fn, void *arg)
{
	pid_t pid;

	procs[slot].current = 1;
	if ((pid = fork()) == -1) {
		log_warn("fork");
		procs[slot].restart_at = clock_ms() + 1000;
		return;
	}
	if (pid == 0) {
		sigprocmask(SIG_UNBLOCK, &handled, NULL);
		stats_use_slot(slot);
		_exit(fn(slot, arg));
	}
	procs[slot].pid = pid;
	procs[slot].started = clock_ms();
	procs[slot].restart_at = 0;
}

static unsigned
count(int current_only)
{
	unsigned n = 0;

	for (unsigned i = 0; i < MAX_PROCS; i++)
		if (procs[i].pid > 0 && (!current_only || procs[i].current))
			n++;
	return n;
}

static void
signal_all(int sig)
{
	for (unsigned i = 0; i < MAX_PROCS; i++)
		if (procs[i].pid > 0)
			kill(procs[i].pid, sig);
}

/* Collects dead children; schedules restarts of current ones. */
static void
reap(int stopping)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (unsigned i = 0; i < MAX_PROCS; i++) {
			struct proc *p = &procs[i];
			int64_t lived;

			if (p->pid != pid)
				continue;
			p->pid = 0;
			if (!p->current || stopping)
				break;
			if (WIFSIGNALED(status))
				log_warnx("worker %ld killed by signal %d; restarting",
				    (long)pid, WTERMSIG(status));
			else
				log_warnx("worker %ld exited with status %d; restarting",
				    (long)pid, WEXITSTATUS(status));
			stats_add_restart();
			/* Back-off: immediate after a worker that lived a
			 * while, doubling from 100 ms to 5 s while they keep
			 * dying within a second of their start. */
			lived = clock_ms() - p->started;
			p->fails = lived < 1000 ? p->fails + 1 : 0;
			p->restart_at = clock_ms();
			if (p->fails > 0) {
				int64_t d = 100LL << (p->fails < 6 ? p->fails - 1 : 6);
				p->restart_at += d > 5000 ? 5000 : d;
			}
			break;
		}
	}
}

int
pool_run(unsigned nworkers, unsigned drain_seconds, pool_worker_fn *fn,
    void *arg, void (*on_stop)(void))
{
	struct signalfd_siginfo si;
	struct pollfd pfd;
	int sfd, stopping = 0;
	int64_t stop_deadline = 0;

	if (nworkers * 2 > MAX_PROCS)
		nworkers = MAX_PROCS / 2;
	sigemptyset(&handled);
	sigaddset(&handled, SIGCHLD);
	sigaddset(&handled, SIGTERM);
	sigaddset(&handled, SIGINT);
	sigaddset(&handled, SIGHUP);
	sigprocmask(SIG_BLOCK, &handled, NULL);
	if ((sfd = signalfd(-1, &handled, SFD_CLOEXEC)) == -1) {
		log_err("signalfd");
		return 1;
	}
	for (unsigned i = 0; i < nworkers; i++)
		spawn(i, fn, arg);
	stats_set_workers(count(0));
	log_info("pool of %u workers started", nworkers);

	for (;;) {
		int64_t now = clock_ms(), wait = -1;

		/* Restart dead current slots whose back-off has passed. */
		for (unsigned i = 0; i < MAX_PROCS && !stopping; i++) {
			struct proc *p = &procs[i];

			if (p->pid == 0 && p->current) {
				if (p->restart_at <= now)
					spawn(i, fn, arg);
				else if (wait < 0 || p->restart_at - now < wait)
					wait = p->restart_at - now;
			}
		}
		stats_set_workers(count(0));
		if (stopping) {
			if (count(0) == 0)
				break;
			if (now >= stop_deadline) {
				log_warnx("workers still busy after %u s; killing them",
				    drain_seconds);
				signal_all(SIGKILL);
				stop_deadline = now + 60000;
			}
			wait = stop_deadline - now;
		}
		pfd.fd = sfd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, (int)(wait > 60000 ? 60000 : wait)) <= 0)
			continue;
		if (read(sfd, &si, sizeof(si)) != sizeof(si))
			continue;
		switch (si.ssi_signo) {
		case SIGCHLD:
			reap(stopping);
			break;
		case SIGTERM:
		case SIGINT:
			if (!stopping) {
				log_info("stopping: workers finish what they hold");
				stopping = 1;
				stop_deadline = clock_ms() + (int64_t)drain_seconds * 1000;
				if (on_stop != NULL)
					on_stop();
				signal_all(SIGTERM);
			}
			break;
		case SIGHUP:
			if (stopping)
				break;
			log_info("reloading: new workers start, old ones drain");
			/* New generation in free slots first, so the socket
			 * never lacks a worker; then the old one drains. */
			{
				unsigned started = 0;

				for (unsigned i = 0; i < MAX_PROCS; i++)
					procs[i].current = 0;
				for (unsigned i = 0; i < MAX_PROCS && started < nworkers; i++)
					if (procs[i].pid == 0) {
						procs[i].fails = 0;
						spawn(i, fn, arg);
						started++;
					}
				for (unsigned i = 0; i < MAX_PROCS; i++)
					if (procs[i].pid > 0 && !procs[i].current)
						kill(procs[i].pid, SIGTERM);
			}
			break;
		}
	}
	close(sfd);
	log_info("stopped");
	return 0;
}
