/* routing.c - a recipient to its destination (hosted route or MX), and the refusal of routes that lead back to us. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "conf.h"
#include "queue.h"
#include "route.h"
#include "routing.h"

static int
tls_level(const char *s)
{
	if (strcmp(s, "require") == 0)
		return 1;
	if (strcmp(s, "verify") == 0)
		return 2;
	return 0;
}

int
routing_dest(const struct conf *c, const struct qrcpt *r, char *key, size_t keylen,
    char *domain, size_t domainlen, int *tls, char *why, size_t whylen)
{
	const char *rcpt = r->addr, *at = strrchr(rcpt, '@');
	const struct conf_domain *d;
	size_t i;

	if (!at || !at[1] || strlen(at + 1) >= domainlen) {
		snprintf(why, whylen, "no domain in <%s>", rcpt);
		return -1;
	}
	for (i = 0; at[1 + i]; i++)
		domain[i] = (char)tolower((unsigned char)at[1 + i]);
	domain[i] = '\0';
	d = conf_domain(c, domain);
	*tls = tls_level(r->tls[0] ? r->tls : d && d->tls[0] ? d->tls : c->delivery.tls);
	if (r->route)
		snprintf(key, keylen, "%s", r->route);
	else if (d && d->route[0])
		snprintf(key, keylen, "%s", d->route);
	else
		snprintf(key, keylen, "mx:%s", domain);
	return 0;
}

static int
our_name(const struct conf *c, const char *name)
{
	size_t n = strlen(name);

	if (n && name[n - 1] == '.')
		n--;
	if (strncasecmp(name, c->hostname, n) == 0 && c->hostname[n] == '\0')
		return 1;
	for (char **h = c->host_names; h && *h; h++)
		if (strncasecmp(name, *h, n) == 0 && (*h)[n] == '\0')
			return 1;
	return 0;
}

/* Is sa one of our listeners (same port, same address or a wildcard one)? */
static int
our_listener(const struct conf *c, const struct sockaddr_storage *sa)
{
	for (int i = 0; i < c->nlisten; i++) {
		const struct conf_listener *l = &c->listen[i];

		if (l->sa.ss_family != sa->ss_family)
			continue;
		if (sa->ss_family == AF_INET) {
			const struct sockaddr_in *a = (const void *)sa, *b = (const void *)&l->sa;
			if (a->sin_port == b->sin_port && (b->sin_addr.s_addr == htonl(INADDR_ANY) ||
			    a->sin_addr.s_addr == b->sin_addr.s_addr))
				return 1;
		} else if (sa->ss_family == AF_INET6) {
			const struct sockaddr_in6 *a = (const void *)sa, *b = (const void *)&l->sa;
			if (a->sin6_port == b->sin6_port && (IN6_IS_ADDR_UNSPECIFIED(&b->sin6_addr) ||
			    memcmp(&a->sin6_addr, &b->sin6_addr, sizeof a->sin6_addr) == 0))
				return 1;
		}
	}
	return 0;
}

int
routing_loops(const struct conf *c, const struct route_answer *a, char *why, size_t whylen)
{
	for (int i = 0; i < a->n; i++) {
		if (a->t[i].name[0] && our_name(c, a->t[i].name)) {
			snprintf(why, whylen, "mail for this route loops back to myself (%s)", a->t[i].name);
			return 1;
		}
		if (our_listener(c, &a->t[i].sa)) {
			snprintf(why, whylen, "mail for this route loops back to myself (%s)", a->t[i].addr);
			return 1;
		}
	}
	return 0;
}
