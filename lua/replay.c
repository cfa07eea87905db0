/*
 * replay.c - the world primitives in ruletest: answers from the record.
 *
 * stdlib/mxgate.lua routes every world primitive through C.replay(name,
 * ...) when C.world is "replay". Nothing here opens a socket or writes
 * real state: the answer is the one the live primitive gave when the
 * session was recorded (or the one a hand-written case gives), pushed back
 * as the same Lua values; or, where the record is silent, the simulated
 * store's, an earlier session's or (--live) the network's, each marked with
 * where it came from (replay.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <lauxlib.h>

#include "bridge.h"
#include "replay.h"

/* Pushes the elements of the results array (a null among them: nil). */
static int
push_results(lua_State *L, const json_t *res)
{
	size_t i, n = json_array_size(res);
	json_t *v;

	luaL_checkstack(L, (int)n + 4, "replay results");
	json_array_foreach((json_t *)res, i, v) {
		if (json_is_null(v))
			lua_pushnil(L);
		else
			ljson_push(L, v);
	}
	return (int)n;
}

/* ---------------- C.replay and C.trace ---------------- */

/* Does a hand-written pattern match the arguments first..top? */
static int
pattern_matches(lua_State *L, const struct replay_call *c, int first)
{
	int nargs = lua_gettop(L) - first + 1;

	for (int i = 0; i < c->npattern; i++) {
		const char *p = c->pattern[i], *a;
		size_t plen = strlen(p), alen;

		if (!strcmp(p, "*"))
			continue;
		if (i >= nargs)
			return 0;
		switch (lua_type(L, first + i)) {
		case LUA_TSTRING:
		case LUA_TNUMBER:
			a = lua_tolstring(L, first + i, &alen);  /* a copy: numbers stay numbers */
			break;
		case LUA_TBOOLEAN:
			a = lua_toboolean(L, first + i) ? "true" : "false";
			alen = strlen(a);
			break;
		case LUA_TNIL:
			a = "nil";
			alen = 3;
			break;
		default:
			return 0;
		}
		/* Case-insensitive: DNS names and addresses are. */
		if (alen != plen || strncasecmp(a, p, plen) != 0)
			return 0;
	}
	return 1;
}

static struct replay_call *
find_answer(lua_State *L, struct replay_world *w, const char *name, const char *args, size_t alen)
{
	for (int i = 0; i < w->ncalls; i++) {
		struct replay_call *c = &w->calls[i];

		if (strcmp(c->name, name) != 0)
			continue;
		if (c->args) {
			if (!c->used && c->args_len == alen && memcmp(c->args, args, alen) == 0)
				return c;
			continue;
		}
		/* A hand-written sequence: only its first line is tried for a match. */
		if (c->group != i || !pattern_matches(L, c, 2))
			continue;
		struct replay_call *last = c;
		for (int j = i; j < w->ncalls; j++) {
			struct replay_call *m = &w->calls[j];
			if (m->args || m->group != i)
				continue;
			if (!m->used)
				return m;
			last = m;
		}
		return last;
	}
	return NULL;
}

static const char *const src_names[SRC_N] = {
	"recorded", "borrowed", "simulated", "live", "unanswered",
};

const char *
replay_src_name(enum replay_src src)
{
	return (unsigned)src < SRC_N ? src_names[src] : "?";
}

/*
 * An answer and where it came from: the session's weakest source, the
 * trace line (dns("x", "a") -> {"127.0.0.2"}, "ok"   [recorded]) and, when
 * it is not the record's, the diff's line. res: the results as canonical
 * JSON ("[...]"), NULL when unanswered.
 */
