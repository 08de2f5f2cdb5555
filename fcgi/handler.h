/*
 * handler: one parsed request to one response: method check, reserved
 * paths, lookup with the missing-avatar policy, and the counters. It knows
 * nothing of FastCGI; the server gives it a sink.
 */
#ifndef AVATAR_HANDLER_H
#define AVATAR_HANDLER_H

#include <stdint.h>

#include "conf.h"
#include "reqparse.h"
#include "resp.h"

/*
 * A worker's state for variants that are not made yet: where to send the
 * job, and the ids it sent one for lately, so a burst of requests for one
 * missing variant sends one job, not one per request. The upload process
 * that takes a job makes each missing variant once whatever arrives
 * (vmake_id holds the id's lock), so this table only saves queue slots.
 */
#define HANDLER_RECENT 64
#define HANDLER_RECENT_MS 5000
struct handler {
	int queue_fd;			/* upload_start's queue; -1: none */
	struct {
		int64_t id;
		int64_t at_ms;		/* 0: empty */
	} recent[HANDLER_RECENT];
};

/* Sets up h for a worker; queue_fd may be -1. */
void handler_init(struct handler *h, int queue_fd);

/* Returns the HTTP status sent, or -1: abort the connection. */
int handler_run(const struct conf *c, struct handler *h, const struct req *r,
    struct sink *s);

#endif
