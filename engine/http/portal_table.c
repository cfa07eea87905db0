/*
 * portal_table.c - the portal's table (portal_table.h): the reasons as the
 * rules define them, counts from the index's buckets, each entry's newest
 * record read back from the index.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lua.h>

#include "bridge.h"
#include "conf.h"
#include "logfmt.h"
#include "portal_table.h"
#include "replay.h"

const char *const portal_delivery_names[PT_NDELIVERY] = { "delivered", "deferred", "bounced" };

/* ------------------------------------------------------------------ */
/* reasons                                                             */

static char *
field_str(lua_State *L, int t, const char *k)
{
	char *s = NULL;

	if (lua_getfield(L, t, k) == LUA_TSTRING)
		s = strdup(lua_tostring(L, -1));
	lua_pop(L, 1);
	return s;
}

static int
field_int(lua_State *L, int t, const char *k)
{
	int v = 0;

	if (lua_getfield(L, t, k) == LUA_TNUMBER)
		v = (int)lua_tointeger(L, -1);
	lua_pop(L, 1);
	return v;
}

struct loading {
	struct portal_reasons *rs;
	int oom;
};

/* One reason of the loaded rules' table (on top of L). */
static void
add_reason(void *arg, const char *key, lua_State *L)
{
	struct loading *ld = arg;
	struct portal_reasons *rs = ld->rs;
	struct portal_reason *r, *nr;
	const char *dir;

	if (ld->oom || !(nr = realloc(rs->v, (rs->n + 1) * sizeof *nr))) {
		ld->oom = 1;
		return;
	}
	rs->v = nr;
	r = &rs->v[rs->n++];
	memset(r, 0, sizeof *r);
	r->key = strdup(key);
	r->text = field_str(L, -1, "text");
	r->cause = field_str(L, -1, "cause");
	r->row = field_int(L, -1, "row");
	r->code = field_int(L, -1, "code");
	lua_getfield(L, -1, "dir");
	dir = lua_tostring(L, -1);
	if (dir)
		snprintf(r->dir, sizeof r->dir, "%s", !strcmp(dir, "in") ? "inbound" :
		    !strcmp(dir, "out") ? "outbound" : dir);
	lua_pop(L, 1);
	if (!r->key)
		ld->oom = 1;
}

/* A policy as ruletest opens it: the stdlib and the rules, no network. */
static int
open_rules(struct policy *pol, struct replay_world *w, const char *conf_path, const char *stdlib,
    const char *rules, char *err, size_t errlen)
{
	struct conf c;
	int rc;

	if (conf_load(&c, conf_path ? conf_path : "/dev/null", err, errlen) < 0)
		return -1;
	snprintf(c.stdlib, sizeof c.stdlib, "%s", stdlib);
	snprintf(c.rules, sizeof c.rules, "%s", rules);
	rc = policy_open_replay(pol, &c, replay_world_open, w, err, errlen);
	conf_free(&c);
	return rc;
}

