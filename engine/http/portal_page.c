/*
 * portal_page.c - the portal page `/` (the portal's table for a window)
 * and the frame every portal page shares: head, forms, a record's row,
 * the error page. Every value is written through html_esc or url_esc.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "html.h"
#include "logfmt.h"
#include "portal_pages.h"
#include "timefmt.h"

static const struct {
	const char *name, *label;
	double secs;                    /* 0: all; -1: custom */
} windows[] = {
	{ "hour", "last hour", 3600 },
	{ "day", "last day", 86400 },
	{ "week", "last week", 604800 },
	{ "all", "everything", 0 },
	{ "custom", "from .. until", -1 },
};

int
portal_query_window(struct portal_query *q, char *why, size_t len)
{
	struct timespec now;
	const char *w = q->window;
	size_t i;

	clock_gettime(CLOCK_REALTIME, &now);
	if ((!w || !*w) && ((q->since_s && *q->since_s) || (q->until_s && *q->until_s)))
		w = "custom";
	if (!w || !*w)
		w = "day";
	for (i = 0; i < sizeof windows / sizeof *windows; i++)
		if (!strcmp(w, windows[i].name))
			break;
	if (i == sizeof windows / sizeof *windows) {
		snprintf(why, len, "window: hour, day, week, all or custom");
		return 400;
	}
	q->window = windows[i].name;
	q->since = q->until = 0;
	if (windows[i].secs > 0)
		q->since = (double)now.tv_sec - windows[i].secs;
	if (windows[i].secs >= 0)
		return 0;
	if (q->since_s && *q->since_s && time_parse(q->since_s, (double)now.tv_sec, &q->since) < 0) {
		snprintf(why, len, "since: not a time (2026-12-01T10:00, 2026-12-01, an epoch, or an age: 30m)");
		return 400;
	}
	if (q->until_s && *q->until_s && time_parse(q->until_s, (double)now.tv_sec, &q->until) < 0) {
		snprintf(why, len, "until: not a time (2026-12-01T10:00, 2026-12-01, an epoch, or an age: 30m)");
		return 400;
	}
	if (q->since && q->until && q->until <= q->since) {
		snprintf(why, len, "until must be after since");
		return 400;
	}
	return 0;
}

void
portal_window_args(struct buf *b, const struct portal_query *q)
{
	buf_adds(b, "window=");
	url_esc(b, q->window);
	if (q->since_s && *q->since_s) {
		buf_adds(b, "&amp;since=");
		url_esc(b, q->since_s);
	}
	if (q->until_s && *q->until_s) {
		buf_adds(b, "&amp;until=");
		url_esc(b, q->until_s);
	}
}

void
portal_head(struct buf *b, const char *title)
{
	buf_adds(b, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
	    "<title>mxgate: ");
	html_esc(b, title);
	buf_adds(b, "</title>\n<style>"
	    "body{font:14px/1.4 sans-serif;margin:1em 2em}table{border-collapse:collapse;margin:.5em 0}"
	    "th,td{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}"
	    "th{background:#eee}td.count{text-align:right}.muted{color:#666}code{white-space:pre-wrap}"
	    "</style></head><body>\n<p><a href=\"/\">Rejections</a> · <a href=\"/search\">Search</a></p>\n"
	    "<h1>");
	html_esc(b, title);
	buf_adds(b, "</h1>\n");
}

void
portal_foot(struct buf *b, struct logindex *ix)
{
	struct index_stats st;

	if (ix && index_stats(ix, &st) == 0)
		buf_printf(b, "<p class=\"muted\" id=\"index\">index: %llu log lines read "
		    "(%llu not log records, skipped), %llu kept, %llu journal records; "
		    "at byte %llu of %llu</p>\n", (unsigned long long)st.lines,
		    (unsigned long long)st.skipped, (unsigned long long)st.records,
		    (unsigned long long)st.journals, (unsigned long long)st.offset,
		    (unsigned long long)st.size);
	buf_adds(b, "</body></html>\n");
}

void
portal_error(struct buf *b, int status, const char *why)
{
	char title[32];

	snprintf(title, sizeof title, "error %d", status);
	buf_reset(b);
	portal_head(b, title);
	buf_adds(b, "<p id=\"error\">");
	html_esc(b, why);
	buf_adds(b, "</p>\n");
	portal_foot(b, NULL);
}

