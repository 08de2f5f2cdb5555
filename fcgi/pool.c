/*
 * pool: fork, wait, restart, replace. The supervisor never touches a
 * connection. Signals are taken synchronously through a signalfd, so no
 * handler races with the bookkeeping.
 *
 * The pool has one seat per configured worker. A seat is held by the one
 * process that accepts connections for it; a process told to stop (by a
 * reload or by the stop) leaves its seat and drains in a process slot of
 * its own until it exits. Every process, seated or draining, needs one of
 * MAX_PROCS slots, which are also its stats slots. The loop keeps one rule:
 * a seat whose holder is dead is refilled (after the crash back-off), and a
 * seat whose holder predates the last SIGHUP gets a new process first and
 * only then is the old one told to stop. When no slot is free the old
 * holder simply keeps serving until a draining process exits, so no
 * sequence of reloads, deaths and kills can leave a seat without a worker
 * for longer than a back-off, and the pool always comes back to exactly
 * one current worker per seat.
 */
#include "pool.h"
#include "clock.h"
#include "log.h"
#include "stats.h"

#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

/* The slot past the last one is the single-process slot (main.c). */
#define MAX_PROCS (STATS_SLOTS - 1)
/* Room for a whole new generation beside a draining one, so one reload
 * never has to wait for a slot. */
#define MAX_SEATS (MAX_PROCS / 2)
/* After a supervisor's SIGKILL, how long before it is sent again. */
#define KILL_AGAIN_MS 60000

struct proc {
	pid_t pid;		/* 0: slot free */
	unsigned gen;		/* the reload generation it was started in */
	int seat;		/* the seat it holds, or -1 once told to stop */
	int64_t kill_at;	/* ms; told to stop: SIGKILL if still alive then */
};

struct seat {
	int slot;		/* its accepting process, or -1: none alive */
	int64_t started;	/* ms; when that process was forked */
	int64_t restart_at;	/* ms; no fork for this seat before then */
	unsigned fails;		/* quick deaths in a row */
};

struct pool {
	pool_worker_fn *fn;
	void *arg;
	int sfd;		/* the signalfd; never inherited by a worker */
	sigset_t handled;	/* read through sfd, blocked everywhere else */
	unsigned nseats;
	unsigned gen;		/* bumped by every SIGHUP */
	int64_t drain_ms;	/* how long a process may take to stop */
	int stopping;
	/* The sidecar (pool.h), when there is one: restarted like a seat,
	 * with its own seat's times (its slot unused). */
	struct pool_sidecar side;
	int has_side;
	struct seat side_seat;
	struct seat seat[MAX_SEATS];
	struct proc proc[MAX_PROCS];
};

/*
 * The child's side of the signal contract (pool.h): everything the
 * supervisor handles is still blocked here, and SIGUSR1, SIGUSR2 and SIGPIPE
 * are already ignored (inherited), so nothing can be delivered before the
 * worker sets its own handling. SIGHUP is made ignored before it is
 * unblocked; SIGTERM and SIGINT stay blocked, pending if they came, for
 * the worker to take (server.c reads them from a signalfd of its own).
 */
static void
child_signals(struct pool *p)
{
	struct sigaction sa;
	sigset_t unblock;

	close(p->sfd);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGHUP, &sa, NULL);
	sigemptyset(&unblock);
	sigaddset(&unblock, SIGHUP);
	sigaddset(&unblock, SIGCHLD);
	sigprocmask(SIG_UNBLOCK, &unblock, NULL);
}

static int
free_slot(const struct pool *p)
{
	for (int i = 0; i < MAX_PROCS; i++)
		if (p->proc[i].pid == 0)
			return i;
	return -1;
}

/*
 * Forks a worker of the current generation into a free slot and seats it.
 * Returns 0, or -1 when no slot is free or fork failed (the seat is then
 * left as it was; after a failed fork it waits a second).
 */
static int
seat_fill(struct pool *p, unsigned s, int64_t now)
{
	struct seat *st = &p->seat[s];
	int slot;
	pid_t pid;

	if ((slot = free_slot(p)) < 0)
		return -1;
	if ((pid = fork()) == -1) {
		log_warn("fork");
		st->restart_at = now + 1000;
		return -1;
	}
	if (pid == 0) {
		child_signals(p);
		stats_use_slot((unsigned)slot);
		_exit(p->fn((unsigned)slot, p->arg));
	}
	p->proc[slot] = (struct proc){ .pid = pid, .gen = p->gen, .seat = (int)s };
	st->slot = slot;
	st->started = now;
	st->restart_at = 0;
	return 0;
}

/* Takes a process off its seat (if it has one) and asks it to drain. */
static void
proc_stop(struct pool *p, struct proc *pr, int64_t now)
{
	pr->seat = -1;
	pr->kill_at = now + p->drain_ms;
	kill(pr->pid, SIGTERM);
}

