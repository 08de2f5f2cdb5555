/*
 * sock: the listening socket, wherever it comes from: fd 0 (spawn-fcgi,
 * lighttpd bin-path, systemd StandardInput=socket), systemd's LISTEN_FDS,
 * or our own --socket; and the FCGI_WEB_SERVER_ADDRS peer filter, which
 * libfcgi applies to IPv4 peers only and which here covers IPv6 too.
 */
#ifndef AVATAR_SOCK_H
#define AVATAR_SOCK_H

#include <sys/socket.h>

/* Returns a listening descriptor or exits 2 with one line naming the
 * problem. spec: --socket value, empty for an inherited socket. */
int sock_listen(const char *spec, int mode, int backlog);

/* Removes the unix socket file made by sock_listen, if any. */
void sock_cleanup(void);

/* Reads FCGI_WEB_SERVER_ADDRS once; exits 2 on a malformed address. */
void sock_allow_init(void);
/* 1 when a peer may talk to us: any unix peer, or an inet peer in the
 * list when the list is set. */
int sock_peer_allowed(const struct sockaddr_storage *sa, socklen_t len);

#endif