static void
option(struct buf *b, const char *value, const char *label, const char *current)
{
	buf_adds(b, "<option value=\"");
	html_esc(b, value);
	buf_adds(b, current && !strcmp(value, current) ? "\" selected>" : "\">");
	html_esc(b, label);
	buf_adds(b, "</option>");
}

static void
input(struct buf *b, const char *name, const char *value, const char *placeholder)
{
	buf_printf(b, "<input name=\"%s\" id=\"%s\" size=\"24\" placeholder=\"", name, name);
	html_esc(b, placeholder);
	buf_adds(b, "\" value=\"");
	html_esc(b, value ? value : "");
	buf_adds(b, "\">");
}

static void
window_fields(struct buf *b, const struct portal_query *q)
{
	buf_adds(b, "<select name=\"window\" id=\"window\">");
	for (size_t i = 0; i < sizeof windows / sizeof *windows; i++)
		option(b, windows[i].name, windows[i].label, q->window);
	buf_adds(b, "</select> ");
	input(b, "since", q->since_s, "since: 2026-12-01T10:00");
	buf_adds(b, " ");
	input(b, "until", q->until_s, "until (UTC)");
}

void
portal_forms(struct buf *b, const struct portal_query *q)
{
	static const char *const fields[][2] = {
		{ "rcpt", "recipient" }, { "domain", "recipient domain" }, { "sender", "sender" },
		{ "client", "client IP" }, { "id", "queue or session id" },
	};

	buf_adds(b, "<form method=\"get\" action=\"/search\" id=\"search\"><select name=\"field\" id=\"field\">");
	for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
		option(b, fields[i][0], fields[i][1], q->field);
	buf_adds(b, "</select> ");
	input(b, "q", q->value, "bob@customer.example");
	buf_adds(b, " ");
	window_fields(b, q);
	buf_adds(b, " <button type=\"submit\" id=\"go\">Search</button></form>\n");
}

void
portal_record_head(struct buf *b)
{
	buf_adds(b, "<tr><th>Time (UTC)</th><th>Event</th><th>Direction</th><th>Client</th>"
	    "<th>Sender</th><th>Recipient</th><th>Reply</th><th>Reason</th><th>Rule</th>"
	    "<th>Session / queue id</th></tr>\n");
}

static void
cell(struct buf *b, const char *cls, const char *v)
{
	buf_printf(b, "<td class=\"%s\">", cls);
	html_esc(b, v);
	buf_adds(b, "</td>");
}

static void
id_link(struct buf *b, const char *id)
{
	if (!id || !*id)
		return;
	buf_adds(b, "<a href=\"/trace?id=");
	url_esc(b, id);
	buf_adds(b, "\">");
	html_esc(b, id);
	buf_adds(b, "</a> ");
}

void
portal_record_row(struct buf *b, const char *line, size_t len)
{
	char copy[INDEX_LINE_MAX + 1];
	struct kv kv[LOGFMT_FIELDS];
	const char *ev, *code, *enh, *text;
	int n;

	len = len > INDEX_LINE_MAX ? INDEX_LINE_MAX : len;
	memcpy(copy, line, len);
	copy[len] = '\0';
	if ((n = logfmt_split(copy, kv, LOGFMT_FIELDS)) < 0 || !(ev = logfmt_get(kv, n, "event")))
		return;
	buf_printf(b, "<tr class=\"record %s\">", !strcmp(ev, "reject") ? "reject" : "delivery");
	cell(b, "time", logfmt_get(kv, n, "ts"));
	cell(b, "event", ev);
	cell(b, "dir", logfmt_get(kv, n, "dir"));
	cell(b, "client", logfmt_get(kv, n, "client"));
	cell(b, "sender", logfmt_get(kv, n, "from"));
	cell(b, "rcpt", logfmt_get(kv, n, "rcpt"));
	buf_adds(b, "<td class=\"reply\"><code>");
	code = logfmt_get(kv, n, "code");
	enh = logfmt_get(kv, n, "enhanced");
	text = logfmt_get(kv, n, "text");
	if (code) {
		html_esc(b, code);
		buf_adds(b, " ");
		if (enh && *enh) {
			html_esc(b, enh);
			buf_adds(b, " ");
		}
		html_esc(b, text);
	} else
		html_esc(b, logfmt_get(kv, n, "reply"));
	buf_adds(b, "</code></td>");
	cell(b, "reason", logfmt_get(kv, n, "reason"));
	cell(b, "rule", logfmt_get(kv, n, "rule"));
	buf_adds(b, "<td class=\"id\">");
	id_link(b, logfmt_get(kv, n, "sid"));
	id_link(b, logfmt_get(kv, n, "qid"));
	buf_adds(b, "</td></tr>\n");
}

