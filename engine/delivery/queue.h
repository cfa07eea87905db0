/*
 * queue.h - the delivery side's view of spool/queue: a queue file's
 * envelope, and each message's per-recipient status record.
 *
 * A status record (spool/status/QID) is append-only, one line per fact,
 * each fdatasync'd before anything acts on it:
 *   "D <i>"                       recipient i delivered
 *   "P <i> <relay> <code> <text>" recipient i failed for good (to bounce)
 *   "B"                           the bounce for every P is queued
 *   "W"                           the delay warning was sent (once)
 *   "H" / "R"                     held / released (mxgate queue)
 *   "T <due> <attempts> <reply>"  deferred until <due> (epoch; not synced:
 *                                 for `mxgate queue list`, not for safety)
 * The queue file is removed only when every recipient is D or P and the
 * bounce (if any) is queued; then the status record goes too.
 */
#ifndef MXGATE_DELIVERY_QUEUE_H
#define MXGATE_DELIVERY_QUEUE_H

#include <stddef.h>
#include <time.h>

#include "spool.h"

enum rcpt_state { R_PENDING, R_DONE, R_FAILED };

struct qrcpt {
	char            *addr;
	enum rcpt_state  state;
	int              code;          /* the last reply's code (0: none) */
	char            *relay;         /* R_FAILED: where (may be "") */
	char            *reply;         /* the last reply or why: "550 5.1.1 no such user" */
	char            *route;         /* a rule's route for it (the route hook), or NULL */
	char             tls[8];        /* ... and its tls ("": the config's) */
};

struct qenv {
	char          qid[QID_LEN];
	time_t        arrived;
	int           inbound;          /* direction */
	char         *sender;           /* "" for the null sender */
	int           smtputf8, body8bit;
	int           nrcpt;
	struct qrcpt *rcpt;
	long long     size;             /* the whole file */
	long long     body_off;         /* the message starts here */
	int           held, bounced;
	int           warned;           /* the delay warning went ("W") */
	int           received;         /* Received: header lines (RFC 5321 6.3) */
	time_t        next_due;         /* the last "T" line, for the CLI */
	int           attempts;
	char         *last_error;
};

/* Directories under the spool dir, made if missing. 0 or -1. */
int  queue_dirs(const char *spool_dir);

/* Reads spool/queue/qid and its status record. 0; -1 with why (torn,
 * corrupt, vanished: the file is not to be delivered). */
int  queue_load(const char *spool_dir, const char *qid, struct qenv *e, char *why, size_t whylen);
void queue_env_free(struct qenv *e);

/* Opens the queue file for reading the body; -1 on error. */
int  queue_open(const char *spool_dir, const char *qid);

/* Appends one fact to qid's status record; durable (fdatasync) when sync. 0 or -1. */
int  queue_note(const char *spool_dir, const char *qid, int sync, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Removes the queue file, then the status record. */
void queue_remove(const char *spool_dir, const char *qid);

/* Moves a file that must not be delivered to spool/corrupt/. */
void queue_quarantine(const char *spool_dir, const char *qid);

/* A request to the running delivery process (spool/control/), then a
 * SIGUSR1 to it (spool/delivery.pid): "flush", "flush X", "refresh QID".
 * 1 when signalled, 0 when no delivery process runs, -1 on error. */
int  queue_control(const char *spool_dir, const char *request);
/* Reads and removes each request, calling fn with its text. */
void queue_requests(const char *spool_dir, void (*fn)(void *arg, const char *req), void *arg);
/* Records our pid for queue_control(). */
void queue_pidfile(const char *spool_dir);

/* Calls fn for every queue file name; returns how many. */
long queue_scan(const char *spool_dir, void (*fn)(void *arg, const char *qid), void *arg);

#endif
