/*
 * write: the write requests' policy, in the order a request is judged:
 * writes enabled, a resource that takes writes, the signature, the length,
 * then a job. The limits that need the image (type, pixels, frames, a
 * full decode) are upload.c's and image.c's.
 */
#include "write.h"
#include "log.h"
#include "sign.h"
#include "upload.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define JSON "application/json"

/* Every write answer is JSON, never stored by a cache. */
__attribute__((format(printf, 5, 6)))
static int
json_error(const struct conf *c, const struct req *r, struct sink *s,
    enum resp_status st, const char *fmt, ...)
{
	char msg[160], body[200];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		msg[0] = '\0';
	n = snprintf(body, sizeof(body), "{\"error\":\"%s\"}\n", msg);
	if (n < 0 || (size_t)n >= sizeof(body))
		n = 0;
	return resp_plain(c, r, st, JSON, "no-store", body, (size_t)n, s);
}

int
write_check(const struct conf *c, const struct req *r, struct sink *s)
{
	enum sign_result sr;
	char expires[24];

	if (!c->writes || r->kind != REQ_AVATAR)
		return json_error(c, r, s, RESP_METHOD_NOT_ALLOWED,
		    "writes are not enabled here (no --key-file)");
	if (!r->has_id)
		return json_error(c, r, s, RESP_NOT_FOUND, "not an avatar id");
	/* reqparse took expires= only as a canonical decimal: printing it
	 * again gives back the very digits that were signed. */
	if (r->q.expires_state == REQ_OK)
		snprintf(expires, sizeof(expires), "%lld", (long long)r->q.expires);
	else if (r->q.expires_state == REQ_BAD)
		snprintf(expires, sizeof(expires), "bad");
	/* The MAC covers method, id and expiry: a link signed for another
	 * id, another method or a later time fails here as "bad". */
	sr = sign_check(&c->keys, req_method_name(r->method), r->id,
	    r->q.expires_state != REQ_ABSENT ? expires : NULL,
	    r->q.sig_state == REQ_OK ? r->q.sig : NULL,
	    (int64_t)time(NULL), c->max_ttl);
	switch (sr) {
	case SIGN_OK:
		break;
	case SIGN_MISSING:
	case SIGN_MALFORMED:
		return json_error(c, r, s, RESP_BAD_REQUEST, "signature: %s",
		    sign_result_str(sr));
	case SIGN_BAD:
	case SIGN_EXPIRED:
	case SIGN_TOO_FAR:
		return json_error(c, r, s, RESP_FORBIDDEN, "signature: %s",
		    sign_result_str(sr));
	}
	if (r->method == REQ_PUT) {
		/* Front servers send CONTENT_LENGTH with every body; a PUT
		 * without it is a client that must say how much it sends. */
		if (r->content_length_state != REQ_OK)
			return json_error(c, r, s, RESP_LENGTH_REQUIRED,
			    "Content-Length is required");
		if ((uint64_t)r->content_length > c->upload_max)
			return json_error(c, r, s, RESP_PAYLOAD_TOO_LARGE,
			    "upload-max: the body is over %llu bytes",
			    (unsigned long long)c->upload_max);
	}
	return 0;
}

int
write_begin(const struct conf *c, const struct req *r,
    const unsigned char *body, size_t len, int queue_fd, unsigned waiting,
    const char *peer, struct sink *s, int *reply_fd)
{
	struct upload_job job;
	int st;

	if ((st = write_check(c, r, s)) != 0)
		return st;
	if (queue_fd < 0)
		return json_error(c, r, s, RESP_METHOD_NOT_ALLOWED,
		    "writes are not enabled here (no upload processes)");
	/* A body that is not the length announced was cut or padded on the
	 * way: store neither. */
	if (r->method == REQ_PUT && len != (uint64_t)r->content_length)
		return json_error(c, r, s, RESP_BAD_REQUEST,
		    "the body is %zu bytes, Content-Length said %lld", len,
		    (long long)r->content_length);
	if (waiting >= (unsigned)c->upload_queue)
		return json_error(c, r, s, RESP_UNAVAILABLE,
		    "every upload slot is busy; try again");
	memset(&job, 0, sizeof(job));
	job.method = r->method == REQ_PUT ? UPLOAD_PUT : UPLOAD_DELETE;
	job.id = r->id;
	job.body = body;
	job.len = len;
	job.peer = peer;
	if (upload_submit(queue_fd, &job, reply_fd) == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return json_error(c, r, s, RESP_UNAVAILABLE,
			    "every upload slot is busy; try again");
		log_warn("upload: submit");
		return json_error(c, r, s, RESP_SERVER_ERROR,
		    "the upload could not be handed over");
	}
	return WRITE_PENDING;
}

int
write_finish(const struct conf *c, const struct req *r, int reply_fd,
    struct sink *s)
{
	struct upload_reply rep;

	if (upload_read_reply(reply_fd, &rep) == -1 && errno == EAGAIN)
		return WRITE_PENDING;
	return resp_plain(c, r, (enum resp_status)rep.status, JSON, "no-store",
	    rep.body, rep.len, s);
}

int
write_timeout(const struct conf *c, const struct req *r, struct sink *s)
{
	return json_error(c, r, s, RESP_UNAVAILABLE,
	    "the upload took longer than --timeout; it may still complete");
}
