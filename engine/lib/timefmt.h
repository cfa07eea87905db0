/*
 * timefmt.h - the times operators type and the log writes: ISO 8601 UTC,
 * epochs and ages ("30m").
 */
#ifndef MXGATE_TIMEFMT_H
#define MXGATE_TIMEFMT_H

#include <stddef.h>

/* "2026-11-28T04:00:05.123Z", "2026-11-28 04:00", "2026-11-28", an epoch
 * ("1764302400"), or an age before now ("90s 30m 1h 2d 1w"). 0 or -1. */
int  time_parse(const char *s, double now, double *out);
/* "2026-11-28T04:00:05Z" */
void time_format(double t, char *buf, size_t len);

#endif
