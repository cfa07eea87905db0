/*
 * http.c - the HTTP process: libmicrohttpd on the socket the master bound,
 * credentials checked, the request handed to its page (routes.c).
 *
 * Its own process and its own thread, never an SMTP worker's loop: a slow
 * or hostile HTTP client cannot delay a 250. The library parses HTTP
 * (malformed requests get its 400, oversized headers its 431, idle or
 * trickling connections are closed after http.timeout); we only route.
 * Its limits are the config's (http.max_connections, max_per_ip, timeout,
 * connection_memory; a page's body: max_page). A connection past a count
 * is closed by the library as it is accepted, before a byte is read.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "conf.h"
#include "http.h"
#include "log.h"

/* Credentials are kept as digests, and a presented one is digested before
 * the compare: CRYPTO_memcmp then runs over equal lengths whatever the
 * client sends, so timing tells nothing about the secret. */
struct creds {
	int           token, basic;
	unsigned char token_md[32], basic_md[32];
};

static struct creds C;
static const struct conf *http_conf;

static void
digest(const void *p, size_t n, unsigned char md[32])
{
	EVP_Digest(p, n, md, NULL, EVP_sha256(), NULL);
}

static void
creds_init(const struct conf *c)
{
	memset(&C, 0, sizeof C);
	if (c->http.token[0]) {
		C.token = 1;
		digest(c->http.token, strlen(c->http.token), C.token_md);
	}
	if (c->http.user[0]) {
		char plain[400];
		unsigned char b64[600];
		int n = snprintf(plain, sizeof plain, "%s:%s", c->http.user, c->http.password);
		int m = EVP_EncodeBlock(b64, (unsigned char *)plain, n);
		C.basic = 1;
		digest(b64, (size_t)m, C.basic_md);
		OPENSSL_cleanse(plain, sizeof plain);
	}
}

/* "Bearer TOKEN" or "Basic BASE64", against what the config set. */
static int
authorized(struct MHD_Connection *conn)
{
	const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	unsigned char md[32];
	size_t n;

	if (!C.token && !C.basic)
		return 1;
	if (!h)
		return 0;
	n = strcspn(h, " ");
	if (h[n] != ' ')
		return 0;
	digest(h + n + 1, strlen(h + n + 1), md);
	if (C.token && n == 6 && strncasecmp(h, "bearer", 6) == 0)
		return CRYPTO_memcmp(md, C.token_md, sizeof md) == 0;
	if (C.basic && n == 5 && strncasecmp(h, "basic", 5) == 0)
		return CRYPTO_memcmp(md, C.basic_md, sizeof md) == 0;
	return 0;
}

const char *
http_arg(const struct http_req *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

static enum MHD_Result
reply(struct MHD_Connection *conn, int status, const char *type, char *body, size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result rc;

	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
		    C.basic ? "Basic realm=\"mxgate\"" : "Bearer realm=\"mxgate\"");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	rc = MHD_queue_response(conn, (unsigned)status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result
error(struct MHD_Connection *conn, int status, const char *text)
{
	char *body = strdup(text);

	return reply(conn, status, "text/plain; charset=utf-8", body, body ? strlen(body) : 0);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
    const char *version, const char *upload, size_t *upload_len, void **state)
{
	const struct http_route *rt;
	struct http_req req = { .method = method, .path = url, .conf = http_conf, .conn = conn,
	    .content_type = "text/html; charset=utf-8" };
	struct buf out = BUF_INIT(http_conf->http.max_page);
	int status;
	char *body;
	size_t len;

	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "405 method not allowed: GET or HEAD\n");
	for (rt = http_routes; rt->path; rt++)
		if (strcmp(rt->path, url) == 0)
			break;
	if (!rt->path)
		return error(conn, MHD_HTTP_NOT_FOUND, "404 not found\n");
	/* /healthz says only ready, generation and uptime: load balancers
	 * ask it without credentials. */
	if (strcmp(url, "/healthz") != 0 && !authorized(conn))
		return error(conn, MHD_HTTP_UNAUTHORIZED, "401 unauthorized: a valid token is required\n");
	status = rt->page(&req, &out);
	if (out.err) {
		buf_free(&out);
		return error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "500 the page is too large\n");
	}
	body = buf_take(&out, &len);
	if (!body)
		return error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "500 out of memory\n");
	return reply(conn, status, req.content_type, body, len);
}

int
http_main(struct conf *c, int fd)
{
	struct MHD_Daemon *d;
	sigset_t set;
	int sig;

	http_conf = c;
	creds_init(c);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);     /* the library's thread inherits this */
	signal(SIGPIPE, SIG_IGN);
	d = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD, 0, NULL, NULL, on_request, NULL,
	    MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)c->http.max_connections,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)c->http.max_per_ip,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)c->http.timeout,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, c->http.connection_memory,
	    MHD_OPTION_STRICT_FOR_CLIENT, 1,        /* RFC 7230 as written: Host required, no bare LF */
	    MHD_OPTION_END);
	if (!d) {
		log_event("fatal", "process", "http", "error", "cannot start the HTTP server", NULL);
		return 1;
	}
	{
		char port[16];
		snprintf(port, sizeof port, "%d", c->http.port);
		log_event("http_start", "address", c->http.address, "port", port, NULL);
	}
	while ((sig = sigwaitinfo(&set, NULL)) == SIGHUP || (sig < 0 && errno == EINTR))
		if (sig == SIGHUP)
			log_reopen();
	MHD_stop_daemon(d);
	log_event("http_stop", NULL);
	return 0;
}
