/*
 * portal.h - the portal page: `/` (the portal's table for a time window),
 * `/search` (rejections and delivery events by recipient domain, sender,
 * recipient, client IP or session/queue id, paged) and `/trace` (a
 * session's records and its journal trace), as plain HTML.
 *
 * The HTTP library parses the request; portal_handle() gets the path and a
 * function that returns a query argument's decoded value (NULL when absent),
 * and fills a reply: status, content type and body. Safe to call from
 * several threads at once.
 */
#ifndef MXGATE_PORTAL_H
#define MXGATE_PORTAL_H

#include "buf.h"

struct conf;
struct portal;

#define PORTAL_ARG_MAX   256        /* bytes of a query argument; longer is 414 */
#define PORTAL_PAGE      50         /* search results a page */

typedef const char *(*portal_arg_fn)(void *ctx, const char *name);

struct portal_reply {
	int         status;             /* 200, 400, 404, 414, 500, 503 */
	const char *type;               /* "text/html; charset=utf-8" */
	struct buf  body;               /* the caller frees it */
};

/* The index under c->state_dir/index over c->log_file and the journal, the
 * reasons of c's rules (read with c->path as the rules' config; read again
 * when a file in the rules directory changes); an indexer thread keeps the
 * index current. c must outlive the portal. */
struct portal *portal_open(const struct conf *c, char *err, size_t errlen);
/* The rules' reasons again. */
int  portal_reload(struct portal *p, const struct conf *c, char *err, size_t errlen);
/* 1 when path is one of the portal's pages (the route table's test). */
int  portal_owns(const char *path);
void portal_handle(struct portal *p, const char *path, portal_arg_fn arg, void *ctx,
    struct portal_reply *r);
void portal_close(struct portal *p);

#endif
