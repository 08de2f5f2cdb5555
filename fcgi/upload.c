/*
 * upload: the manager, the upload processes and the job protocol. This file
 * never touches a FastCGI connection: read workers own those.
 */
#include "upload.h"
#include "publish.h"
#include "clock.h"
#include "image.h"
#include "log.h"
#include "pool.h"
#include "stats.h"
#include "store.h"
#include "variant.h"
#include "vmake.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define JOB_MAGIC 0x61766a31u	/* "avj1": both ends are this binary */
#define MAX_UPLOADERS 64

struct job_msg {
	uint32_t magic;
	uint32_t method;
	int64_t id;
	uint64_t len;
	char peer[64];
};

struct reply_msg {
	int32_t status;
	uint32_t len;
	char body[UPLOAD_REPLY_MAX];
};

/*
 * What one upload process is doing, in memory it shares with the manager:
 * since when (clock_ms; 0: waiting for a job) and which job. A job that
 * runs over --job-limit is one libvips will not finish (a hang, or an
 * image that takes minutes): the manager kills the process, as nothing
 * inside it can be trusted to stop it, and starts another.
 */
struct job_watch {
	int64_t since;		/* written last, read first (atomics) */
	int64_t id;
	uint32_t method;
};

/* ---- the read worker's side ---------------------------------------------- */

/* A sealed memfd, so the upload process reads exactly what was received. */
static int
body_fd(const unsigned char *p, size_t len)
{
	int fd = memfd_create("avatar-upload", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	size_t off = 0;

	if (fd == -1)
		return -1;
	while (off < len) {
		ssize_t n = write(fd, p + off, len - off);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			goto fail;
		off += (size_t)n;
	}
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE |
	    F_SEAL_SEAL) == -1)
		goto fail;
	return fd;
fail:
	close(fd);
	return -1;
}

