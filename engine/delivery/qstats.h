/*
 * qstats.h - the delivery process's queue gauges (metrics.h), refreshed
 * every second on its loop while metrics are on.
 */
#ifndef MXGATE_DELIVERY_QSTATS_H
#define MXGATE_DELIVERY_QSTATS_H

#include <ev.h>

#include "scheduler.h"

void qstats_start(struct sched *s, ev_timer *w);

#endif
