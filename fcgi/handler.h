/*
 * handler: one parsed request to one response: method check, reserved
 * paths, lookup with the missing-avatar policy, and the counters. It knows
 * nothing of FastCGI; the server gives it a sink.
 */
#ifndef AVATAR_HANDLER_H
#define AVATAR_HANDLER_H

#include "conf.h"
#include "reqparse.h"
#include "resp.h"

/* Returns the HTTP status sent, or -1: abort the connection. */
int handler_run(const struct conf *c, const struct req *r, struct sink *s);

#endif
