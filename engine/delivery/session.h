/*
 * session.h - one delivery session: resolve a destination, connect to
 * its addresses in order until one is ready, then send it job after job
 * (connection reuse) until its ready list is empty, and QUIT.
 */
#ifndef MXGATE_DELIVERY_SESSION_H
#define MXGATE_DELIVERY_SESSION_H

struct sched;
struct dest;

/* 0, or -1 when it cannot start (out of memory). */
int  session_start(struct sched *s, struct dest *d);
/* Gives waiting work to a connected idle session of d: 1, or 0 when none. */
int  session_wake(struct dest *d);
/* Drops every session (shutdown); no callback after this. */
void session_abort_all(struct sched *s);

#endif
