/*
 * test_dns_name.c - the DNSBL query name of an address (dns_reverse_name):
 * octets or nibbles reversed, refused when it does not fit.
 */
#include <string.h>

#include "dns.h"
#include "unit.h"

TEST(an_ipv4_address_is_its_octets_reversed)
{
	char out[64];

	CHECK(dns_reverse_name("192.0.2.1", out, sizeof out) == 0);
	CHECK_STR(out, "1.2.0.192");
	CHECK(dns_reverse_name("255.255.255.255", out, sizeof out) == 0);
	CHECK_STR(out, "255.255.255.255");
	CHECK(dns_reverse_name("0.0.0.0", out, sizeof out) == 0);
	CHECK_STR(out, "0.0.0.0");
	CHECK(dns_reverse_name("10.100.9.250", out, sizeof out) == 0);
	CHECK_STR(out, "250.9.100.10");
}

TEST(an_ipv6_address_is_its_nibbles_reversed)
{
	char out[80];

	CHECK(dns_reverse_name("2001:db8::1", out, sizeof out) == 0);
	CHECK_STR(out, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2");
}

TEST(no_address_or_no_room_is_refused_with_an_empty_name)
{
	char out[16];

	CHECK(dns_reverse_name("not an ip", out, sizeof out) < 0);
	CHECK_STR(out, "");
	CHECK(dns_reverse_name("1.2.3.4", out, 7) < 0);           /* "4.3.2.1" and its NUL need 8 */
	CHECK(dns_reverse_name("1.2.3.4", out, 8) == 0);
	CHECK(dns_reverse_name("10.20.30.40", out, 11) < 0);      /* 11 characters and a NUL */
	CHECK_STR(out, "");
	CHECK(dns_reverse_name("10.20.30.40", out, 12) == 0);
	CHECK_STR(out, "40.30.20.10");
}

UNIT_MAIN()
