/*
 * delivery.h - the delivery process: forked and supervised by the master,
 * its own libev loop, running as the unprivileged user. It forwards every
 * message in spool/queue to its next hop.
 */
#ifndef MXGATE_DELIVERY_H
#define MXGATE_DELIVERY_H

struct conf;

/* Runs until SIGTERM; returns the exit code. */
int delivery_main(struct conf *conf);

#endif
