/*
 * sign: key file, HMAC-SHA256 through OpenSSL libcrypto, the check of a
 * signed request and the "avatar.fcgi sign" subcommand. The only file it
 * opens is the key file; nothing here depends on the request's transport.
 */
#include "sign.h"
#include "log.h"
#include "num.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A key file is a few lines; anything far larger is the wrong file. */
#define KEYFILE_MAX (SIGN_KEYS_MAX * (SIGN_KEY_MAX + 2) + 4096)
/* "-9223372036854775808" and room for METHOD: the signed message. */
#define MSG_MAX 128
/* The subcommand's default TTL: well under the default --max-ttl, so a
 * server whose clock runs a little behind the signer still accepts it. */
#define SIGN_CMD_TTL 600

const char *
sign_result_str(enum sign_result r)
{
	static const char *const s[] = {
		[SIGN_OK] = "ok",
		[SIGN_MISSING] = "missing",
		[SIGN_MALFORMED] = "malformed",
		[SIGN_BAD] = "bad signature",
		[SIGN_EXPIRED] = "expired",
		[SIGN_TOO_FAR] = "too far ahead",
	};

	return (size_t)r < sizeof(s) / sizeof(s[0]) && s[r] ? s[r] : "?";
}

int
sign_hmac_hex(const void *key, size_t keylen, const void *msg, size_t msglen,
    char out[SIGN_HEX_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;

	if (keylen > INT32_MAX ||
	    HMAC(EVP_sha256(), key, (int)keylen, msg, msglen, mac, &maclen) == NULL ||
	    maclen * 2 != SIGN_HEX_LEN)
		return -1;
	for (unsigned int i = 0; i < maclen; i++) {
		out[2 * i] = hex[mac[i] >> 4];
		out[2 * i + 1] = hex[mac[i] & 15];
	}
	out[SIGN_HEX_LEN] = '\0';
	OPENSSL_cleanse(mac, sizeof(mac));
	return 0;
}

/* METHOD "\n" ID "\n" E: the id and expiry are formatted here, never copied
 * from the request, so only the canonical decimal can ever be signed. */
static int
message(char *buf, size_t len, const char *method, int64_t id, int64_t expires)
{
	int n = snprintf(buf, len, "%s\n%lld\n%lld", method, (long long)id,
	    (long long)expires);

	return n < 0 || (size_t)n >= len ? -1 : n;
}

int
sign_make(const struct sign_keys *keys, const char *method, int64_t id,
    int64_t expires, char out[SIGN_HEX_LEN + 1])
{
	char msg[MSG_MAX];
	int n;

	if (keys->n == 0 || (n = message(msg, sizeof(msg), method, id, expires)) < 0)
		return -1;
	return sign_hmac_hex(keys->k[0].key, keys->k[0].len, msg, (size_t)n, out);
}

static int
lower_hex(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return i == SIGN_HEX_LEN;
}

enum sign_result
sign_check(const struct sign_keys *keys, const char *method, int64_t id,
    const char *expires, const char *sig, int64_t now, int64_t max_ttl)
{
	char msg[MSG_MAX], mac[SIGN_HEX_LEN + 1];
	int64_t e;
	int n, match = 0;

	if (expires == NULL || sig == NULL)
		return SIGN_MISSING;
	/* Canonical decimal only: "0100" or "+100" would sign the same
	 * message as "100" and give one link many spellings. */
	if (num_parse_str(expires, 0, INT64_MAX, &e) == -1 || !lower_hex(sig))
		return SIGN_MALFORMED;
	if ((n = message(msg, sizeof(msg), method, id, e)) < 0)
		return SIGN_BAD;
	/* Every key is tried, and each compare takes the same time whatever
	 * the bytes: no timing tells an attacker how much of a guess was
	 * right. */
	for (size_t i = 0; i < keys->n; i++) {
		if (sign_hmac_hex(keys->k[i].key, keys->k[i].len, msg, (size_t)n, mac) == -1)
			continue;
		match |= CRYPTO_memcmp(mac, sig, SIGN_HEX_LEN) == 0;
	}
	OPENSSL_cleanse(mac, sizeof(mac));
	if (!match)
		return SIGN_BAD;
	if (e < now)
		return SIGN_EXPIRED;
	if (now >= 0 && e - now > max_ttl)
		return SIGN_TOO_FAR;
	return SIGN_OK;
}

__attribute__((format(printf, 3, 4)))
static int
fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* Reads the whole file (bounded) into buf; returns its length or -1. */
static ssize_t
slurp(const char *path, char *buf, size_t cap, char *err, size_t errlen)
{
	struct stat st;
	size_t got = 0;
	int fd;

	/* The path is the administrator's choice, so a symlink (a mounted
	 * secret, say) is followed; what it leads to must be a plain file. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1)
		return fail(err, errlen, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) == -1) {
		fail(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		fail(err, errlen, "%s: not a regular file", path);
		goto fail;
	}
	for (;;) {
		ssize_t n = read(fd, buf + got, cap - got);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			fail(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got == cap) {
			fail(err, errlen, "%s: larger than %zu bytes: not a key file",
			    path, cap - 1);
			goto fail;
		}
	}
	close(fd);
	return (ssize_t)got;
fail:
	close(fd);
	return -1;
}

/* Checks one line (without its line end) and appends it as a key. */
static int
add_key(struct sign_keys *keys, const char *path, unsigned lineno,
    const char *s, size_t len, char *err, size_t errlen)
{
	if (len < SIGN_KEY_MIN)
		return fail(err, errlen, "%s: line %u: key is %zu bytes, at least %d needed"
		    " (make one with: openssl rand -hex 32)", path, lineno, len, SIGN_KEY_MIN);
	if (len > SIGN_KEY_MAX)
		return fail(err, errlen, "%s: line %u: key is longer than %d bytes",
		    path, lineno, SIGN_KEY_MAX);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f)
			return fail(err, errlen, "%s: line %u: control byte 0x%02x in key",
			    path, lineno, (unsigned char)s[i]);
	if (s[0] == ' ' || s[len - 1] == ' ')
		return fail(err, errlen, "%s: line %u: key starts or ends with a space",
		    path, lineno);
	if (keys->n == SIGN_KEYS_MAX)
		return fail(err, errlen, "%s: more than %d keys", path, SIGN_KEYS_MAX);
	keys->k[keys->n].len = len;
	memcpy(keys->k[keys->n].key, s, len);
	keys->n++;
	return 0;
}

int
sign_keys_load(struct sign_keys *keys, const char *path, char *err, size_t errlen)
{
	char *buf;
	ssize_t len;
	size_t i = 0;
	unsigned lineno = 0;
	int rc = -1;

	memset(keys, 0, sizeof(*keys));
	if ((buf = malloc(KEYFILE_MAX)) == NULL)
		return fail(err, errlen, "%s: out of memory", path);
	if ((len = slurp(path, buf, KEYFILE_MAX, err, errlen)) == -1)
		goto done;
	while (i < (size_t)len) {
		char *nl = memchr(buf + i, '\n', (size_t)len - i);
		size_t end = nl ? (size_t)(nl - buf) : (size_t)len;
		size_t n = end - i;

		lineno++;
		if (n > 0 && buf[i + n - 1] == '\r')
			n--;		/* CRLF, from an editor on Windows */
		if (n > 0 && add_key(keys, path, lineno, buf + i, n, err, errlen) == -1)
			goto done;
		i = end + 1;
	}
	if (keys->n == 0) {
		fail(err, errlen, "%s: no key in the file", path);
		goto done;
	}
	rc = 0;
done:
	OPENSSL_cleanse(buf, KEYFILE_MAX);
	free(buf);
	if (rc == -1)
		OPENSSL_cleanse(keys, sizeof(*keys));
	return rc;
}

static void
sign_usage(FILE *f)
{
	fprintf(f, "usage: avatar.fcgi sign [--key-file FILE] METHOD ID [TTL]\n"
	    "Prints the query string that lets a client send METHOD (PUT or DELETE)\n"
	    "for avatar ID during TTL seconds (default %d), signed with the first\n"
	    "key of FILE (default: AVATAR_KEY_FILE): append it to /ID?\n",
	    SIGN_CMD_TTL);
}

int
sign_main(int argc, char **argv)
{
	struct sign_keys keys;
	const char *keyfile = getenv("AVATAR_KEY_FILE");
	const char *pos[3];
	char err[512], sig[SIGN_HEX_LEN + 1];
	int64_t id, ttl = SIGN_CMD_TTL, now;
	int npos = 0, dashdash = 0;

	/* Parsed by hand rather than with getopt: an id may be negative
	 * ("-1", the default avatar), which getopt would take for a flag. */
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!dashdash && strcmp(a, "--") == 0) {
			dashdash = 1;
		} else if (!dashdash && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)) {
			sign_usage(stdout);
			return 0;
		} else if (!dashdash && strcmp(a, "--key-file") == 0) {
			if (++i == argc)
				log_die("sign: --key-file: missing value");
			keyfile = argv[i];
		} else if (!dashdash && strncmp(a, "--key-file=", 11) == 0) {
			keyfile = a + 11;
		} else if (!dashdash && a[0] == '-' && !(a[1] >= '0' && a[1] <= '9')) {
			log_die("sign: %s: unknown option (see avatar.fcgi sign --help)", a);
		} else {
			if (npos == 3)
				log_die("sign: %s: unexpected argument", a);
			pos[npos++] = a;
		}
	}
	if (npos < 2) {
		sign_usage(stderr);
		return 2;
	}
	if (keyfile == NULL || keyfile[0] == '\0')
		log_die("sign: no key file: give --key-file FILE or set AVATAR_KEY_FILE");
	if (strcmp(pos[0], "PUT") != 0 && strcmp(pos[0], "DELETE") != 0)
		log_die("sign: \"%s\": the signed methods are PUT and DELETE", pos[0]);
	if (num_parse_str(pos[1], INT64_MIN, INT64_MAX, &id) == -1)
		log_die("sign: \"%s\": not a canonical decimal id", pos[1]);
	if (npos == 3 && num_parse_str(pos[2], 1, 366 * 86400, &ttl) == -1)
		log_die("sign: \"%s\": TTL is not a number of seconds from 1 to %d",
		    pos[2], 366 * 86400);
	if (sign_keys_load(&keys, keyfile, err, sizeof(err)) == -1)
		log_die("sign: --key-file: %s", err);
	now = (int64_t)time(NULL);
	if (sign_make(&keys, pos[0], id, now + ttl, sig) == -1)
		log_die("sign: HMAC-SHA256 failed in libcrypto");
	OPENSSL_cleanse(&keys, sizeof(keys));
	printf("expires=%lld&sig=%s\n", (long long)(now + ttl), sig);
	return fflush(stdout) == 0 ? 0 : 1;
}
