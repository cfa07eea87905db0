/*
 * lua_store.c - greylist() and ratelimit() for rules, on the state store.
 *
 *   local g = greylist(s.ip, s.sender, s.rcpt, config.greylist)
 *   -- g.pass (boolean), g.verdict ("allowed", "retry", "new", "early",
 *   -- "error"), g.wait (seconds before a retry passes), g.error (why)
 *
 *   local r = ratelimit("sender:" .. s.sender, 100, 3600, { mode = "leaky" })
 *   -- r.over (boolean), r.rate (per period, Exim's smoothed rate), r.error
 *
 * An answer that comes at once (LMDB) returns at once; otherwise (Redis)
 * the rule yields until it comes, as dns() does. When the store fails the
 * answer follows the config's state.fail modes (greylist pass or defer,
 * ratelimit allow or defer), with verdict "error" and a log line.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>

#include "bridge.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "state.h"

enum { OP_GREYLIST, OP_RATELIMIT };

struct store_req {
	struct lpolicy    *pol;
	uint64_t           key;         /* the session, looked up again on answer */
	uint64_t           token;       /* what that session waits for */
	int                op;
	int                in_call;     /* still inside the store's call */
	double             started;     /* clock_mono() */
	int                answered;
	struct state_reply reply;       /* an answer that came at once */
	char               error[256];
};

static double
opt_field(lua_State *L, int t, const char *k, double def)
{
	double v = def;

	if (lua_istable(L, t)) {
		if (lua_getfield(L, t, k) != LUA_TNIL) {
			if (!lua_isnumber(L, -1))
				luaL_error(L, "option %s: expected a number", k);
			v = lua_tonumber(L, -1);
		}
		lua_pop(L, 1);
	}
	return v;
}

/* ruletest's simulation runs the store on the replayed session's clock. */
static double
store_clock(const struct lpolicy *pol)
{
	return pol->replay_now && *pol->replay_now > 0 ? *pol->replay_now : clock_wall();
}

static struct lctx *
need_store(lua_State *L, const char *what)
{
	struct lctx *x = lctx_need(L, what);

	if (!x->pol->state)
		luaL_error(L, "%s: no state store in this process", what);
	return x;
}

/* Pushes the rule's answer table for a store reply. */
static int
push_answer(lua_State *L, const struct lpolicy *pol, int op, const struct state_reply *r)
{
	static const char *names[] = {
		[GREY_PASS_ALLOWED] = "allowed", [GREY_PASS_RETRY] = "retry",
		[GREY_DEFER_NEW] = "new", [GREY_DEFER_EARLY] = "early", [GREY_ERROR] = "error",
	};
	int failed = r->rc < 0;

	if (failed)
		log_event("state_error", "op", op == OP_GREYLIST ? "greylist" : "ratelimit",
		    "error", r->error ? r->error : "failed", "fail_mode",
		    op == OP_GREYLIST ? (pol->grey_fail_defer ? "defer" : "pass")
		                      : (pol->rl_fail_defer ? "defer" : "allow"), NULL);
	lua_createtable(L, 0, 4);
	if (op == OP_GREYLIST) {
		enum greylist_verdict v = failed ? GREY_ERROR : r->grey.verdict;
		lua_pushboolean(L, failed ? !pol->grey_fail_defer
		    : v == GREY_PASS_ALLOWED || v == GREY_PASS_RETRY);
		lua_setfield(L, -2, "pass");
		lua_pushstring(L, names[(unsigned)v <= GREY_ERROR ? v : GREY_ERROR]);
		lua_setfield(L, -2, "verdict");
		lua_pushnumber(L, failed ? 0 : r->grey.wait);
		lua_setfield(L, -2, "wait");
	} else {
		lua_pushboolean(L, failed ? pol->rl_fail_defer : r->rl.over);
		lua_setfield(L, -2, "over");
		lua_pushnumber(L, failed ? 0 : r->rl.rate);
		lua_setfield(L, -2, "rate");
	}
	if (failed) {
		lua_pushstring(L, r->error ? r->error : "failed");
		lua_setfield(L, -2, "error");
	}
	return 1;
}

