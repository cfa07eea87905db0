/*
 * lua_prim.c - primitives rules call, and the way a waiting one resumes.
 *
 * A primitive that must wait starts its I/O, remembers which session asked
 * (by key, never by pointer: the session may be gone when the answer
 * comes) and yields. The answer arrives through lctx_resume(), which runs
 * the rule on from where it stopped. Rule code never sees the difference.
 */
#include <string.h>
#include <time.h>

#include <lauxlib.h>

#include "bridge.h"
#include "clock.h"
#include "conf.h"
#include "journal.h"
#include "log.h"
#include "session.h"

struct lctx *
lctx_of(lua_State *co)
{
	return *(struct lctx **)lua_getextraspace(co);
}

struct lctx *
lctx_find(struct lpolicy *pol, uint64_t key)
{
	struct lctx *x = pol->live[key % 256];

	while (x && x->key != key)
		x = x->hnext;
	return x;
}

/* Misuse (a primitive called while loading, not from a rule) raises. */
struct lctx *
lctx_need(lua_State *L, const char *what)
{
	struct lctx *x = lctx_of(L);

	if (!x || x->co != L)
		luaL_error(L, "%s: only inside a rule", what);
	return x;
}

static void
on_sleep(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct lctx *x = w->data;

	ev_timer_stop(loop, w);
	lctx_resume(x, 0);
}

/* sleep(seconds): the simplest yielding primitive (tarpitting, tests). */
static int
l_sleep(lua_State *L)
{
	double secs = luaL_checknumber(L, 1);
	struct lctx *x = lctx_need(L, "sleep");

	luaL_argcheck(L, secs >= 0 && secs <= 600, 1, "between 0 and 600 seconds");
	/* Checked before the timer starts: a failed yield must leave none behind. */
	if (!lua_isyieldable(L))
		return luaL_error(L, "sleep: cannot wait inside a metamethod or a gsub/sort callback");
	ev_timer_init(&x->sleep, on_sleep, secs, 0);
	x->sleep.data = x;
	ev_timer_start(x->pol->loop, &x->sleep);
	x->wait = ++x->pol->next_token;         /* any older answer is stale now */
	return lua_yield(L, 0);
}

/* log(message): an info line in the structured log, with the session id. */
static int
l_log(lua_State *L)
{
	struct lctx *x = lctx_of(L);
	const char *msg = luaL_checkstring(L, 1);

	log_event("rule_log", "sid", x && x->s ? x->s->sid : NULL, "msg", msg, NULL);
	return 0;
}

/* C.log(kind, rule, where, reason, text): the stdlib's warn() lines. */
static int
l_c_log(lua_State *L)
{
	struct lctx *x = lctx_of(L);
	struct session_info *i = x && x->s ? x->s : NULL;

	log_event(luaL_checkstring(L, 1), "sid", i ? i->sid : NULL,
	    "dir", i ? direction_str(i->direction) : NULL, "client", i ? i->client_ip : NULL,
	    "rule", luaL_optstring(L, 2, ""), "where", luaL_optstring(L, 3, ""),
	    "reason", luaL_optstring(L, 4, ""), "text", luaL_optstring(L, 5, ""), NULL);
	return 0;
}

/* in_networks(ip, { "192.0.2.0/24", ... }): is ip inside one of them? */
static int
l_in_networks(lua_State *L)
{
	const char *ip = luaL_checkstring(L, 1);
	struct conf_net addr, net;
	struct sockaddr_storage ss;

	if (lua_isnoneornil(L, 2)) {
		lua_pushboolean(L, 0);
		return 1;
	}
	luaL_checktype(L, 2, LUA_TTABLE);
	if (conf_parse_net(ip, &addr) < 0)
		return luaL_argerror(L, 1, "not an IP address");
	memset(&ss, 0, sizeof ss);
	if (addr.family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		in->sin_family = AF_INET;
		memcpy(&in->sin_addr, addr.addr, 4);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		in6->sin6_family = AF_INET6;
		memcpy(&in6->sin6_addr, addr.addr, 16);
	}
	for (lua_Integer i = 1; lua_geti(L, 2, i) != LUA_TNIL; i++) {
		const char *n = lua_tostring(L, -1);
		if (!n || conf_parse_net(n, &net) < 0)
			return luaL_error(L, "in_networks: entry %d is not a network", (int)i);
		lua_pop(L, 1);
		if (conf_net_match(&net, 1, (struct sockaddr *)&ss)) {
			lua_pushboolean(L, 1);
			return 1;
		}
	}
	lua_pushboolean(L, 0);
	return 1;
}

/*
 * C.journal_call(name, packed_args, packed_results): the stdlib records
 * each world primitive's question and answer in the session's journal.
 */
static int
l_journal_call(lua_State *L)
{
	struct lctx *x = lctx_of(L);
	struct buf b = BUF_INIT(0);
	size_t n;
	const char *name, *err;

	if (!x || !x->s || !x->s->journal)
		return 0;
	name = luaL_checklstring(L, 1, &n);
	luaL_checktype(L, 2, LUA_TTABLE);
	luaL_checktype(L, 3, LUA_TTABLE);
	jsonw_key(&b, "p");
	jsonw_str(&b, name, n);
	jsonw_key(&b, "a");
	err = ljson_write_packed(L, &b, 2, 0);
	jsonw_key(&b, "r");
	if (!err)
		err = ljson_write_packed(L, &b, 3, 0);
	/* When it was asked: ruletest's simulated store runs on this clock. */
	jsonw_key(&b, "t");
	buf_printf(&b, "%.3f", clock_wall() - x->s->start);
	if (!err)
		journal_call(x->s->journal, buf_str(&b), b.len);
	buf_free(&b);
	if (err)
		return luaL_error(L, "json: %s", err);
	return 0;
}

/*
 * listeners(): our own listening addresses, { { ip = "127.0.0.1",
 * port = 2525, direction = "inbound" }, ... } (rows 10 and 11).
 */
static int
l_listeners(lua_State *L)
{
	struct lctx *x = lctx_need(L, "listeners");
	const struct conf *c = x->s->conf;

	lua_createtable(L, c->nlisten, 0);
	for (int i = 0; i < c->nlisten; i++) {
		lua_createtable(L, 0, 3);
		lua_pushstring(L, c->listen[i].address);
		lua_setfield(L, -2, "ip");
		lua_pushinteger(L, c->listen[i].port);
		lua_setfield(L, -2, "port");
		lua_pushstring(L, direction_str(c->listen[i].direction));
		lua_setfield(L, -2, "direction");
		lua_rawseti(L, -2, i + 1);
	}
	return 1;
}

static int
l_now(lua_State *L)
{
	lua_pushnumber(L, clock_wall());
	return 1;
}

void
lprim_open(lua_State *L)
{
	static const luaL_Reg prims[] = {
		{ "sleep", l_sleep },
		{ "log", l_log },
		{ "now", l_now },
		{ "in_networks", l_in_networks },
		{ "listeners", l_listeners },
		{ NULL, NULL },
	};

	*(struct lctx **)lua_getextraspace(L) = NULL;
	lua_newtable(L);                 /* C */
	luaL_newlib(L, prims);
	ldns_open(L);
	lstore_open(L);
	lcallout_open(L);
	lua_setfield(L, -2, "primitives");
	lua_pushcfunction(L, l_c_log);
	lua_setfield(L, -2, "log");
	lua_pushcfunction(L, l_journal_call);
	lua_setfield(L, -2, "journal_call");
	ljson_open(L);
}