int
portal_reasons_load(struct portal_reasons *rs, const char *conf_path, const char *stdlib,
    const char *rules, char *warn, size_t warnlen, char *err, size_t errlen)
{
	struct replay_world w;
	struct policy pol;
	struct loading ld = { rs, 0 };
	char why[1024], empty[] = "/tmp/mxgate-reasons-XXXXXX";
	int warned = 0;

	memset(rs, 0, sizeof *rs);
	memset(&w, 0, sizeof w);
	if (open_rules(&pol, &w, conf_path, stdlib, rules, why, sizeof why) < 0) {
		snprintf(warn, warnlen, "%s: the rules do not load (%s); "
		    "showing the reasons without their overrides", rules, why);
		warned = 1;
		if (!mkdtemp(empty)) {
			snprintf(err, errlen, "%s: %s", empty, strerror(errno));
			return -1;
		}
		if (open_rules(&pol, &w, conf_path, stdlib, empty, err, errlen) < 0) {
			rmdir(empty);
			return -1;
		}
		rmdir(empty);
	}
	policy_reasons(&pol, add_reason, &ld);
	pol.ops->free(pol.self);
	buf_free(&w.enc);
	if (ld.oom) {
		portal_reasons_free(rs);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return warned;
}

void
portal_reasons_free(struct portal_reasons *rs)
{
	for (size_t i = 0; i < rs->n; i++) {
		free(rs->v[i].key);
		free(rs->v[i].text);
		free(rs->v[i].cause);
	}
	free(rs->v);
	memset(rs, 0, sizeof *rs);
}

static const struct portal_reason *
find_reason(const struct portal_reasons *rs, const char *key)
{
	for (size_t i = 0; i < rs->n; i++)
		if (!strcmp(rs->v[i].key, key))
			return &rs->v[i];
	return NULL;
}

/* ------------------------------------------------------------------ */
/* entries                                                             */

struct building {
	struct portal_table *t;
	const struct portal_reasons *rs;
	const char *match;
};

static struct portal_entry *
find_entry(struct building *bd, const char *key, const char *dir)
{
	struct portal_table *t = bd->t;
	struct portal_entry *e;

	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->entries[i].key, key) && !strcmp(t->entries[i].dir, dir))
			return &t->entries[i];
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 32;
		struct portal_entry *ne = realloc(t->entries, cap * sizeof *ne);
		if (!ne) {
			t->oom = 1;
			return NULL;
		}
		t->entries = ne;
		t->cap = cap;
	}
	e = &t->entries[t->n++];
	memset(e, 0, sizeof *e);
	snprintf(e->key, sizeof e->key, "%s", key);
	snprintf(e->dir, sizeof e->dir, "%s", dir);
	e->r = find_reason(bd->rs, key);
	return e;
}

static void
count(void *arg, const char *dir, const char *reason, uint64_t n, uint64_t newest, int64_t newest_ms)
{
	struct building *bd = arg;
	struct portal_entry *e;

	if (!strcmp(dir, "delivery")) {
		for (int i = 0; i < PT_NDELIVERY; i++)
			if (!strcmp(reason, portal_delivery_names[i]))
				bd->t->delivery[i] += (long)n;
		return;
	}
	if (!(e = find_entry(bd, reason, dir)))
		return;
	e->count += (long)n;
	bd->t->total += (long)n;
	if (n && (!e->newest || newest_ms > e->last.ms || (newest_ms == e->last.ms && newest > e->newest))) {
		e->newest = newest;
		e->last.ms = newest_ms;
	}
}

static int
contains(const struct kv *kv, int n, const char *match)
{
	static const char *fields[] = { "client", "from", "rcpt" };

	for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
		const char *v = logfmt_get(kv, n, fields[i]);
		if (v && strcasestr(v, match))
			return 1;
	}
	return 0;
}

/* --match: each record of the window, read and tested. */
static int
count_matching(void *arg, uint64_t seq, int64_t ms, const char *line, size_t len)
{
	struct building *bd = arg;
	char copy[INDEX_LINE_MAX + 1];
	struct kv kv[LOGFMT_FIELDS];
	const char *ev, *dir, *reason;
	int n;

	len = len > INDEX_LINE_MAX ? INDEX_LINE_MAX : len;
	memcpy(copy, line, len);
	copy[len] = '\0';
	if ((n = logfmt_split(copy, kv, LOGFMT_FIELDS)) < 0 || !(ev = logfmt_get(kv, n, "event")) ||
	    !strcmp(ev, "accepted") || !contains(kv, n, bd->match))
		return 0;
	if (strcmp(ev, "reject") != 0) {
		count(bd, "delivery", ev, 1, seq, ms);
		return 0;
	}
	dir = logfmt_get(kv, n, "dir");
	reason = logfmt_get(kv, n, "reason");
	count(bd, dir ? dir : "", reason && *reason ? reason : "unknown", 1, seq, ms);
	return 0;
}

