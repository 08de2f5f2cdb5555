/*
 * conf: option table, parsing and validation. Runs once at start-up, before
 * any socket is touched; the only file it opens is the avatars directory.
 */
#include "conf.h"
#include "log.h"
#include "num.h"
#include "reqparse.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef AVATAR_VERSION
#define AVATAR_VERSION "0"
#endif


typedef void setter(struct conf *, const char *flag, const char *value);

struct opt {
	const char *name;	/* long flag without "--" */
	const char *env;	/* environment variable */
	const char *arg;	/* metavariable in --help */
	const char *def;	/* default, set as any given value is */
	/* How a value is set: SETTER or INTEGER, below. */
	setter *set;		/* NULL: an integer */
	size_t off;		/* the integer's field in struct conf */
	int64_t min, max;	/* and its range */
	const char *help;
};

/* An option read by a setter of its own. */
#define SETTER(fn) (fn), 0, 0, 0
/*
 * An integer option needs no setter: opt_set checks it with int_in and
 * stores it in field, which must be an int64_t of struct conf (anything
 * else does not compile).
 */
#define INTEGER(field, lo, hi) NULL, \
	_Generic(((struct conf *)0)->field, int64_t: offsetof(struct conf, field)), \
	(lo), (hi)

static void
copy_str(char *dst, size_t dstlen, const char *flag, const char *v)
{
	size_t n = strlen(v);

	if (n >= dstlen)
		log_die("%s: value is longer than %zu bytes", flag, dstlen - 1);
	memcpy(dst, v, n + 1);
}

static int64_t
int_in(const char *flag, const char *v, int64_t min, int64_t max)
{
	int64_t n;

	if (num_parse_str(v, min, max, &n) == -1)
		log_die("%s: \"%s\" is not an integer from %lld to %lld", flag, v,
		    (long long)min, (long long)max);
	return n;
}

static uint64_t
size_in(const char *flag, const char *v, uint64_t max)
{
	uint64_t n;

	if (num_parse_size(v, max, &n) == -1)
		log_die("%s: \"%s\" is not a size (bytes, or with K, M, G) up to %llu",
		    flag, v, (unsigned long long)max);
	return n;
}

/* A value that goes into a response header: printable ASCII without
 * spaces, so no CR or LF can start a header of its own. */
static void
header_safe(const char *flag, const char *v)
{
	for (const char *p = v; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			log_die("%s: only printable ASCII without spaces is allowed", flag);
}

static void
set_dir(struct conf *c, const char *f, const char *v)
{
	copy_str(c->dir, sizeof(c->dir), f, v);
}

static void
set_mode(struct conf *c, const char *f, const char *v)
{
	if (strcmp(v, "bytes") == 0)
		c->mode = MODE_BYTES;
	else if (strcmp(v, "x-accel") == 0)
		c->mode = MODE_X_ACCEL;
	else if (strcmp(v, "x-sendfile") == 0)
		c->mode = MODE_X_SENDFILE;
	else
		log_die("%s: \"%s\" is not one of bytes, x-accel, x-sendfile", f, v);
}

static void
set_accel_prefix(struct conf *c, const char *f, const char *v)
{
	/* The prefix goes into a response header, and it must be an
	 * absolute URI path for nginx to redirect to it. */
	if (v[0] != '/')
		log_die("%s: \"%s\" must start with /", f, v);
	header_safe(f, v);
	copy_str(c->accel_prefix, sizeof(c->accel_prefix), f, v);
}

static void
set_missing(struct conf *c, const char *f, const char *v)
{
	if (strcmp(v, "default") == 0)
		c->missing = MISSING_DEFAULT;
	else if (strcmp(v, "404") == 0)
		c->missing = MISSING_404;
	else
		log_die("%s: \"%s\" is not one of default, 404", f, v);
}

/*
 * An origin as a browser sends it (RFC 6454 section 6.1): scheme "://"
 * host, optional ":" port, nothing after; lower-case, since browsers
 * serialise it so and the match is exact.
 */
static int
origin_ok(const char *s, size_t len)
{
	const char *sep = memmem(s, len, "://", 3), *p;

	if (sep == NULL || sep == s || (size_t)(sep - s) + 3 >= len)
		return 0;
	for (p = s; p < s + len; p++) {
		if (*p >= 'A' && *p <= 'Z')
			return 0;
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f ||
		    *p == ',' || *p == '*')
			return 0;
		if (p > sep + 2 && (*p == '/' || *p == '?' || *p == '#'))
			return 0;
	}
	return 1;
}

