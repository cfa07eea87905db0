/*
 * portal.c - the portal page (`/`): a stub until the log index lands.
 */
#include "http.h"

int
portal_page(struct http_req *req, struct buf *out)
{
	buf_adds(out, "<!doctype html><title>mxgate</title>"
	    "<p>mxgate: see <a href=\"/metrics\">/metrics</a> and <a href=\"/healthz\">/healthz</a>.</p>\n");
	return 200;
}
