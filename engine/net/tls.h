/*
 * tls.h - the server's OpenSSL context (STARTTLS, RFC 3207).
 */
#ifndef MXGATE_TLS_H
#define MXGATE_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>

/*
 * Loads cert and key; when both paths are empty, uses (and on first start
 * makes) a self-signed certificate for hostname under dir. TLS 1.2+.
 */
SSL_CTX *tls_server_ctx(const char *cert, const char *key, const char *dir,
    const char *hostname, char *err, size_t errlen);

/*
 * SIGHUP: a new context from the configured cert and key files, read as the
 * unprivileged user (they must be readable by `user`). NULL with err empty:
 * nothing to reload (no files configured: the self-signed pair stays);
 * NULL with err set: the files are broken, keep the old context.
 */
SSL_CTX *tls_reload_ctx(const char *cert, const char *key, const char *hostname, char *err, size_t errlen);

/* A client context for callouts: TLS 1.2+, no verification (opportunistic). */
SSL_CTX *tls_client_ctx(char *err, size_t errlen);
/* The CAs a client context trusts when a connection asks for verification
 * (conn_tls_verify): those in ca_file, or the system's when it is "". 0 or -1. */
int      tls_client_trust(SSL_CTX *ctx, const char *ca_file, char *err, size_t errlen);

#endif