static void
set_cors_origin(struct conf *c, const char *f, const char *v)
{
	const char *p = v;

	/* Checked before it is echoed in a message or a header. */
	header_safe(f, v);
	copy_str(c->cors_origin, sizeof(c->cors_origin), f, v);
	c->cors_any = strcmp(v, "*") == 0;
	if (c->cors_any)
		return;
	/* Each origin goes into a response header: check every one now. */
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);

		if (!origin_ok(p, n))
			log_die("%s: \"%.*s\" is not \"*\" or an origin like "
			    "https://app.example (lower case, no path), "
			    "comma-separated", f, (int)n, p);
		if (comma == NULL)
			break;
		p = comma + 1;
	}
}

static void
set_socket(struct conf *c, const char *f, const char *v)
{
	copy_str(c->socket, sizeof(c->socket), f, v);
}

static void
set_socket_mode(struct conf *c, const char *f, const char *v)
{
	char *end;
	long m;

	errno = 0;
	m = strtol(v, &end, 8);
	if (v[0] < '0' || v[0] > '7' || *end != '\0' || errno != 0 || m > 0777)
		log_die("%s: \"%s\" is not an octal mode up to 0777", f, v);
	c->socket_mode = m;
}

static void
set_cache_size(struct conf *c, const char *f, const char *v)
{
	c->cache_size = size_in(f, v, 1ULL << 40);
}

static void
set_cache_file_max(struct conf *c, const char *f, const char *v)
{
	c->cache_file_max = size_in(f, v, 1ULL << 30);
}

static void
set_upload_max(struct conf *c, const char *f, const char *v)
{
	c->upload_max = size_in(f, v, 1ULL << 30);
}

static void
set_log_level(struct conf *c, const char *f, const char *v)
{
	int l = log_level_parse(v);

	if (l < 0)
		log_die("%s: \"%s\" is not one of error, warn, info, debug", f, v);
	c->log_level = l;
}

static void
set_key_file(struct conf *c, const char *f, const char *v)
{
	copy_str(c->key_file, sizeof(c->key_file), f, v);
}

static void
set_max_pixels(struct conf *c, const char *f, const char *v)
{
	c->max_pixels = size_in(f, v, 1ULL << 32);
	if (c->max_pixels == 0)
		log_die("%s: must be at least 1", f);
}

/* A comma-separated list, each item to fn; "none" or "" is the empty list. */
static void
each_item(struct conf *c, const char *f, const char *v,
    void (*fn)(struct conf *, const char *, const char *))
{
	char item[64];
	const char *p = v, *comma;

	if (strcmp(v, "none") == 0)
		return;
	while (*p != '\0') {
		size_t n;

		comma = strchr(p, ',');
		n = comma ? (size_t)(comma - p) : strlen(p);
		if (n == 0 || n >= sizeof(item))
			log_die("%s: \"%s\" is not a comma-separated list", f, v);
		memcpy(item, p, n);
		item[n] = '\0';
		fn(c, f, item);
		p += n + (comma != NULL);
		if (comma != NULL && *p == '\0')
			log_die("%s: \"%s\" is not a comma-separated list", f, v);
	}
}

static void
add_size(struct conf *c, const char *f, const char *item)
{
	struct variant_conf *vc = &c->variants;
	unsigned n = (unsigned)int_in(f, item, REQ_SIZE_MIN, REQ_SIZE_MAX);
	size_t i;

	if (vc->nsizes == VARIANT_SIZES_MAX)
		log_die("%s: at most %d sizes", f, VARIANT_SIZES_MAX);
	/* Kept ascending: variant_pick_size walks up the list. */
	for (i = vc->nsizes; i > 0 && vc->sizes[i - 1] > n; i--)
		vc->sizes[i] = vc->sizes[i - 1];
	if (i > 0 && vc->sizes[i - 1] == n)
		log_die("%s: %u is listed twice", f, n);
	vc->sizes[i] = n;
	vc->nsizes++;
}

static void
set_sizes(struct conf *c, const char *f, const char *v)
{
	c->variants.nsizes = 0;
	each_item(c, f, v, add_size);
}

