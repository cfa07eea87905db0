/*
 * portal_trace.c - the page `/trace?id=`: a session's or a queued
 * message's records, and, from the journal, each session's trace: every
 * command, each hook with the facts it saw, what the rules asked the world
 * and what it answered, each verdict and reply.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "html.h"
#include "json.h"
#include "logfmt.h"
#include "portal.h"
#include "portal_pages.h"

#define TRACE_RECORDS   200         /* records of one id shown */
#define TRACE_SESSIONS  8           /* sessions traced on one page */
#define JOURNAL_MAX     (16u << 20)

struct collecting {
	struct buf *b;
	size_t n;
	char sids[TRACE_SESSIONS][64];
	size_t nsids;
};

static void
add_sid(struct collecting *c, const char *sid)
{
	if (!sid || !*sid || strlen(sid) >= sizeof c->sids[0])
		return;
	for (size_t i = 0; i < c->nsids; i++)
		if (!strcmp(c->sids[i], sid))
			return;
	if (c->nsids < TRACE_SESSIONS)
		snprintf(c->sids[c->nsids++], sizeof c->sids[0], "%s", sid);
}

static int
collect(void *arg, uint64_t seq, int64_t ms, const char *line, size_t len)
{
	struct collecting *c = arg;
	char copy[INDEX_LINE_MAX + 1];
	struct kv kv[LOGFMT_FIELDS];
	int n;

	portal_record_row(c->b, line, len);
	c->n++;
	len = len > INDEX_LINE_MAX ? INDEX_LINE_MAX : len;
	memcpy(copy, line, len);
	copy[len] = '\0';
	if ((n = logfmt_split(copy, kv, LOGFMT_FIELDS)) >= 0)
		add_sid(c, logfmt_get(kv, n, "sid"));
	return 0;
}

/* A JSON value as the canonical text replay compares, escaped. */
static void
value(struct buf *b, const json_t *v)
{
	struct buf t = BUF_INIT(0);

	if (!v)
		return;                 /* not in this event */
	if (json_is_string(v))
		html_esc_lines(b, json_string_value(v));
	else if (jsonw_canonical(&t, v) == 0)
		html_esc(b, buf_str(&t));
	buf_free(&t);
}

static void
facts(struct buf *b, json_t *ev, const char *const *skip)
{
	const char *k;
	json_t *v;

	json_object_foreach(ev, k, v) {
		int skipped = 0;
		for (const char *const *s = skip; *s; s++)
			skipped |= !strcmp(k, *s);
		if (skipped)
			continue;
		buf_adds(b, "<span class=\"fact\">");
		html_esc(b, k);
		buf_adds(b, "=");
		value(b, v);
		buf_adds(b, "</span> ");
	}
}

static const char *
str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

/* One journal event as a row: who, what. */
static void
event_row(struct buf *b, size_t i, json_t *ev)
{
	static const char *const none[] = { "e", NULL };
	static const char *const hook[] = { "e", "stage", NULL };
	static const char *const verdict[] = { "e", "stage", "action", "code", "enhanced", "text", NULL };
	const char *e = str(ev, "e");

	buf_printf(b, "<tr class=\"ev ev-");
	html_esc(b, e);
	buf_printf(b, "\"><td>%zu</td><td>", i + 1);
	if (!strcmp(e, "cmd")) {
		buf_adds(b, "client</td><td><code>");
		html_esc(b, str(ev, "line"));
		buf_adds(b, "</code>");
	} else if (!strcmp(e, "reply")) {
		buf_adds(b, "mxgate</td><td><code>");
		value(b, json_object_get(ev, "code"));
		buf_adds(b, " ");
		html_esc_lines(b, str(ev, "text"));
		buf_adds(b, "</code>");
	} else if (!strcmp(e, "hook")) {
		buf_adds(b, "hook ");
		html_esc(b, str(ev, "stage"));
		buf_adds(b, "</td><td>");
		facts(b, ev, hook);
	} else if (!strcmp(e, "call")) {
		buf_adds(b, "asked the world</td><td><code>");
		html_esc(b, str(ev, "p"));
		buf_adds(b, "(");
		value(b, json_object_get(ev, "a"));
		buf_adds(b, ") → ");
		value(b, json_object_get(ev, "r"));
		buf_adds(b, "</code>");
	} else if (!strcmp(e, "verdict")) {
		buf_adds(b, "rules at ");
		html_esc(b, str(ev, "stage"));
		buf_adds(b, "</td><td><b>");
		html_esc(b, str(ev, "action"));
		buf_adds(b, "</b> <code>");
		value(b, json_object_get(ev, "code"));
		buf_adds(b, " ");
		html_esc(b, str(ev, "enhanced"));
		buf_adds(b, " ");
		html_esc(b, str(ev, "text"));
		buf_adds(b, "</code> ");
		facts(b, ev, verdict);
	} else {
		html_esc(b, e);
		buf_adds(b, "</td><td>");
		facts(b, ev, none);
	}
	buf_adds(b, "</td></tr>\n");
}

static void
trace(struct buf *b, struct logindex *ix, const char *sid)
{
	struct buf line = BUF_INIT(JOURNAL_MAX);
	json_t *rec = NULL, *events, *ev;
	size_t i;
	int rc = index_journal(ix, sid, &line);

	buf_adds(b, "<h2>Session ");
	html_esc(b, sid);
	buf_adds(b, "</h2>\n");
	if (rc <= 0 || !(rec = jsonr_parse(line.p, line.len, JSON_MAX_DEPTH, NULL))) {
		buf_adds(b, "<p class=\"muted\">No journal record of this session (not sampled, "
		    "or its journal file is gone).</p>\n");
		buf_free(&line);
		return;
	}
	buf_adds(b, "<p>");
	html_esc(b, str(rec, "direction"));
	buf_adds(b, " session from ");
	html_esc(b, str(json_object_get(rec, "client"), "ip"));
	buf_adds(b, " on ");
	html_esc(b, str(rec, "listener"));
	if (json_is_true(json_object_get(rec, "truncated")))
		buf_adds(b, " (the record was cut at journal.max_record)");
	buf_adds(b, "</p>\n<table class=\"trace\" id=\"trace-");
	html_esc(b, sid);
	buf_adds(b, "\"><tr><th>#</th><th>Who</th><th>What</th></tr>\n");
	events = json_object_get(rec, "events");
	json_array_foreach(events, i, ev)
		if (json_is_object(ev))
			event_row(b, i, ev);
	buf_adds(b, "</table>\n");
	json_decref(rec);
	buf_free(&line);
}

int
portal_page_trace(struct buf *b, struct logindex *ix, const struct portal_query *q)
{
	struct collecting c = { b, 0, { { 0 } }, 0 };
	uint64_t next;

	if (!q->id || !*q->id) {
		portal_error(b, 400, "id: a queue or session id");
		return 400;
	}
	portal_head(b, "Trace");
	buf_adds(b, "<p>Records of ");
	html_esc(b, q->id);
	buf_adds(b, ":</p>\n<table id=\"results\">\n");
	portal_record_head(b);
	if (index_search(ix, IX_ID, q->id, 0, 0, 0, TRACE_RECORDS, collect, &c, &next) < 0) {
		portal_error(b, 500, "The index could not be read.");
		return 500;
	}
	buf_adds(b, "</table>\n");
	if (c.n == 0)
		add_sid(&c, q->id);             /* a session the log has no line of */
	for (size_t i = 0; i < c.nsids; i++)
		trace(b, ix, c.sids[i]);
	portal_foot(b, ix);
	return 200;
}
