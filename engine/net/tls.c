/*
 * tls.c - OpenSSL contexts and the first-start self-signed certificate.
 */
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "tls.h"

static void
ssl_err(char *err, size_t errlen, const char *what)
{
	char buf[256];

	ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
	snprintf(err, errlen, "%s: %s", what, buf);
	ERR_clear_error();
}

static int
write_pem(const char *path, mode_t mode, EVP_PKEY *key, X509 *x)
{
	FILE *f;
	int ok, fd;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL)
	         : PEM_write_X509(f, x);
	return (fclose(f) == 0 && ok) ? 0 : -1;
}

/* A P-256 key and a ten-year certificate naming hostname. */
static int
make_self_signed(const char *certpath, const char *keypath, const char *hostname,
    char *err, size_t errlen)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name;
	X509_EXTENSION *ext;
	char san[300];
	int rc = -1;

	if (!key || !x) {
		ssl_err(err, errlen, "self-signed certificate");
		goto out;
	}
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), (long)time(NULL));
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 86400);
	X509_set_pubkey(x, key);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)hostname, -1, -1, 0);
	X509_set_issuer_name(x, name);
	snprintf(san, sizeof san, "DNS:%s", hostname);
	ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);
	if (ext) {
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	if (!X509_sign(x, key, EVP_sha256())) {
		ssl_err(err, errlen, "self-signed certificate");
		goto out;
	}
	if (write_pem(keypath, 0600, key, NULL) < 0 || write_pem(certpath, 0644, NULL, x) < 0) {
		snprintf(err, errlen, "cannot write %s", certpath);
		goto out;
	}
	rc = 0;
out:
	EVP_PKEY_free(key);
	X509_free(x);
	return rc;
}

SSL_CTX *
tls_server_ctx(const char *cert, const char *key, const char *dir,
    const char *hostname, char *err, size_t errlen)
{
	char certpath[1024], keypath[1024];
	SSL_CTX *ctx;

	if (!cert[0]) {
		snprintf(certpath, sizeof certpath, "%s/cert.pem", dir);
		snprintf(keypath, sizeof keypath, "%s/key.pem", dir);
		mkdir(dir, 0700);
		if ((access(certpath, R_OK) != 0 || access(keypath, R_OK) != 0) &&
		    make_self_signed(certpath, keypath, hostname, err, errlen) < 0)
			return NULL;
		cert = certpath;
		key = keypath;
	}
	if (!(ctx = SSL_CTX_new(TLS_server_method()))) {
		ssl_err(err, errlen, "SSL_CTX_new");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	    SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		ssl_err(err, errlen, cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		ssl_err(err, errlen, key);
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *
tls_client_ctx(char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx) {
		ssl_err(err, errlen, "SSL_CTX_new");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_RELEASE_BUFFERS);
	return ctx;
}
