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

/* A client context for callouts: TLS 1.2+, no verification (opportunistic). */
SSL_CTX *tls_client_ctx(char *err, size_t errlen);

#endif
