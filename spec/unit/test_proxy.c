/* test_proxy.c - the PROXY protocol v1/v2 parser: what HAProxy sends, prefixes, and every malformation. */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "proxy.h"
#include "unit.h"

static const unsigned char SIG[12] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };

static const char *
ip(const struct sockaddr_storage *ss, char *buf)
{
	if (ss->ss_family == AF_INET)
		return inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, buf, 64);
	return inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, buf, 64);
}

static int
port(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)ss)->sin_port)
	    : ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

static int
parse(const char *s, struct proxy_hdr *h, const char **why)
{
	return proxy_parse((const unsigned char *)s, strlen(s), h, why);
}

/* A v2 header for IPv4 src:sport -> dst:dport, plus tlv extra octets. */
static size_t
v2_tcp4(unsigned char *b, int cmd, const char *src, const char *dst, int sport, int dport, size_t tlv)
{
	memcpy(b, SIG, 12);
	b[12] = (unsigned char)(0x20 | cmd);
	b[13] = 0x11;
	b[14] = (unsigned char)((12 + tlv) >> 8);
	b[15] = (unsigned char)((12 + tlv) & 0xff);
	inet_pton(AF_INET, src, b + 16);
	inet_pton(AF_INET, dst, b + 20);
	b[24] = (unsigned char)(sport >> 8); b[25] = (unsigned char)sport;
	b[26] = (unsigned char)(dport >> 8); b[27] = (unsigned char)dport;
	memset(b + 28, 0x04, tlv);      /* a NOOP TLV's worth of bytes */
	return 28 + tlv;
}

TEST(v1_tcp4_gives_the_client_and_consumes_only_the_header)
{
	struct proxy_hdr h;
	const char *why, *s = "PROXY TCP4 127.0.0.4 127.0.0.1 40000 25\r\nEHLO x\r\n";
	char b[64];

	CHECK_INT(parse(s, &h, &why), PROXY_OK);
	CHECK_INT(h.version, 1);
	CHECK_INT(h.len, strlen("PROXY TCP4 127.0.0.4 127.0.0.1 40000 25\r\n"));
	CHECK_INT(h.local, 0);
	CHECK_STR(ip(&h.src, b), "127.0.0.4");
	CHECK_INT(port(&h.src), 40000);
	CHECK_STR(ip(&h.dst, b), "127.0.0.1");
	CHECK_INT(port(&h.dst), 25);
}

TEST(v1_tcp6)
{
	struct proxy_hdr h;
	const char *why;
	char b[64];

	CHECK_INT(parse("PROXY TCP6 2001:db8::4 ::1 65535 0\r\n", &h, &why), PROXY_OK);
	CHECK_STR(ip(&h.src, b), "2001:db8::4");
	CHECK_INT(port(&h.src), 65535);
	CHECK_INT(h.src.ss_family, AF_INET6);
}

TEST(v1_unknown_keeps_the_connection_address)
{
	struct proxy_hdr h;
	const char *why;

	CHECK_INT(parse("PROXY UNKNOWN\r\n", &h, &why), PROXY_OK);
	CHECK_INT(h.local, 1);
	CHECK_INT(parse("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", &h, &why), PROXY_OK);
	CHECK_INT(h.local, 1);
}

TEST(v1_every_prefix_asks_for_more)
{
	const char *s = "PROXY TCP4 127.0.0.4 127.0.0.1 40000 25\r\n";
	struct proxy_hdr h;
	const char *why;

	for (size_t n = 0; n < strlen(s); n++)
		CHECK_INT(proxy_parse((const unsigned char *)s, n, &h, &why), PROXY_MORE);
}

TEST(v1_malformed_headers_are_refused)
{
	static const char *badv1[] = {
		"PROXY TCP4 127.0.0.4 127.0.0.1 40000\r\n",             /* a field short */
		"PROXY TCP4 127.0.0.4 127.0.0.1 40000 25 x\r\n",        /* one too many */
		"PROXY TCP4  127.0.0.4 127.0.0.1 40000 25\r\n",         /* double space */
		"PROXY TCP4 127.0.0.4 127.0.0.1 40000 25 \r\n",         /* trailing space */
		"PROXY TCP4 ::1 127.0.0.1 40000 25\r\n",                /* v6 address in TCP4 */
		"PROXY TCP6 127.0.0.4 ::1 40000 25\r\n",                /* v4 address in TCP6 */
		"PROXY TCP4 127.0.0.256 127.0.0.1 40000 25\r\n",
		"PROXY TCP4 127.0.0.4 127.0.0.1 65536 25\r\n",          /* port range */
		"PROXY TCP4 127.0.0.4 127.0.0.1 040000 25\r\n",         /* leading zero */
		"PROXY TCP4 127.0.0.4 127.0.0.1 -1 25\r\n",
		"PROXY UDP4 127.0.0.4 127.0.0.1 40000 25\r\n",
		"PROXY TCP4 127.0.0.4 127.0.0.1 40000 25\n",            /* bare LF (no CRLF at all) */
		"PROXY TCP4 127.0.0.4\t127.0.0.1 40000 25\r\n",         /* control character */
		"EHLO client.example\r\n",                              /* no header at all */
		"PROXX TCP4 127.0.0.4 127.0.0.1 40000 25\r\n",
		NULL,
	};
	struct proxy_hdr h;
	const char *why;
	char longline[200];

	for (const char **s = badv1; *s; s++) {
		int rc = parse(*s, &h, &why);
		if (rc == PROXY_MORE && !strchr(*s, '\r')) {
			/* Without CRLF it waits... until 107 octets, then refuses. */
			char padded[200];
			snprintf(padded, sizeof padded, "%.*s%0100d", (int)strlen(*s) - 1, *s, 0);
			rc = parse(padded, &h, &why);
		}
		if (rc != PROXY_BAD)
			fprintf(stderr, "  accepted: %s", *s);
		CHECK_INT(rc, PROXY_BAD);
		CHECK(why != NULL);
	}
	memset(longline, 'x', sizeof longline - 1);
	memcpy(longline, "PROXY ", 6);
	longline[sizeof longline - 1] = '\0';
	CHECK_INT(parse(longline, &h, &why), PROXY_BAD);
	CHECK_STR(why, "v1 header without CRLF within 107 octets");
	CHECK_INT(parse("EHLO x\r\n", &h, &why), PROXY_BAD);
	CHECK_STR(why, "no PROXY header");
}

