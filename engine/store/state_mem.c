/* state_mem.c - the state ops in memory, for ruletest's simulation: one process, a caller's clock, nothing written. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "htab.h"
#include "state_logic.h"

/* One record; the key (its database's byte first) follows the struct. */
struct mrec {
	struct hnode      h;
	struct mrec      *next;          /* every record, for list and sweep */
	struct mrec     **prevp;
	enum state_db     db;
	struct state_vals v;
	char             *value;         /* callout: the text */
	size_t            klen;
	char              key[];         /* db byte, then the key */
};

struct mem {
	struct state base;
	struct htab  t;
	struct mrec *all;
	void       (*touched)(void *arg, const char *key, size_t n, int write);     /* state_mem_watch */
	void        *touched_arg;
};

/* The record of key, or NULL; write: the caller is about to change it. */
static struct mrec *find(struct mem *m, enum state_db db, const char *key, int write)
{
	size_t n = strlen(key);
	char k[STATE_KEY_MAX + 2];

	if (n > STATE_KEY_MAX)
		n = STATE_KEY_MAX;
	k[0] = (char)db;
	memcpy(k + 1, key, n);
	if (m->touched)
		m->touched(m->touched_arg, k, n + 1, write);
	struct hnode *h = htab_find(&m->t, htab_hash(k, n + 1), k, n + 1);
	return h ? container_of(h, struct mrec, h) : NULL;
}

static void drop(struct mem *m, struct mrec *r)
{
	htab_del(&m->t, &r->h);
	*r->prevp = r->next;
	if (r->next)
		r->next->prevp = r->prevp;
	free(r->value);
	free(r);
}

/* The record of key, made when absent (NULL: out of memory). */
static struct mrec *upsert(struct mem *m, enum state_db db, const char *key)
{
	struct mrec *r = find(m, db, key, 1);
	size_t n = strlen(key);

	if (r)
		return r;
	if (n > STATE_KEY_MAX)
		n = STATE_KEY_MAX;
	if (!(r = calloc(1, sizeof *r + n + 2)))
		return NULL;
	r->db = db;
	r->key[0] = (char)db;
	memcpy(r->key + 1, key, n);
	r->klen = n + 1;
	r->h.key = r->key;
	r->h.keylen = r->klen;
	r->h.hash = htab_hash(r->key, r->klen);
	if (htab_add(&m->t, &r->h) < 0) {
		free(r);
		return NULL;
	}
	r->next = m->all;
	r->prevp = &m->all;
	if (m->all)
		m->all->prevp = &r->next;
	m->all = r;
	return r;
}

/* ---- the records state_logic.c works on -------------------------------- */

static int io_get(void *ctx, enum state_db db, const char *key, double now, struct state_vals *v)
{
	struct mrec *r = find(ctx, db, key, 0);

	if (!r || r->v.expires <= now)
		return STATE_ABSENT;
	*v = r->v;
	return 0;
}

static int io_put(void *ctx, enum state_db db, const char *key, const struct state_vals *v)
{
	struct mrec *r = upsert(ctx, db, key);

	if (!r)
		return 1;
	r->v = *v;
	return 0;
}

static int io_del(void *ctx, enum state_db db, const char *key)
{
	struct mrec *r = find(ctx, db, key, 1);

	if (r)
		drop(ctx, r);
	return 0;
}

#define MEM_RECS(m) { (m), io_get, io_put, io_del }

static void reply(state_cb *cb, void *arg, struct state_reply *r, int rc)
{
	r->rc = rc;
	if (rc < 0)
		r->error = "out of memory";
	cb(arg, r);
}

/* ---- the ops ------------------------------------------------------------- */

static struct state *mem_open(const struct state_conf *c, struct ev_loop *loop, char *err, size_t errlen)
{
	struct mem *m = calloc(1, sizeof *m);

	if (!m || htab_init(&m->t, 1024) < 0) {
		free(m);
		snprintf(err, errlen, "state: out of memory");
		return NULL;
	}
	return &m->base;
}

void state_mem_watch(struct state *st, void (*touched)(void *arg, const char *key, size_t n, int write), void *arg)
{
	struct mem *m = (struct mem *)st;

	m->touched = touched;
	m->touched_arg = arg;
}

static void mem_close(struct state *st)
{
	struct mem *m = (struct mem *)st;

	while (m->all)
		drop(m, m->all);
	htab_free(&m->t);
	free(m);
}

static void mem_greylist(struct state *st, const struct greylist_conf *c, const char *ip,
    const char *sender, const char *rcpt, double now, state_cb *cb, void *arg)
{
	struct state_recs io = MEM_RECS(st);
	struct state_reply rep = { 0 };
	struct grey_keys k;

	state_grey_keys(c, ip, sender, rcpt, &k);
	if (state_grey_step(&io, c, &k, now, &rep.grey))
		rep.grey.verdict = GREY_ERROR;
	reply(cb, arg, &rep, rep.grey.verdict == GREY_ERROR ? -1 : 0);
}

static void mem_ratelimit(struct state *st, const char *key, double limit, double period,
    int mode, double count, double now, state_cb *cb, void *arg)
{
	struct state_recs io = MEM_RECS(st);
	struct state_reply rep = { 0 };
	char k[STATE_KEY_MAX + 1];

	if (!(period > 0) || !(count >= 0)) {
		rep.rc = -1;
		rep.error = "ratelimit: period must be > 0 and count >= 0";
		cb(arg, &rep);
		return;
	}
	state_key(STATE_RATELIMIT, key, k);
	reply(cb, arg, &rep, state_rl_step(&io, k, limit, period, mode, count, now, &rep.rl) ? -1 : 0);
}

