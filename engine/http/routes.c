/*
 * routes.c - the route table: one line per page.
 */
#include "http.h"

/* path, handler: adding a page is adding a line here. */
#define PAGES(X)                        \
	X("/metrics", page_metrics)     \
	X("/healthz", page_healthz)     \
	X("/",        portal_page)      \
	X("/search",  portal_page)      \
	X("/trace",   portal_page)

#define DECLARE(path, fn) http_page fn;
PAGES(DECLARE)
#define ROUTE(path, fn) { path, fn },
const struct http_route http_routes[] = {
	PAGES(ROUTE)
	{ NULL, NULL },
};