static void
add_format(struct conf *c, const char *f, const char *item)
{
	if (strcmp(item, "webp") == 0)
		c->variants.formats |= VARIANT_FMT(SNIFF_WEBP);
	else if (strcmp(item, "avif") == 0)
		c->variants.formats |= VARIANT_FMT(SNIFF_AVIF);
	else
		log_die("%s: \"%s\" is not one of webp, avif, none", f, item);
}

static void
set_formats(struct conf *c, const char *f, const char *v)
{
	c->variants.formats = 0;
	each_item(c, f, v, add_format);
}

static void
set_negotiate(struct conf *c, const char *f, const char *v)
{
	if (strcmp(v, "on") == 0)
		c->variants.negotiate = 1;
	else if (strcmp(v, "off") == 0)
		c->variants.negotiate = 0;
	else
		log_die("%s: \"%s\" is not one of on, off", f, v);
}

static void
set_publish(struct conf *c, const char *f, const char *v)
{
	if (strcmp(v, "on") == 0)
		c->publish = 1;
	else if (strcmp(v, "off") == 0)
		c->publish = 0;
	else
		log_die("%s: \"%s\" is not one of on, off", f, v);
}

static void
set_crop(struct conf *c, const char *f, const char *v)
{
	if (image_crop_parse(v, &c->crop) == -1)
		log_die("%s: \"%s\" is not one of centre, attention, none", f, v);
}

