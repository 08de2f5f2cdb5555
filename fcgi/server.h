/*
 * server: one worker process's event loop. It owns the FastCGI side: accept,
 * the record guard, libfcgi, and the sink that turns response bytes into
 * FCGI_STDOUT records. It returns only to exit.
 */
#ifndef AVATAR_SERVER_H
#define AVATAR_SERVER_H

#include "conf.h"

/*
 * Serves connections on listen_fd until SIGTERM or SIGINT, then
 * stops accepting, finishes every request it holds, and returns the exit
 * status (0 after a clean drain).
 */
int server_run(const struct conf *c, int listen_fd);

#endif
