/* destguard.c - the addresses an untrusted callout destination may not be (SSRF). */
#include <ifaddrs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "destguard.h"

/* Networks no address of the internet's mail servers is in, each with why. */
static const struct { const char *net, *why; } special[] = {
	{ "0.0.0.0/8", "unspecified" }, { "10.0.0.0/8", "private" },
	{ "100.64.0.0/10", "shared (carrier NAT)" },
	{ "127.0.0.0/8", "loopback" },          /* [3]: a wildcard listener answers it all */
	{ "169.254.0.0/16", "link-local" }, { "172.16.0.0/12", "private" },
	{ "192.0.0.0/24", "special-purpose" }, { "192.168.0.0/16", "private" },
	{ "198.18.0.0/15", "benchmarking" }, { "224.0.0.0/4", "multicast" },
	{ "240.0.0.0/4", "reserved" },
	{ "::/128", "unspecified" }, { "::1/128", "loopback" }, { "fe80::/10", "link-local" },
	{ "fc00::/7", "private (unique local)" }, { "ff00::/8", "multicast" },
	{ "100::/64", "discard" },
};
#define NSPECIAL (sizeof special / sizeof special[0])

struct destguard {
	struct conf_net      special[NSPECIAL];
	struct conf_net     *allow, *own;   /* own: this machine's addresses, /32 or /128 */
	int                  nallow, nown;
	struct conf_listener listen[CONF_MAX_LISTEN];
	int                  nlisten;
};

/* The one-address network of sa (family 0 when it is not IP). */
static struct conf_net
net_of(const struct sockaddr *sa)
{
	struct conf_net n;

	memset(&n, 0, sizeof n);
	if (sa && sa->sa_family == AF_INET) {
		n.family = AF_INET;
		memcpy(n.addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		n.prefix = 32;
	} else if (sa && sa->sa_family == AF_INET6) {
		n.family = AF_INET6;
		memcpy(n.addr, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		n.prefix = 128;
	}
	return n;
}

static void
add_own(struct destguard *g, const struct sockaddr *sa)
{
	struct conf_net n = net_of(sa), *nn;

	if (!n.family || !(nn = realloc(g->own, (size_t)(g->nown + 1) * sizeof *nn)))
		return;
	g->own = nn;
	g->own[g->nown++] = n;
}

struct destguard *
destguard_new(const struct conf_net *allow, int nallow,
    const struct conf_listener *listen, int nlisten, char *err, size_t errlen)
{
	struct destguard *g = calloc(1, sizeof *g);
	struct ifaddrs *ifa, *i;

	if (!g || (nallow && !(g->allow = calloc((size_t)nallow, sizeof *allow)))) {
		free(g);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (size_t k = 0; k < NSPECIAL; k++)
		conf_parse_net(special[k].net, &g->special[k]);
	if (nallow)
		memcpy(g->allow, allow, (size_t)nallow * sizeof *allow);
	g->nallow = nallow;
	if (nlisten > CONF_MAX_LISTEN)
		nlisten = CONF_MAX_LISTEN;
	memcpy(g->listen, listen, (size_t)nlisten * sizeof *listen);
	g->nlisten = nlisten;
	for (int k = 0; k < nlisten; k++)
		add_own(g, (const struct sockaddr *)&listen[k].sa);
	if (getifaddrs(&ifa) == 0) {
		for (i = ifa; i; i = i->ifa_next)
			add_own(g, i->ifa_addr);
		freeifaddrs(ifa);
	}
	return g;
}

void
destguard_free(struct destguard *g)
{
	if (!g)
		return;
	free(g->allow);
	free(g->own);
	free(g);
}

static int
port_of(const struct sockaddr *sa)
{
	return ntohs(sa->sa_family == AF_INET ? ((const struct sockaddr_in *)sa)->sin_port :
	    ((const struct sockaddr_in6 *)sa)->sin6_port);
}

static int
wildcard(const struct sockaddr *sa)
{
	return (sa->sa_family == AF_INET && ((const struct sockaddr_in *)sa)->sin_addr.s_addr == INADDR_ANY) ||
	    (sa->sa_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr));
}

/* A listener of ours: its address (any of ours, for a wildcard one) and port. */
static int
is_listener(const struct destguard *g, const struct sockaddr *sa)
{
	for (int k = 0; k < g->nlisten; k++) {
		const struct sockaddr *l = (const struct sockaddr *)&g->listen[k].sa;
		struct conf_net one = net_of(l);

		if (port_of(l) != port_of(sa))
			continue;
		if (wildcard(l) ? conf_net_match(g->own, g->nown, sa) || conf_net_match(&g->special[3], 1, sa) :
		    conf_net_match(&one, 1, sa))
			return 1;
	}
	return 0;
}

const char *
destguard_check(const struct destguard *g, const struct sockaddr *sa)
{
	static const unsigned char nat64[12] = { 0, 0x64, 0xff, 0x9b };
	struct sockaddr_in v4;

	if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
		return "a non-IP";
	/* DNS64 (RFC 6052): 64:ff9b::a.b.c.d is a.b.c.d behind the NAT64. */
	if (sa->sa_family == AF_INET6 &&
	    memcmp(((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr, nat64, 12) == 0) {
		memset(&v4, 0, sizeof v4);
		v4.sin_family = AF_INET;
		v4.sin_port = ((const struct sockaddr_in6 *)sa)->sin6_port;
		memcpy(&v4.sin_addr, ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr + 12, 4);
		sa = (const struct sockaddr *)&v4;
	}
	if (is_listener(g, sa))
		return "our own listener's";
	if (conf_net_match(g->allow, g->nallow, sa))
		return NULL;
	for (size_t k = 0; k < NSPECIAL; k++)
		if (conf_net_match(&g->special[k], 1, sa))
			return special[k].why;
	if (conf_net_match(g->own, g->nown, sa))
		return "our own";
	return NULL;
}