static const struct opt opts[] = {
	{ "dir", "AVATAR_DIR", "DIR", "./avatars", SETTER(set_dir),
	  "directory holding ID.png, ID.jpg, ID.jpeg, ID.gif, ID.webp" },
	{ "mode", "AVATAR_MODE", "MODE", "bytes", SETTER(set_mode),
	  "bytes, x-accel (nginx) or x-sendfile (lighttpd)" },
	{ "accel-prefix", "AVATAR_ACCEL_PREFIX", "PATH", "/_avatars/", SETTER(set_accel_prefix),
	  "X-Accel-Redirect prefix of nginx's internal location" },
	{ "default-id", "AVATAR_DEFAULT_ID", "ID", "-1", INTEGER(default_id, INT64_MIN, INT64_MAX),
	  "id whose file answers for a missing avatar" },
	{ "missing", "AVATAR_MISSING", "POLICY", "default", SETTER(set_missing),
	  "default (serve the default avatar) or 404" },
	{ "max-age", "AVATAR_MAX_AGE", "SECONDS", "300", INTEGER(max_age, 0, INT32_MAX),
	  "max-age of an avatar at an unversioned URL" },
	{ "stale-while-revalidate", "AVATAR_STALE_WHILE_REVALIDATE", "SECONDS", "86400",
	  INTEGER(swr, 0, INT32_MAX),
	  "how long after max-age a cache may show it while revalidating (0: never)" },
	{ "versioned-max-age", "AVATAR_VERSIONED_MAX_AGE", "SECONDS", "31536000",
	  INTEGER(versioned_max_age, 0, INT32_MAX),
	  "max-age (immutable) of an avatar at a URL with ?v= (0: as unversioned)" },
	{ "default-max-age", "AVATAR_DEFAULT_MAX_AGE", "SECONDS", "60",
	  INTEGER(default_max_age, 0, INT32_MAX),
	  "max-age of the default avatar and of a 404" },
	{ "cors-origin", "AVATAR_CORS_ORIGIN", "ORIGINS", "*", SETTER(set_cors_origin),
	  "Access-Control-Allow-Origin: * or comma-separated origins" },
	{ "cors-max-age", "AVATAR_CORS_MAX_AGE", "SECONDS", "7200", INTEGER(cors_max_age, 0, 86400),
	  "how long a browser may keep a CORS preflight answer" },
	{ "workers", "AVATAR_WORKERS", "N", "0", INTEGER(workers, 0, 256),
	  "0: serve in this process; N: supervise N worker processes" },
	{ "socket", "AVATAR_SOCKET", "ADDR", "", SETTER(set_socket),
	  "listen on PATH, HOST:PORT or [V6]:PORT instead of fd 0" },
	{ "socket-mode", "AVATAR_SOCKET_MODE", "MODE", "0660", SETTER(set_socket_mode),
	  "permissions of a unix socket made by --socket" },
	{ "backlog", "AVATAR_BACKLOG", "N", "1024", INTEGER(backlog, 1, 65535),
	  "listen backlog of a socket made by --socket" },
	{ "cache-size", "AVATAR_CACHE_SIZE", "BYTES", "64M", SETTER(set_cache_size),
	  "memory cache limit per worker (bytes mode)" },
	{ "cache-file-max", "AVATAR_CACHE_FILE_MAX", "BYTES", "1M", SETTER(set_cache_file_max),
	  "larger files are streamed, never cached" },
	{ "timeout", "AVATAR_TIMEOUT", "SECONDS", "10", INTEGER(timeout, 1, 3600),
	  "time a peer may leave a request or response without progress" },
	{ "upload-max", "AVATAR_UPLOAD_MAX", "BYTES", "8M", SETTER(set_upload_max),
	  "largest request body; a larger one is answered 413" },
	{ "log-level", "AVATAR_LOG_LEVEL", "LEVEL", "info", SETTER(set_log_level),
	  "error, warn, info or debug (debug logs every request)" },
	{ "key-file", "AVATAR_KEY_FILE", "FILE", "", SETTER(set_key_file),
	  "keys for signed PUT and DELETE, one a line (none: writes disabled)" },
	{ "max-ttl", "AVATAR_MAX_TTL", "SECONDS", "3600", INTEGER(max_ttl, 1, 366 * 86400),
	  "how far ahead a signed link's expiry may be" },
	{ "upload-workers", "AVATAR_UPLOAD_WORKERS", "N", "1", INTEGER(upload_workers, 1, 64),
	  "processes that decode and store uploads (never the read workers)" },
	{ "upload-queue", "AVATAR_UPLOAD_QUEUE", "N", "8", INTEGER(upload_queue, 1, 1024),
	  "uploads one read worker may have waiting; more get 503" },
	{ "job-limit", "AVATAR_JOB_LIMIT", "SECONDS", "60", INTEGER(job_limit, 1, 86400),
	  "an upload process whose job runs longer is killed and restarted" },
	{ "max-pixels", "AVATAR_MAX_PIXELS", "N", "16800000", SETTER(set_max_pixels),
	  "largest upload in pixels (width x height x frames), from its header" },
	{ "max-frames", "AVATAR_MAX_FRAMES", "N", "100", INTEGER(max_frames, 1, 10000),
	  "most frames of an animated GIF or WebP upload" },
	{ "max-side", "AVATAR_MAX_SIDE", "PIXELS", "1024", INTEGER(max_side, 16, 16384),
	  "stored avatars are scaled down to this side, never up" },
	{ "max-aspect", "AVATAR_MAX_ASPECT", "N", "20", INTEGER(max_aspect, 1, 1000),
	  "refuse uploads whose longer side is more than N times the shorter" },
	{ "crop", "AVATAR_CROP", "HOW", "centre", SETTER(set_crop),
	  "centre, attention (libvips' interest finder) or none" },
	{ "quality", "AVATAR_QUALITY", "Q", "85", INTEGER(quality, 1, 100),
	  "JPEG and lossy WebP quality of stored avatars, 1 to 100" },
	{ "sizes", "AVATAR_SIZES", "LIST", "32,64,128,256,512", SETTER(set_sizes),
	  "pixel sizes ?s= is served at, made when an avatar is written; none: no sizes" },
	{ "formats", "AVATAR_FORMATS", "LIST", "webp", SETTER(set_formats),
	  "formats besides the stored one (webp, avif) made for /ID.webp, /ID.avif; none" },
	{ "negotiate", "AVATAR_NEGOTIATE", "SWITCH", "off", SETTER(set_negotiate),
	  "on: /ID picks AVIF or WebP from the Accept header (with Vary: Accept); off" },
	{ "publish", "AVATAR_PUBLISH", "SWITCH", "off", SETTER(set_publish),
	  "on: keep DIR/.pub, the checked tree a front server's fast path serves; off" },
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))
/* getopt_long returns a subcommand's own options as NOPTS + i: below the
 * 'V' and 'h' of --version and --help. */
_Static_assert(NOPTS + CONF_CMD_OPTS_MAX < 'V', "option numbers collide");

static void
opt_set(struct conf *c, const struct opt *o, const char *flag, const char *v)
{
	if (o->set != NULL)
		o->set(c, flag, v);
	else
		*(int64_t *)(void *)((char *)c + o->off) = int_in(flag, v, o->min, o->max);
}