int
upload_submit(int qfd, const struct upload_job *job, int *reply_fd)
{
	struct job_msg m;
	struct msghdr mh;
	struct iovec iov;
	union {
		char buf[CMSG_SPACE(2 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct cmsghdr *cm;
	int sv[2], fds[2], nfds = 1, saved;
	ssize_t n;

	memset(&m, 0, sizeof(m));
	m.magic = JOB_MAGIC;
	m.method = (uint32_t)job->method;
	m.id = job->id;
	m.len = job->method == UPLOAD_PUT ? job->len : 0;
	snprintf(m.peer, sizeof(m.peer), "%s", job->peer ? job->peer : "-");

	/* A variants job is fire-and-forget: no reply socket. */
	sv[0] = sv[1] = -1;
	if (reply_fd == NULL)
		nfds = 0;
	else if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0, sv) == -1)
		return -1;
	fds[0] = sv[1];
	if (job->method == UPLOAD_PUT && reply_fd != NULL) {
		if ((fds[1] = body_fd(job->body, job->len)) == -1)
			goto fail;
		nfds = 2;
	}
	memset(&mh, 0, sizeof(mh));
	memset(&u, 0, sizeof(u));
	iov.iov_base = &m;
	iov.iov_len = sizeof(m);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (nfds > 0) {
		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, (size_t)nfds * sizeof(int));
	}
	do
		n = sendmsg(qfd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (n == -1 && errno == EINTR);
	if (n != (ssize_t)sizeof(m))
		goto fail;
	/* The upload process holds its own copies now. */
	if (nfds == 0)
		return 0;
	close(sv[1]);
	if (nfds == 2)
		close(fds[1]);
	*reply_fd = sv[0];
	return 0;
fail:
	saved = errno;
	if (nfds == 2)
		close(fds[1]);
	if (sv[0] >= 0) {
		close(sv[0]);
		close(sv[1]);
	}
	errno = saved;
	return -1;
}

int
upload_read_reply(int fd, struct upload_reply *r)
{
	struct reply_msg m;
	ssize_t n;

	do
		n = recv(fd, &m, sizeof(m), MSG_DONTWAIT);
	while (n == -1 && errno == EINTR);
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return -1;
	if (n < (ssize_t)offsetof(struct reply_msg, body) ||
	    m.len > sizeof(m.body) ||
	    (size_t)n != offsetof(struct reply_msg, body) + m.len ||
	    m.status < 100 || m.status > 599) {
		/* End of file: the upload process died mid-job. What the store
		 * holds is the old avatar or the new one, whole (store.c). */
		static const char died[] = "{\"error\":\"the upload process stopped; "
		    "the avatar is either the old one or the new one\"}";

		r->status = 500;
		r->len = sizeof(died) - 1;
		memcpy(r->body, died, r->len);
		errno = EPIPE;
		return -1;
	}
	r->status = m.status;
	r->len = m.len;
	memcpy(r->body, m.body, m.len);
	return 0;
}

/* ---- the upload process ---------------------------------------------------- */

static volatile sig_atomic_t uploader_stop;

static void
on_term(int sig)
{
	(void)sig;
	uploader_stop = 1;
}

__attribute__((format(printf, 3, 4)))
static void
reply_set(struct reply_msg *m, int status, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(m->body, sizeof(m->body), fmt, ap);
	va_end(ap);
	m->status = status;
	m->len = n < 0 ? 0 : (size_t)n >= sizeof(m->body) ?
	    (uint32_t)sizeof(m->body) - 1 : (uint32_t)n;
}

/* JSON strings here come from our own tables (types, limit names) and from
 * libvips' error text: keep only what needs no escaping. */
static void
json_safe(char *dst, size_t dstlen, const char *src)
{
	size_t j = 0;

	for (; *src && j + 1 < dstlen; src++) {
		unsigned char ch = (unsigned char)*src;

		if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
			dst[j++] = (char)ch;
		else if (ch == '\n' || ch == '\t')
			dst[j++] = ' ';
	}
	dst[j] = '\0';
}

/* The version in the URL is the first 64 bits of the stored bytes' SHA-256:
 * the same image stored twice gets the same URL, a new one a new URL. */
static void
version_of(const unsigned char *p, size_t len, char out[17])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_Digest(p, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen < 8) {
		snprintf(out, 17, "%016llx", (unsigned long long)time(NULL));
		return;
	}
	for (int i = 0; i < 8; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* What the store's hooks need to make and drop an avatar's variants. */
struct put_ctx {
	const struct conf *c;
	int64_t id;
	const struct image_out *io;	/* NULL for a delete */
	struct stat made_from;		/* the new file's, once "before" ran */
	int have_new;
	struct vmake_result res;
};

/* Every variant is made before the new avatar is renamed into place, so
 * the first reader of the new avatar finds its sizes and formats too. */
static void
put_before(void *p, const struct stat *st)
{
	struct put_ctx *x = p;

	x->made_from = *st;
	x->have_new = 1;
	if (vmake_bytes(x->c, x->c->dirfd, x->id, x->io->bytes, x->io->len,
	    x->io->type, st, &x->res) == -1)
		log_warnx("variants: %lld: none made (%s)", (long long)x->id,
		    x->res.why ? x->res.why : "error");
	stats_add_shared(ST_VARIANTS_MADE, x->res.made + x->res.copied);
}

/* The variants of the file that was replaced or deleted can never be
 * served again (their names hold its tag): they go. */
static void
put_replaced(void *p, const struct stat *old)
{
	struct put_ctx *x = p;

	if (x->have_new && old->st_size == x->made_from.st_size &&
	    old->st_mtim.tv_sec == x->made_from.st_mtim.tv_sec &&
	    old->st_mtim.tv_nsec == x->made_from.st_mtim.tv_nsec)
		return;
	vmake_drop(x->c, x->c->dirfd, x->id, old);
}

/* With --publish, the published tree follows every change of the store
 * before the writer is answered, so a client that reads right after its
 * write gets the new picture from the front server too. */
static void
republish(const struct conf *c, int64_t id)
{
	struct publish_result pr;

	if (c->publish && publish_id(c, c->dirfd, id, &pr) == -1)
		log_warn("publish: %lld", (long long)id);
}

static void
do_put(const struct conf *c, const struct job_msg *m, int bfd,
    struct reply_msg *rm)
{
	struct put_ctx x = { .c = c, .id = m->id };
	struct store_hooks hk = { put_before, put_replaced, &x };
	struct image_limits lim;
	struct image_out io;
	struct stat st;
	void *p = MAP_FAILED;
	char err[256], ver[17];
	int replaced = 0, e;

	memset(&io, 0, sizeof(io));
	if (bfd < 0 || fstat(bfd, &st) == -1 || (uint64_t)st.st_size != m->len) {
		reply_set(rm, 500, "{\"error\":\"the upload body was lost\"}");
		return;
	}
	if (m->len > 0 &&
	    (p = mmap(NULL, m->len, PROT_READ, MAP_PRIVATE, bfd, 0)) == MAP_FAILED) {
		reply_set(rm, 500, "{\"error\":\"the upload body could not be read\"}");
		return;
	}
	conf_image_limits(c, &lim);
	image_process(&lim, p == MAP_FAILED ? "" : p, m->len, &io);
	if (p != MAP_FAILED)
		munmap(p, m->len);
	if (io.status != 0) {
		char detail[sizeof(io.detail)];

		json_safe(err, sizeof(err), io.error ? io.error : "rejected");
		json_safe(detail, sizeof(detail), io.detail);
		reply_set(rm, io.status, "{\"error\":\"%s\"%s%s%s}", err,
		    detail[0] ? ",\"detail\":\"" : "", detail, detail[0] ? "\"" : "");
		goto done;
	}
	x.io = &io;
	if ((e = store_put_hooked(c->dirfd, m->id, io.ext, io.bytes, io.len,
	    &replaced, &hk)) != 0) {
		errno = e;
		log_warn("upload: %lld: store", (long long)m->id);
		reply_set(rm, 500, "{\"error\":\"the avatar could not be stored\"}");
		goto done;
	}
	republish(c, m->id);
	version_of(io.bytes, io.len, ver);
	reply_set(rm, replaced ? 200 : 201,
	    "{\"id\":%lld,\"type\":\"%s\",\"width\":%u,\"height\":%u,"
	    "\"bytes\":%zu,\"url\":\"/%lld?v=%s\"}",
	    (long long)m->id, io.mime, io.width, io.height, io.len,
	    (long long)m->id, ver);
done:
	image_out_free(&io);
}

static void
do_delete(const struct conf *c, const struct job_msg *m, struct reply_msg *rm)
{
	struct put_ctx x = { .c = c, .id = m->id };
	struct store_hooks hk = { NULL, put_replaced, &x };
	int e = store_delete_hooked(c->dirfd, m->id, &hk);

	republish(c, m->id);

	if (e == 0) {
		rm->status = 204;
		rm->len = 0;
	} else if (e == ENOENT)
		reply_set(rm, 404, "{\"error\":\"no avatar %lld\"}", (long long)m->id);
	else {
		errno = e;
		log_warn("upload: %lld: delete", (long long)m->id);
		reply_set(rm, 500, "{\"error\":\"the avatar could not be deleted\"}");
	}
}

/* Receives one job; returns 1 with the fds set, 0 at end of file, -1 to
 * go round again (interrupted, or a malformed message dropped). */
static int
recv_job(int qfd, struct job_msg *m, int *reply_fd, int *bfd)
{
	union {
		char buf[CMSG_SPACE(2 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh;
	struct iovec iov = { m, sizeof(*m) };
	struct cmsghdr *cm;
	int fds[2] = { -1, -1 };
	ssize_t n;

	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = u.buf;
	mh.msg_controllen = sizeof(u.buf);
	n = recvmsg(qfd, &mh, MSG_CMSG_CLOEXEC);
	if (n == 0)
		return 0;
	if (n == -1)
		return -1;
	for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
			size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			memcpy(fds, CMSG_DATA(cm), (k > 2 ? 2 : k) * sizeof(int));
		}
	if (n != (ssize_t)sizeof(*m) || m->magic != JOB_MAGIC ||
	    (fds[0] < 0 && m->method != UPLOAD_VARIANTS) ||
	    (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		log_warnx("upload: malformed job dropped");
		for (int i = 0; i < 2; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		return -1;
	}
	m->peer[sizeof(m->peer) - 1] = '\0';
	*reply_fd = fds[0];
	*bfd = fds[1];
	return 1;
}

static int
client_gone(int reply_fd)
{
	struct pollfd p = { .fd = reply_fd, .events = POLLRDHUP };

	return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR));
}

/* A read worker found a size or format missing: make what id lacks. */
static void
do_variants(const struct conf *c, const struct job_msg *m)
{
	struct vmake_result res;
	int64_t t0 = clock_ms();

	memset(&res, 0, sizeof(res));
	if (vmake_id(c, c->dirfd, m->id, &res) == -1) {
		/* An original that never gets variants (it does not decode, is
		 * over --upload-max, or is a symlink: vmake.h) is asked about
		 * again by every worker that serves it a size, every few
		 * seconds; it keeps being served as stored, and the batch
		 * command names it. Only real failures are warnings. */
		if (errno == EINVAL || errno == EFBIG || errno == ELOOP)
			log_debug("variants: %lld: none made (%s)", (long long)m->id,
			    res.why ? res.why : strerror(errno));
		else if (errno != ENOENT)
			log_warn("variants: %lld", (long long)m->id);
		republish(c, m->id);
		return;
	}
	republish(c, m->id);
	stats_add_shared(ST_VARIANTS_MADE, res.made + res.copied);
	if (res.made + res.copied + res.failed > 0 || res.status != 0)
		log_info("variants: %lld: made %u, copied %u, kept %u, failed %u%s%s "
		    "in %lld ms", (long long)m->id, res.made, res.copied, res.kept,
		    res.failed, res.why ? ", refused: " : "", res.why ? res.why : "",
		    (long long)(clock_ms() - t0));
}

/* A job's method, as the log names it. */
static const char *
method_name(uint32_t method)
{
	return method == UPLOAD_PUT ? "PUT" : method == UPLOAD_DELETE ? "DELETE" :
	    method == UPLOAD_VARIANTS ? "variants job" : "job";
}

static void
serve_job(const struct conf *c, const struct job_msg *m, int reply_fd, int bfd)
{
	struct reply_msg rm;
	char peer[80];

	if (m->method == UPLOAD_VARIANTS) {
		do_variants(c, m);
		return;
	}

	memset(&rm, 0, sizeof(rm));
	/* The read worker closes its end when it gave up waiting (it told
	 * its client 503 after --timeout): a job nobody waits for is not
	 * done, so a 503 means "not stored" unless the work had begun. */
	if (client_gone(reply_fd)) {
		log_info("upload: %s %lld skipped: its client stopped waiting",
		    method_name(m->method), (long long)m->id);
		return;
	}
	if (m->method == UPLOAD_PUT)
		do_put(c, m, bfd, &rm);
	else if (m->method == UPLOAD_DELETE)
		do_delete(c, m, &rm);
	else
		reply_set(&rm, 500, "{\"error\":\"unknown job\"}");
	/* The read worker may have gone (its client hung up); the store has
	 * the result all the same. */
	(void)send(reply_fd, &rm, offsetof(struct reply_msg, body) + rm.len,
	    MSG_NOSIGNAL | MSG_DONTWAIT);
	log_escape(peer, sizeof(peer), m->peer, strlen(m->peer));
	log_info("upload: %s %lld -> %d, %llu bytes in, peer %s",
	    method_name(m->method), (long long)m->id,
	    (int)rm.status, (unsigned long long)m->len, peer);
}

static int
uploader_run(const struct conf *c, int qfd, struct job_watch *w)
{
	struct sigaction sa;
	const char *why = NULL;
	sigset_t none;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;	/* no SA_RESTART: ends a waiting recvmsg */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* An upload process whose manager is gone ends too, instead of
	 * living on as an orphan nobody restarts. */
	(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
	/* Named apart from read workers in ps and /proc (comm). */
	(void)prctl(PR_SET_NAME, "avatar-upload");
	/* Reads come first: image work takes the CPU only when reads leave it. */
	(void)setpriority(PRIO_PROCESS, 0, 10);
	if (image_init("avatar.fcgi", &why) == -1) {
		log_errx("upload: libvips: %s", why ? why : "initialisation failed");
		return 1;
	}
	(void)store_clean_tmp(c->dirfd, STORE_TMP_MAX_AGE);
	/* Variants are written through temporary files in .v/SIZE/ too, by
	 * this host or another sharing the directory. */
	(void)store_clean_tmp_variants(c->dirfd, STORE_TMP_MAX_AGE);
	while (!uploader_stop) {
		struct job_msg m;
		int reply_fd = -1, bfd = -1, r = recv_job(qfd, &m, &reply_fd, &bfd);

		if (r == 0)
			break;
		if (r < 0)
			continue;
		w->id = m.id;
		w->method = m.method;
		__atomic_store_n(&w->since, clock_ms(), __ATOMIC_RELEASE);
		serve_job(c, &m, reply_fd, bfd);
		__atomic_store_n(&w->since, 0, __ATOMIC_RELEASE);
		if (reply_fd >= 0)
			close(reply_fd);
		if (bfd >= 0)
			close(bfd);
	}
	return 0;
}

/* ---- the manager -------------------------------------------------------------- */

struct uploader {
	pid_t pid;
	int64_t restart_at;	/* ms; when a dead one may start again */
	unsigned fails;		/* quick deaths in a row */
	int64_t started;
	struct job_watch *watch;	/* shared; NULL for the publisher */
	int killed;		/* killed for --job-limit, not reaped yet */
};

/* Slot n (one past the upload processes) is the watcher, with --publish. */
static void
uploader_spawn(const struct conf *c, int qfd, struct uploader *u, int sfd, int watcher)
{
	pid_t pid = fork();

	if (pid == -1) {
		log_warn("upload: fork");
		u->restart_at = clock_ms() + 1000;
		return;
	}
	if (pid == 0) {
		close(sfd);
		if (watcher) {
			close(qfd);
			_exit(publish_watch(c));
		}
		_exit(uploader_run(c, qfd, u->watch));
	}
	u->pid = pid;
	u->started = clock_ms();
	u->killed = 0;
}

/* Kills the upload processes whose job has run over --job-limit; they
 * are restarted when reaped. Returns the ms until the next check is due
 * (-1: no job is running). */
static int64_t
enforce_limit(const struct conf *c, struct uploader *ups, unsigned n, int64_t now)
{
	int64_t limit = c->job_limit * 1000, next = -1;

	for (unsigned i = 0; i < n; i++) {
		int64_t since;

		if (ups[i].pid <= 0 || ups[i].killed ||
		    (since = __atomic_load_n(&ups[i].watch->since, __ATOMIC_ACQUIRE)) == 0)
			continue;
		if (now - since < limit) {
			if (next < 0 || since + limit - now < next)
				next = since + limit - now;
			continue;
		}
		/* SIGKILL: a hung process may be stopped or deep in a
		 * library; the store holds the old avatar or the new one
		 * whole, and its temporary files go when the next starts. */
		log_warnx("upload: %s %lld ran over --job-limit (%lld s): upload process %ld "
		    "killed; a new one starts", method_name(ups[i].watch->method),
		    (long long)ups[i].watch->id, (long long)c->job_limit, (long)ups[i].pid);
		kill(ups[i].pid, SIGKILL);
		ups[i].killed = 1;
		stats_add_shared(ST_JOBS_KILLED, 1);
	}
	return next;
}

/* The pool's crash back-off: a crash loop cannot spin. */
static void
uploader_died(struct uploader *u)
{
	u->pid = 0;
	u->restart_at = pool_backoff(&u->fails, u->started, clock_ms());
}

static int
manager_run(const struct conf *c, int qfd)
{
	struct uploader ups[MAX_UPLOADERS + 1];
	struct job_watch *watches;
	unsigned n = (unsigned)c->upload_workers, nw;
	struct signalfd_siginfo si;
	sigset_t set;
	int sfd, stopping = 0;

	if (n > MAX_UPLOADERS)
		n = MAX_UPLOADERS;
	nw = n + (c->publish ? 1 : 0);
	memset(ups, 0, sizeof(ups));
	/* One watch per upload process, shared with it across its fork and
	 * every restart. */
	watches = mmap(NULL, n * sizeof(*watches), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (watches == MAP_FAILED) {
		log_err("upload: shared memory");
		return 1;
	}
	for (unsigned i = 0; i < n; i++)
		ups[i].watch = &watches[i];
	/* If the supervisor is killed outright, the manager goes too. */
	(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGHUP, SIG_IGN);
	signal(SIGUSR1, SIG_IGN);
	signal(SIGUSR2, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	if ((sfd = signalfd(-1, &set, SFD_CLOEXEC)) == -1) {
		log_err("upload: signalfd");
		return 1;
	}
	for (;;) {
		struct pollfd pfd[2];
		int64_t now = clock_ms(), wait = -1, check;
		unsigned alive = 0;

		for (unsigned i = 0; i < nw; i++) {
			if (ups[i].pid > 0) {
				alive++;
				continue;
			}
			if (stopping)
				continue;
			if (ups[i].restart_at <= now) {
				uploader_spawn(c, qfd, &ups[i], sfd, i == n);
				alive += ups[i].pid > 0;
			} else if (wait < 0 || ups[i].restart_at - now < wait)
				wait = ups[i].restart_at - now;
		}
		if (stopping && alive == 0)
			break;
		if ((check = enforce_limit(c, ups, n, now)) >= 0 && (wait < 0 || check < wait))
			wait = check;
		pfd[0].fd = sfd;
		pfd[0].events = POLLIN;
		/* POLLRDHUP alone: woken when the last submitter is gone,
		 * never by the jobs themselves (those are the uploaders'). */
		pfd[1].fd = stopping ? -1 : qfd;
		pfd[1].events = POLLRDHUP;
		if (poll(pfd, 2, (int)wait) <= 0)
			continue;
		if ((pfd[1].revents & (POLLRDHUP | POLLHUP)) && !stopping) {
			/* Nobody can submit any more: the uploaders finish the
			 * jobs queued and leave by themselves; the publisher
			 * has no end of its own and is told to go here, as a
			 * signal that comes after this (the supervisor's death
			 * signal) finds the manager already stopping. */
			stopping = 1;
			if (c->publish && ups[n].pid > 0)
				kill(ups[n].pid, SIGTERM);
		}
		if (!(pfd[0].revents & POLLIN) ||
		    read(sfd, &si, sizeof(si)) != sizeof(si))
			continue;
		if (si.ssi_signo == SIGCHLD) {
			int status;
			pid_t pid;

			while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
				for (unsigned i = 0; i < nw; i++)
					if (ups[i].pid == pid) {
						if (!stopping && !ups[i].killed)
							log_warnx("upload process %ld ended (status %d); restarting",
							    (long)pid, status);
						if (ups[i].watch != NULL)
							__atomic_store_n(&ups[i].watch->since, 0,
							    __ATOMIC_RELEASE);
						uploader_died(&ups[i]);
					}
		} else if (!stopping) {
			stopping = 1;
			for (unsigned i = 0; i < nw; i++)
				if (ups[i].pid > 0)
					kill(ups[i].pid, SIGTERM);
		}
	}
	return 0;
}

/* What a new manager needs, kept by the process that started the first
 * (the supervisor): the queue's receiving end, so that jobs wait in it
 * while no manager runs, and the descriptor a manager must not hold. */
static struct {
	const struct conf *c;
	int qfd;
	int submit_fd;		/* never the manager's: its end is how it stops */
	int close_in_child;
} mgr = { NULL, -1, -1, -1 };

pid_t
upload_manager_start(int not_inherited)
{
	int ready[2];
	pid_t pid;
	char b;

	if (mgr.qfd < 0 || pipe2(ready, O_CLOEXEC) == -1)
		return -1;
	if ((pid = fork()) == -1) {
		close(ready[0]);
		close(ready[1]);
		return -1;
	}
	if (pid == 0) {
		close(ready[0]);
		close(mgr.submit_fd);
		if (not_inherited >= 0)
			close(not_inherited);
		if (mgr.close_in_child >= 0)
			close(mgr.close_in_child);
		/* Named before anything can look at it: ps, and the tests'
		 * count of read workers, tell the manager apart by its name. */
		(void)prctl(PR_SET_NAME, "avatar-uploads");
		close(ready[1]);
		_exit(manager_run(mgr.c, mgr.qfd));
	}
	close(ready[1]);
	/* End of file once the manager has its name (or has died). */
	while (read(ready[0], &b, 1) == -1 && errno == EINTR)
		;
	close(ready[0]);
	return pid;
}

int
upload_start(const struct conf *c, int close_in_child, pid_t *manager)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1)
		return -1;
	mgr.c = c;
	mgr.qfd = sv[1];
	mgr.submit_fd = sv[0];
	mgr.close_in_child = close_in_child;
	if ((*manager = upload_manager_start(-1)) == -1) {
		close(sv[0]);
		close(sv[1]);
		mgr.qfd = -1;
		return -1;
	}
	(void)fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
	return sv[0];
}

void
upload_worker_init(void)
{
	if (mgr.qfd >= 0)
		close(mgr.qfd);
	mgr.qfd = -1;
}
