/*
 * route.h - where mail for a route or domain goes: the addresses to try,
 * in order. Shared by callouts and delivery.
 *
 * A route is "host", "host:port", "[addr]", "[addr]:port" (that host's A
 * then AAAA addresses), "mx:domain" (that domain's MX), or NULL (the MX of
 * the given domain, which may be a literal "[192.0.2.1]"). MX hosts come in
 * preference order, each host's A before AAAA; a domain with no MX is its
 * own implicit MX (RFC 5321 5.1); a null MX (RFC 7505) is a permanent
 * "accepts no mail".
 */
#ifndef MXGATE_ROUTE_H
#define MXGATE_ROUTE_H

#include <netinet/in.h>
#include <sys/socket.h>

#include "dns.h"

#define ROUTE_MAX_HOSTS    10    /* MX hosts resolved per route */
#define ROUTE_MAX_TARGETS  16    /* addresses tried per route */
#define ROUTE_ADDR_TEXT    (INET6_ADDRSTRLEN + 10)  /* "[v6]:65535" */

struct dns;
struct route_query;

struct route_target {
	struct sockaddr_storage sa;
	socklen_t               salen;
	char                    addr[ROUTE_ADDR_TEXT];  /* "1.2.3.4:25", "[::1]:25" */
	char                    name[DNS_RR_TEXT];      /* the host name; "" for a literal */
};

enum route_status {
	ROUTE_OK,          /* n >= 1 targets */
	ROUTE_TEMP,        /* DNS timed out or failed: try again later */
	ROUTE_PERM,        /* no such domain, null MX, no address, bad route */
};

struct route_answer {
	enum route_status   status;
	const char         *stage;       /* failures: "dns" or "input" */
	char                host[DNS_RR_TEXT];  /* failures: the name to blame */
	char                why[256];
	int                 null_mx;     /* RFC 7505 */
	int                 n;
	struct route_target t[ROUTE_MAX_TARGETS];
};

/* The answer is valid only during the callback. */
typedef void route_cb(void *arg, const struct route_answer *a);

/*
 * Resolves route (or domain's MX when route is NULL) with port as the
 * default port. *slot holds the query while it runs and is set to NULL
 * before cb fires, which may happen before this returns. dns may be NULL:
 * literal routes only.
 */
void route_resolve(struct route_query **slot, struct dns *dns, const char *route,
    const char *domain, int port, route_cb *cb, void *arg);

/* No callback after this; *slot is set to NULL. */
void route_cancel(struct route_query **slot);

/* "host", "host:port", "[addr]", "[addr]:port": 0, or -1 when malformed. */
int  route_parse(const char *route, char *host, size_t hostlen, int *port);

#endif
