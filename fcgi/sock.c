/*
 * sock: socket set-up at start-up and the per-connection address check.
 */
#include "sock.h"
#include "log.h"
#include "num.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_ALLOWED 64

static char made_path[108];
static struct {
	int family;
	unsigned char addr[16];
} allowed[MAX_ALLOWED];
static int nallowed = -1;	/* -1: no list, everyone allowed */


static int
is_listening(int fd)
{
	int v = 0;
	socklen_t len = sizeof(v);

	return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0 && v;
}

static int
inherited(void)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	int64_t p, n;

	/* systemd socket activation hands the sockets over from fd 3. */
	if (pid && fds && num_parse_str(pid, 1, INT32_MAX, &p) == 0 &&
	    p == getpid() && num_parse_str(fds, 1, 64, &n) == 0) {
		if (n != 1)
			log_die("LISTEN_FDS: %lld sockets passed; expected 1", (long long)n);
		if (!is_listening(3))
			log_die("LISTEN_FDS: fd 3 is not a listening socket");
		unsetenv("LISTEN_PID");
		unsetenv("LISTEN_FDS");
		(void)fcntl(3, F_SETFD, FD_CLOEXEC);
		return 3;
	}
	if (!is_listening(0))
		log_die("no listening socket on fd 0: run under spawn-fcgi, lighttpd "
		    "or systemd, or give --socket PATH or HOST:PORT");
	return 0;
}

static int
listen_unix(const char *path, int mode, int backlog)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path))
		log_die("--socket: %s: path longer than %zu bytes", path,
		    sizeof(sun.sun_path) - 1);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, path);
	/* A stale socket from an earlier run would make bind fail; remove
	 * it, but never anything that is not a socket. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			log_die("--socket: %s: exists and is not a socket", path);
		unlink(path);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		log_die("--socket: socket: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		log_die("--socket: %s: %s", path, strerror(errno));
	snprintf(made_path, sizeof(made_path), "%s", path);
	if (chmod(path, (mode_t)mode) == -1)
		log_die("--socket: %s: chmod: %s", path, strerror(errno));
	if (listen(fd, backlog) == -1)
		log_die("--socket: %s: listen: %s", path, strerror(errno));
	return fd;
}

static int
listen_inet(const char *spec, int backlog)
{
	char host[256];
	const char *colon, *port;
	struct addrinfo hints, *res;
	size_t hlen;
	int fd, one = 1, rc;

	if (spec[0] == '[') {
		const char *end = strchr(spec, ']');
		if (end == NULL || end[1] != ':')
			log_die("--socket: \"%s\" is not [V6]:PORT", spec);
		hlen = (size_t)(end - spec - 1);
		if (hlen >= sizeof(host))
			log_die("--socket: host too long");
		memcpy(host, spec + 1, hlen);
		port = end + 2;
	} else {
		colon = strrchr(spec, ':');
		hlen = (size_t)(colon - spec);
		if (hlen >= sizeof(host))
			log_die("--socket: host too long");
		memcpy(host, spec, hlen);
		port = colon + 1;
	}
	host[hlen] = '\0';
	{
		int64_t p;
		if (num_parse_str(port, 1, 65535, &p) == -1)
			log_die("--socket: \"%s\" is not a port from 1 to 65535", port);
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res)) != 0)
		log_die("--socket: %s: %s", spec, gai_strerror(rc));
	if ((fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, 0)) == -1)
		log_die("--socket: socket: %s", strerror(errno));
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) == -1)
		log_die("--socket: %s: %s", spec, strerror(errno));
	if (listen(fd, backlog) == -1)
		log_die("--socket: %s: listen: %s", spec, strerror(errno));
	freeaddrinfo(res);
	return fd;
}

int
sock_listen(const char *spec, int mode, int backlog)
{
	if (spec[0] == '\0')
		return inherited();
	/* A path has a slash or no colon; HOST:PORT never has a slash. */
	if (strchr(spec, '/') != NULL || strchr(spec, ':') == NULL)
		return listen_unix(spec, mode, backlog);
	return listen_inet(spec, backlog);
}

void
sock_cleanup(void)
{
	if (made_path[0] != '\0')
		unlink(made_path);
	made_path[0] = '\0';
}

void
sock_allow_init(void)
{
	const char *list = getenv("FCGI_WEB_SERVER_ADDRS");
	char buf[4096], *save = NULL, *tok;

	if (list == NULL || list[0] == '\0')
		return;
	if (strlen(list) >= sizeof(buf))
		log_die("FCGI_WEB_SERVER_ADDRS: longer than %zu bytes", sizeof(buf) - 1);
	strcpy(buf, list);
	nallowed = 0;
	for (tok = strtok_r(buf, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		if (nallowed == MAX_ALLOWED)
			log_die("FCGI_WEB_SERVER_ADDRS: more than %d addresses", MAX_ALLOWED);
		if (inet_pton(AF_INET, tok, allowed[nallowed].addr) == 1)
			allowed[nallowed].family = AF_INET;
		else if (inet_pton(AF_INET6, tok, allowed[nallowed].addr) == 1)
			allowed[nallowed].family = AF_INET6;
		else
			log_die("FCGI_WEB_SERVER_ADDRS: \"%s\" is not an IPv4 or IPv6 address", tok);
		nallowed++;
	}
}

int
sock_peer_allowed(const struct sockaddr_storage *sa, socklen_t len)
{
	const unsigned char *a;
	int fam = sa->ss_family;

	(void)len;
	if (nallowed < 0 || fam == AF_UNIX)
		return 1;
	if (fam == AF_INET) {
		a = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
	} else if (fam == AF_INET6) {
		a = (const unsigned char *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
		/* An IPv4 peer on a dual-stack socket: compare as IPv4. */
		if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)a)) {
			fam = AF_INET;
			a += 12;
		}
	} else {
		return 0;
	}
	for (int i = 0; i < nallowed; i++)
		if (allowed[i].family == fam &&
		    memcmp(allowed[i].addr, a, fam == AF_INET ? 4 : 16) == 0)
			return 1;
	return 0;
}
