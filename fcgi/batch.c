/*
 * batch: "avatar.fcgi variants" (see batch.h). The parent lists the
 * originals, hands ids one at a time to worker processes, counts their
 * answers and draws the progress; only the workers touch libvips (through
 * vmake). The parent forks before anything has started libvips' threads.
 * The only files this module removes itself are --prune's, under DIR/.v.
 */
#include "batch.h"
#include "clock.h"
#include "conf.h"
#include "ext.h"
#include "image.h"
#include "log.h"
#include "num.h"
#include "store.h"
#include "variant.h"
#include "vmake.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The bar is redrawn at most this often (ms): ten times a second. */
#define BAR_EVERY_MS 100
#define BAR_WIDTH 20

/* One original: its id and which of ext.h's names it has (the first the
 * read path tries, when there are several). */
struct orig {
	int64_t id;
	unsigned ext;
};

/* A worker's answer for one id. vmake's reason is a pointer into the
 * worker's memory, so it travels as text. */
struct answer {
	int64_t id;
	int rc;			/* vmake_id's return */
	int err;		/* its errno when rc is -1 */
	int status;		/* the original's refusal, 0 if none */
	unsigned made, kept, copied, failed;
	char why[32];
};

struct slot {
	pid_t pid;		/* 0: free, never started or reaped */
	int fd;			/* our end of its socket, -1: closed */
	int busy;		/* an id is in flight */
	size_t job;		/* that id's index in the list */
};

struct totals {
	size_t done;		/* ids answered */
	size_t made, kept, copied, failed;	/* variant files */
	size_t refused, gone, ids_failed;	/* ids */
};

struct batch {
	struct conf c;
	int64_t jobs;
	int prune;
	struct orig *o;
	size_t n;
	size_t next;		/* the next id to hand out */
	struct slot slot[BATCH_JOBS_MAX];
	size_t nslots;
	int sfd;		/* signalfd: SIGINT, SIGTERM, SIGHUP */
	int stopping;		/* the signal that stops the run, 0: none */
	int bar;		/* stderr is a terminal */
	int bar_shown;		/* a bar line is on the screen */
	int64_t t0, drawn;
	struct totals t;
};

static void
set_jobs(void *ctx, const char *flag, const char *v)
{
	struct batch *b = ctx;

	if (num_parse_str(v, 1, BATCH_JOBS_MAX, &b->jobs) == -1)
		log_die("%s: \"%s\" is not an integer from 1 to %d", flag, v, BATCH_JOBS_MAX);
}

static void
set_prune(void *ctx, const char *flag, const char *v)
{
	(void)flag;
	(void)v;
	((struct batch *)ctx)->prune = 1;
}

static const struct conf_cmd_opt own[] = {
	{ "jobs", "N", "worker processes (default: the online CPUs)", set_jobs },
	{ "prune", NULL, "then remove variants of gone or changed originals", set_prune },
};

static const char usage[] =
    "usage: avatar.fcgi variants --dir DIR [--jobs N] [--prune] [options]\n"
    "Makes the missing size and format variants of every avatar in DIR.\n";

/* Clears the bar's line, so that a message starts at column 0. */
static void
bar_clear(struct batch *b)
{
	if (b->bar_shown)
		(void)!write(STDERR_FILENO, "\r\033[K", 4);
	b->bar_shown = 0;
}

