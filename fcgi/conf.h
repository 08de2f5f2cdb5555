/*
 * conf: every setting of the program in one struct, with every default in
 * one table in conf.c. Options come from long flags and AVATAR_* environment
 * variables (the flag wins). Start-up errors print one line naming the
 * option or path and exit 2.
 */
#ifndef AVATAR_CONF_H
#define AVATAR_CONF_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"
#include "sign.h"
#include "variant.h"

enum conf_mode { MODE_BYTES, MODE_X_ACCEL, MODE_X_SENDFILE };
enum conf_missing { MISSING_DEFAULT, MISSING_404 };

#define CONF_PATH_MAX 1024
/* The longest absolute --dir in x-sendfile mode: "DIR/NAME" with the
 * longest name the read path sends, a variant's (VARIANT_NAME_MAX with its
 * NUL), stays below CONF_PATH_MAX, and resp.c keeps room for a path that
 * long in its header block. */
#define CONF_XSENDFILE_DIR_MAX (CONF_PATH_MAX - VARIANT_NAME_MAX - 1)
/* --cors-origin: "*", or up to this many bytes of comma-separated origins. */
#define CONF_CORS_MAX 1024

struct conf {
	char dir[CONF_PATH_MAX];	/* as given */
	char dir_abs[CONF_PATH_MAX];	/* x-sendfile: absolute, symlinks kept */
	int dirfd;			/* opened once; every lookup is beneath it */
	enum conf_mode mode;
	char accel_prefix[256];
	int64_t default_id;
	enum conf_missing missing;
	/* Lifetimes in seconds (the policy is in resp.c). */
	int64_t max_age;		/* an avatar at an unversioned URL */
	int64_t swr;			/* its stale-while-revalidate; 0: none */
	int64_t versioned_max_age;	/* at a URL with ?v=; 0: as unversioned */
	int64_t default_max_age;	/* the default avatar, and 404 */
	/* CORS: "*" (cors_any), or a list of origins a response names. */
	int cors_any;
	char cors_origin[CONF_CORS_MAX];
	int64_t cors_max_age;		/* Access-Control-Max-Age of a preflight */
	int64_t workers;		/* 0: serve in this process */
	char socket[CONF_PATH_MAX];	/* empty: inherited socket */
	int64_t socket_mode;
	int64_t backlog;
	uint64_t cache_size;
	uint64_t cache_file_max;
	int64_t timeout;		/* seconds */
	uint64_t upload_max;		/* bytes of a request body */
	int log_level;
	char key_file[CONF_PATH_MAX];	/* empty: writes disabled */
	int64_t max_ttl;		/* seconds a signed link may reach ahead */
	struct sign_keys keys;		/* loaded from key_file at start-up */
	/* PUT and DELETE are served: set where the write path is started,
	 * never by an option. Allow and the CORS preflight follow it. */
	int writes;
	/* The write path: upload processes and the limits of image.c. */
	int64_t upload_workers;		/* processes doing image work */
	int64_t upload_queue;		/* jobs one read worker may have waiting */
	int64_t job_limit;		/* seconds one upload or variants job may take */
	uint64_t max_pixels;
	int64_t max_frames;
	int64_t max_side;
	int64_t max_aspect;
	enum image_crop crop;
	int64_t quality;
	/* Sizes and formats (variant.h): made at write time, served as files. */
	struct variant_conf variants;
	/* The published tree (publish.h): kept by the upload processes. */
	int publish;
};

/* Fills *c from the environment and argv; exits 0 for --help/--version and
 * 2 on any bad value, after one line on stderr. */
void conf_load(struct conf *c, int argc, char **argv);

/*
 * A subcommand's own option, beside the shared table ("avatar.fcgi
 * variants --jobs N"). set gets the flag's name and its value (NULL for an
 * option without one) as each is seen on the command line; it exits 2
 * through log_die for a bad value, as the shared setters do.
 */
struct conf_cmd_opt {
	const char *name;	/* long flag without "--" */
	const char *arg;	/* metavariable in --help; NULL: takes no value */
	const char *help;
	void (*set)(void *ctx, const char *flag, const char *value);
};
#define CONF_CMD_OPTS_MAX 8

/*
 * conf_load for a subcommand: argv[0] is its name. The shared options and
 * AVATAR_* variables are read as conf_load reads them, then own's; the
 * directory is opened; no key file is read. --help prints usage (the
 * subcommand's first lines), its own options, then the shared ones.
 */
void conf_load_cmd(struct conf *c, int argc, char **argv, const char *usage,
    const struct conf_cmd_opt *own, size_t nown, void *ctx);

/* Prints the option list (the same one --help shows) to stdout. */
void conf_usage(void);

/* The limits of image.c (image.h) as the options set them. */
void conf_image_limits(const struct conf *c, struct image_limits *l);

/* 1 when origin[0..len) is one of --cors-origin's list (exact bytes, as
 * browsers serialise an origin), else 0. Never true for "*" itself. */
int conf_cors_allows(const struct conf *c, const char *origin, size_t len);

#endif
