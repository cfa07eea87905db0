/*
 * lua_state.c - greylist() and ratelimit() for rules, on the state store.
 *
 *   local g = greylist(s.ip, s.sender, s.rcpt, config.greylist)
 *   -- g.pass (boolean), g.verdict ("allowed", "retry", "new", "early",
 *   -- "error"), g.wait (seconds before a retry passes)
 *
 *   local r = ratelimit("sender:" .. s.sender, 100, 3600, { mode = "leaky" })
 *   -- r.over (boolean), r.rate (per period, Exim's smoothed rate)
 *
 * Both are one short LMDB transaction: they answer at once, never yield.
 */
#include <string.h>
#include <time.h>

#include <lauxlib.h>

#include "bridge.h"
#include "log.h"
#include "state.h"

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

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

static struct state *
need_state(lua_State *L, const char *what)
{
	struct lctx *x = lctx_need(L, what);

	if (!x->pol->state)
		luaL_error(L, "%s: no state store in this process", what);
	return x->pol->state;
}

static int
l_greylist(lua_State *L)
{
	static const char *names[] = {
		[GREY_PASS_ALLOWED] = "allowed", [GREY_PASS_RETRY] = "retry",
		[GREY_DEFER_NEW] = "new", [GREY_DEFER_EARLY] = "early", [GREY_ERROR] = "error",
	};
	const char *ip = luaL_checkstring(L, 1);
	const char *sender = luaL_optstring(L, 2, "");
	const char *rcpt = luaL_checkstring(L, 3);
	struct state *st = need_state(L, "greylist");
	struct greylist_conf c = {
		.delay = opt_field(L, 4, "delay", 60),
		.tuple_ttl = opt_field(L, 4, "tuple_ttl", 48 * 3600),
		.allow_ttl = opt_field(L, 4, "allow_ttl", 35 * 86400),
		.v4_prefix = (int)opt_field(L, 4, "v4_prefix", 32),
		.v6_prefix = (int)opt_field(L, 4, "v6_prefix", 128),
	};
	struct greylist_result r;

	if (state_greylist(st, &c, ip, sender, rcpt, now(), &r) < 0) {
		log_event("state_error", "op", "greylist", "error", state_error(st), NULL);
		r.verdict = GREY_ERROR;
		r.wait = 0;
	}
	lua_createtable(L, 0, 3);
	lua_pushboolean(L, r.verdict == GREY_PASS_ALLOWED || r.verdict == GREY_PASS_RETRY);
	lua_setfield(L, -2, "pass");
	lua_pushstring(L, names[r.verdict]);
	lua_setfield(L, -2, "verdict");
	lua_pushnumber(L, r.wait);
	lua_setfield(L, -2, "wait");
	return 1;
}

static int
l_ratelimit(lua_State *L)
{
	const char *key = luaL_checkstring(L, 1);
	double limit = luaL_checknumber(L, 2);
	double period = luaL_checknumber(L, 3);
	struct state *st = need_state(L, "ratelimit");
	int mode = RL_LEAKY;
	double count = opt_field(L, 4, "count", 1);
	struct ratelimit_result r;

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
	if (state_ratelimit(st, key, limit, period, mode, count, now(), &r) < 0) {
		log_event("state_error", "op", "ratelimit", "error", state_error(st), NULL);
		luaL_pushfail(L);
		lua_pushstring(L, state_error(st));
		return 2;
	}
	lua_createtable(L, 0, 2);
	lua_pushboolean(L, r.over);
	lua_setfield(L, -2, "over");
	lua_pushnumber(L, r.rate);
	lua_setfield(L, -2, "rate");
	return 1;
}

void
lstate_open(lua_State *L)
{
	static const luaL_Reg fns[] = {
		{ "greylist", l_greylist },
		{ "ratelimit", l_ratelimit },
		{ NULL, NULL },
	};

	luaL_setfuncs(L, fns, 0);
}