TEST(v2_tcp4_with_tlvs_skips_them)
{
	unsigned char b[128];
	struct proxy_hdr h;
	const char *why;
	char s[64];
	size_t n = v2_tcp4(b, 1, "127.0.0.4", "127.0.0.1", 40001, 2525, 20);

	b[n] = 'E';                     /* the client's first byte follows */
	CHECK_INT(proxy_parse(b, n + 1, &h, &why), PROXY_OK);
	CHECK_INT(h.version, 2);
	CHECK_INT(h.len, n);
	CHECK_STR(ip(&h.src, s), "127.0.0.4");
	CHECK_INT(port(&h.src), 40001);
	CHECK_INT(port(&h.dst), 2525);
	for (size_t k = 0; k < n; k++)
		CHECK_INT(proxy_parse(b, k, &h, &why), PROXY_MORE);
}

TEST(v2_tcp6)
{
	unsigned char b[64] = { 0 };
	struct proxy_hdr h;
	const char *why;
	char s[64];

	memcpy(b, SIG, 12);
	b[12] = 0x21; b[13] = 0x21; b[14] = 0; b[15] = 36;
	inet_pton(AF_INET6, "2001:db8::7", b + 16);
	inet_pton(AF_INET6, "::1", b + 32);
	b[48] = 0x12; b[49] = 0x34; b[50] = 0; b[51] = 25;
	CHECK_INT(proxy_parse(b, 52, &h, &why), PROXY_OK);
	CHECK_STR(ip(&h.src, s), "2001:db8::7");
	CHECK_INT(port(&h.src), 0x1234);
}

TEST(v2_local_is_the_proxy_itself)
{
	unsigned char b[64];
	struct proxy_hdr h;
	const char *why;
	size_t n = v2_tcp4(b, 0, "0.0.0.0", "0.0.0.0", 0, 0, 0);

	CHECK_INT(proxy_parse(b, n, &h, &why), PROXY_OK);
	CHECK_INT(h.local, 1);
}

TEST(v2_malformed_headers_are_refused)
{
	unsigned char b[PROXY_MAX + 64];
	struct proxy_hdr h;
	const char *why;
	size_t n;

	n = v2_tcp4(b, 1, "127.0.0.4", "127.0.0.1", 1, 2, 0);
	b[12] = 0x11;                   /* version 1 in binary */
	CHECK_INT(proxy_parse(b, n, &h, &why), PROXY_BAD);
	n = v2_tcp4(b, 2, "127.0.0.4", "127.0.0.1", 1, 2, 0);
	CHECK_INT(proxy_parse(b, n, &h, &why), PROXY_BAD);        /* command 2 */
	n = v2_tcp4(b, 1, "127.0.0.4", "127.0.0.1", 1, 2, 0);
	b[13] = 0x12;                   /* UDP */
	CHECK_INT(proxy_parse(b, n, &h, &why), PROXY_BAD);
	n = v2_tcp4(b, 1, "127.0.0.4", "127.0.0.1", 1, 2, 0);
	b[15] = 8;                      /* length too short for two IPv4 addresses */
	CHECK_INT(proxy_parse(b, 24, &h, &why), PROXY_BAD);
	CHECK_STR(why, "v2 header: truncated IPv4 addresses");
	n = v2_tcp4(b, 1, "127.0.0.4", "127.0.0.1", 1, 2, 0);
	b[14] = 0xff; b[15] = 0xff;     /* 64 KiB of TLVs */
	CHECK_INT(proxy_parse(b, n, &h, &why), PROXY_BAD);
	CHECK_STR(why, "v2 header too long");
	memcpy(b, SIG, 12);
	b[5] = 0x0a;                    /* signature off by one byte */
	CHECK_INT(proxy_parse(b, 16, &h, &why), PROXY_BAD);
	CHECK_STR(why, "no PROXY header");
}

UNIT_MAIN()