/*
 * Refills seats whose holder died, then replaces holders older than the
 * last SIGHUP. Dead seats come first: nobody accepts for them, while an
 * old holder still does.
 */
static void
pool_fill(struct pool *p, int64_t now)
{
	for (unsigned s = 0; s < p->nseats; s++) {
		struct seat *st = &p->seat[s];

		if (st->slot < 0 && st->restart_at <= now &&
		    seat_fill(p, s, now) == -1 && free_slot(p) < 0)
			return;
	}
	for (unsigned s = 0; s < p->nseats; s++) {
		struct seat *st = &p->seat[s];
		int old = st->slot;

		if (old < 0 || p->proc[old].gen == p->gen ||
		    st->restart_at > now)
			continue;
		if (seat_fill(p, s, now) == 0)
			proc_stop(p, &p->proc[old], now);
		else if (free_slot(p) < 0)
			return;
	}
}

/* SIGKILLs every process still alive past its drain deadline. */
static void
pool_kill_overdue(struct pool *p, int64_t now)
{
	for (int i = 0; i < MAX_PROCS; i++) {
		struct proc *pr = &p->proc[i];

		if (pr->pid > 0 && pr->seat < 0 && pr->kill_at <= now) {
			log_warnx("worker %ld still busy %lld ms after it was told "
			    "to stop; killing it", (long)pr->pid,
			    (long long)p->drain_ms);
			kill(pr->pid, SIGKILL);
			pr->kill_at = now + KILL_AGAIN_MS;
		}
	}
}

/*
 * The next time after now the loop has something to do, or -1: only a
 * signal can bring work. A seat that waits for a free slot waits for a
 * SIGCHLD, not for a time.
 */
static int64_t
pool_next(const struct pool *p, int64_t now)
{
	int64_t next = -1;

	for (unsigned s = 0; s < p->nseats && !p->stopping; s++) {
		const struct seat *st = &p->seat[s];

		if ((st->slot < 0 || p->proc[st->slot].gen != p->gen) &&
		    st->restart_at > now && (next < 0 || st->restart_at < next))
			next = st->restart_at;
	}
	for (int i = 0; i < MAX_PROCS; i++) {
		const struct proc *pr = &p->proc[i];

		if (pr->pid > 0 && pr->seat < 0 && (next < 0 || pr->kill_at < next))
			next = pr->kill_at;
	}
	if (p->has_side && !p->stopping && p->side.pid <= 0 && p->side_seat.restart_at > now &&
	    (next < 0 || p->side_seat.restart_at < next))
		next = p->side_seat.restart_at;
	return next;
}

/* Publishes the pool's shape to /status and /metrics. */
static unsigned
pool_publish(const struct pool *p)
{
	unsigned seated = 0, current = 0, draining = 0;

	for (int i = 0; i < MAX_PROCS; i++) {
		const struct proc *pr = &p->proc[i];

		if (pr->pid == 0)
			continue;
		if (pr->seat < 0)
			draining++;
		else {
			seated++;
			current += pr->gen == p->gen;
		}
	}
	stats_set_workers(seated, current, draining);
	return seated + draining;
}

int64_t
pool_backoff(unsigned *fails, int64_t started, int64_t now)
{
	int64_t d;

	*fails = now - started < 1000 ? *fails + 1 : 0;
	if (*fails == 0)
		return now;
	d = 100LL << (*fails < 6 ? *fails - 1 : 6);
	return now + (d > 5000 ? 5000 : d);
}

/* One line for a process that died and is started again. */
static void
log_restart(const char *what, pid_t pid, int status)
{
	if (WIFSIGNALED(status))
		log_warnx("%s %ld killed by signal %d; restarting", what, (long)pid,
		    WTERMSIG(status));
	else
		log_warnx("%s %ld exited with status %d; restarting", what, (long)pid,
		    WEXITSTATUS(status));
}

/* The sidecar died: its restart is due after the back-off, unless the
 * pool is stopping (then it was told to go, or its queue was closed). */
static void
side_died(struct pool *p, int status, int64_t now)
{
	pid_t pid = p->side.pid;

	p->side.pid = 0;
	if (p->stopping)
		return;
	log_restart(p->side.name, pid, status);
	p->side_seat.restart_at = pool_backoff(&p->side_seat.fails, p->side_seat.started, now);
}

/* Starts the sidecar again when its back-off is over. */
static void
side_fill(struct pool *p, int64_t now)
{
	pid_t pid;

	if (!p->has_side || p->side.pid > 0 || p->side_seat.restart_at > now)
		return;
	if ((pid = p->side.start(p->sfd)) == -1) {
		log_warn("%s: fork", p->side.name);
		p->side_seat.restart_at = now + 1000;
		return;
	}
	p->side.pid = pid;
	p->side_seat.started = now;
	log_info("%s %ld started", p->side.name, (long)pid);
}

