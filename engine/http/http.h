/*
 * http.h - the HTTP process (/metrics, /healthz, the portal) and what a
 * page handler sees of a request.
 *
 * A page is one function in the route table (routes.c):
 *
 *     int page(struct http_req *req, struct buf *out);
 *
 * It writes the body into out and returns the HTTP status. Pages run one
 * at a time on the server's one thread, so a page's static state needs no
 * lock; a page that would take long must bound itself (paging). Its
 * body is bounded by http.max_page (out->max): past it, a 500.
 */
#ifndef MXGATE_HTTP_H
#define MXGATE_HTTP_H

#include "buf.h"

struct conf;

struct http_req {
	const char        *method;        /* "GET" or "HEAD" (others are refused before a page runs) */
	const char        *path;          /* decoded, without the query: "/search" */
	const struct conf *conf;          /* the config the HTTP process started with */
	void              *conn;          /* the library's connection: use http_arg() */
	/* the page may set: */
	const char        *content_type;  /* default "text/html; charset=utf-8" */
};

typedef int http_page(struct http_req *req, struct buf *out);

struct http_route {
	const char *path;       /* exact match */
	http_page  *page;
};

extern const struct http_route http_routes[];   /* routes.c; ends with { NULL, NULL } */

/* A query argument (?name=value), decoded; NULL when absent. */
const char *http_arg(const struct http_req *req, const char *name);

/* The HTTP process: serves on fd (bound by the master) until SIGTERM. */
int http_main(struct conf *c, int fd);

#endif
