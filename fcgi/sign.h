/*
 * sign: signed write requests, in the manner of object-storage presigned
 * URLs. A site's backend, which knows who the user is, signs
 *
 *	S = lowercase hex of HMAC-SHA256(key, METHOD "\n" ID "\n" E)
 *
 * (ID the canonical decimal id, E the expiry in Unix seconds) and hands the
 * browser "/ID?expires=E&sig=S"; this module checks it. The keys come from
 * a file (one a line; the first signs, every one verifies, so a key can be
 * rotated without a moment where good links fail). HMAC and the
 * constant-time compare are OpenSSL libcrypto's, never hand-written.
 * This file never touches the request or the network; it only reads the
 * key file, once, at start-up.
 */
#ifndef AVATAR_SIGN_H
#define AVATAR_SIGN_H

#include <stddef.h>
#include <stdint.h>

#define SIGN_KEYS_MAX	16	/* lines of a key file */
#define SIGN_KEY_MIN	32	/* bytes: 256 bits for HMAC-SHA256 */
#define SIGN_KEY_MAX	512	/* bytes of one key line */
#define SIGN_HEX_LEN	64	/* hex digits of a signature */
#define SIGN_TTL_DEFAULT 3600	/* --max-ttl */

struct sign_keys {
	size_t n;			/* 0: writes are disabled */
	struct {
		size_t len;
		unsigned char key[SIGN_KEY_MAX];
	} k[SIGN_KEYS_MAX];
};

/*
 * The outcome of a check. The handler maps them to HTTP statuses:
 * SIGN_MISSING and SIGN_MALFORMED are the client's syntax (400); the others
 * are a refusal of a well-formed request (403). The MAC is checked before
 * the time, so SIGN_EXPIRED and SIGN_TOO_FAR are only ever said about a
 * link this server's key really signed: a forged or tampered link is
 * SIGN_BAD, whatever its expiry.
 */
enum sign_result {
	SIGN_OK,
	SIGN_MISSING,	/* no expires= or no sig= */
	SIGN_MALFORMED,	/* expires not a canonical decimal, sig not 64 lowercase hex */
	SIGN_BAD,	/* no key gives this MAC: other method, other id, tampered */
	SIGN_EXPIRED,	/* E is in the past */
	SIGN_TOO_FAR,	/* E is more than max_ttl seconds ahead */
};

/* "ok", "missing", "malformed", "bad signature", "expired", "too far ahead". */
const char *sign_result_str(enum sign_result r);

/*
 * Reads the key file. A key is one line, LF or CRLF ended, of at least
 * SIGN_KEY_MIN bytes, with no control bytes and no leading or trailing
 * space (so that every language's "strip the line" gives the same key);
 * blank lines are skipped. Returns 0, or -1 with a one-line reason in err
 * naming the file (and the line). Never leaves a partial key set: on error
 * *keys is zeroed.
 */
int sign_keys_load(struct sign_keys *keys, const char *path, char *err, size_t errlen);

/*
 * Checks one request. expires and sig are the raw query values, NULL when
 * absent. now is the current Unix time; max_ttl bounds how far ahead an
 * expiry may be. The MAC is compared in constant time against every key.
 */
enum sign_result sign_check(const struct sign_keys *keys, const char *method,
    int64_t id, const char *expires, const char *sig, int64_t now, int64_t max_ttl);

/* Signs with the first key. Returns 0 and out holds 64 hex digits and a NUL,
 * or -1 when there is no key or libcrypto fails. */
int sign_make(const struct sign_keys *keys, const char *method, int64_t id,
    int64_t expires, char out[SIGN_HEX_LEN + 1]);

/* Lowercase hex HMAC-SHA256 of msg under key. Returns 0, or -1 when
 * libcrypto fails. Exposed for the RFC 4231 vectors in the unit test. */
int sign_hmac_hex(const void *key, size_t keylen, const void *msg, size_t msglen,
    char out[SIGN_HEX_LEN + 1]);

/*
 * The "avatar.fcgi sign" subcommand: argv[0] is "sign". Prints
 * "expires=E&sig=S" for METHOD ID [TTL]; returns the exit status.
 */
int sign_main(int argc, char **argv);

#endif
