/*
 * connlimit.h - connection counts shared by all workers (limits
 * max_connections and max_per_ip), in memory the master maps before fork.
 *
 * Each worker writes only its own slice, so no lock is needed and a worker
 * that dies cannot leave one held; the master zeroes the dead worker's
 * slice. Per-IP counts are kept per hash bucket: a collision can only
 * over-count, never let a client past its limit.
 */
#ifndef MXGATE_CONNLIMIT_H
#define MXGATE_CONNLIMIT_H

#include <sys/socket.h>

struct connlimit;

struct connlimit *connlimit_new(int nworkers);     /* master, before fork */
void connlimit_reset(struct connlimit *cl, int worker);
/* Counts the connection in and returns 0, or returns -1 (over a limit). */
int  connlimit_enter(struct connlimit *cl, int worker, const struct sockaddr *sa,
    int max_total, int max_per_ip, const char **which);
void connlimit_leave(struct connlimit *cl, int worker, const struct sockaddr *sa);

#endif