void
conf_image_limits(const struct conf *c, struct image_limits *l)
{
	image_limits_default(l);
	l->max_bytes = (size_t)c->upload_max;
	l->max_pixels = c->max_pixels;
	l->max_frames = (unsigned)c->max_frames;
	l->max_side = (unsigned)c->max_side;
	l->max_aspect = (unsigned)c->max_aspect;
	l->crop = c->crop;
	l->quality = (int)c->quality;
}

int
conf_cors_allows(const struct conf *c, const char *origin, size_t len)
{
	const char *p = c->cors_origin;

	if (c->cors_any)
		return 0;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);

		if (n == len && memcmp(p, origin, len) == 0)
			return 1;
		if (comma == NULL)
			return 0;
		p = comma + 1;
	}
}

/* The shared option list, as --help shows it after its usage lines. */
static void
print_opts(void)
{
	for (size_t i = 0; i < NOPTS; i++) {
		char lhs[64];

		snprintf(lhs, sizeof(lhs), "--%s %s", opts[i].name, opts[i].arg);
		/* A flag wider than its column gets a line of its own. */
		if (strlen(lhs) > 24)
			printf("  %s\n", lhs);
		printf("  %-24s %s\n  %-24s (%s, default %s)\n",
		    strlen(lhs) > 24 ? "" : lhs, opts[i].help,
		    "", opts[i].env, opts[i].def[0] ? opts[i].def :
		    opts[i].set == set_socket ? "fd 0" : "none");
	}
	printf("  %-24s %s\n  %-24s %s\n", "--help", "show this help and exit",
	    "--version", "print the version and exit");
}

void
conf_usage(void)
{
	printf("usage: avatar.fcgi [options]\n"
	    "A FastCGI responder that serves user avatars behind nginx or lighttpd.\n\n");
	print_opts();
}

/*
 * Removes "." components, repeated and trailing "/", and each ".." with the
 * component before it, in place, the way front servers read a path (no
 * symlink is looked at). p is absolute.
 */
static void
path_clean(char *p)
{
	char *w = p + 1;
	const char *r = p + 1;

	while (*r != '\0') {
		const char *seg = r;
		size_t n = strcspn(r, "/");

		r += n;
		if (*r == '/')
			r++;
		if (n == 0 || (n == 1 && seg[0] == '.'))
			continue;
		if (n == 2 && seg[0] == '.' && seg[1] == '.') {
			if (w > p + 1)
				w--;
			while (w > p + 1 && w[-1] != '/')
				w--;
			continue;
		}
		memmove(w, seg, n);
		w += n;
		*w++ = '/';
	}
	if (w > p + 1)
		w--;
	*w = '\0';
}

/*
 * The X-Sendfile path names a file under --dir as the admin wrote it, never
 * with symlinks resolved: the front server's docroot (lighttpd
 * x-sendfile-docroot, Apache XSendFilePath) is written the same way and
 * compared as a string, so a resolved path would be refused whenever --dir
 * is, or passes through, a symlink. A relative --dir is made absolute
 * against the start-up directory as the shell names it ($PWD when that is
 * the same directory, as get_current_dir_name does). Read that way it must
 * still be the directory opened, or the front server would look elsewhere.
 */
static void
dir_as_written(struct conf *c)
{
	char path[2 * CONF_PATH_MAX + 2], *cwd = NULL;
	struct stat a, b;
	int n;

	if (c->dir[0] != '/' && (cwd = get_current_dir_name()) == NULL)
		log_die("--dir: %s: the current directory: %s", c->dir, strerror(errno));
	n = snprintf(path, sizeof(path), "%s/%s", cwd ? cwd : "", c->dir);
	free(cwd);
	if (n < 0 || (size_t)n >= sizeof(path))
		log_die("--dir: %s: path too long", c->dir);
	path_clean(path);
	if (strlen(path) > CONF_XSENDFILE_DIR_MAX)
		log_die("--dir: %s: the absolute path is %zu bytes; x-sendfile mode "
		    "allows at most %d", c->dir, strlen(path), CONF_XSENDFILE_DIR_MAX);
	if (stat(path, &a) == -1 || fstat(c->dirfd, &b) == -1 ||
	    a.st_dev != b.st_dev || a.st_ino != b.st_ino)
		log_die("--dir: %s: read as a front server reads it, %s is another "
		    "directory (a \"..\" after a symlink?)", c->dir, path);
	strcpy(c->dir_abs, path);
}

