/*
 * portal_search.c - the page `/search`: the records of one recipient,
 * recipient domain, sender, client IP or session/queue id in a window,
 * newest first, PORTAL_PAGE at a time, each with its whole reply, the
 * rule's file:line and a link to the session's trace.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "html.h"
#include "portal.h"
#include "portal_pages.h"

static const struct {
	const char *name;
	enum index_field f;
} fields[] = {
	{ "rcpt", IX_RCPT }, { "domain", IX_DOMAIN }, { "sender", IX_SENDER },
	{ "client", IX_CLIENT }, { "id", IX_ID },
};

struct listing {
	struct buf *b;
	size_t n;
};

static int
row(void *arg, uint64_t seq, int64_t ms, const char *line, size_t len)
{
	struct listing *l = arg;

	portal_record_row(l->b, line, len);
	l->n++;
	return 0;
}

/* A page's `before`: digits only, as the previous page wrote it. */
static int
parse_before(const char *s, uint64_t *out)
{
	char *end;

	*out = 0;
	if (!s || !*s)
		return 0;
	if (strspn(s, "0123456789") != strlen(s) || strlen(s) > 19)
		return -1;
	*out = strtoull(s, &end, 10);
	return 0;
}

int
portal_page_search(struct buf *b, struct logindex *ix, const struct portal_query *q)
{
	struct listing l = { b, 0 };
	const char *value = q->value;
	uint64_t before, next = 0;
	size_t i = 0;

	if (q->field && *q->field) {
		for (i = 0; i < sizeof fields / sizeof *fields; i++)
			if (!strcmp(q->field, fields[i].name))
				break;
		if (i == sizeof fields / sizeof *fields) {
			portal_error(b, 400, "field: rcpt, domain, sender, client or id");
			return 400;
		}
	}
	if (parse_before(q->before_s, &before) < 0) {
		portal_error(b, 400, "before: a number from the previous page");
		return 400;
	}
	portal_head(b, "Search");
	portal_forms(b, q);
	if (!value || !*value) {
		buf_adds(b, "<p>Type a recipient, a recipient domain, a sender, a client IP or a "
		    "queue or session id.</p>\n");
		portal_foot(b, ix);
		return 200;
	}
	if (fields[i].f == IX_DOMAIN && *value == '@')
		value++;
	buf_adds(b, "<table id=\"results\">\n");
	portal_record_head(b);
	if (index_search(ix, fields[i].f, value, q->since, q->until, before, PORTAL_PAGE, row, &l,
	    &next) < 0) {
		portal_error(b, 500, "The index could not be read.");
		return 500;
	}
	buf_printf(b, "</table>\n<p id=\"found\">%zu record%s%s.", l.n, l.n == 1 ? "" : "s",
	    before ? " on this page" : "");
	if (next) {
		buf_printf(b, " <a id=\"older\" href=\"/search?field=%s&amp;q=", fields[i].name);
		url_esc(b, q->value);
		buf_adds(b, "&amp;");
		portal_window_args(b, q);
		buf_printf(b, "&amp;before=%llu\">Older results</a>", (unsigned long long)next);
	}
	buf_adds(b, "</p>\n");
	portal_foot(b, ix);
	return 200;
}
