/*
 * routing.h - which destination a recipient goes to, and whether a
 * resolved destination is ourselves.
 *
 * A hosted domain goes to its route (hosted_domains[d].route: "host[:port]",
 * "[ip]:port", "mx:domain"); any other domain, or a hosted domain without a
 * route, to its own MX. The recipient's route may also come from the
 * envelope (a rule's decision at RCPT time), which wins.
 */
#ifndef MXGATE_DELIVERY_ROUTING_H
#define MXGATE_DELIVERY_ROUTING_H

#include <stddef.h>

struct conf;
struct route_answer;

/* key: the destination ("127.0.0.1:2626", "mx:example.com"); domain: the
 * recipient's, lower case; tls: 0 may, 1 require, 2 verify. 0, or -1 with
 * why (an address with no domain). */
int routing_dest(const struct conf *c, const char *rcpt, char *key, size_t keylen,
    char *domain, size_t domainlen, int *tls, char *why, size_t whylen);

/* 1 when a target of a resolved route is one of our listeners or an MX
 * name is one of ours (a loop), with why filled in. */
int routing_loops(const struct conf *c, const struct route_answer *a, char *why, size_t whylen);

#endif