/* Collects dead children; schedules the refill of the seats they held. */
static void
pool_reap(struct pool *p)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct proc *pr = NULL;
		struct seat *st;
		int64_t now = clock_ms();

		if (p->has_side && pid == p->side.pid) {
			side_died(p, status, now);
			continue;
		}
		for (int i = 0; i < MAX_PROCS && pr == NULL; i++)
			if (p->proc[i].pid == pid)
				pr = &p->proc[i];
		if (pr == NULL)
			continue;
		pr->pid = 0;
		if (pr->seat < 0)
			continue;	/* it was draining: its seat is filled */
		st = &p->seat[pr->seat];
		st->slot = -1;
		pr->seat = -1;
		log_restart("worker", pid, status);
		stats_add_restart();
		st->restart_at = pool_backoff(&st->fails, st->started, now);
	}
}

static void
pool_signal(struct pool *p, unsigned signo, void (*on_stop)(void))
{
	int64_t now = clock_ms();

	switch (signo) {
	case SIGCHLD:
		pool_reap(p);
		break;
	case SIGTERM:
	case SIGINT:
		if (p->stopping)
			break;
		log_info("stopping: workers finish what they hold");
		p->stopping = 1;
		if (on_stop != NULL)
			on_stop();
		for (int i = 0; i < MAX_PROCS; i++)
			if (p->proc[i].pid > 0 && p->proc[i].seat >= 0)
				proc_stop(p, &p->proc[i], now);
		break;
	case SIGHUP:
		if (p->stopping)
			break;
		log_info("reloading: new workers start, old ones drain");
		p->gen++;
		break;
	}
}

/*
 * The supervisor's dispositions: SIGUSR1, SIGUSR2 and SIGPIPE mean nothing
 * here (as in a worker) and must never end the process that holds the
 * socket; the rest is read from the signalfd.
 */
static int
pool_signals_init(struct pool *p)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(SIGPIPE, &sa, NULL);
	sigemptyset(&p->handled);
	sigaddset(&p->handled, SIGCHLD);
	sigaddset(&p->handled, SIGTERM);
	sigaddset(&p->handled, SIGINT);
	sigaddset(&p->handled, SIGHUP);
	sigprocmask(SIG_BLOCK, &p->handled, NULL);
	if ((p->sfd = signalfd(-1, &p->handled, SFD_CLOEXEC)) == -1) {
		log_err("signalfd");
		return -1;
	}
	return 0;
}

int
pool_run(unsigned nworkers, unsigned drain_seconds, pool_worker_fn *fn,
    void *arg, void (*on_stop)(void), const struct pool_sidecar *side)
{
	struct signalfd_siginfo si[16];
	struct pool *p;
	int rc = 0;

	if ((p = calloc(1, sizeof(*p))) == NULL) {
		log_err("pool");
		return 1;
	}
	if (nworkers > MAX_SEATS) {
		log_warnx("--workers %u: at most %u; starting %u", nworkers,
		    MAX_SEATS, MAX_SEATS);
		nworkers = MAX_SEATS;
	}
	p->fn = fn;
	p->arg = arg;
	p->nseats = nworkers;
	p->drain_ms = (int64_t)drain_seconds * 1000;
	if (side != NULL) {
		p->side = *side;
		p->has_side = 1;
		p->side_seat.slot = -1;
		p->side_seat.started = clock_ms();
	}
	for (unsigned s = 0; s < nworkers; s++)
		p->seat[s].slot = -1;
	if (pool_signals_init(p) == -1) {
		rc = 1;
		goto done;
	}
	pool_fill(p, clock_ms());
	pool_publish(p);
	log_info("pool of %u workers started", nworkers);

	for (;;) {
		struct pollfd pfd = { .fd = p->sfd, .events = POLLIN };
		int64_t now = clock_ms(), next;
		ssize_t n;

		if (!p->stopping) {
			pool_fill(p, now);
			side_fill(p, now);
		}
		pool_kill_overdue(p, now);
		if (pool_publish(p) == 0 && p->stopping)
			break;
		next = pool_next(p, now);
		if (next >= 0 && next - now > 60000)
			next = now + 60000;
		if (poll(&pfd, 1, next < 0 ? -1 : (int)(next > now ? next - now : 0)) <= 0)
			continue;
		if ((n = read(p->sfd, si, sizeof(si))) <= 0)
			continue;
		for (size_t i = 0; i < (size_t)n / sizeof(si[0]); i++)
			pool_signal(p, si[i].ssi_signo, on_stop);
	}
	close(p->sfd);
	log_info("stopped");
done:
	free(p);
	return rc;
}
