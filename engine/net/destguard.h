/*
 * destguard.h - where a callout that an untrusted address chose may not
 * connect: sender verification asks the MX of whatever domain a client
 * wrote in MAIL FROM, so `x@[127.0.0.2]` or a name resolving to an
 * internal address would make us a proxy into our own network (SSRF).
 */
#ifndef MXGATE_DESTGUARD_H
#define MXGATE_DESTGUARD_H

#include <sys/socket.h>

#include "conf.h"

struct destguard;

/*
 * Refused: loopback, private (RFC 1918, unique local), shared (RFC 6598),
 * link-local, multicast, unspecified and reserved addresses, and every
 * address of this machine (getifaddrs) -- unless inside allow; and, even
 * when allowed, one of our listeners (address and port: a loop).
 */
struct destguard *destguard_new(const struct conf_net *allow, int nallow,
    const struct conf_listener *listen, int nlisten, char *err, size_t errlen);
void destguard_free(struct destguard *g);

/* NULL: sa may be connected to; else why not ("loopback", "private", ...). */
const char *destguard_check(const struct destguard *g, const struct sockaddr *sa);

#endif
