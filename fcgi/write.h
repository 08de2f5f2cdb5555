/*
 * write: PUT and DELETE as a read worker sees them. The cheap checks run
 * here (writes enabled, an avatar id, the signature, a length); the image
 * work is a job for the upload processes (upload.c), whose answer the
 * server waits for without blocking. This file holds no FastCGI and no
 * image code.
 */
#ifndef AVATAR_WRITE_H
#define AVATAR_WRITE_H

#include <stddef.h>

#include "conf.h"
#include "reqparse.h"
#include "resp.h"

/* write_begin's "the answer comes later" (never an HTTP status or -1). */
#define WRITE_PENDING (-2)

/*
 * The checks that need no body: writes enabled, an avatar id, the
 * signature, a length within --upload-max. The server runs them as soon
 * as a request's parameters are in, so an unsigned PUT is refused before
 * its body is buffered. Returns 0 (go on), or the status sent (-1 when
 * the sink failed).
 */
int write_check(const struct conf *c, const struct req *r, struct sink *s);

/*
 * Either answers at once (returns the status sent, or -1 when the sink
 * failed) or submits a job and returns WRITE_PENDING with *reply_fd set:
 * call write_finish when it becomes readable. queue_fd: upload_start's
 * descriptor, -1 when there are no upload processes. waiting: jobs this
 * worker already has waiting (at most --upload-queue; over it, 503).
 */
int write_begin(const struct conf *c, const struct req *r,
    const unsigned char *body, size_t len, int queue_fd, unsigned waiting,
    const char *peer, struct sink *s, int *reply_fd);

/*
 * Answers from the job's reply (or a 500 when its upload process died).
 * Returns the status sent, -1 when the sink failed, or WRITE_PENDING when
 * the reply is not there yet. The caller closes reply_fd afterwards.
 */
int write_finish(const struct conf *c, const struct req *r, int reply_fd,
    struct sink *s);

/* The job did not answer within --timeout: 503 with Retry-After. */
int write_timeout(const struct conf *c, const struct req *r, struct sink *s);

#endif
