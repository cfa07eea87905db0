/*
 * lua_callout.c - callout() and verify_sender() for rules.
 *
 *   local r = callout(s.rcpt, route)     -- route: the hosted domain's
 *   local r = verify_sender(s.sender)    -- the sender domain's MX
 *   -- r.result: "ok", "rejected" (before RCPT), "rcpt_rejected",
 *   --           "rcpt_deferred", "unreachable"
 *   -- r.code, r.stage, r.text, r.host, r.cached
 *
 * The rule yields while the SMTP dialogue runs; a cached answer returns
 * at once. Portal rows 6, 7, 8 (callout) and 9 (verify_sender).
 */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "bridge.h"
#include "callout.h"
#include "clock.h"
#include "metrics.h"

struct co_req {
	struct lpolicy       *pol;
	uint64_t              key;
	uint64_t              token;
	int                   in_call;
	int                   answered;
	struct callout_answer answer;
	double                started;      /* clock_mono() */
};

static int
push_answer(lua_State *L, const struct callout_answer *a)
{
	lua_createtable(L, 0, 6);
	lua_pushstring(L, callout_result_str(a->result));
	lua_setfield(L, -2, "result");
	lua_pushinteger(L, a->code);
	lua_setfield(L, -2, "code");
	lua_pushstring(L, a->stage);
	lua_setfield(L, -2, "stage");
	lua_pushstring(L, a->text);
	lua_setfield(L, -2, "text");
	lua_pushstring(L, a->host);
	lua_setfield(L, -2, "host");
	lua_pushboolean(L, a->cached);
	lua_setfield(L, -2, "cached");
	return 1;
}

static void
on_answer(void *arg, const struct callout_answer *a)
{
	struct co_req *r = arg;
	struct lctx *x;
	uint64_t token = r->token;

	metrics_observe(MH_CALLOUT, clock_mono() - r->started);
	if (r->in_call) {
		r->answer = *a;
		r->answered = 1;
		return;
	}
	x = lctx_find(r->pol, r->key);
	free(r);
	if (x && x->running && x->wait == token) {
		x->wait = 0;
		lctx_resume(x, push_answer(x->co, a));
	}
}

static int
start(lua_State *L, const char *what, const char *route, const char *address)
{
	struct lctx *x = lctx_need(L, what);
	struct co_req *r;
	uint64_t token;

	if (!x->pol->callout)
		return luaL_error(L, "%s: no callout client in this process", what);
	if (!(r = calloc(1, sizeof *r)))
		return luaL_error(L, "%s: out of memory", what);
	r->pol = x->pol;
	r->key = x->key;
	r->token = token = ++x->pol->next_token;
	r->in_call = 1;
	r->started = clock_mono();
	callout_verify(x->pol->callout, route, NULL, address, on_answer, r);
	if (r->answered) {
		int n = push_answer(L, &r->answer);
		free(r);
		return n;
	}
	r->in_call = 0;
	/* Inside a metamethod or a sort/gsub callback a rule cannot wait: the
	 * late answer finds no one waiting for its token and is dropped. */
	if (!lua_isyieldable(L))
		return luaL_error(L, "%s: cannot wait for an answer here (metamethod or callback)", what);
	x->wait = token;
	return lua_yield(L, 0);
}

static int
l_callout(lua_State *L)
{
	const char *address = luaL_checkstring(L, 1);
	const char *route = luaL_optstring(L, 2, NULL);

	return start(L, "callout", route && *route ? route : NULL, address);
}

static int
l_verify_sender(lua_State *L)
{
	const char *address = luaL_checkstring(L, 1);

	luaL_argcheck(L, *address, 1, "the null sender is never verified");
	return start(L, "verify_sender", NULL, address);
}

void
lcallout_open(lua_State *L)
{
	static const luaL_Reg fns[] = {
		{ "callout", l_callout },
		{ "verify_sender", l_verify_sender },
		{ NULL, NULL },
	};

	luaL_setfuncs(L, fns, 0);
}
