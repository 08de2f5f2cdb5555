/*
 * upload: the room where image work happens. Decoding and encoding take tens
 * to hundreds of milliseconds, so they never run in a process that serves
 * reads. At start-up, before any read worker exists, upload_start forks a
 * manager that keeps --upload-workers upload processes alive. Each takes one
 * job at a time from a SOCK_SEQPACKET queue, runs image.c and store.c, and
 * answers on the job's own reply socket. A read worker submits a job and
 * goes on serving; the answer wakes it through its epoll loop.
 *
 * A job is one message: a small fixed header, plus two descriptors passed
 * with SCM_RIGHTS: the reply socket and, for a PUT, a sealed memfd holding
 * the body. The kernel's queue is the job queue: a message goes to exactly
 * one upload process, and when every read worker and the supervisor have
 * closed their end, the upload processes read end-of-file and exit.
 */
#ifndef AVATAR_UPLOAD_H
#define AVATAR_UPLOAD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf.h"

/* UPLOAD_VARIANTS: make the missing variants of an id (vmake.h); sent by
 * a read worker with no reply socket, and never answered. */
enum upload_method { UPLOAD_PUT = 1, UPLOAD_DELETE = 2, UPLOAD_VARIANTS = 3 };

/* The JSON answer of a write is small: an id, a type, two dimensions, a
 * size and a URL, or one error sentence. */
#define UPLOAD_REPLY_MAX 512

struct upload_job {
	enum upload_method method;
	int64_t id;
	const unsigned char *body;	/* PUT only */
	size_t len;
	const char *peer;		/* for the log line; may be NULL */
};

struct upload_reply {
	int status;			/* the HTTP status to send */
	size_t len;
	char body[UPLOAD_REPLY_MAX];	/* JSON, not NUL-terminated */
};

/*
 * Forks the manager and its upload processes. Returns the submitting end of
 * the job queue (non-blocking, inherited by every read worker), or -1 with
 * errno set, and the manager's pid in *manager. close_in_child: a
 * descriptor the manager must not keep (the listening socket: its last
 * holder decides when connections are refused). The caller keeps the
 * queue's receiving end too, so that it can start another manager.
 */
int upload_start(const struct conf *c, int close_in_child, pid_t *manager);

/*
 * Forks a new manager on the same queue, after upload_start, in the same
 * process: for a supervisor whose manager died. Jobs sent meanwhile have
 * waited in the queue. not_inherited (or -1): another descriptor the new
 * manager closes. Returns its pid, or -1 with errno set.
 */
pid_t upload_manager_start(int not_inherited);

/* In a read worker: lets go of the queue's receiving end it inherited. */
void upload_worker_init(void);

/*
 * Submits a job. reply_fd NULL: an UPLOAD_VARIANTS job, never answered.
 * Returns 0 and sets *reply_fd (non-blocking; readable when
 * the answer is there or the upload process died), or -1: errno EAGAIN when
 * the queue is full (answer 503 with Retry-After), anything else on failure.
 */
int upload_submit(int queue_fd, const struct upload_job *job, int *reply_fd);

/*
 * Reads the answer. Returns 0 with *r filled; -1 with errno EAGAIN when it
 * has not come yet; -1 otherwise (the upload process died: *r is a 500).
 */
int upload_read_reply(int reply_fd, struct upload_reply *r);

#endif
