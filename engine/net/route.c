/*
 * route.c - a route or a domain to the list of addresses to try (MX, A,
 * AAAA), for callouts and delivery alike.
 *
 * All the DNS happens first: the MX lookup, then every host's A and AAAA
 * at once; the answer comes when the last one is in. dns.c has no cancel,
 * so every lookup holds a reference on the query; route_cancel() only
 * silences it, and the last answer frees it.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "route.h"

/* One MX host (or the route's host) and the addresses DNS gave it. */
struct mxhost {
	char name[DNS_RR_TEXT];
	int  literal;                       /* name is an address already */
	int  n4, n6;
	struct in_addr  v4[ROUTE_MAX_TARGETS];
	struct in6_addr v6[ROUTE_MAX_TARGETS];
	enum dns_status st4, st6;
};

struct route_query {
	struct route_query **slot;
	struct dns          *dns;
	route_cb            *cb;
	void                *arg;
	int                  port;
	char                 dest[DNS_RR_TEXT];   /* the domain or the route's host */
	struct mxhost       *mx;
	int                  nmx;
	int                  refs;                /* memory: lookups in flight, and the caller's frame */
	int                  pending, issuing;    /* lookups not yet answered; issuing A/AAAA */
	int                  answered;
	struct route_answer  a;
};

/* A lookup in flight: which host and type it is for. */
struct ticket {
	struct route_query *q;
	int                 mx;                   /* -1: the MX lookup itself */
	enum dns_type       type;
};

static void
unref(struct route_query *q)
{
	if (--q->refs == 0) {
		free(q->mx);
		free(q);
	}
}

/* Tells the caller once (unless cancelled). */
static void
finish(struct route_query *q)
{
	if (q->answered)
		return;
	q->answered = 1;
	if (q->slot)
		*q->slot = NULL;
	q->slot = NULL;
	if (q->cb)
		q->cb(q->arg, &q->a);
	q->cb = NULL;
}

static void
failed(struct route_query *q, enum route_status st, const char *stage, const char *host,
    const char *fmt, ...)
{
	va_list ap;

	q->a.status = st;
	q->a.stage = stage;
	q->a.n = 0;
	snprintf(q->a.host, sizeof q->a.host, "%s", host ? host : "");
	va_start(ap, fmt);
	vsnprintf(q->a.why, sizeof q->a.why, fmt, ap);
	va_end(ap);
	finish(q);
}

/* Adds ip (AF_INET: struct in_addr, AF_INET6: struct in6_addr) once. */
static void
add_target(struct route_query *q, int family, const void *ip, const char *name)
{
	struct route_target *t;
	char text[INET6_ADDRSTRLEN];
	int i;

	if (q->a.n == ROUTE_MAX_TARGETS)
		return;
	t = &q->a.t[q->a.n];
	memset(t, 0, sizeof *t);
	inet_ntop(family, ip, text, sizeof text);
	if (family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&t->sa;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)q->port);
		memcpy(&s4->sin_addr, ip, sizeof s4->sin_addr);
		t->salen = sizeof *s4;
		snprintf(t->addr, sizeof t->addr, "%s:%d", text, q->port);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&t->sa;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)q->port);
		memcpy(&s6->sin6_addr, ip, sizeof s6->sin6_addr);
		t->salen = sizeof *s6;
		snprintf(t->addr, sizeof t->addr, "[%s]:%d", text, q->port);
	}
	for (i = 0; i < q->a.n; i++)
		if (strcmp(q->a.t[i].addr, t->addr) == 0)
			return;         /* two MX names, one address: try it once */
	snprintf(t->name, sizeof t->name, "%s", name ? name : "");
	q->a.n++;
}

/* Every lookup is in: the addresses, MX preference first, then A before AAAA. */
static void
targets(struct route_query *q)
{
	int i, k, temp = 0;

	for (i = 0; i < q->nmx; i++) {
		struct mxhost *m = &q->mx[i];

		for (k = 0; k < m->n4; k++)
			add_target(q, AF_INET, &m->v4[k], m->literal ? NULL : m->name);
		for (k = 0; k < m->n6; k++)
			add_target(q, AF_INET6, &m->v6[k], m->literal ? NULL : m->name);
		temp |= m->st4 == DNS_TIMEOUT || m->st4 == DNS_SERVFAIL ||
		    m->st6 == DNS_TIMEOUT || m->st6 == DNS_SERVFAIL;
	}
	if (q->a.n == 0) {
		const char *h = q->nmx ? q->mx[0].name : q->dest;

		failed(q, temp ? ROUTE_TEMP : ROUTE_PERM, "dns", h,
		    temp ? "%s: address lookup failed" : "%s: no A or AAAA record", h);
		return;
	}
	q->a.status = ROUTE_OK;
	finish(q);
}

