/*
 * scheduler.h - the delivery process's queue in memory: messages, their jobs
 * (a message's pending recipients for one destination) and destinations
 * (one route: "127.0.0.1:2626", "mx:example.com"), with the retry heap,
 * dead-destination marks and the concurrency limits.
 */
#ifndef MXGATE_DELIVERY_SCHED_H
#define MXGATE_DELIVERY_SCHED_H

#include <ev.h>
#include <openssl/ssl.h>

#include "htab.h"
#include "queue.h"

struct conf;
struct dns;
struct dsession;
struct spool;
struct dest;
struct reaper;

struct msg {
	struct qenv   env;
	struct hnode  h;                /* in sched.msgs, by qid */
	int           njobs;            /* jobs alive (queued, waiting or in flight) */
	int           attempts;
	int           finishing;        /* the bounce is being queued */
	int           deleted;          /* `mxgate queue delete`: drop, send nothing more */
	int           waiting;          /* qstats.c's count of its jobs in the retry heap */
	struct sched *sched;
};

struct job {
	struct msg   *m;
	struct dest  *d;
	int          *idx;              /* recipient indexes into m->env.rcpt */
	int           n;
	struct job   *next;             /* in d's ready list */
	double        due;              /* when waiting in the retry heap */
	int           heap;             /* index in the heap, -1 when not in it */
	int           inflight;
	int           attempts;
};

struct dest {
	char         *key;              /* the route */
	char         *domain;           /* the recipient domain (MX routes, TLS policy) */
	struct hnode  h;                /* in sched.dests, by key */
	struct job   *head, **tail;     /* ready to go, in order */
	int           nready;
	int           sessions;         /* connecting or connected */
	int           live;             /* sessions past EHLO */
	struct dsession *idle;          /* connected, waiting for work (session.c) */
	int           failures;         /* in a row, for the dead mark's backoff */
	double        dead_until;       /* 0: alive */
	ev_timer      probe;
	int           tls;              /* 0 may, 1 require, 2 verify */
	struct sched *sched;
};

struct sched {
	struct ev_loop     *loop;
	const struct conf  *conf;
	struct dns         *dns;
	struct spool       *spool;      /* bounces are queued through it */
	struct reaper      *reaper;     /* removes finished files; NULL: queue_remove() */
	struct htab         msgs;       /* by qid */
	long                nmsgs;
	struct htab         dests;      /* by route */
	struct job        **heap;       /* retry heap, earliest due first */
	int                 nheap, heapcap;
	ev_timer            retry;
	int                 sessions;   /* all destinations */
	struct dsession    *all;        /* every session, for shutdown */
	SSL_CTX            *tls;        /* STARTTLS client context */
};

int   sched_init(struct sched *s, struct ev_loop *loop, const struct conf *c, struct dns *dns,
	struct spool *spool);
void  sched_free(struct sched *s);

/* A queue file appeared (or was found at start): load and route it. */
void  sched_add(struct sched *s, const char *qid);
struct msg *sched_find(struct sched *s, const char *qid);

/* A session is ready for work: the next job of its destination, or NULL. */
struct job *sched_take(struct sched *s, struct dest *d);

/*
 * A job came back from an attempt. Recipients whose state is still
 * R_PENDING are retried later (or expire); the job is freed or requeued.
 */
void  sched_done(struct sched *s, struct job *j);

/* The destination could not be reached (every address failed, or DNS
 * failed): mark it dead for a while, defer what waits for it. perm: the
 * route can never work (null MX, no such domain): bounce instead. */
void  sched_dest_failed(struct sched *s, struct dest *d, int perm, const char *relay,
	int code, const char *why);
void  sched_dest_alive(struct sched *s, struct dest *d);
/* A session ended: start others if work waits. */
void  sched_session_gone(struct sched *s, struct dest *d);

/* Recipient outcome, logged and made durable. */
void  sched_rcpt_delivered(struct sched *s, struct job *j, int k, const char *relay,
	const char *reply, const char *tls);
void  sched_rcpt_failed(struct sched *s, struct job *j, int k, const char *relay, int code,
	const char *reply, const char *tls);
void  sched_rcpt_deferred(struct sched *s, struct job *j, int k, const char *relay, int code,
	const char *reply, const char *tls);

/* Every deferred job due now (NULL), or those of one message or one
 * recipient domain; dead marks of the destinations concerned cleared. */
void  sched_flush(struct sched *s, const char *qid_or_domain);
/* Re-reads a message's held/deleted state after `mxgate queue`. */
void  sched_refresh(struct sched *s, const char *qid);

#endif
