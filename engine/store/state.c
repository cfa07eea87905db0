/*
 * state.c - the state seam (state.h): picks the backend the config names,
 * and the *_wait calls that run a loop until a backend has answered (the
 * operators' CLI and the tests; the SMTP path never waits).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <ev.h>

#include "state_text.h"

extern const struct state_ops state_lmdb_ops, state_redis_ops, state_mem_ops;

static const struct state_ops *const backends[] = { &state_lmdb_ops, &state_redis_ops, &state_mem_ops };

struct state *state_open(const struct state_conf *c, struct ev_loop *loop, char *err, size_t errlen)
{
	static const struct state_conf defaults = { .backend = "lmdb", .dir = "var/state" };
	const char *name;

	if (!c)
		c = &defaults;
	name = c->backend[0] ? c->backend : "lmdb";
	for (size_t i = 0; i < sizeof backends / sizeof *backends; i++)
		if (strcmp(backends[i]->name, name) == 0) {
			struct state *st = backends[i]->open(c, loop, err, errlen);
			if (st) {
				st->ops = backends[i];
				st->loop = loop;
			}
			return st;
		}
	snprintf(err, errlen, "state: no backend \"%s\" (lmdb, redis)", name);
	return NULL;
}

int state_probe(const struct state_conf *c, char *err, size_t errlen)
{
	for (size_t i = 0; i < sizeof backends / sizeof *backends; i++)
		if (strcmp(backends[i]->name, c->backend[0] ? c->backend : "lmdb") == 0)
			return backends[i]->probe ? backends[i]->probe(c, err, errlen) : 0;
	snprintf(err, errlen, "state: no backend \"%s\" (lmdb, redis)", c->backend);
	return -1;
}

void state_close(struct state *st)
{
	if (st)
		st->ops->close(st);
}

const char *state_error(const struct state *st)
{
	return st->err;
}

/* ---- waiting for an answer ------------------------------------------------ */

struct waiter {
	struct state      *st;
	int                done;
	struct state_reply r;
	char              *val;     /* get, cache_get: the caller's buffer */
	size_t             vlen;
};

static void on_reply(void *arg, const struct state_reply *r)
{
	struct waiter *w = arg;

	w->r = *r;
	w->r.error = NULL;
	w->r.text = NULL;
	if (r->rc < 0)
		snprintf(w->st->err, sizeof w->st->err, "%s", r->error ? r->error : "failed");
	else if (r->text && w->val) {
		size_t n = strlen(r->text);
		if (n >= w->vlen) {
			w->r.rc = -1;
			snprintf(w->st->err, sizeof w->st->err, "value of %zu bytes exceeds buffer of %zu", n, w->vlen);
		} else
			memcpy(w->val, r->text, n + 1);
	}
	w->done = 1;
}

static int wait_for(struct waiter *w)
{
	while (!w->done) {
		if (!w->st->loop) {
			snprintf(w->st->err, sizeof w->st->err, "state: no loop to wait on");
			return -1;
		}
		ev_run(w->st->loop, EVRUN_ONCE);
	}
	return w->r.rc;
}

#define WAITER(st) { (st), 0, { 0 }, NULL, 0 }

int state_greylist_wait(struct state *st, const struct greylist_conf *c, const char *ip,
    const char *sender, const char *rcpt, double now, struct greylist_result *out)
{
	struct waiter w = WAITER(st);

	st->ops->greylist(st, c, ip, sender, rcpt, now, on_reply, &w);
	int rc = wait_for(&w);
	out->verdict = rc < 0 ? GREY_ERROR : w.r.grey.verdict;
	out->wait = rc < 0 ? 0 : w.r.grey.wait;
	return rc;
}

int state_ratelimit_wait(struct state *st, const char *key, double limit, double period,
    int mode, double count, double now, struct ratelimit_result *out)
{
	struct waiter w = WAITER(st);

	st->ops->ratelimit(st, key, limit, period, mode, count, now, on_reply, &w);
	int rc = wait_for(&w);
	*out = rc < 0 ? (struct ratelimit_result){ 0, 0 } : w.r.rl;
	return rc;
}

int state_cache_get_wait(struct state *st, const char *key, double now, char *val, size_t vlen)
{
	struct waiter w = WAITER(st);

	w.val = val, w.vlen = vlen;
	st->ops->cache_get(st, key, now, on_reply, &w);
	return wait_for(&w);
}

int state_cache_put_wait(struct state *st, const char *key, const char *val, double expires, double now)
{
	struct waiter w = WAITER(st);

	st->ops->cache_put(st, key, val, expires, now, on_reply, &w);
	return wait_for(&w);
}

int state_list_wait(struct state *st, enum state_db db, state_each_cb *each, void *arg)
{
	struct waiter w = WAITER(st);

	st->ops->list(st, db, each, arg, on_reply, &w);
	return wait_for(&w);
}

int state_get_wait(struct state *st, enum state_db db, const char *key, char *val, size_t vlen)
{
	struct waiter w = WAITER(st);

	w.val = val, w.vlen = vlen;
	st->ops->get(st, db, key, on_reply, &w);
	return wait_for(&w);
}

int state_put_wait(struct state *st, enum state_db db, const char *key, const char *val, double now)
{
	struct waiter w = WAITER(st);

	st->ops->put(st, db, key, val, now, on_reply, &w);
	return wait_for(&w);
}

int state_del_wait(struct state *st, enum state_db db, const char *key)
{
	struct waiter w = WAITER(st);

	st->ops->del(st, db, key, on_reply, &w);
	return wait_for(&w);
}

long state_sweep_wait(struct state *st, double now)
{
	struct waiter w = WAITER(st);

	st->ops->sweep(st, now, on_reply, &w);
	return wait_for(&w) < 0 ? -1 : w.r.count;
}

struct copy {
	struct state *to;
	enum state_db db;
	long          n, failed;
};

static void copy_one(void *arg, const char *key, const char *value)
{
	struct copy *c = arg;

	if (state_put_wait(c->to, c->db, key, value, 0) < 0)
		c->failed++;
	else
		c->n++;
}

long state_copy_wait(struct state *from, struct state *to)
{
	struct copy c = { to, 0, 0, 0 };

	for (int db = 0; db < STATE_NDB; db++) {
		c.db = (enum state_db)db;
		if (state_list_wait(from, c.db, copy_one, &c) < 0 || c.failed)
			return -1;
	}
	return c.n;
}
