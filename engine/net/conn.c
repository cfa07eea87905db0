/*
 * conn.c - plain or TLS bytes over one nonblocking socket.
 *
 * OpenSSL over a nonblocking socket: a read may want a write and the
 * reverse, so each call records what it waits for (want_write) and the
 * caller arms exactly that; a retried SSL_write must get the same bytes;
 * data SSL has already decrypted never wakes the loop (conn_pending);
 * after an SSL or SYSCALL error the session is dead and SSL_shutdown would
 * fail again, and nothing may go out in the clear instead (broken).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "conn.h"

void
conn_init(struct conn *c, int fd)
{
	c->fd = fd;
	c->ssl = NULL;
	c->want_write = c->eof = c->broken = 0;
}

int
conn_tls(struct conn *c, SSL_CTX *ctx, int server, const char *sni)
{
	struct in6_addr a;

	if (!(c->ssl = SSL_new(ctx)) || !SSL_set_fd(c->ssl, c->fd)) {
		c->broken = 1;
		return -1;
	}
	/* An idle TLS session keeps no 16 KiB record buffers. */
	SSL_set_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS);
	if (server)
		SSL_set_accept_state(c->ssl);
	else {
		SSL_set_connect_state(c->ssl);
		/* SNI carries names only (RFC 6066 3), never address literals. */
		if (sni && *sni && inet_pton(AF_INET6, sni, &a) != 1 && inet_pton(AF_INET, sni, &a) != 1)
			SSL_set_tlsext_host_name(c->ssl, sni);
	}
	return 0;
}

int
conn_tls_verify(struct conn *c, const char *host)
{
	struct in6_addr a;

	if (!c->ssl || !host || !*host)
		return -1;
	SSL_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
	/* Without DANE (RFC 7672) the name we looked up is the one the
	 * certificate must carry; an address literal, one of its IP SANs. */
	if (inet_pton(AF_INET6, host, &a) == 1 || inet_pton(AF_INET, host, &a) == 1)
		return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host) == 1 ? 0 : -1;
	SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	return SSL_set1_host(c->ssl, host) == 1 ? 0 : -1;
}

const char *
conn_verify_error(const struct conn *c)
{
	long v;

	if (!c->ssl || SSL_get_verify_mode(c->ssl) == SSL_VERIFY_NONE)
		return NULL;
	v = SSL_get_verify_result(c->ssl);
	return v == X509_V_OK ? NULL : X509_verify_cert_error_string(v);
}

/* After an SSL call failed: 0 to wait for I/O, -1 when the connection is gone. */
static int
ssl_wait(struct conn *c, int rc)
{
	switch (SSL_get_error(c->ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		return 0;
	case SSL_ERROR_WANT_WRITE:
		c->want_write = 1;
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		c->eof = 1;
		return -1;
	default:
		ERR_clear_error();
		c->broken = 1;
		return -1;
	}
}

int
conn_handshake(struct conn *c)
{
	int rc;

	if (!c->ssl || c->broken)
		return -1;
	c->want_write = 0;
	if ((rc = SSL_do_handshake(c->ssl)) == 1)
		return 1;
	return ssl_wait(c, rc);
}

int
conn_write(struct conn *c, const char *buf, size_t len, size_t *off)
{
	if (c->broken)
		return -1;
	while (*off < len) {
		ssize_t n;

		if (c->ssl) {
			c->want_write = 0;
			n = SSL_write(c->ssl, buf + *off, (int)(len - *off));
			if (n <= 0)
				return ssl_wait(c, (int)n);
		} else {
			n = send(c->fd, buf + *off, len - *off, MSG_NOSIGNAL);
			if (n < 0)
				return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
		}
		*off += (size_t)n;
	}
	return 1;
}

ssize_t
conn_read(struct conn *c, char *buf, size_t room)
{
	ssize_t n;

	if (c->broken || c->eof)
		return -1;
	if (room == 0)
		return 0;
	if (c->ssl) {
		c->want_write = 0;
		n = SSL_read(c->ssl, buf, (int)room);
		if (n <= 0)
			return ssl_wait(c, (int)n) < 0 ? -1 : 0;
		return n;
	}
	n = recv(c->fd, buf, room, 0);
	if (n == 0) {
		c->eof = 1;
		return -1;
	}
	if (n < 0)
		return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
	return n;
}

int
conn_pending(const struct conn *c)
{
	return c->ssl && !c->broken && SSL_pending(c->ssl) > 0;
}

void
conn_close(struct conn *c, int graceful)
{
	if (c->ssl) {
		if (graceful && !c->broken && !c->eof)
			SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}
