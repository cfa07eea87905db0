/*
 * replay.c - the world primitives in ruletest: answers from the record.
 *
 * stdlib/mxgate.lua routes every world primitive through C.replay(name,
 * ...) when C.world is "replay". Nothing here opens a socket or writes
 * state: the answer is the one the live primitive gave when the session
 * was recorded (or the one a hand-written case gives), pushed back as the
 * same Lua values.
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

static void
trace_call(struct replay_world *w, const char *name, const char *args, size_t alen, const json_t *res)
{
	struct buf line = BUF_INIT(0);

	/* Shown without the outer brackets: dns("x", "a") -> {"127.0.0.2"}, "ok". */
	buf_printf(&line, "%s(%.*s) -> ", name, (int)(alen > 2 ? alen - 2 : 0), args + 1);
	if (res) {
		size_t at = line.len;
		jsonw_canonical(&line, res);
		if (line.len - at >= 2) {       /* drop the array's brackets */
			memmove(line.p + at, line.p + at + 1, line.len - at - 2);
			buf_truncate(&line, line.len - 2);
		}
	} else
		buf_adds(&line, "UNANSWERED: nil, \"unanswered\"");
	w->trace(w->arg, buf_str(&line));
	buf_free(&line);
}

/* C.replay(name, ...): the recorded answer, or nil, "unanswered". */
static int
l_replay(lua_State *L)
{
	struct replay_world *w = lua_touserdata(L, lua_upvalueindex(1));
	const char *name = luaL_checkstring(L, 1), *args;
	struct replay_call *c;
	int top = lua_gettop(L), n;
	size_t alen;

	buf_reset(&w->enc);
	if (ljson_write_list(L, &w->enc, 2, top, LJSON_CANONICAL) != NULL)
		return luaL_error(L, "%s: out of memory", name);
	args = buf_str(&w->enc);
	alen = w->enc.len;
	c = find_answer(L, w, name, args, alen);
	if (c && json_is_array(c->res) && (n = push_results(L, c->res)) >= 0) {
		c->used++;
		w->answered++;
		if (w->trace)
			trace_call(w, name, args, alen, c->res);
		return n;
	}
	lua_settop(L, top);
	w->unanswered++;
	if (w->unanswered_cb)
		w->unanswered_cb(w->arg, name, args);
	if (w->trace)
		trace_call(w, name, args, alen, NULL);
	lua_pushnil(L);
	lua_pushliteral(L, "unanswered");
	return 2;
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

	lua_pushlightuserdata(L, w);
	lua_pushcclosure(L, l_replay, 1);
	lua_setfield(L, -2, "replay");
	if (w->trace) {
		lua_pushlightuserdata(L, w);
		lua_pushcclosure(L, l_trace, 1);
		lua_setfield(L, -2, "trace");
	}
	if (w->coverage) {
		lua_pushboolean(L, 1);
		lua_setfield(L, -2, "coverage");
	}
}
