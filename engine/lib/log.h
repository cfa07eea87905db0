/*
 * log.h - one structured line per event, logfmt: ts=... event=... k=v.
 *
 * log_event(event, key, value, key, value, ..., NULL). Values are quoted
 * when they need it; control bytes from clients are escaped, so a hostile
 * HELO cannot forge a log line. Each line is one write(2) on an O_APPEND
 * descriptor, so workers never interleave.
 */
#ifndef MXGATE_LOG_H
#define MXGATE_LOG_H

#include <sys/types.h>

int  log_open(const char *path);   /* "" or NULL: stderr; 0 or -1 */
void log_reopen(void);
/* fchown of the open log file (the master, before dropping root). */
int  log_chown(uid_t uid, gid_t gid);
void log_event(const char *event, ...) __attribute__((sentinel));
/* Debug-level lines, off unless MXGATE_DEBUG is set. */
extern int log_debug;

#endif
