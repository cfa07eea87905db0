/*
 * readiness.h - tells the service manager (sd_notify) when mxgate serves:
 * READY=1 once every worker has loaded its first rule generation (the
 * listeners are bound before any worker starts), RELOADING=1 then READY=1
 * around a SIGHUP, STOPPING=1 on SIGTERM. Without NOTIFY_SOCKET all no-ops.
 *
 * Workers say "done" to the master with a queued real-time signal
 * (READY_SIGNAL, value = worker index), which the master waits for in its
 * sigtimedwait() loop with the others.
 */
#ifndef MXGATE_READINESS_H
#define MXGATE_READINESS_H

#include <signal.h>

#define READY_SIGNAL (SIGRTMIN + 1)

/* Master side. */
void ready_expect(int index);               /* a worker is being started */
void ready_ack(int index);                  /* it said done (first load or a reload) */
void ready_reloading(const int *alive, int n);  /* SIGHUP forwarded to the alive workers */
void ready_reload_failed(const char *why);  /* the master's own check refused it */
void ready_stopping(void);

/* Worker side: a generation is loaded (or a reload attempt is over). */
void ready_tell_master(int index);

#endif
