/*
 * proxy.c - the PROXY protocol v1/v2 header parser (haproxy.org/download/2.6/doc/proxy-protocol.txt).
 *
 * Strict on purpose: a header is trusted only from `proxy_from`, and one
 * that is not exactly what the spec says is refused rather than guessed
 * at, since its addresses decide DNSBL, greylist and relay verdicts.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

static const unsigned char V2_SIG[12] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };
#define V1_MAX 107

static int
bad(const char **why, const char *msg)
{
	*why = msg;
	return PROXY_BAD;
}

/* A decimal port, 0..65535, no sign, no leading zero. */
static int
parse_port(const char *s, unsigned *out)
{
	unsigned long v = 0;

	if (!*s || (s[0] == '0' && s[1]) || strlen(s) > 5)
		return -1;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (unsigned)(*p - '0');
	}
	if (v > 65535)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static int
set_addr(struct sockaddr_storage *ss, socklen_t *len, int family, const void *addr, unsigned port)
{
	memset(ss, 0, sizeof *ss);
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;
		in->sin_family = AF_INET;
		memcpy(&in->sin_addr, addr, 4);
		in->sin_port = htons((unsigned short)port);
		*len = sizeof *in;
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
		in6->sin6_family = AF_INET6;
		memcpy(&in6->sin6_addr, addr, 16);
		in6->sin6_port = htons((unsigned short)port);
		*len = sizeof *in6;
	}
	return 0;
}

/* "PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\n", "PROXY UNKNOWN ...\r\n". */
static int
parse_v1(const unsigned char *buf, size_t n, struct proxy_hdr *h, const char **why)
{
	char line[V1_MAX + 1], *f[7], *save = NULL;
	const unsigned char *crlf = NULL;
	unsigned char a[16], b[16];
	unsigned sport, dport;
	int nf = 0, family;

	for (size_t i = 0; i + 1 < n && i + 1 < V1_MAX; i++)
		if (buf[i] == '\r' && buf[i + 1] == '\n') {
			crlf = buf + i;
			break;
		}
	if (!crlf)
		return n >= V1_MAX ? bad(why, "v1 header without CRLF within 107 octets") : PROXY_MORE;
	memcpy(line, buf, (size_t)(crlf - buf));
	line[crlf - buf] = '\0';
	h->version = 1;
	h->len = (size_t)(crlf - buf) + 2;
	for (char *p = line; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			return bad(why, "malformed v1 header");
	if (strstr(line, "  ") || line[strlen(line) - 1] == ' ')
		return bad(why, "malformed v1 header");
	for (char *t = strtok_r(line, " ", &save); t && nf < 7; t = strtok_r(NULL, " ", &save))
		f[nf++] = t;
	if (nf >= 2 && !strcmp(f[1], "UNKNOWN")) {
		h->local = 1;           /* the rest of the line is to be ignored */
		return PROXY_OK;
	}
	if (nf != 6 || strcmp(f[0], "PROXY") != 0)
		return bad(why, "malformed v1 header");
	if (!strcmp(f[1], "TCP4"))
		family = AF_INET;
	else if (!strcmp(f[1], "TCP6"))
		family = AF_INET6;
	else
		return bad(why, "v1 header: unknown protocol");
	if (inet_pton(family, f[2], a) != 1 || inet_pton(family, f[3], b) != 1)
		return bad(why, "v1 header: bad address");
	if (parse_port(f[4], &sport) < 0 || parse_port(f[5], &dport) < 0)
		return bad(why, "v1 header: bad port");
	set_addr(&h->src, &h->srclen, family, a, sport);
	set_addr(&h->dst, &h->dstlen, family, b, dport);
	return PROXY_OK;
}

static int
parse_v2(const unsigned char *buf, size_t n, struct proxy_hdr *h, const char **why)
{
	size_t len;
	int cmd, fam;

	if (n < 16)
		return PROXY_MORE;
	if ((buf[12] & 0xf0) != 0x20)
		return bad(why, "v2 header: unknown version");
	cmd = buf[12] & 0x0f;
	fam = buf[13];
	len = ((size_t)buf[14] << 8) | buf[15];
	if (16 + len > PROXY_MAX)
		return bad(why, "v2 header too long");
	if (n < 16 + len)
		return PROXY_MORE;
	h->version = 2;
	h->len = 16 + len;
	if (cmd == 0x0) {               /* LOCAL: the proxy's own (health check) */
		h->local = 1;
		return PROXY_OK;
	}
	if (cmd != 0x1)
		return bad(why, "v2 header: unknown command");
	switch (fam) {
	case 0x11:                      /* TCP over IPv4 */
		if (len < 12)
			return bad(why, "v2 header: truncated IPv4 addresses");
		set_addr(&h->src, &h->srclen, AF_INET, buf + 16, ((unsigned)buf[24] << 8) | buf[25]);
		set_addr(&h->dst, &h->dstlen, AF_INET, buf + 20, ((unsigned)buf[26] << 8) | buf[27]);
		return PROXY_OK;
	case 0x21:                      /* TCP over IPv6 */
		if (len < 36)
			return bad(why, "v2 header: truncated IPv6 addresses");
		set_addr(&h->src, &h->srclen, AF_INET6, buf + 16, ((unsigned)buf[48] << 8) | buf[49]);
		set_addr(&h->dst, &h->dstlen, AF_INET6, buf + 32, ((unsigned)buf[50] << 8) | buf[51]);
		return PROXY_OK;
	case 0x00:                      /* UNSPEC: keep the connection's addresses */
		h->local = 1;
		return PROXY_OK;
	default:
		return bad(why, "v2 header: not TCP over IPv4 or IPv6");
	}
}

int
proxy_parse(const unsigned char *buf, size_t n, struct proxy_hdr *h, const char **why)
{
	memset(h, 0, sizeof *h);
	*why = NULL;
	if (n == 0)
		return PROXY_MORE;
	if (buf[0] == V2_SIG[0]) {
		size_t m = n < sizeof V2_SIG ? n : sizeof V2_SIG;
		if (memcmp(buf, V2_SIG, m) != 0)
			return bad(why, "no PROXY header");
		return m < sizeof V2_SIG ? PROXY_MORE : parse_v2(buf, n, h, why);
	}
	if (buf[0] == 'P') {
		size_t m = n < 6 ? n : 6;
		if (memcmp(buf, "PROXY ", m) != 0)
			return bad(why, "no PROXY header");
		return m < 6 ? PROXY_MORE : parse_v1(buf, n, h, why);
	}
	return bad(why, "no PROXY header");
}
