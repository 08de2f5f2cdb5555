/*
 * clock: the one monotonic clock of the program, in milliseconds, for
 * deadlines, back-offs and uptime. Never affected by changes to wall time.
 */
#ifndef AVATAR_CLOCK_H
#define AVATAR_CLOCK_H

#include <stdint.h>

int64_t clock_ms(void);

#endif
