/*
 * routing.h - which destination a recipient goes to, and whether a
 * resolved destination is ourselves.
 *
 * A hosted domain goes to its route (hosted_domains[d].route: "host[:port]",
 * "[ip]:port", "mx:domain"); any other domain, or a hosted domain without a
 * route, to its own MX; stdlib/route.lua, the route hook's default, gives
 * the same answer. A route a rule chose at RCPT time (the envelope's
 * "routes") wins.
 */
#ifndef MXGATE_DELIVERY_ROUTING_H
#define MXGATE_DELIVERY_ROUTING_H

#include <stddef.h>

struct conf;
struct route_answer;

/* key: the destination ("127.0.0.1:2626", "mx:example.com"): the route a
 * rule chose for r (recorded with the message), else the config's;
 * domain: the recipient's, lower case; tls: 0 may, 1 require, 2 verify
 * (the rule's, else the domain's, else delivery.tls). 0, or -1 with why
 * (an address with no domain). */
struct qrcpt;
int routing_dest(const struct conf *c, const struct qrcpt *r, char *key, size_t keylen,
    char *domain, size_t domainlen, int *tls, char *why, size_t whylen);

/* 1 when a target of a resolved route is one of our listeners or an MX
 * name is one of ours (a loop), with why filled in. */
int routing_loops(const struct conf *c, const struct route_answer *a, char *why, size_t whylen);

#endif
