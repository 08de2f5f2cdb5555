/*
 * reqparse: FastCGI parameters in, a small request struct out. No I/O and
 * no allocation. The server hands over each parameter as it decodes it
 * (req_params_set); what the program needs is copied, checked, into
 * fixed-size fields of struct req_params, so nothing points into the
 * server's buffers. A value longer than its field is marked "present but
 * unusable", never cut: a cut header could match where the whole one would
 * not. req_parse then decides the request from those fields.
 */
#ifndef AVATAR_REQPARSE_H
#define AVATAR_REQPARSE_H

#include <stddef.h>
#include <stdint.h>

#include "sniff.h"

/* Longest value kept per field (the NUL included). */
#define REQ_SEG_MAX 32		/* a path's last segment: "-9223372036854775808.jpeg" fits */
#define REQ_METHOD_MAX 16
#define REQ_INM_MAX 512
#define REQ_IMS_MAX 64
#define REQ_ORIGIN_MAX 320	/* "https://" + a 253-byte host + ":65535" */
#define REQ_SIG_MAX 128
#define REQ_ADDR_MAX 64		/* an IPv6 address with a zone fits */
#define REQ_LOG_MAX 128		/* the start of the path, for a debug log line */

/* Bounds of ?s= / ?size= (pixels); a value outside them is ignored. */
#define REQ_SIZE_MIN 1
#define REQ_SIZE_MAX 4096

/*
 * The state of one field. REQ_BAD: the parameter was present but cannot be
 * used as a value: longer than its field, holding a NUL byte, malformed, or
 * (for expires and sig) given twice. Zero is REQ_ABSENT, so a zeroed
 * struct req_params is an empty request.
 */
enum req_state { REQ_ABSENT = 0, REQ_OK, REQ_BAD };

/* The last '/'-separated segment of a path parameter. An empty parameter
 * counts as absent, as it did when these came from getenv. */
struct req_seg {
	enum req_state state;
	size_t len;
	char s[REQ_SEG_MAX];
};

/* What a query string says. Names are matched as sent, never decoded. */
struct req_query {
	int given;		/* a query string was there (even empty) */
	int versioned;		/* v=<non-empty>: the URL names one version */
	int has_size;		/* s= or size=, first valid one */
	int64_t size;
	enum req_state expires_state;
	int64_t expires;
	enum req_state sig_state;
	char sig[REQ_SIG_MAX];
};

/* Everything kept from the FastCGI parameters of one request. */
struct req_params {
	enum req_state method_state;
	char method[REQ_METHOD_MAX];		/* REQUEST_METHOD */
	struct req_seg document_uri;		/* DOCUMENT_URI */
	struct req_seg script_name;		/* SCRIPT_NAME */
	struct req_seg path_info;		/* PATH_INFO */
	struct req_seg request_uri;		/* REQUEST_URI, before '?' */
	struct req_query query_string;		/* QUERY_STRING */
	struct req_query request_uri_query;	/* REQUEST_URI, after '?' */
	enum req_state inm_state;
	char inm[REQ_INM_MAX];			/* HTTP_IF_NONE_MATCH */
	enum req_state ims_state;
	char ims[REQ_IMS_MAX];			/* HTTP_IF_MODIFIED_SINCE */
	int accept_avif, accept_webp;		/* HTTP_ACCEPT names them */
	enum req_state origin_state;
	char origin[REQ_ORIGIN_MAX];		/* HTTP_ORIGIN */
	enum req_state acrm_state;
	char acrm[REQ_METHOD_MAX];	/* HTTP_ACCESS_CONTROL_REQUEST_METHOD */
	enum req_state content_length_state;
	int64_t content_length;			/* CONTENT_LENGTH */
	char remote_addr[REQ_ADDR_MAX];		/* REMOTE_ADDR, for write logs */
	char log_doc[REQ_LOG_MAX];		/* start of DOCUMENT_URI */
	char log_uri[REQ_LOG_MAX];		/* start of REQUEST_URI */
};

enum req_method { REQ_GET, REQ_HEAD, REQ_OPTIONS, REQ_PUT, REQ_DELETE, REQ_OTHER };
enum req_kind { REQ_AVATAR, REQ_STATUS, REQ_METRICS };

struct req {
	enum req_method method;
	enum req_kind kind;
	int has_id;		/* 0: not a canonical id, answer as missing */
	int64_t id;
	/* The format the path's extension asks for: SNIFF_WEBP or
	 * SNIFF_AVIF, or SNIFF_NONE for "as stored" (no extension, or one
	 * of a stored file's). */
	enum sniff_type want;
	int bare;			/* no extension at all: /ID */
	int accept_avif, accept_webp;	/* for --negotiate */
	struct req_query q;	/* from QUERY_STRING, else from REQUEST_URI */
	enum req_state inm_state;	/* REQ_BAD: present, unreadable: no match */
	char inm[REQ_INM_MAX];
	enum req_state ims_state;
	char ims[REQ_IMS_MAX];
	enum req_state origin_state;
	char origin[REQ_ORIGIN_MAX];
	/* A CORS preflight names the method it asks about; REQ_OTHER for
	 * one this program does not know. Meaningful when has_acrm. */
	int has_acrm;
	enum req_method acrm;
	enum req_state content_length_state;
	int64_t content_length;
	char log_path[REQ_LOG_MAX];	/* may be cut: for logging only */
	char remote_addr[REQ_ADDR_MAX];	/* "" when absent or too long */
	/* The request body, filled in by the server (only a PUT's is
	 * kept); NULL and 0 otherwise. */
	const unsigned char *body;
	size_t body_len;
};

/*
 * Keeps what the request parser needs of one FastCGI parameter: name[0..nlen)
 * and val[0..vlen), neither NUL-terminated (either may hold NUL bytes).
 * Unknown names are ignored; a name given twice keeps its last value.
 */
void req_params_set(struct req_params *p, const char *name, size_t nlen,
    const char *val, size_t vlen);

/* Fills *r from *p. Never fails: a malformed request is a request for a
 * missing avatar. The path is DOCUMENT_URI, else PATH_INFO, SCRIPT_NAME,
 * REQUEST_URI; when REQUEST_URI is given, its raw last segment must hold
 * no '%' for the request to name an id or a reserved name. */
void req_parse(const struct req_params *p, struct req *r);

/*
 * Finds the id in the last segment of path[0..len): strips one known image
 * extension, requires a canonical signed 64-bit decimal. Exposed for the
 * unit tests and the fuzzer. Returns 0 and sets *id, or -1.
 */
int req_parse_id(const char *path, size_t len, int64_t *id);

/* As req_parse_id, and *want is the format the extension asks for,
 * *bare 1 when the path has no extension. */
int req_parse_target(const char *path, size_t len, int64_t *id,
    enum sniff_type *want, int *bare);

/* Parses query[0..len) (the part after '?') into *q. Exposed for tests. */
void req_parse_query(const char *query, size_t len, struct req_query *q);

/* "GET" etc.; "other" for REQ_OTHER. */
const char *req_method_name(enum req_method m);

#endif