/* One line on stderr about one original, below the bar. */
__attribute__((format(printf, 3, 4)))
static void
say(struct batch *b, const struct orig *o, const char *fmt, ...)
{
	va_list ap;

	bar_clear(b);
	fprintf(stderr, "avatar.fcgi: variants: %s/%lld%s: ", b->c.dir,
	    (long long)o->id, ext_name(o->ext));
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void
bar_draw(struct batch *b, int64_t now)
{
	char line[256], eta[32];
	struct winsize ws;
	double secs = (double)(now - b->t0) / 1000.0;
	double rate = secs > 0 ? (double)b->t.done / secs : 0;
	size_t fill = b->n ? b->t.done * BAR_WIDTH / b->n : BAR_WIDTH;
	int len;

	if (rate > 0) {
		long s = (long)((double)(b->n - b->t.done) / rate + 0.5);

		snprintf(eta, sizeof(eta), "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
	} else
		snprintf(eta, sizeof(eta), "--:--:--");
	len = snprintf(line, sizeof(line),
	    "\r[%.*s%*s] %zu/%zu %3zu%%  %.1f ids/s  %zu made  ETA %s",
	    (int)fill, "####################", (int)(BAR_WIDTH - fill), "",
	    b->t.done, b->n, b->n ? b->t.done * 100 / b->n : 100, rate,
	    b->t.made + b->t.copied, eta);
	if (len < 0)
		return;
	if ((size_t)len >= sizeof(line))
		len = sizeof(line) - 1;
	/* A line wider than the terminal would wrap, and "\r" would then
	 * redraw only its last row: cut it to the width. */
	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 &&
	    len > ws.ws_col)
		len = ws.ws_col;
	(void)!write(STDERR_FILENO, line, (size_t)len);
	(void)!write(STDERR_FILENO, "\033[K", 3);
	b->bar_shown = 1;
	b->drawn = now;
}

static int
orig_cmp(const void *pa, const void *pb)
{
	const struct orig *a = pa, *b = pb;

	if (a->id != b->id)
		return a->id < b->id ? -1 : 1;
	return (a->ext > b->ext) - (a->ext < b->ext);
}

/* The id and extension of an original's name, as the read path names it:
 * a canonical id and one of ext.h's extensions, exactly. */
static int
orig_parse(const char *name, struct orig *o)
{
	size_t len = strlen(name);
	const char *e;

	for (unsigned i = 0; (e = ext_name(i)) != NULL; i++) {
		size_t elen = strlen(e);

		if (len > elen && strcmp(name + len - elen, e) == 0 &&
		    num_parse(name, len - elen, INT64_MIN, INT64_MAX, &o->id) == 0) {
			o->ext = i;
			return 0;
		}
	}
	return -1;
}

/*
 * Lists the originals, sorted by id, one entry per id. Directories are
 * skipped; a symlink is listed, as the read path serves one that stays
 * beneath DIR (vmake_id decides, as the read path would).
 */
static void
collect(struct batch *b)
{
	size_t cap = 0;
	struct dirent *de;
	DIR *d;
	int fd;

	if ((fd = openat(b->c.dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    (d = fdopendir(fd)) == NULL)
		log_die("--dir: %s: %s", b->c.dir, strerror(errno));
	while ((errno = 0, de = readdir(d)) != NULL) {
		struct orig o;
		struct stat st;

		if (de->d_name[0] == '.' || orig_parse(de->d_name, &o) == -1)
			continue;
		if (de->d_type == DT_DIR || (de->d_type == DT_UNKNOWN &&
		    fstatat(b->c.dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISDIR(st.st_mode)))
			continue;
		if (b->n == cap) {
			struct orig *p;

			cap = cap ? 2 * cap : 1024;
			if ((p = reallocarray(b->o, cap, sizeof(*p))) == NULL)
				log_die("--dir: %s: %s", b->c.dir, strerror(errno));
			b->o = p;
		}
		b->o[b->n++] = o;
	}
	if (errno != 0)
		log_die("--dir: %s: %s", b->c.dir, strerror(errno));
	closedir(d);
	if (b->n == 0)
		return;
	qsort(b->o, b->n, sizeof(*b->o), orig_cmp);
	/* One entry per id: ID.png and ID.jpg are one avatar, and the sort
	 * put the name the read path tries first in front. */
	size_t w = 1;
	for (size_t i = 1; i < b->n; i++)
		if (b->o[i].id != b->o[w - 1].id)
			b->o[w++] = b->o[i];
	b->n = w;
}

/*
 * A worker: one id in, one answer out, until the parent closes its end.
 * SIGINT, SIGTERM and SIGHUP stay blocked (inherited from the parent), so a
 * Ctrl-C, which the terminal sends to every process of the group, never
 * cuts an id short: the parent stops handing out ids instead.
 */
__attribute__((noreturn))
static void
worker(const struct conf *c, int fd)
{
	const char *why = NULL;
	int64_t id;

	if (image_init("avatar.fcgi", &why) == -1) {
		fprintf(stderr, "avatar.fcgi: variants: libvips: %s\n", why ? why : "?");
		_exit(1);
	}
	while (recv(fd, &id, sizeof(id), 0) == (ssize_t)sizeof(id)) {
		struct vmake_result r;
		struct answer a;

		memset(&r, 0, sizeof(r));
		memset(&a, 0, sizeof(a));
		a.id = id;
		errno = 0;
		a.rc = vmake_id(c, c->dirfd, id, &r);
		a.err = a.rc == -1 ? errno : 0;
		a.status = r.status;
		a.made = r.made;
		a.kept = r.kept;
		a.copied = r.copied;
		a.failed = r.failed;
		if (r.why != NULL)
			snprintf(a.why, sizeof(a.why), "%s", r.why);
		if (send(fd, &a, sizeof(a), MSG_NOSIGNAL) != (ssize_t)sizeof(a))
			break;
	}
	_exit(0);
}

static int
slot_start(struct batch *b, struct slot *s)
{
	int sv[2];
	pid_t pid;

	/* SEQPACKET: every id and every answer is one whole message. */
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1)
		return -1;
	fflush(NULL);
	if ((pid = fork()) == -1) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		/* Another worker's socket held open here would hide from it
		 * the parent's close, its signal to stop. */
		for (size_t i = 0; i < b->nslots; i++)
			if (b->slot[i].fd >= 0)
				close(b->slot[i].fd);
		close(sv[0]);
		close(b->sfd);
		worker(&b->c, sv[1]);
	}
	close(sv[1]);
	s->pid = pid;
	s->fd = sv[0];
	s->busy = 0;
	return 0;
}

/* Hands the next id to an idle worker, or closes its socket when there is
 * none (or the run is stopping): the worker sees end-of-file and exits. */
static void
slot_feed(struct batch *b, struct slot *s)
{
	if (s->fd < 0 || s->busy)
		return;
	if (!b->stopping && b->next < b->n) {
		int64_t id = b->o[b->next].id;

		if (send(s->fd, &id, sizeof(id), MSG_NOSIGNAL) == (ssize_t)sizeof(id)) {
			s->busy = 1;
			s->job = b->next++;
			return;
		}
	}
	close(s->fd);
	s->fd = -1;
}

static void
account(struct batch *b, const struct orig *o, const struct answer *a)
{
	b->t.done++;
	b->t.made += a->made;
	b->t.kept += a->kept;
	b->t.copied += a->copied;
	b->t.failed += a->failed;
	if (a->status != 0) {
		b->t.refused++;
		say(b, o, "refused: %s (%d)", a->why[0] ? a->why : "?", a->status);
	} else if (a->rc == -1 && a->err == ENOENT) {
		/* Deleted since the listing: nothing to make, nothing wrong. */
		b->t.gone++;
	} else if (a->rc == -1) {
		b->t.ids_failed++;
		say(b, o, "failed: %s", strerror(a->err));
	} else if (a->failed > 0)
		say(b, o, "%u variants failed", a->failed);
}

/* A worker's socket said end-of-file: it exited or died. An id it held is
 * counted as failed, and the slot starts again for the ids still left,
 * so one image that crashes a decoder cannot stop the run. */
static void
slot_lost(struct batch *b, struct slot *s)
{
	int st = 0;

	close(s->fd);
	s->fd = -1;
	(void)waitpid(s->pid, &st, 0);
	s->pid = 0;
	if (!s->busy)
		return;
	s->busy = 0;
	b->t.done++;
	b->t.ids_failed++;
	if (WIFSIGNALED(st))
		say(b, &b->o[s->job], "failed: its worker was killed by signal %d",
		    WTERMSIG(st));
	else
		say(b, &b->o[s->job], "failed: its worker exited with status %d",
		    WEXITSTATUS(st));
	if (!b->stopping && b->next < b->n && slot_start(b, s) == -1)
		log_warn("variants: a new worker");
}

static void
slot_read(struct batch *b, struct slot *s)
{
	struct answer a;
	ssize_t n = recv(s->fd, &a, sizeof(a), 0);

	if (n == -1 && errno == EINTR)
		return;
	if (n != (ssize_t)sizeof(a) || !s->busy || a.id != b->o[s->job].id) {
		slot_lost(b, s);
		return;
	}
	s->busy = 0;
	account(b, &b->o[s->job], &a);
}

static void
on_signal(struct batch *b)
{
	struct signalfd_siginfo si;

	if (read(b->sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
		return;
	if (!b->stopping) {
		bar_clear(b);
		fprintf(stderr, "avatar.fcgi: variants: stopping: each worker "
		    "finishes its current id\n");
	}
	b->stopping = (int)si.ssi_signo;
}

/* Hands out every id and waits for every answer, or for the workers
 * to finish their current id after a stop signal. */
static void
run(struct batch *b)
{
	struct pollfd pfd[BATCH_JOBS_MAX + 1];
	struct slot *who[BATCH_JOBS_MAX + 1];

	for (;;) {
		size_t k = 0;
		int64_t now;

		for (size_t i = 0; i < b->nslots; i++)
			slot_feed(b, &b->slot[i]);
		pfd[k++] = (struct pollfd){ b->sfd, POLLIN, 0 };
		for (size_t i = 0; i < b->nslots; i++)
			if (b->slot[i].fd >= 0) {
				who[k] = &b->slot[i];
				pfd[k++] = (struct pollfd){ b->slot[i].fd, POLLIN, 0 };
			}
		if (k == 1)
			break;
		if (poll(pfd, (nfds_t)k, b->bar ? BAR_EVERY_MS : -1) == -1 && errno != EINTR)
			log_die("variants: poll: %s", strerror(errno));
		if (pfd[0].revents)
			on_signal(b);
		for (size_t i = 1; i < k; i++)
			if (pfd[i].revents)
				slot_read(b, who[i]);
		now = clock_ms();
		if (b->bar && now - b->drawn >= BAR_EVERY_MS)
			bar_draw(b, now);
	}
	/* Workers whose socket we closed exit on their own. */
	for (size_t i = 0; i < b->nslots; i++)
		if (b->slot[i].pid > 0)
			(void)waitpid(b->slot[i].pid, NULL, 0);
}

/* The tag of id's current original, as vmake computes it from the file
 * the read path opens: a symlink counts by its target, the read path
 * following one that stays beneath DIR. Returns -1 when there is none. */
static int
current_tag(int dirfd, int64_t id, char tag[VARIANT_TAG_MAX])
{
	char name[64];
	const char *e;

	for (size_t i = 0; (e = ext_name(i)) != NULL; i++) {
		struct stat st;

		snprintf(name, sizeof(name), "%lld%s", (long long)id, e);
		if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
			continue;
		if (S_ISLNK(st.st_mode) && fstatat(dirfd, name, &st, 0) == -1)
			continue;
		if (!S_ISREG(st.st_mode))
			continue;
		variant_tag(tag, (uint64_t)st.st_size, &st.st_mtim);
		return 0;
	}
	return -1;
}

struct pruned {
	size_t stale, tmp, failed;
};

/* Whether name, in a size directory, is to go: a variant of no current
 * original, or a temporary file nobody has written to for a while. */
static int
prune_wanted(int dirfd, int sfd, const char *name, time_t now, int *is_tmp)
{
	char tag[VARIANT_TAG_MAX], cur[VARIANT_TAG_MAX];
	enum sniff_type type;
	struct stat st;
	int64_t id;

	*is_tmp = strncmp(name, STORE_TMP_PREFIX, strlen(STORE_TMP_PREFIX)) == 0;
	if (*is_tmp)
		return fstatat(sfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode) && now - st.st_mtime >= STORE_TMP_MAX_AGE;
	/* A name vmake never makes is not ours to remove. */
	if (variant_parse(name, &id, tag, &type) == -1)
		return 0;
	return current_tag(dirfd, id, cur) == -1 || strcmp(tag, cur) != 0;
}

static void
prune_dir(struct batch *b, int sfd, const char *sub, struct pruned *p)
{
	time_t now = time(NULL);
	struct dirent *de;
	DIR *d;

	if ((d = fdopendir(sfd)) == NULL) {
		close(sfd);
		p->failed++;
		return;
	}
	while ((de = readdir(d)) != NULL) {
		int is_tmp;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    !prune_wanted(b->c.dirfd, dirfd(d), de->d_name, now, &is_tmp))
			continue;
		/* unlinkat removes a symlink itself, never what it names. */
		if (unlinkat(dirfd(d), de->d_name, 0) == -1) {
			if (errno == ENOENT)
				continue;
			bar_clear(b);
			fprintf(stderr, "avatar.fcgi: variants: %s/%s/%s/%s: %s\n",
			    b->c.dir, VARIANT_DIR, sub, de->d_name, strerror(errno));
			p->failed++;
		} else if (is_tmp)
			p->tmp++;
		else
			p->stale++;
	}
	closedir(d);
}

/* Walks DIR/.v/ and each directory in it, never through a symlink. */
static void
prune(struct batch *b, struct pruned *p)
{
	struct dirent *de;
	DIR *d;
	int vfd;

	vfd = openat(b->c.dirfd, VARIANT_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (vfd == -1) {
		if (errno != ENOENT) {
			fprintf(stderr, "avatar.fcgi: variants: %s/%s: not pruned: %s\n",
			    b->c.dir, VARIANT_DIR, strerror(errno));
			p->failed++;
		}
		return;
	}
	if ((d = fdopendir(vfd)) == NULL) {
		close(vfd);
		p->failed++;
		return;
	}
	while ((de = readdir(d)) != NULL) {
		int sfd;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		/* O_NOFOLLOW: a symlink here fails with ELOOP, and anything
		 * but a directory with ENOTDIR; neither is ours. */
		sfd = openat(dirfd(d), de->d_name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sfd >= 0)
			prune_dir(b, sfd, de->d_name, p);
	}
	closedir(d);
}

static void
summary(const struct batch *b, double secs, long cpus)
{
	size_t made = b->t.made + b->t.copied;
	long cores = b->jobs < cpus ? (long)b->jobs : cpus;
	double rate = secs > 0 ? (double)made / secs : 0;

	if (b->stopping)
		printf("variants: interrupted after %zu of %zu originals", b->t.done, b->n);
	else
		printf("variants: %zu originals", b->n);
	printf(", %zu made, %zu kept, %zu failed, %zu refused", made, b->t.kept,
	    b->t.failed + b->t.ids_failed, b->t.refused);
	if (b->t.gone > 0)
		printf(", %zu gone", b->t.gone);
	printf(" in %.1f s (%.0f variants/s, %.0f/s per core)\n", secs, rate,
	    rate / (double)(cores > 0 ? cores : 1));
}

/* Blocks the stop signals, here and in every worker to come, and reads
 * them through a descriptor the main loop polls. */
static int
signals_init(void)
{
	sigset_t set;
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

int
batch_main(int argc, char **argv)
{
	static struct batch b;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	struct pruned p = { 0, 0, 0 };
	int rc;

	b.jobs = cpus > 0 ? (cpus < BATCH_JOBS_MAX ? cpus : BATCH_JOBS_MAX) : 1;
	conf_load_cmd(&b.c, argc, argv, usage, own, sizeof(own) / sizeof(own[0]), &b);
	log_set_level((enum log_level)b.c.log_level);
	if ((b.sfd = signals_init()) == -1)
		log_die("variants: signalfd: %s", strerror(errno));
	b.bar = isatty(STDERR_FILENO);
	b.t0 = clock_ms();
	collect(&b);
	b.nslots = (size_t)b.jobs < b.n ? (size_t)b.jobs : b.n;
	for (size_t i = 0; i < BATCH_JOBS_MAX; i++)
		b.slot[i].fd = -1;
	for (size_t i = 0; i < b.nslots; i++)
		if (slot_start(&b, &b.slot[i]) == -1)
			log_die("variants: worker %zu: %s", i + 1, strerror(errno));
	run(&b);
	/* The last state stays on the screen, above the summary. */
	if (b.bar) {
		bar_draw(&b, clock_ms());
		(void)!write(STDERR_FILENO, "\n", 1);
		b.bar_shown = 0;
	}
	summary(&b, (double)(clock_ms() - b.t0) / 1000.0, cpus);
	if (b.prune && !b.stopping) {
		prune(&b, &p);
		printf("prune: %zu removed (%zu stale variants, %zu temporary files)%s\n",
		    p.stale + p.tmp, p.stale, p.tmp, p.failed ? ", some could not be" : "");
	}
	rc = b.stopping || b.t.done < b.n || b.t.failed + b.t.ids_failed + p.failed > 0;
	free(b.o);
	return rc;
}