static void
note(struct replay_world *w, enum replay_src src, const char *name, const char *args, size_t alen,
    const char *res, size_t rlen, const char *from)
{
	struct buf line = BUF_INIT(0);

	w->used |= 1u << src;
	if (src != SRC_UNANSWERED && src > w->weakest)
		w->weakest = src;
	if (!w->trace && (src == SRC_RECORDED || src == SRC_UNANSWERED || !w->answered_cb))
		return;
	/* Shown without the outer brackets. */
	buf_printf(&line, "%s(%.*s) -> ", name, (int)(alen > 2 ? alen - 2 : 0), args + 1);
	if (res)
		buf_printf(&line, "%.*s", (int)(rlen > 2 ? rlen - 2 : 0), res + 1);
	else
		buf_adds(&line, "UNANSWERED: nil, \"unanswered\"");
	if (src != SRC_RECORDED && src != SRC_UNANSWERED && w->answered_cb)
		w->answered_cb(w->arg, src, buf_str(&line));
	if (w->trace) {
		if (src == SRC_BORROWED)
			buf_printf(&line, "   [borrowed from %s]", from ? from : "?");
		else if (src != SRC_UNANSWERED)
			buf_printf(&line, "   [%s]", src_names[src]);
		w->trace(w->arg, buf_str(&line));
	}
	buf_free(&line);
}

/* note() for results in a JSON value. */
static void
note_json(struct replay_world *w, enum replay_src src, const char *name, const char *args, size_t alen,
    const json_t *res, const char *from)
{
	struct buf r = BUF_INIT(0);

	if (w->trace || (src != SRC_RECORDED && w->answered_cb))
		jsonw_canonical(&r, res);
	note(w, src, name, args, alen, r.p ? r.p : "[]", r.len, from);
	buf_free(&r);
}

/* note() for results on L's stack from first to the top. */
static void
note_stack(lua_State *L, struct replay_world *w, enum replay_src src, const char *name,
    const char *args, size_t alen, int first)
{
	struct buf r = BUF_INIT(0);

	if (w->trace || w->answered_cb)
		ljson_write_list(L, &r, first, lua_gettop(L), LJSON_CANONICAL);
	note(w, src, name, args, alen, r.p ? r.p : "[]", r.len, NULL);
	buf_free(&r);
}

static int
is_store(const char *name)
{
	return !strcmp(name, "greylist") || !strcmp(name, "ratelimit");
}

/* Questions about the world outside: an earlier session's answer holds for a while. */
static int
is_network(const char *name)
{
	return !strcmp(name, "dns") || !strcmp(name, "callout") || !strcmp(name, "verify_sender");
}

static char ask_marker;       /* C.ask: "ask the network" (--live) */

/*
 * C.replay(name, ...): the record's answer, the simulation's, another
 * session's, the ask marker (--live), or nil, "unanswered".
 */
static int
l_replay(lua_State *L)
{
	struct replay_world *w = lua_touserdata(L, lua_upvalueindex(1));
	const char *name = luaL_checkstring(L, 1), *args, *from = NULL;
	struct replay_call *c;
	const json_t *res;
	int top = lua_gettop(L), n;
	size_t alen;

	buf_reset(&w->enc);
	if (ljson_write_list(L, &w->enc, 2, top, LJSON_CANONICAL) != NULL)
		return luaL_error(L, "%s: out of memory", name);
	args = buf_str(&w->enc);
	alen = w->enc.len;
	c = find_answer(L, w, name, args, alen);
	if (c && c->args && c->t >= 0 && w->start > 0 && w->start + c->t > w->now)
		w->now = w->start + c->t;      /* the simulated clock: when this was asked */
	if (w->simulate && is_store(name)) {
		/* The simulated store sees every call in time order, answered from
		 * the record or not: the live primitive on the session's clock. */
		lua_pushvalue(L, lua_upvalueindex(!strcmp(name, "greylist") ? 2 : 3));
		for (int i = 2; i <= top; i++)
			lua_pushvalue(L, i);
		lua_call(L, top - 1, LUA_MULTRET);
		if (!c || !json_is_array(c->res)) {
			note_stack(L, w, SRC_SIMULATED, name, args, alen, top + 1);
			w->answered++;
			return lua_gettop(L) - top;
		}
		lua_settop(L, top);
	}
	if (c && json_is_array(c->res) && (n = push_results(L, c->res)) >= 0) {
		c->used++;
		w->answered++;
		note_json(w, SRC_RECORDED, name, args, alen, c->res, NULL);
		return n;
	}
	lua_settop(L, top);
	if (!strcmp(name, "now") && w->now > 0) {
		lua_pushnumber(L, w->now);
		w->answered++;
		note_stack(L, w, SRC_SIMULATED, name, args, alen, top + 1);
		return 1;
	}
	if (is_network(name) && w->borrow && (res = w->borrow(w->arg, name, args, alen, &from)) != NULL &&
	    json_is_array(res) && (n = push_results(L, res)) >= 0) {
		w->answered++;
		note_json(w, SRC_BORROWED, name, args, alen, res, from);
		return n;
	}
	if (is_network(name) && w->live) {
		lua_pushlightuserdata(L, &ask_marker);
		return 1;
	}
	w->unanswered++;
	if (w->unanswered_cb)
		w->unanswered_cb(w->arg, name, args);
	note(w, SRC_UNANSWERED, name, args, alen, NULL, 0, NULL);
	lua_pushnil(L);
	lua_pushliteral(L, "unanswered");
	return 2;
}

