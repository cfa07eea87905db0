/*
 * clock.h - the time as a double, in seconds: wall clock (epoch, for
 * records that outlive the process) or monotonic (for intervals).
 */
#ifndef MXGATE_CLOCK_H
#define MXGATE_CLOCK_H

#include <time.h>

static inline double
clock_seconds(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline double clock_wall(void) { return clock_seconds(CLOCK_REALTIME); }
static inline double clock_mono(void) { return clock_seconds(CLOCK_MONOTONIC); }

#endif