static void
on_answer(void *arg, const struct state_reply *r)
{
	struct store_req *q = arg;
	struct lctx *x;

	metrics_observe(MH_STATE, clock_mono() - q->started);
	if (q->in_call) {
		q->reply = *r;
		q->reply.text = NULL;
		if (r->error) {
			snprintf(q->error, sizeof q->error, "%s", r->error);
			q->reply.error = q->error;
		}
		q->answered = 1;
		return;
	}
	x = lctx_find(q->pol, q->key);
	if (x && x->running && x->wait == q->token) {
		x->wait = 0;
		int n = push_answer(x->co, q->pol, q->op, r);
		free(q);
		lctx_resume(x, n);
		return;
	}
	free(q);                        /* the session is gone: a no-op */
}

static struct store_req *
new_req(lua_State *L, struct lctx *x, int op)
{
	struct store_req *q = calloc(1, sizeof *q);

	if (!q)
		luaL_error(L, "%s: out of memory", op == OP_GREYLIST ? "greylist" : "ratelimit");
	q->pol = x->pol;
	q->key = x->key;
	q->op = op;
	q->token = ++x->pol->next_token;
	q->in_call = 1;
	q->started = clock_mono();
	return q;
}

/* After the store's call: the answer now, or wait for it. */
static int
settle(lua_State *L, struct lctx *x, struct store_req *q, const char *what)
{
	q->in_call = 0;
	if (q->answered) {
		int n = push_answer(L, q->pol, q->op, &q->reply);
		free(q);
		return n;
	}
	/* Inside a metamethod or a sort/gsub callback a rule cannot wait: the
	 * late answer finds no one waiting for its token and is dropped. */
	if (!lua_isyieldable(L))
		return luaL_error(L, "%s: cannot wait for an answer here (metamethod or callback)", what);
	x->wait = q->token;
	return lua_yield(L, 0);
}

static int
l_greylist(lua_State *L)
{
	const char *ip = luaL_checkstring(L, 1);
	const char *sender = luaL_optstring(L, 2, "");
	const char *rcpt = luaL_checkstring(L, 3);
	struct lctx *x = need_store(L, "greylist");
	struct greylist_conf c = {
		.delay = opt_field(L, 4, "delay", 60),
		.tuple_ttl = opt_field(L, 4, "tuple_ttl", 48 * 3600),
		.allow_ttl = opt_field(L, 4, "allow_ttl", 35 * 86400),
		.v4_prefix = (int)opt_field(L, 4, "v4_prefix", 32),
		.v6_prefix = (int)opt_field(L, 4, "v6_prefix", 128),
	};
	struct state *st = x->pol->state;
	struct store_req *q = new_req(L, x, OP_GREYLIST);

	st->ops->greylist(st, &c, ip, sender, rcpt, store_clock(x->pol), on_answer, q);
	return settle(L, x, q, "greylist");
}

static int
l_ratelimit(lua_State *L)
{
	const char *key = luaL_checkstring(L, 1);
	double limit = luaL_checknumber(L, 2);
	double period = luaL_checknumber(L, 3);
	struct lctx *x = need_store(L, "ratelimit");
	int mode = RL_LEAKY;
	double count = opt_field(L, 4, "count", 1);

	luaL_argcheck(L, period > 0, 3, "period must be positive");
	if (lua_istable(L, 4)) {
		if (lua_getfield(L, 4, "mode") == LUA_TSTRING) {
			const char *m = lua_tostring(L, -1);
			if (!strcmp(m, "strict"))
				mode = RL_STRICT;
			else if (strcmp(m, "leaky") != 0)
				return luaL_error(L, "ratelimit: mode is \"leaky\" or \"strict\"");
		}
		lua_pop(L, 1);
	}
	struct state *st = x->pol->state;
	struct store_req *q = new_req(L, x, OP_RATELIMIT);

	st->ops->ratelimit(st, key, limit, period, mode, count, store_clock(x->pol), on_answer, q);
	return settle(L, x, q, "ratelimit");
}

void
lstore_open(lua_State *L)
{
	static const luaL_Reg fns[] = {
		{ "greylist", l_greylist },
		{ "ratelimit", l_ratelimit },
		{ NULL, NULL },
	};

	luaL_setfuncs(L, fns, 0);
}