static void on_dns(void *arg, const struct dns_answer *ans);
static void on_mx(struct route_query *q, const struct dns_answer *ans);
static void on_addr(struct route_query *q, int i, enum dns_type type, const struct dns_answer *ans);

static void
lookup(struct route_query *q, const char *name, enum dns_type type, int mx)
{
	struct ticket *t = calloc(1, sizeof *t);
	struct dns_answer fail;

	memset(&fail, 0, sizeof fail);
	fail.status = DNS_SERVFAIL;
	if (!t) {
		if (mx < 0)
			on_mx(q, &fail);
		else
			on_addr(q, mx, type, &fail);
		return;
	}
	t->q = q;
	t->mx = mx;
	t->type = type;
	q->refs++;
	q->pending++;
	if (!q->dns)
		on_dns(t, &fail);
	else
		dns_query(q->dns, name, type, on_dns, t);
}

static int
hosts(struct route_query *q, int n)
{
	if (!(q->mx = calloc((size_t)n, sizeof *q->mx)))
		return -1;
	q->nmx = n;
	return 0;
}

/* A and AAAA for every host at once; targets() once all are in. */
static void
resolve_hosts(struct route_query *q)
{
	q->issuing = 1;                 /* answers that come at once wait for the rest */
	for (int i = 0; i < q->nmx; i++) {
		struct mxhost *m = &q->mx[i];

		/* A route or MX that is an address already: no lookup. */
		if (inet_pton(AF_INET, m->name, &m->v4[0]) == 1) {
			m->literal = m->n4 = 1;
			continue;
		}
		if (inet_pton(AF_INET6, m->name, &m->v6[0]) == 1) {
			m->literal = m->n6 = 1;
			continue;
		}
		lookup(q, m->name, DNS_A, i);
		lookup(q, m->name, DNS_AAAA, i);
	}
	q->issuing = 0;
	if (q->pending == 0 && !q->answered)
		targets(q);
}

static void
on_mx(struct route_query *q, const struct dns_answer *ans)
{
	int i, n = 0, null_mx = 0;

	switch (ans->status) {
	case DNS_OK:
		if (ans->n == 0)
			break;
		for (i = 0; i < ans->n; i++)
			null_mx |= !ans->rr[i].text[0] || strcmp(ans->rr[i].text, ".") == 0;
		if (hosts(q, ans->n < ROUTE_MAX_HOSTS ? ans->n : ROUTE_MAX_HOSTS) < 0)
			break;
		/* dns.c sorted them by preference. */
		for (i = 0; i < ans->n && n < q->nmx; i++)
			if (ans->rr[i].text[0] && strcmp(ans->rr[i].text, ".") != 0)
				snprintf(q->mx[n++].name, sizeof q->mx[0].name, "%s", ans->rr[i].text);
		q->nmx = n;
		if (n == 0) {
			q->a.null_mx = null_mx;
			failed(q, ROUTE_PERM, "dns", q->dest, null_mx ?
			    "%s: null MX, the domain accepts no mail (RFC 7505)" :
			    "%s: no usable MX", q->dest);
			return;
		}
		resolve_hosts(q);
		return;
	case DNS_NODATA:
		/* RFC 5321 5.1: no MX, the domain itself is the implicit MX. */
		if (hosts(q, 1) < 0)
			break;
		snprintf(q->mx[0].name, sizeof q->mx[0].name, "%s", q->dest);
		resolve_hosts(q);
		return;
	case DNS_NXDOMAIN:
		failed(q, ROUTE_PERM, "dns", q->dest, "%s: no such domain", q->dest);
		return;
	default:
		failed(q, ROUTE_TEMP, "dns", q->dest, "%s: MX lookup failed (%s)", q->dest,
		    dns_status_str(ans->status));
		return;
	}
	failed(q, ROUTE_TEMP, "dns", q->dest, "out of memory");
}