static void mem_cache_get(struct state *st, const char *key, double now, state_cb *cb, void *arg)
{
	char k[STATE_KEY_MAX + 1];
	struct state_reply rep = { 0 };

	state_key(STATE_CALLOUT, key, k);
	struct mrec *r = find((struct mem *)st, STATE_CALLOUT, k, 0);
	if (!r || r->v.expires <= now) {
		reply(cb, arg, &rep, 1);
		return;
	}
	rep.text = r->value ? r->value : "";
	reply(cb, arg, &rep, 0);
}

static int set_value(struct mrec *r, const char *val, size_t n)
{
	char *v = malloc(n + 1);

	if (!v)
		return -1;
	memcpy(v, val, n);
	v[n] = '\0';
	free(r->value);
	r->value = v;
	return 0;
}

static void mem_cache_put(struct state *st, const char *key, const char *val, double expires,
    double now, state_cb *cb, void *arg)
{
	char k[STATE_KEY_MAX + 1];
	struct state_reply rep = { 0 };
	size_t n = strlen(val);

	if (n > STATE_CACHE_MAX) {
		rep.rc = -1;
		rep.error = "callout cache: value too long";
		cb(arg, &rep);
		return;
	}
	state_key(STATE_CALLOUT, key, k);
	struct mrec *r = upsert((struct mem *)st, STATE_CALLOUT, k);
	if (!r || set_value(r, val, n) < 0) {
		reply(cb, arg, &rep, -1);
		return;
	}
	r->v.expires = expires;
	reply(cb, arg, &rep, 0);
}

static void to_rec(const struct mrec *r, struct state_rec *out)
{
	out->expires = r->v.expires, out->a = r->v.a, out->b = r->v.b;
	out->vlen = r->value ? strlen(r->value) : 0;
	memcpy(out->value, r->value ? r->value : "", out->vlen + 1);
}

static void mem_list(struct state *st, enum state_db db, state_each_cb *each, void *each_arg,
    state_cb *cb, void *arg)
{
	struct state_reply rep = { 0 };
	struct state_rec rec;
	char text[STATE_TEXT_MAX];

	for (struct mrec *r = ((struct mem *)st)->all; r; r = r->next) {
		if (r->db != db)
			continue;
		to_rec(r, &rec);
		if (state_render(db, &rec, text, sizeof text) < 0)
			text[0] = '\0';
		each(each_arg, r->key + 1, text);
	}
	reply(cb, arg, &rep, 0);
}

static void mem_get(struct state *st, enum state_db db, const char *key, state_cb *cb, void *arg)
{
	char k[STATE_KEY_MAX + 1], text[STATE_TEXT_MAX];
	struct state_reply rep = { 0 };
	struct state_rec rec;

	state_key(db, key, k);
	struct mrec *r = find((struct mem *)st, db, k, 0);
	if (!r) {
		reply(cb, arg, &rep, 1);
		return;
	}
	to_rec(r, &rec);
	state_render(db, &rec, text, sizeof text);
	rep.text = text;
	reply(cb, arg, &rep, 0);
}

static void mem_put(struct state *st, enum state_db db, const char *key, const char *val,
    double now, state_cb *cb, void *arg)
{
	char k[STATE_KEY_MAX + 1], why[200];
	struct state_reply rep = { 0 };
	struct state_rec rec;
	struct mrec *r;

	if ((unsigned)db >= STATE_NDB || state_parse(db, val, &rec, why, sizeof why) < 0) {
		rep.rc = -1;
		rep.error = (unsigned)db >= STATE_NDB ? "no such database" : why;
		cb(arg, &rep);
		return;
	}
	state_key(db, key, k);
	if (!(r = upsert((struct mem *)st, db, k)) ||
	    (db == STATE_CALLOUT && set_value(r, rec.value, rec.vlen) < 0)) {
		reply(cb, arg, &rep, -1);
		return;
	}
	r->v = (struct state_vals){ rec.expires, rec.a, rec.b };
	reply(cb, arg, &rep, 0);
}

static void mem_del(struct state *st, enum state_db db, const char *key, state_cb *cb, void *arg)
{
	char k[STATE_KEY_MAX + 1];
	struct state_reply rep = { 0 };

	state_key(db, key, k);
	struct mrec *r = find((struct mem *)st, db, k, 1);
	if (r)
		drop((struct mem *)st, r);
	reply(cb, arg, &rep, r ? 0 : 1);
}

static void mem_sweep(struct state *st, double now, state_cb *cb, void *arg)
{
	struct mem *m = (struct mem *)st;
	struct state_reply rep = { 0 };

	for (struct mrec *r = m->all, *next; r; r = next) {
		next = r->next;
		if (r->v.expires <= now) {
			drop(m, r);
			rep.count++;
		}
	}
	reply(cb, arg, &rep, 0);
}

const struct state_ops state_mem_ops = {
	.name = "memory", .open = mem_open, .close = mem_close,
	.greylist = mem_greylist, .ratelimit = mem_ratelimit,
	.cache_get = mem_cache_get, .cache_put = mem_cache_put,
	.list = mem_list, .get = mem_get, .put = mem_put, .del = mem_del,
	.sweep = mem_sweep,
};
