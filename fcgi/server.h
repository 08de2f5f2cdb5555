/*
 * server: one worker process's event loop. It owns the FastCGI side: accept,
 * reading records (fcgi_in), request bodies, and the output queue of each
 * connection (out). It returns only to exit.
 */
#ifndef AVATAR_SERVER_H
#define AVATAR_SERVER_H

#include "conf.h"

/*
 * Serves connections on listen_fd until SIGTERM or SIGINT, then
 * stops accepting, finishes every request it holds, and returns the exit
 * status (0 after a clean drain). It sets the process's signal handling
 * itself (SIGTERM and SIGINT blocked and read from a signalfd; SIGHUP,
 * SIGUSR1, SIGUSR2 and SIGPIPE ignored), so it works alone (--workers 0)
 * as well as in a pool's worker. upload_fd: upload_start's job queue, or
 * -1 when writes are disabled.
 */
int server_run(const struct conf *c, int listen_fd, int upload_fd);

#endif
