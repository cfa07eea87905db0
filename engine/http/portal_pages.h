/*
 * portal_pages.h - what the portal's pages share (portal_page.c,
 * portal_search.c, portal_trace.c): the checked query, the page frame,
 * one record as a table row.
 */
#ifndef MXGATE_PORTAL_PAGES_H
#define MXGATE_PORTAL_PAGES_H

#include <stdint.h>

#include "buf.h"
#include "index.h"
#include "portal_table.h"

struct portal_query {
	const char *window, *since_s, *until_s;   /* as given; NULL when absent */
	const char *field, *value, *before_s, *id;
	double since, until;                      /* the window, epoch seconds (0: open) */
};

/* Resolves the window (hour, day, week, all, custom with since/until):
 * 0, or 400 with why. */
int  portal_query_window(struct portal_query *q, char *why, size_t len);
/* ?window=...&since=...&until=... as given, for links that keep it. */
void portal_window_args(struct buf *b, const struct portal_query *q);
void portal_head(struct buf *b, const char *title);
void portal_foot(struct buf *b, struct logindex *ix);
void portal_error(struct buf *b, int status, const char *why);
/* The window form (select and custom times) and the search form. */
void portal_forms(struct buf *b, const struct portal_query *q);
/* One indexed record as <tr>: time, event, direction, client, sender,
 * recipient, reply, reason, rule, id (a link to its trace). */
void portal_record_head(struct buf *b);
void portal_record_row(struct buf *b, const char *line, size_t len);

int  portal_page_table(struct buf *b, struct logindex *ix, const struct portal_reasons *rs,
    const struct portal_query *q);
int  portal_page_search(struct buf *b, struct logindex *ix, const struct portal_query *q);
int  portal_page_trace(struct buf *b, struct logindex *ix, const struct portal_query *q);

#endif