/* ------------------------------------------------------------------ */
/* `/`                                                                 */

static const char *
dir_title(const char *dir)
{
	return !strcmp(dir, "inbound") ? "Inbound" : !strcmp(dir, "outbound") ? "Outbound" : "Unknown";
}

static void
newest(struct buf *b, const struct portal_entry *e)
{
	const struct portal_example *x = &e->last;

	if (!e->count || !x->ts)
		return;
	html_esc(b, x->ts);
	if (x->client) {
		buf_adds(b, " client=");
		html_esc(b, x->client);
	}
	if (x->from) {
		buf_adds(b, " from=&lt;");
		html_esc(b, x->from);
		buf_adds(b, "&gt;");
	}
	if (x->rcpt) {
		buf_adds(b, " rcpt=&lt;");
		html_esc(b, x->rcpt);
		buf_adds(b, "&gt;");
	}
	buf_printf(b, " <code>%d ", x->code);
	if (x->enhanced && *x->enhanced) {
		html_esc(b, x->enhanced);
		buf_adds(b, " ");
	}
	html_esc(b, x->text);
	buf_adds(b, "</code> ");
	html_esc(b, x->rule);
	buf_adds(b, " ");
	id_link(b, x->sid);
}

int
portal_page_table(struct buf *b, struct logindex *ix, const struct portal_reasons *rs,
    const struct portal_query *q)
{
	struct portal_table t;
	char since[32] = "", until[32] = "now";
	int section = -1;

	if (portal_table_build(&t, rs, ix, q->since, q->until, NULL) < 0) {
		portal_table_free(&t);
		portal_error(b, 500, "The index could not be read.");
		return 500;
	}
	if (q->since)
		time_format(q->since, since, sizeof since);
	if (q->until)
		time_format(q->until, until, sizeof until);
	portal_head(b, "Rejections");
	buf_adds(b, "<form method=\"get\" action=\"/\" id=\"window-form\">");
	window_fields(b, q);
	buf_adds(b, " <button type=\"submit\" id=\"show\">Show</button></form>\n");
	buf_printf(b, "<p id=\"summary\"><span id=\"total\">%ld</span> rejection%s ", t.total,
	    t.total == 1 ? "" : "s");
	if (*since) {
		buf_adds(b, "from ");
		html_esc(b, since);
		buf_adds(b, " ");
	}
	buf_adds(b, "until ");
	html_esc(b, until);
	buf_printf(b, "; delivery: <span id=\"delivered\">%ld</span> delivered, "
	    "<span id=\"deferred\">%ld</span> deferred, <span id=\"bounced\">%ld</span> bounced.</p>\n",
	    t.delivery[PT_DELIVERED], t.delivery[PT_DEFERRED], t.delivery[PT_BOUNCED]);
	buf_adds(b, "<table id=\"rejections\">\n");
	for (size_t i = 0; i < t.n; i++) {
		const struct portal_entry *e = &t.entries[i];
		if (portal_dir_rank(e->dir) != section) {
			section = portal_dir_rank(e->dir);
			buf_printf(b, "<tr><th colspan=\"5\">%s Rejections</th></tr>\n"
			    "<tr><th>Message Direction</th><th>Rejection Reason</th><th>Cause</th>"
			    "<th>Count</th><th>Most recent</th></tr>\n", dir_title(e->dir));
		}
		buf_adds(b, "<tr class=\"entry\" data-reason=\"");
		html_esc(b, e->key);
		buf_adds(b, "\" data-dir=\"");
		html_esc(b, e->dir);
		buf_printf(b, "\"><td>%s</td><td class=\"text\">", dir_title(e->dir));
		html_esc(b, e->r && e->r->text ? e->r->text : e->key);
		buf_adds(b, "</td><td class=\"cause\">");
		html_esc(b, e->r ? e->r->cause : NULL);
		buf_printf(b, "</td><td class=\"count\">%ld</td><td class=\"newest\">", e->count);
		newest(b, e);
		buf_adds(b, "</td></tr>\n");
	}
	buf_adds(b, "</table>\n<h2>Search</h2>\n");
	portal_forms(b, q);
	portal_foot(b, ix);
	portal_table_free(&t);
	return 200;
}
