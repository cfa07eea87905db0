/*
 * readiness.c - the sd_notify protocol (libsystemd): READY=1 when every worker serves, RELOADING=1/READY=1 around SIGHUP.
 *
 * systemd's Type=notify waits for READY=1 before it calls the service
 * started (and starts what is ordered after it); a reload is reported as
 * RELOADING=1 until each worker has built, or refused, its new generation.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "readiness.h"

#define READY_MAX 256

enum { R_STARTING, R_READY, R_RELOADING, R_STOPPING };

static int           state = R_STARTING;
static unsigned char pending[READY_MAX];
static char          last_error[256];

/* RELOADING=1 carries the monotonic clock (systemd 253's Type=notify-reload wants it). */
static void
notify_reloading(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	sd_notifyf(0, "RELOADING=1\nSTATUS=reloading\nMONOTONIC_USEC=%llu",
	    (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
}

static int
any_pending(void)
{
	for (int i = 0; i < READY_MAX; i++)
		if (pending[i])
			return 1;
	return 0;
}

static void
settle(void)
{
	char msg[400];

	if ((state != R_STARTING && state != R_RELOADING) || any_pending())
		return;
	snprintf(msg, sizeof msg, "READY=1\nSTATUS=%s%s", last_error[0] ? "reload refused: " : "serving",
	    last_error);
	state = R_READY;
	sd_notify(0, msg);
}

/* A worker that dies stays pending: the master restarts it, and the service
 * is ready (again) when the new one has loaded its rules. */
void
ready_expect(int index)
{
	if (index >= 0 && index < READY_MAX)
		pending[index] = 1;
}

void
ready_ack(int index)
{
	if (index >= 0 && index < READY_MAX)
		pending[index] = 0;
	settle();
}

void
ready_reloading(const int *alive, int n)
{
	if (state == R_STOPPING)
		return;
	notify_reloading();
	state = R_RELOADING;
	last_error[0] = '\0';
	for (int i = 0; i < n && i < READY_MAX; i++)
		pending[i] = alive[i] != 0;
	settle();
}

void
ready_reload_failed(const char *why)
{
	if (state == R_STOPPING)
		return;
	notify_reloading();
	state = R_RELOADING;
	snprintf(last_error, sizeof last_error, "%s", why);
	for (char *p = last_error; *p; p++)
		if (*p == '\n')
			*p = ' ';
	settle();
}

void
ready_stopping(void)
{
	state = R_STOPPING;
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}

void
ready_tell_master(int index)
{
	union sigval v = { .sival_int = index };

	sigqueue(getppid(), READY_SIGNAL, v);
}