/* C.heard(name, results, ...): what the network answered now (--live). */
static int
l_heard(lua_State *L)
{
	struct replay_world *w = lua_touserdata(L, lua_upvalueindex(1));
	const char *name = luaL_checkstring(L, 1);
	struct buf a = BUF_INIT(0), r = BUF_INIT(0);

	luaL_checktype(L, 2, LUA_TTABLE);
	ljson_write_list(L, &a, 3, lua_gettop(L), LJSON_CANONICAL);
	ljson_write_packed(L, &r, 2, LJSON_CANONICAL);
	w->answered++;
	note(w, SRC_LIVE, name, buf_str(&a), a.len, buf_str(&r), r.len, NULL);
	buf_free(&a);
	buf_free(&r);
	return 0;
}

/* A session fact the record did not keep (s.headers of an older journal):
 * unanswered, as a question the record cannot answer is. */
static int
l_unrecorded(lua_State *L)
{
	struct replay_world *w = lua_touserdata(L, lua_upvalueindex(1));
	const char *what = luaL_checkstring(L, 1);
	char line[200];

	w->unanswered++;
	if (w->unanswered_cb)
		w->unanswered_cb(w->arg, what, "");
	if (w->trace) {
		snprintf(line, sizeof line, "%s -> UNANSWERED: not in the record, read as \"\"", what);
		w->trace(w->arg, line);
	}
	return 0;
}

/* C.trace(kind, hook, rule, where, action, reason): one line of the trace. */
static int
l_trace(lua_State *L)
{
	struct replay_world *w = lua_touserdata(L, lua_upvalueindex(1));
	const char *kind = luaL_optstring(L, 1, "");
	const char *rule = luaL_optstring(L, 3, "");
	const char *where = luaL_optstring(L, 4, "");
	const char *action = luaL_optstring(L, 5, "next");
	const char *reason = luaL_optstring(L, 6, "");
	char line[1200];

	if (!w->trace)
		return 0;
	if (!strcmp(kind, "log"))
		snprintf(line, sizeof line, "log (%s): %s", where, reason);
	else if (!strcmp(kind, "error"))
		snprintf(line, sizeof line, "rule %s (%s): error: %s", rule, where, reason);
	else
		snprintf(line, sizeof line, "rule %s (%s): %s%s%s", rule, where, action,
		    *reason ? " " : "", reason);
	w->trace(w->arg, line);
	return 0;
}

void
replay_world_open(lua_State *L, void *world)
{
	struct replay_world *w = world;

	/* The live greylist() and ratelimit(): the simulation runs them. */
	lua_pushlightuserdata(L, w);
	lua_getfield(L, -2, "primitives");
	lua_getfield(L, -1, "greylist");
	lua_getfield(L, -2, "ratelimit");
	lua_remove(L, -3);
	lua_pushcclosure(L, l_replay, 3);
	lua_setfield(L, -2, "replay");
	if (w->live) {
		lua_pushlightuserdata(L, &ask_marker);
		lua_setfield(L, -2, "ask");
		lua_pushlightuserdata(L, w);
		lua_pushcclosure(L, l_heard, 1);
		lua_setfield(L, -2, "heard");
	}
	if (w->trace) {
		lua_pushlightuserdata(L, w);
		lua_pushcclosure(L, l_trace, 1);
		lua_setfield(L, -2, "trace");
	}
	lua_pushlightuserdata(L, w);
	lua_pushcclosure(L, l_unrecorded, 1);
	lua_setfield(L, LUA_REGISTRYINDEX, "mxgate.unrecorded");
	if (w->coverage) {
		lua_pushboolean(L, 1);
		lua_setfield(L, -2, "coverage");
	}
}
