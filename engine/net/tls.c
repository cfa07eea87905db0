/*
 * tls.c - OpenSSL contexts and the first-start self-signed certificate.
 */
#include <errno.h>
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

#include "safepath.h"
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
write_pem(int dirfd, const char *name, mode_t mode, EVP_PKEY *key, X509 *x)
{
	FILE *f;
	int ok, fd;

	unlinkat(dirfd, name, 0);
	fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL)
	         : PEM_write_X509(f, x);
	return (fclose(f) == 0 && ok) ? 0 : -1;
}

/* A P-256 key and a ten-year certificate naming hostname, written into dirfd. */
static int
make_self_signed(int dirfd, const char *hostname, EVP_PKEY **keyp, X509 **xp,
    char *err, size_t errlen)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name;
	X509_EXTENSION *ext;
	char san[300];

	if (!key || !x) {
		ssl_err(err, errlen, "self-signed certificate");
		goto fail;
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
		goto fail;
	}
	if (write_pem(dirfd, "key.pem", 0600, key, NULL) < 0 || write_pem(dirfd, "cert.pem", 0644, NULL, x) < 0) {
		snprintf(err, errlen, "cannot write the self-signed certificate: %s", strerror(errno));
		goto fail;
	}
	*keyp = key;
	*xp = x;
	return 0;
fail:
	EVP_PKEY_free(key);
	X509_free(x);
	return -1;
}

/* name in dirfd, never through a link: the PEM key or certificate, or NULL. */
static void *
read_pem(int dirfd, const char *name, int is_key)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
	void *obj;

	if (!f) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	obj = is_key ? (void *)PEM_read_PrivateKey(f, NULL, NULL, NULL) : (void *)PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	ERR_clear_error();
	return obj;
}

/*
 * The self-signed pair lives in dir (state_dir/tls), which sits in a
 * directory the unprivileged user owns, and root reads and writes it: it
 * must be a real directory that root owns and nobody else can enter, and
 * the files in it are reached through its descriptor only.
 */
static int
self_signed(const char *dir, const char *hostname, EVP_PKEY **key, X509 **x, char *err, size_t errlen)
{
	int dfd = safe_mkdir(dir, 0700);
	struct stat st;

	if (dfd < 0 || fstat(dfd, &st) < 0) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		goto fail;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 077)) {
		snprintf(err, errlen, "%s: owned by uid %d with mode %03o; it holds the TLS key: "
		    "it must be ours (uid %d) and 0700 (remove it to have it made again)", dir,
		    (int)st.st_uid, (unsigned)(st.st_mode & 0777), (int)geteuid());
		goto fail;
	}
	*key = read_pem(dfd, "key.pem", 1);
	*x = read_pem(dfd, "cert.pem", 0);
	if (!*key || !*x) {
		EVP_PKEY_free(*key);
		X509_free(*x);
		*key = NULL;
		*x = NULL;
		if (make_self_signed(dfd, hostname, key, x, err, errlen) < 0)
			goto fail;
	}
	close(dfd);
	return 0;
fail:
	if (dfd >= 0)
		close(dfd);
	return -1;
}

SSL_CTX *
tls_server_ctx(const char *cert, const char *key, const char *dir,
    const char *hostname, char *err, size_t errlen)
{
	EVP_PKEY *pkey = NULL;
	X509 *x = NULL;
	SSL_CTX *ctx;

	if (!cert[0] && self_signed(dir, hostname, &pkey, &x, err, errlen) < 0)
		return NULL;
	if (!(ctx = SSL_CTX_new(TLS_server_method()))) {
		ssl_err(err, errlen, "SSL_CTX_new");
		goto fail;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	    SSL_MODE_RELEASE_BUFFERS);
	if (x) {
		if (SSL_CTX_use_certificate(ctx, x) != 1 || SSL_CTX_use_PrivateKey(ctx, pkey) != 1 ||
		    SSL_CTX_check_private_key(ctx) != 1) {
			ssl_err(err, errlen, dir);
			goto fail;
		}
	} else {
		if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
			ssl_err(err, errlen, cert);
			goto fail;
		}
		if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(ctx) != 1) {
			ssl_err(err, errlen, key);
			goto fail;
		}
	}
	EVP_PKEY_free(pkey);
	X509_free(x);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	EVP_PKEY_free(pkey);
	X509_free(x);
	return NULL;
}

SSL_CTX *
tls_reload_ctx(const char *cert, const char *key, const char *hostname, char *err, size_t errlen)
{
	char why[900];
	SSL_CTX *ctx;

	err[0] = '\0';
	if (!cert[0])
		return NULL;
	if (!(ctx = tls_server_ctx(cert, key, "", hostname, why, sizeof why)))
		snprintf(err, errlen, "tls: %s", why);
	return ctx;
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

int
tls_client_trust(SSL_CTX *ctx, const char *ca_file, char *err, size_t errlen)
{
	if (ca_file[0] ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL) == 1 :
	    SSL_CTX_set_default_verify_paths(ctx) == 1)
		return 0;
	ssl_err(err, errlen, ca_file[0] ? ca_file : "the system's CAs");
	return -1;
}
