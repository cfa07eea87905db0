/*
 * test_destguard.c - which addresses sender verification may connect to
 * (issue 11 item 4, SSRF): never loopback, private, link-local, multicast
 * or ours unless allowed, never one of our listeners.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "destguard.h"
#include "unit.h"

static struct sockaddr_storage SA;

/* "127.0.0.2" or "::1", port 25. */
static const struct sockaddr *
addr(const char *ip, int port)
{
	memset(&SA, 0, sizeof SA);
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&SA;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((unsigned short)port);
		inet_pton(AF_INET6, ip, &s6->sin6_addr);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&SA;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((unsigned short)port);
		inet_pton(AF_INET, ip, &s4->sin_addr);
	}
	return (const struct sockaddr *)&SA;
}

static struct destguard *
guard(const char *allow, const char *listen_ip, int listen_port)
{
	struct conf_net nets[1];
	struct conf_listener l[1];
	char err[128];

	memset(l, 0, sizeof l);
	if (listen_ip) {
		memcpy(&l[0].sa, addr(listen_ip, listen_port), sizeof l[0].sa);
		snprintf(l[0].address, sizeof l[0].address, "%s", listen_ip);
		l[0].port = listen_port;
	}
	if (allow && conf_parse_net(allow, &nets[0]) < 0)
		abort();
	return destguard_new(nets, allow ? 1 : 0, l, listen_ip ? 1 : 0, err, sizeof err);
}

TEST(internal_addresses_are_refused)
{
	struct destguard *g = guard(NULL, NULL, 0);
	static const char *const refused[][2] = {
		{ "127.0.0.2", "loopback" }, { "10.1.2.3", "private" }, { "172.16.0.1", "private" },
		{ "192.168.1.1", "private" }, { "169.254.169.254", "link-local" },
		{ "100.64.0.1", "shared (carrier NAT)" }, { "0.0.0.0", "unspecified" },
		{ "224.0.0.1", "multicast" }, { "255.255.255.255", "reserved" },
		{ "::1", "loopback" }, { "fe80::1", "link-local" }, { "fd00::1", "private (unique local)" },
		{ "::ffff:127.0.0.1", "loopback" },          /* v4-mapped */
		{ "64:ff9b::a00:1", "private" },             /* 10.0.0.1 through NAT64 */
	};

	for (size_t i = 0; i < sizeof refused / sizeof *refused; i++)
		CHECK_STR(destguard_check(g, addr(refused[i][0], 25)), refused[i][1]);
	destguard_free(g);
}

TEST(public_addresses_pass)
{
	struct destguard *g = guard(NULL, NULL, 0);

	CHECK(destguard_check(g, addr("192.0.2.1", 25)) == NULL);
	CHECK(destguard_check(g, addr("2001:db8::1", 25)) == NULL);
	CHECK(destguard_check(g, addr("64:ff9b::c000:201", 25)) == NULL);  /* 192.0.2.1 */
	destguard_free(g);
}

TEST(allowed_network_passes_but_never_our_listener)
{
	struct destguard *g = guard("127.0.0.0/8", "127.0.0.1", 2525);

	CHECK(destguard_check(g, addr("127.0.0.2", 25)) == NULL);
	CHECK(destguard_check(g, addr("127.0.0.1", 25)) == NULL);       /* another port */
	CHECK_STR(destguard_check(g, addr("127.0.0.1", 2525)), "our own listener's");
	CHECK_STR(destguard_check(g, addr("10.0.0.1", 25)), "private");
	destguard_free(g);
}

TEST(a_wildcard_listener_is_every_local_address)
{
	struct destguard *g = guard("127.0.0.0/8", "0.0.0.0", 2525);

	CHECK_STR(destguard_check(g, addr("127.0.0.9", 2525)), "our own listener's");
	CHECK(destguard_check(g, addr("127.0.0.9", 25)) == NULL);
	destguard_free(g);
}

UNIT_MAIN()