static char *
dup_field(const struct kv *kv, int n, const char *k)
{
	const char *v = logfmt_get(kv, n, k);

	return v ? strdup(v) : NULL;
}

/* The entry's newest record, read back. */
static int
fill_example(void *arg, uint64_t seq, int64_t ms, const char *line, size_t len)
{
	struct portal_example *x = arg;
	char copy[INDEX_LINE_MAX + 1];
	struct kv kv[LOGFMT_FIELDS];
	const char *code;
	int n;

	len = len > INDEX_LINE_MAX ? INDEX_LINE_MAX : len;
	memcpy(copy, line, len);
	copy[len] = '\0';
	if ((n = logfmt_split(copy, kv, LOGFMT_FIELDS)) < 0)
		return 0;
	x->ms = ms;
	code = logfmt_get(kv, n, "code");
	x->code = code ? atoi(code) : 0;
	x->ts = dup_field(kv, n, "ts");
	x->sid = dup_field(kv, n, "sid");
	x->client = dup_field(kv, n, "client");
	x->from = dup_field(kv, n, "from");
	x->rcpt = dup_field(kv, n, "rcpt");
	x->text = dup_field(kv, n, "text");
	x->enhanced = dup_field(kv, n, "enhanced");
	x->rule = dup_field(kv, n, "rule");
	x->stage = dup_field(kv, n, "stage");
	return 0;
}

int
portal_dir_rank(const char *dir)
{
	return !strcmp(dir, "inbound") ? 0 : !strcmp(dir, "outbound") ? 1 : 2;
}

/* Sections by direction; the portal's rows first, in its order (the
 * permanent answer before the temporary one of the same row); then the
 * rest, most frequent first. */
static int
cmp_entry(const void *a, const void *b)
{
	const struct portal_entry *x = a, *y = b;
	int rx = x->r ? x->r->row : 0, ry = y->r ? y->r->row : 0;

	if (portal_dir_rank(x->dir) != portal_dir_rank(y->dir))
		return portal_dir_rank(x->dir) - portal_dir_rank(y->dir);
	if (!rx != !ry)
		return rx ? -1 : 1;
	if (rx != ry)
		return rx - ry;
	if (rx && x->r->code != y->r->code)
		return y->r->code - x->r->code;
	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return strcmp(x->key, y->key);
}

int
portal_table_build(struct portal_table *t, const struct portal_reasons *rs,
    struct logindex *ix, double since, double until, const char *match)
{
	struct building bd = { t, rs, match && *match ? match : NULL };
	int rc;

	memset(t, 0, sizeof *t);
	/* Every portal row has a line, rejected or not. */
	for (size_t i = 0; i < rs->n; i++)
		if (rs->v[i].row > 0 && !find_entry(&bd, rs->v[i].key, rs->v[i].dir))
			return -1;
	rc = bd.match ? index_scan(ix, since, until, count_matching, &bd) :
	    index_counts(ix, since, until, count, &bd);
	if (rc < 0 || t->oom)
		return -1;
	for (size_t i = 0; i < t->n; i++)
		if (t->entries[i].newest)
			index_get(ix, t->entries[i].newest, fill_example, &t->entries[i].last);
	/* The rows point at the reasons; sorting entries moves nothing they use. */
	qsort(t->entries, t->n, sizeof *t->entries, cmp_entry);
	return 0;
}

void
portal_table_free(struct portal_table *t)
{
	for (size_t i = 0; i < t->n; i++) {
		struct portal_example *x = &t->entries[i].last;
		free(x->ts);
		free(x->sid);
		free(x->client);
		free(x->from);
		free(x->rcpt);
		free(x->text);
		free(x->enhanced);
		free(x->rule);
		free(x->stage);
	}
	free(t->entries);
	memset(t, 0, sizeof *t);
}
