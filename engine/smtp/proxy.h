/*
 * proxy.h - the PROXY protocol header (HAProxy's, v1 text and v2 binary)
 * that a load balancer sends before the client's first byte, parsed from a
 * buffer: pure, no I/O. The caller peeks at the socket, asks proxy_parse(),
 * and on PROXY_OK consumes exactly h->len bytes, so not one byte of the
 * client's SMTP is taken with the header.
 */
#ifndef MXGATE_PROXY_H
#define MXGATE_PROXY_H

#include <stddef.h>
#include <sys/socket.h>

/* v1 is at most 107 octets; v2 carries TLVs (ALPN, SSL, unique id...) that
 * we skip but must hold: beyond this the header is refused. */
#define PROXY_MAX 1024

enum proxy_result { PROXY_BAD = -1, PROXY_MORE = 0, PROXY_OK = 1 };

struct proxy_hdr {
	int                     version;   /* 1 or 2 */
	size_t                  len;       /* octets of header to consume */
	int                     local;     /* v1 UNKNOWN, v2 LOCAL or UNSPEC: no address, keep the connection's */
	struct sockaddr_storage src, dst;  /* the real client, and whom it called */
	socklen_t               srclen, dstlen;
};

/* PROXY_OK (h filled), PROXY_MORE (a valid prefix: read more), or PROXY_BAD
 * with *why ("no PROXY header", "malformed v1 header", ...). */
int proxy_parse(const unsigned char *buf, size_t n, struct proxy_hdr *h, const char **why);

#endif
