/* Unit tests for sign.c: HMAC-SHA256 (RFC 4231), key files, and the check
 * of a signed request, each a table of cases. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sign.h"
#include "tap.h"

static char tmpdir[] = "/tmp/test_sign.XXXXXX";

/* RFC 4231 section 4: key and data as hex or as text, and HMAC-SHA-256. */
static const struct {
	const char *name, *key, *data;
	int key_hex, data_hex;
	size_t prefix;		/* test case 5 truncates to 128 bits */
	const char *mac;
} rfc[] = {
	{ "4.2", "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "Hi There", 1, 0, 64,
	  "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7" },
	{ "4.3", "Jefe", "what do ya want for nothing?", 0, 0, 64,
	  "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" },
	{ "4.4", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	  "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
	  "dddddddddddddddddddddddddddd", 1, 1, 64,
	  "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe" },
	{ "4.5", "0102030405060708090a0b0c0d0e0f10111213141516171819",
	  "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"
	  "cdcdcdcdcdcdcdcdcdcdcdcdcdcd", 1, 1, 64,
	  "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b" },
	{ "4.6", "0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c", "Test With Truncation", 1, 0, 32,
	  "a3b6167473100ee06e0c796c2955552b" },
	{ "4.7", "AA131", "Test Using Larger Than Block-Size Key - Hash Key First", 1, 0, 64,
	  "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54" },
	{ "4.8", "AA131", "This is a test using a larger than block-size key and a larger "
	  "than block-size data. The key needs to be hashed before being used by the "
	  "HMAC algorithm.", 1, 0, 64,
	  "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2" },
};

/* Hex to bytes; "AA131" means 131 bytes of 0xaa (too long to spell out). */
static size_t
unhex(const char *s, unsigned char *out)
{
	size_t n = 0;

	if (strcmp(s, "AA131") == 0) {
		memset(out, 0xaa, 131);
		return 131;
	}
	for (; s[0] && s[1]; s += 2) {
		unsigned v;
		sscanf(s, "%2x", &v);
		out[n++] = (unsigned char)v;
	}
	return n;
}

static void
test_rfc4231(void)
{
	for (size_t i = 0; i < NELEM(rfc); i++) {
		unsigned char key[256], data[256];
		size_t klen, dlen;
		char mac[SIGN_HEX_LEN + 1];

		klen = rfc[i].key_hex ? unhex(rfc[i].key, key) : strlen(rfc[i].key);
		if (!rfc[i].key_hex)
			memcpy(key, rfc[i].key, klen);
		dlen = rfc[i].data_hex ? unhex(rfc[i].data, data) : strlen(rfc[i].data);
		if (!rfc[i].data_hex)
			memcpy(data, rfc[i].data, dlen);
		ok(sign_hmac_hex(key, klen, data, dlen, mac) == 0 &&
		    strncmp(mac, rfc[i].mac, rfc[i].prefix) == 0 &&
		    strlen(mac) == SIGN_HEX_LEN,
		    "RFC 4231 %s: HMAC-SHA-256 %.16s...", rfc[i].name, mac);
	}
}

static const char *
write_file(const char *name, const char *text, size_t len)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(text, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
	return path;
}

#define K1 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define K2 "second-key-second-key-second-key"	/* exactly 32 bytes */
#define K3 "a-key-this-server-does-not-have-at-all"

/* Key files: text, whether it loads, how many keys, and a piece of the
 * error that must be there (the file's name and the reason). */
static const struct {
	const char *what, *text;
	int loads;
	size_t nkeys;
	const char *err;
} files[] = {
	{ "one key", K1 "\n", 1, 1, NULL },
	{ "no final newline", K1, 1, 1, NULL },
	{ "two keys, rotation", K1 "\n" K2 "\n", 1, 2, NULL },
	{ "CRLF line ends", K1 "\r\n" K2 "\r\n", 1, 2, NULL },
	{ "blank lines skipped", "\n\n" K1 "\n\r\n\n" K2 "\n\n", 1, 2, NULL },
	{ "exactly 32 bytes", K2 "\n", 1, 1, NULL },
	{ "31 bytes: too short", "second-key-second-key-second-ke\n", 0, 0,
	  "line 1: key is 31 bytes, at least 32" },
	{ "short key on line 3", K1 "\n\nshort\n", 0, 0, "line 3: key is 5 bytes" },
	{ "empty file", "", 0, 0, "no key" },
	{ "only blank lines", "\n\r\n\n", 0, 0, "no key" },
	{ "tab in a key", "0123456789abcdef\t0123456789abcdef0123\n", 0, 0, "control byte 0x09" },
	{ "lone CR inside", "0123456789abcdef\r0123456789abcdef0123\n", 0, 0, "control byte 0x0d" },
	{ "leading space", " " K1 "\n", 0, 0, "space" },
	{ "trailing space", K1 " \n", 0, 0, "space" },
	{ "17 keys", K1 "\n" K1 "\n" K1 "\n" K1 "\n" K1 "\n" K1 "\n" K1 "\n" K1 "\n"
	  K1 "\n" K1 "\n" K1 "\n" K1 "\n" K1 "\n" K1 "\n" K1 "\n" K1 "\n" K1 "\n", 0, 0,
	  "more than 16 keys" },
};

