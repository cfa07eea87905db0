/*
 * bounce.h - one delivery status notification (RFC 3464) per message for
 * every recipient that failed, queued like any message.
 */
#ifndef MXGATE_DELIVERY_BOUNCE_H
#define MXGATE_DELIVERY_BOUNCE_H

#include "queue.h"

struct conf;
struct spool;

/* Queues the DSN for e's R_FAILED recipients to e->sender, from <>.
 * done(arg, ok) fires once it is durable (or not); 0, or -1 at once. */
int bounce_queue(struct spool *sp, const struct conf *c, const struct qenv *e,
    spool_done_cb *done, void *arg);

#endif
