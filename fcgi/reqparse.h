/*
 * reqparse: FastCGI parameters in, a small request struct out. No I/O and
 * no allocation: everything the rest of the program needs from a request is
 * copied here, checked, into fixed-size fields, because libfcgi frees its
 * parameter strings at the next accept.
 */
#ifndef AVATAR_REQPARSE_H
#define AVATAR_REQPARSE_H

#include <stddef.h>
#include <stdint.h>

/* Longest validator header we keep; longer ones are ignored, not cut. */
#define REQ_INM_MAX 512
#define REQ_IMS_MAX 64

/* The raw parameters, each NULL when absent. */
struct req_params {
	const char *method;		/* REQUEST_METHOD */
	const char *document_uri;	/* DOCUMENT_URI */
	const char *script_name;	/* SCRIPT_NAME */
	const char *path_info;		/* PATH_INFO */
	const char *request_uri;	/* REQUEST_URI */
	const char *if_none_match;	/* HTTP_IF_NONE_MATCH */
	const char *if_modified_since;	/* HTTP_IF_MODIFIED_SINCE */
};

enum req_method { REQ_GET, REQ_HEAD, REQ_OTHER };
enum req_kind { REQ_AVATAR, REQ_STATUS, REQ_METRICS };

struct req {
	enum req_method method;
	enum req_kind kind;
	int has_id;		/* 0: not a canonical id, answer as missing */
	int64_t id;
	int has_inm;
	int has_ims;
	char inm[REQ_INM_MAX];
	char ims[REQ_IMS_MAX];
};

/* Fills *r from *p. Never fails: a malformed request is a request for a
 * missing avatar. */
void req_parse(const struct req_params *p, struct req *r);

/*
 * Finds the id in the last segment of path[0..len): strips one known image
 * extension, requires a canonical signed 64-bit decimal. Exposed for the
 * unit tests and the fuzzer. Returns 0 and sets *id, or -1.
 */
int req_parse_id(const char *path, size_t len, int64_t *id);

#endif