static void
test_key_files(void)
{
	struct sign_keys keys;
	char err[512];

	for (size_t i = 0; i < NELEM(files); i++) {
		const char *path = write_file("keys", files[i].text, strlen(files[i].text));
		int rc;

		err[0] = '\0';
		rc = sign_keys_load(&keys, path, err, sizeof(err));
		if (files[i].loads)
			ok(rc == 0 && keys.n == files[i].nkeys, "key file, %s: %zu key(s)",
			    files[i].what, files[i].nkeys);
		else
			ok(rc == -1 && keys.n == 0 && strstr(err, path) != NULL &&
			    strstr(err, files[i].err) != NULL,
			    "key file, %s: refused (%s)", files[i].what, err);
	}
	ok(sign_keys_load(&keys, "/nonexistent/keys", err, sizeof(err)) == -1 &&
	    strstr(err, "/nonexistent/keys: No such file") != NULL, "missing key file: %s", err);
	ok(sign_keys_load(&keys, tmpdir, err, sizeof(err)) == -1 &&
	    strstr(err, "not a regular file") != NULL, "directory as key file: %s", err);

	/* CRLF and LF files give the same key, so the same signature. */
	{
		struct sign_keys a, b;
		char sa[SIGN_HEX_LEN + 1], sb[SIGN_HEX_LEN + 1];

		sign_keys_load(&a, write_file("lf", K1 "\n", strlen(K1) + 1), err, sizeof(err));
		sign_keys_load(&b, write_file("crlf", K1 "\r\n", strlen(K1) + 2), err, sizeof(err));
		ok(sign_make(&a, "PUT", 1, 2, sa) == 0 && sign_make(&b, "PUT", 1, 2, sb) == 0 &&
		    strcmp(sa, sb) == 0, "CRLF does not become part of the key");
	}
	memset(&keys, 0, sizeof(keys));
	ok(sign_make(&keys, "PUT", 1, 2, err) == -1, "no key: sign_make refuses");
}

#define NOW 1700000000LL
#define TTL 3600

enum mutate { M_NONE, M_FLIP, M_UPPER, M_SHORT, M_LONG, M_NOSIG };

/* One signed request and how it is checked. sk: the key that signed it
 * (0 and 1 are lines 1 and 2 of the server's file, 2 a foreign key). */
static const struct {
	const char *what;
	const char *smethod; int64_t sid; int64_t soff; int sk;	/* signed */
	const char *cmethod; int64_t cid; const char *cexp;	/* checked */
	enum mutate m;
	enum sign_result want;
} checks[] = {
	{ "valid PUT", "PUT", 1000, 60, 0, "PUT", 1000, NULL, M_NONE, SIGN_OK },
	{ "valid DELETE", "DELETE", 1000, 60, 0, "DELETE", 1000, NULL, M_NONE, SIGN_OK },
	{ "negative id", "PUT", -1, 60, 0, "PUT", -1, NULL, M_NONE, SIGN_OK },
	{ "expires now", "PUT", 7, 0, 0, "PUT", 7, NULL, M_NONE, SIGN_OK },
	{ "expires at max-ttl", "PUT", 7, TTL, 0, "PUT", 7, NULL, M_NONE, SIGN_OK },
	{ "rotated: line 2 verifies", "PUT", 7, 60, 1, "PUT", 7, NULL, M_NONE, SIGN_OK },
	{ "expired 1 s ago", "PUT", 7, -1, 0, "PUT", 7, NULL, M_NONE, SIGN_EXPIRED },
	{ "expired long ago", "PUT", 7, -NOW + 1, 0, "PUT", 7, NULL, M_NONE, SIGN_EXPIRED },
	{ "too far ahead", "PUT", 7, TTL + 1, 0, "PUT", 7, NULL, M_NONE, SIGN_TOO_FAR },
	{ "other id", "PUT", 1000, 60, 0, "PUT", 1001, NULL, M_NONE, SIGN_BAD },
	{ "other method", "PUT", 1000, 60, 0, "DELETE", 1000, NULL, M_NONE, SIGN_BAD },
	{ "foreign key", "PUT", 7, 60, 2, "PUT", 7, NULL, M_NONE, SIGN_BAD },
	{ "tampered sig", "PUT", 7, 60, 0, "PUT", 7, NULL, M_FLIP, SIGN_BAD },
	{ "tampered expiry", "PUT", 7, 60, 0, "PUT", 7, "1700000061", M_NONE, SIGN_BAD },
	{ "forged and expired: bad", "PUT", 7, -10, 2, "PUT", 7, NULL, M_NONE, SIGN_BAD },
	{ "forged and far: bad", "PUT", 7, TTL * 2, 2, "PUT", 7, NULL, M_NONE, SIGN_BAD },
	{ "uppercase hex", "PUT", 7, 60, 0, "PUT", 7, NULL, M_UPPER, SIGN_MALFORMED },
	{ "63 hex digits", "PUT", 7, 60, 0, "PUT", 7, NULL, M_SHORT, SIGN_MALFORMED },
	{ "65 hex digits", "PUT", 7, 60, 0, "PUT", 7, NULL, M_LONG, SIGN_MALFORMED },
	{ "expires 0-padded", "PUT", 7, 60, 0, "PUT", 7, "01700000060", M_NONE, SIGN_MALFORMED },
	{ "expires with +", "PUT", 7, 60, 0, "PUT", 7, "+1700000060", M_NONE, SIGN_MALFORMED },
	{ "expires empty", "PUT", 7, 60, 0, "PUT", 7, "", M_NONE, SIGN_MALFORMED },
	{ "expires negative", "PUT", 7, 60, 0, "PUT", 7, "-5", M_NONE, SIGN_MALFORMED },
	{ "expires not a number", "PUT", 7, 60, 0, "PUT", 7, "soon", M_NONE, SIGN_MALFORMED },
	{ "expires overflows", "PUT", 7, 60, 0, "PUT", 7, "99999999999999999999", M_NONE,
	  SIGN_MALFORMED },
	{ "no sig", "PUT", 7, 60, 0, "PUT", 7, NULL, M_NOSIG, SIGN_MISSING },
	{ "no expires", "PUT", 7, 60, 0, "PUT", 7, "(null)", M_NONE, SIGN_MISSING },
};