static void
open_dir(struct conf *c)
{
	c->dirfd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->dirfd == -1)
		log_die("--dir: %s: %s", c->dir, strerror(errno));
	/* Opening needs only execute permission on the path; listing and
	 * reading need read permission on the directory itself. */
	if (faccessat(c->dirfd, ".", R_OK | X_OK, AT_EACCESS) == -1)
		log_die("--dir: %s: %s", c->dir, strerror(errno));
}

/*
 * Reads the defaults, the environment, then argv: the shared table and a
 * subcommand's own options (own, nown; none for the server). usage: NULL
 * for the server's --help, else the subcommand's first lines.
 */
static void
parse(struct conf *c, int argc, char **argv, const char *usage,
    const struct conf_cmd_opt *own, size_t nown, void *ctx)
{
	struct option lopts[NOPTS + CONF_CMD_OPTS_MAX + 3];
	size_t i;
	int ch, idx;

	if (nown > CONF_CMD_OPTS_MAX)
		log_die("%zu options: at most %d", nown, CONF_CMD_OPTS_MAX);
	memset(c, 0, sizeof(*c));
	for (i = 0; i < NOPTS; i++) {
		lopts[i] = (struct option){ opts[i].name, required_argument, NULL, (int)i };
		opt_set(c, &opts[i], opts[i].name, opts[i].def);
	}
	for (size_t j = 0; j < nown; j++)
		lopts[i++] = (struct option){ own[j].name,
		    own[j].arg ? required_argument : no_argument, NULL, (int)(NOPTS + j) };
	lopts[i++] = (struct option){ "help", no_argument, NULL, 'h' };
	lopts[i++] = (struct option){ "version", no_argument, NULL, 'V' };
	lopts[i] = (struct option){ NULL, 0, NULL, 0 };

	/* The environment first, so that flags override it. */
	for (i = 0; i < NOPTS; i++) {
		const char *v = getenv(opts[i].env);
		if (v != NULL)
			opt_set(c, &opts[i], opts[i].env, v);
	}

	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":", lopts, &idx)) != -1) {
		char flag[64];

		if (ch == 'h') {
			if (usage == NULL) {
				conf_usage();
				exit(0);
			}
			printf("%s\n", usage);
			for (size_t j = 0; j < nown; j++) {
				snprintf(flag, sizeof(flag), "--%s%s%s", own[j].name,
				    own[j].arg ? " " : "", own[j].arg ? own[j].arg : "");
				printf("  %-24s %s\n", flag, own[j].help);
			}
			printf("\nThe shared options (most matter only to the responder):\n");
			print_opts();
			exit(0);
		}
		if (ch == 'V') {
			printf("avatar.fcgi %s\n", AVATAR_VERSION);
			exit(0);
		}
		if (ch == '?')
			log_die("%s: unknown option (see --help)", argv[optind - 1]);
		if (ch == ':')
			log_die("%s: missing value", argv[optind - 1]);
		if ((size_t)ch >= NOPTS) {
			snprintf(flag, sizeof(flag), "--%s", own[ch - (int)NOPTS].name);
			own[ch - (int)NOPTS].set(ctx, flag, optarg);
			continue;
		}
		snprintf(flag, sizeof(flag), "--%s", opts[ch].name);
		opt_set(c, &opts[ch], flag, optarg);
	}
	if (optind < argc)
		log_die("%s: unexpected argument (see --help)", argv[optind]);
}

void
conf_load(struct conf *c, int argc, char **argv)
{
	parse(c, argc, argv, NULL, NULL, 0, NULL);
	open_dir(c);
	if (c->mode == MODE_X_SENDFILE)
		dir_as_written(c);
	if (c->key_file[0] != '\0') {
		char err[512];

		if (sign_keys_load(&c->keys, c->key_file, err, sizeof(err)) == -1)
			log_die("--key-file: %s", err);
	}
}

void
conf_load_cmd(struct conf *c, int argc, char **argv, const char *usage,
    const struct conf_cmd_opt *own, size_t nown, void *ctx)
{
	/* Only the directory is opened: a subcommand serves nothing, so the
	 * key file and the x-sendfile path check, which an operator's shell
	 * may not pass (AVATAR_* set for the service), are not its business. */
	parse(c, argc, argv, usage, own, nown, ctx);
	open_dir(c);
}
