/*
 * bounce.h - one delivery status notification (RFC 3464) per message for
 * every recipient that failed, queued like any message.
 */
#ifndef MXGATE_DELIVERY_BOUNCE_H
#define MXGATE_DELIVERY_BOUNCE_H

#include "queue.h"

struct conf;
struct spool;

enum dsn_kind {
	DSN_FAILED,     /* e's R_FAILED recipients: Action: failed */
	DSN_DELAYED,    /* its pending recipients already tried: Action: delayed */
};

/* Queues the DSN of that kind to e->sender, from <>. done(arg, ok) fires
 * once it is durable (or not); 0, or -1 at once. */
int bounce_queue(struct spool *sp, const struct conf *c, const struct qenv *e,
    enum dsn_kind kind, spool_done_cb *done, void *arg);

#endif