static void
test_checks(void)
{
	struct sign_keys keys, foreign;
	char err[512];
	const char *path;

	path = write_file("keys", K1 "\n" K2 "\n", strlen(K1 K2) + 2);
	if (sign_keys_load(&keys, path, err, sizeof(err)) == -1 ||
	    sign_keys_load(&foreign, write_file("foreign", K3 "\n", strlen(K3) + 1),
	    err, sizeof(err)) == -1) {
		printf("Bail out! %s\n", err);
		exit(1);
	}
	for (size_t i = 0; i < NELEM(checks); i++) {
		struct sign_keys one;
		char sig[SIGN_HEX_LEN + 2], exp[32];
		const char *e = exp, *s = sig;
		enum sign_result r;

		/* A key set whose first line is the signing key chosen. */
		memset(&one, 0, sizeof(one));
		one.n = 1;
		one.k[0] = checks[i].sk == 2 ? foreign.k[0] : keys.k[checks[i].sk];
		snprintf(exp, sizeof(exp), "%lld", NOW + (long long)checks[i].soff);
		if (sign_make(&one, checks[i].smethod, checks[i].sid, NOW + checks[i].soff,
		    sig) == -1) {
			ok(0, "%s: sign_make", checks[i].what);
			continue;
		}
		switch (checks[i].m) {
		case M_NONE: break;
		case M_FLIP: sig[10] = sig[10] == '0' ? '1' : '0'; break;
		case M_UPPER:
			for (char *p = sig; *p; p++)
				if (*p >= 'a' && *p <= 'f')
					*p = (char)(*p - 'a' + 'A');
			break;
		case M_SHORT: sig[63] = '\0'; break;
		case M_LONG: strcat(sig, "0"); break;
		case M_NOSIG: s = NULL; break;
		}
		if (checks[i].cexp != NULL)
			e = strcmp(checks[i].cexp, "(null)") == 0 ? NULL : checks[i].cexp;
		r = sign_check(&keys, checks[i].cmethod, checks[i].cid, e, s, NOW, TTL);
		ok(r == checks[i].want, "check, %s: %s (want %s)", checks[i].what,
		    sign_result_str(r), sign_result_str(checks[i].want));
	}
	{
		char sig[SIGN_HEX_LEN + 1];
		struct sign_keys none;

		memset(&none, 0, sizeof(none));
		sign_make(&keys, "PUT", 7, NOW, sig);
		ok(sign_check(&none, "PUT", 7, "1700000000", sig, NOW, TTL) == SIGN_BAD,
		    "no keys: nothing verifies");
	}
}

/* The message format itself, against a MAC computed from the spec's text. */
static void
test_message(void)
{
	struct sign_keys keys;
	char err[512], a[SIGN_HEX_LEN + 1], b[SIGN_HEX_LEN + 1];
	const char *msg = "DELETE\n-42\n1700000123";

	sign_keys_load(&keys, write_file("keys", K1 "\n", strlen(K1) + 1), err, sizeof(err));
	ok(sign_make(&keys, "DELETE", -42, 1700000123, a) == 0 &&
	    sign_hmac_hex(K1, strlen(K1), msg, strlen(msg), b) == 0 && strcmp(a, b) == 0,
	    "signed message is METHOD\\nID\\nE");
}

int
main(void)
{
	char cmd[300];

	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_rfc4231();
	test_key_files();
	test_checks();
	test_message();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", tmpdir);
	return tap_done();
}
