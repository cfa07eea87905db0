/*
 * conn.h - one nonblocking connection's bytes, plain or TLS (OpenSSL):
 * the read/write/handshake loop the SMTP server and the SMTP client share.
 */
#ifndef MXGATE_CONN_H
#define MXGATE_CONN_H

#include <stddef.h>
#include <sys/types.h>
#include <openssl/ssl.h>

struct conn {
	int  fd;
	SSL *ssl;           /* NULL: plain */
	int  want_write;    /* the last SSL call waits for the socket to be writable */
	int  eof;           /* the peer closed (FIN or TLS close_notify) */
	int  broken;        /* TLS failed: no more bytes either way, no SSL_shutdown */
};

void    conn_init(struct conn *c, int fd);
/* Puts TLS on the connection, as the server or as a client (sni: a name
 * to send, or NULL; address literals are never sent). 0, or -1. */
int     conn_tls(struct conn *c, SSL_CTX *ctx, int server, const char *sni);
/* Client side, after conn_tls: the handshake fails unless the peer's
 * certificate chains to ctx's trusted CAs and names host (a DNS name, or
 * an address literal matched against its IP addresses). 0, or -1. */
int     conn_tls_verify(struct conn *c, const char *host);
/* After a failed handshake: why the peer's certificate was refused, or NULL. */
const char *conn_verify_error(const struct conn *c);
/* Advances the handshake: 1 done, 0 wait (want_write says for what), -1 failed. */
int     conn_handshake(struct conn *c);
/* Writes buf from *off to len (a retried SSL_write gets the same bytes):
 * 1 all written, 0 would block, -1 failed. */
int     conn_write(struct conn *c, const char *buf, size_t len, size_t *off);
/* Reads up to room bytes: n > 0, 0 would block, -1 closed (eof) or failed. */
ssize_t conn_read(struct conn *c, char *buf, size_t room);
/* Bytes already decrypted inside SSL: they never wake the event loop. */
int     conn_pending(const struct conn *c);
/* Closes; a graceful close says TLS goodbye when TLS is still sound. */
void    conn_close(struct conn *c, int graceful);

#endif