static void
on_addr(struct route_query *q, int i, enum dns_type type, const struct dns_answer *ans)
{
	struct mxhost *m = &q->mx[i];
	int k;

	if (type == DNS_A)
		m->st4 = ans->status;
	else
		m->st6 = ans->status;
	for (k = 0; ans->status == DNS_OK && k < ans->n; k++) {
		if (type == DNS_A && m->n4 < ROUTE_MAX_TARGETS &&
		    inet_pton(AF_INET, ans->rr[k].text, &m->v4[m->n4]) == 1)
			m->n4++;
		else if (type == DNS_AAAA && m->n6 < ROUTE_MAX_TARGETS &&
		    inet_pton(AF_INET6, ans->rr[k].text, &m->v6[m->n6]) == 1)
			m->n6++;
	}
}

static void
on_dns(void *arg, const struct dns_answer *ans)
{
	struct ticket *t = arg;
	struct route_query *q = t->q;

	q->pending--;
	if (!q->answered) {
		if (t->mx < 0)
			on_mx(q, ans);
		else {
			on_addr(q, t->mx, t->type, ans);
			if (q->pending == 0 && !q->issuing)
				targets(q);
		}
	}
	free(t);
	unref(q);
}

int
route_parse(const char *route, char *host, size_t hostlen, int *port)
{
	const char *p, *colon = NULL;
	size_t n;

	if (route[0] == '[') {
		if (!(p = strchr(route, ']')))
			return -1;
		n = (size_t)(p - route - 1);
		if (p[1] == ':')
			colon = p + 1;
		else if (p[1] != '\0')
			return -1;
		route++;
	} else if ((p = strchr(route, ':')) && !strchr(p + 1, ':')) {
		colon = p;
		n = (size_t)(p - route);
	} else
		n = strlen(route);
	if (n == 0 || n >= hostlen)
		return -1;
	memcpy(host, route, n);
	host[n] = '\0';
	if (colon) {
		char *end;
		long v = strtol(colon + 1, &end, 10);

		if (*end || v < 1 || v > 65535)
			return -1;
		*port = (int)v;
	}
	return 0;
}

static void
start(struct route_query *q, const char *route, const char *domain)
{
	char host[DNS_RR_TEXT];

	if (route && strncasecmp(route, "mx:", 3) == 0) {
		snprintf(q->dest, sizeof q->dest, "%s", route + 3);
	} else if (route) {
		if (route_parse(route, host, sizeof host, &q->port) < 0 || hosts(q, 1) < 0) {
			failed(q, ROUTE_PERM, "input", route, "bad route");
			return;
		}
		snprintf(q->dest, sizeof q->dest, "%s", host);
		snprintf(q->mx[0].name, sizeof q->mx[0].name, "%s", host);
		resolve_hosts(q);
		return;
	} else {
		snprintf(q->dest, sizeof q->dest, "%s", domain ? domain : "");
		/* RFC 5321 4.1.3: a domain literal, "[192.0.2.1]" or "[IPv6:2001:db8::1]". */
		if (q->dest[0] == '[') {
			const char *a = q->dest + 1;
			size_t n;

			if (strncasecmp(a, "IPv6:", 5) == 0)
				a += 5;
			n = strcspn(a, "]");
			if (a[n] != ']' || a[n + 1] != '\0' || n >= sizeof host || hosts(q, 1) < 0) {
				failed(q, ROUTE_PERM, "input", q->dest, "bad domain literal");
				return;
			}
			memcpy(q->mx[0].name, a, n);
			q->mx[0].name[n] = '\0';
			resolve_hosts(q);
			return;
		}
	}
	if (!q->dest[0]) {
		failed(q, ROUTE_PERM, "input", "", "no domain to route to");
		return;
	}
	lookup(q, q->dest, DNS_MX, -1);
}

void
route_resolve(struct route_query **slot, struct dns *dns, const char *route,
    const char *domain, int port, route_cb *cb, void *arg)
{
	struct route_query *q = calloc(1, sizeof *q);
	struct route_answer a;

	if (!q) {
		memset(&a, 0, sizeof a);
		a.status = ROUTE_TEMP;
		a.stage = "dns";
		snprintf(a.why, sizeof a.why, "out of memory");
		*slot = NULL;
		cb(arg, &a);
		return;
	}
	q->slot = slot;
	*slot = q;
	q->dns = dns;
	q->cb = cb;
	q->arg = arg;
	q->port = port;
	q->refs = 1;                    /* ours, until start() has returned */
	start(q, route, domain);
	unref(q);
}

void
route_cancel(struct route_query **slot)
{
	struct route_query *q = *slot;

	if (!q)
		return;
	*slot = NULL;
	q->slot = NULL;
	q->cb = NULL;
	q->answered = 1;
}
