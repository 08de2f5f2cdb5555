/*
 * avatar.fcgi: start-up. Reads the configuration, finds or makes the
 * listening socket, maps the counters, then either serves in this process
 * (--workers 0) or becomes the supervisor of a pool.
 */
#include "batch.h"
#include "conf.h"
#include "log.h"
#include "pool.h"
#include "publish.h"
#include "resolve.h"
#include "server.h"
#include "sign.h"
#include "sock.h"
#include "stats.h"
#include "upload.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct worker_arg {
	const struct conf *c;
	int listen_fd;
	int upload_fd;		/* the upload job queue, -1: writes disabled */
};

static int supervisor_listen_fd = -1;

/* The supervisor lets go of the socket when the pool stops (see pool.h). */
static void
release_socket(void)
{
	sock_cleanup();
	if (supervisor_listen_fd >= 0) {
		close(supervisor_listen_fd);
		supervisor_listen_fd = -1;
	}
}

/*
 * From the first instruction on, every signal means what it means later
 * (avatar.fcgi(1), SIGNALS): SIGUSR1, SIGUSR2 and SIGPIPE are ignored, and
 * SIGTERM, SIGINT and SIGHUP wait blocked until the pool's or the
 * worker's signalfd reads them, so a reload or a stop sent during
 * start-up is acted on, never fatal. SIGCHLD waits for the pool too.
 */
static void
signals_init(void)
{
	struct sigaction sa;
	sigset_t held;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(SIGPIPE, &sa, NULL);
	sigemptyset(&held);
	sigaddset(&held, SIGTERM);
	sigaddset(&held, SIGINT);
	sigaddset(&held, SIGHUP);
	sigaddset(&held, SIGCHLD);
	sigprocmask(SIG_BLOCK, &held, NULL);
}

static int
worker(unsigned slot, void *p)
{
	struct worker_arg *w = p;

	(void)slot;
	/* Each worker builds its own cache after the fork. */
	resolve_init(w->c->dirfd, w->c->mode == MODE_BYTES,
	    (size_t)w->c->cache_file_max, (size_t)w->c->cache_size);
	upload_worker_init();
	return server_run(w->c, w->listen_fd, w->upload_fd);
}

int
main(int argc, char **argv)
{
	static struct conf c;
	struct worker_arg w;
	struct pool_sidecar manager = { "upload manager", 0, upload_manager_start };
	int rc;

	/* A tool for the site's operators, not a server: no socket, no dir. */
	if (argc > 1 && strcmp(argv[1], "sign") == 0)
		return sign_main(argc - 1, argv + 1);
	/* The batch maker of size and format variants (batch.h): its own
	 * workers and signals, no socket. */
	if (argc > 1 && strcmp(argv[1], "variants") == 0)
		return batch_main(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "publish") == 0)
		return publish_main(argc - 1, argv + 1);
	/* The responder's signal meanings (the sign tool above keeps the
	 * defaults, so Ctrl-C stops it). */
	signals_init();
	conf_load(&c, argc, argv);
	log_set_level((enum log_level)c.log_level);
	sock_allow_init();
	w.c = &c;
	w.listen_fd = sock_listen(c.socket, (int)c.socket_mode, (int)c.backlog);
	if (stats_init() == -1) {
		perror("avatar.fcgi: shared counters");
		return 2;
	}
	/* The upload processes start before any read worker exists, so every
	 * worker inherits the job queue and none of them ever holds libvips.
	 * They take writes (with a key file) and make the variants a read
	 * found missing (with sizes or formats configured). */
	w.upload_fd = -1;
	if (c.keys.n > 0 || c.variants.nsizes > 0 || c.variants.formats != 0 || c.publish) {
		if ((w.upload_fd = upload_start(&c, w.listen_fd, &manager.pid)) == -1) {
			perror("avatar.fcgi: upload processes");
			return 2;
		}
		c.writes = c.keys.n > 0;
	}
	if (c.workers == 0) {
		stats_set_workers(1, 1, 0);
		rc = worker(STATS_SLOTS - 1, &w);
	} else {
		supervisor_listen_fd = w.listen_fd;
		/* The supervisor restarts a dead upload manager too. */
		rc = pool_run((unsigned)c.workers, (unsigned)c.timeout + 5, worker,
		    &w, release_socket, w.upload_fd >= 0 ? &manager : NULL);
	}
	sock_cleanup();
	return rc;
}
