/*
 * portal.c - the portal's pages in the route table (routes.c: /, /search,
 * /trace): the portal (portal.h) is opened on the first request and kept;
 * each request is one portal_handle().
 */
#include "conf.h"
#include "http.h"
#include "log.h"
#include "portal.h"

static struct portal *portal;

static const char *
arg(void *ctx, const char *name)
{
	return http_arg(ctx, name);
}

int
portal_page(struct http_req *req, struct buf *out)
{
	struct portal_reply r = { 0, NULL, BUF_INIT(req->conf->http.max_page) };
	char err[1024];

	if (!portal && !(portal = portal_open(req->conf, err, sizeof err))) {
		log_event("portal_error", "error", err, NULL);
		buf_adds(out, "<!doctype html><title>mxgate: error 503</title>"
		    "<p id=\"error\">The portal cannot open its index (see the log).</p>\n");
		return 503;
	}
	portal_handle(portal, req->path, arg, req, &r);
	buf_add(out, r.body.p ? r.body.p : "", r.body.len);
	buf_free(&r.body);
	req->content_type = r.type;
	return r.status;
}
