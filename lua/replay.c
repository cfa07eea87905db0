/*
 * replay.c - the world primitives in ruletest: answers from the record.
 *
 * stdlib/mxgate.lua routes every world primitive through C.replay(name,
 * ...) when C.world is "replay". Nothing here opens a socket or writes
 * state: the answer is the one the live primitive gave when the session
 * was recorded (or the one a hand-written case gives), pushed back as the
 * same Lua values.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <lauxlib.h>

#include "bridge.h"
#include "replay.h"

#define ENC_DEPTH 16

/* ---------------- canonical JSON of Lua values ---------------- */

struct enc {
	struct replay_world *w;
	size_t n;
	int    err;
};

static void
put(struct enc *e, const char *s, size_t n)
{
	struct replay_world *w = e->w;

	if (e->n + n + 1 > w->enc_cap) {
		size_t cap = w->enc_cap ? w->enc_cap * 2 : 1024;
		char *p;
		while (cap < e->n + n + 1)
			cap *= 2;
		if (!(p = realloc(w->enc, cap))) {
			e->err = 1;
			return;
		}
		w->enc = p;
		w->enc_cap = cap;
	}
	memcpy(w->enc + e->n, s, n);
	e->n += n;
	w->enc[e->n] = '\0';
}

static void
put_string(struct enc *e, const char *s, size_t n)
{
	size_t i = 0, run;

	put(e, "\"", 1);
	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		for (run = i; run < n && (unsigned char)s[run] >= 0x20 && s[run] != '"' &&
		    s[run] != '\\' && s[run] != 0x7f; run++)
			;
		if (run > i) {
			put(e, s + i, run - i);
			i = run;
			continue;
		}
		if (c == '"' || c == '\\') {
			char esc[2] = { '\\', (char)c };
			put(e, esc, 2);
		} else {
			char esc[8];
			snprintf(esc, sizeof esc, "\\u%04x", c);
			put(e, esc, 6);
		}
		i++;
	}
	put(e, "\"", 1);
}

struct key {
	const char *s;              /* a string key: the table keeps it alive */
	size_t      n;
	char        num[48];        /* a number key, as Lua's tostring writes it */
	int         isnum, isint;
	lua_Integer inum;
	lua_Number  fnum;
};

static const char *
key_text(const struct key *k, size_t *n)
{
	if (k->isnum) {
		*n = strlen(k->num);
		return k->num;
	}
	*n = k->n;
	return k->s;
}

static int
cmp_key(const void *a, const void *b)
{
	size_t xn, yn;
	const char *x = key_text(a, &xn), *y = key_text(b, &yn);
	int c = memcmp(x, y, xn < yn ? xn : yn);

	return c ? c : (xn > yn) - (xn < yn);
}

static void enc_value(lua_State *L, struct enc *e, int idx, int depth);

static void
enc_table(lua_State *L, struct enc *e, int idx, int depth)
{
	lua_Integer n = 0, max = 0;
	int array = 1, nkeys = 0;
	struct key *keys;

	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pop(L, 1);
		n++;
		if (array && lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
			if (lua_tointeger(L, -1) > max)
				max = lua_tointeger(L, -1);
		} else
			array = 0;
	}
	if (array && n == max) {                /* also the empty table: [] */
		put(e, "[", 1);
		for (lua_Integer i = 1; i <= max; i++) {
			if (i > 1)
				put(e, ",", 1);
			lua_rawgeti(L, idx, i);
			enc_value(L, e, -1, depth + 1);
			lua_pop(L, 1);
		}
		put(e, "]", 1);
		return;
	}
	/* An object: keys in byte order, whatever the hash order of this state. */
	if (!(keys = calloc((size_t)n, sizeof *keys))) {
		e->err = 1;
		return;
	}
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		struct key *k = &keys[nkeys];
		lua_pop(L, 1);
		if (nkeys >= n)
			continue;
		if (lua_type(L, -1) == LUA_TSTRING) {
			k->s = lua_tolstring(L, -1, &k->n);
		} else if (lua_type(L, -1) == LUA_TNUMBER) {
			k->isnum = 1;
			if ((k->isint = lua_isinteger(L, -1))) {
				k->inum = lua_tointeger(L, -1);
				snprintf(k->num, sizeof k->num, "%lld", (long long)k->inum);
			} else {
				k->fnum = lua_tonumber(L, -1);
				snprintf(k->num, sizeof k->num, "%.14g", (double)k->fnum);
			}
		} else
			continue;                       /* not representable: skipped */
		nkeys++;
	}
	qsort(keys, (size_t)nkeys, sizeof *keys, cmp_key);
	put(e, "{", 1);
	for (int i = 0; i < nkeys; i++) {
		size_t kn;
		const char *ks = key_text(&keys[i], &kn);
		if (i)
			put(e, ",", 1);
		put_string(e, ks, kn);
		put(e, ":", 1);
		if (!keys[i].isnum)
			lua_pushlstring(L, keys[i].s, keys[i].n);
		else if (keys[i].isint)
			lua_pushinteger(L, keys[i].inum);
		else
			lua_pushnumber(L, keys[i].fnum);
		lua_rawget(L, idx);
		enc_value(L, e, -1, depth + 1);
		lua_pop(L, 1);
	}
	put(e, "}", 1);
	free(keys);
}

static void
enc_value(lua_State *L, struct enc *e, int idx, int depth)
{
	char num[64];
	int n;

	idx = lua_absindex(L, idx);
	if (e->err)
		return;
	if (depth > ENC_DEPTH || !lua_checkstack(L, 6)) {
		put(e, "null", 4);
		return;
	}
	switch (lua_type(L, idx)) {
	case LUA_TBOOLEAN:
		if (lua_toboolean(L, idx))
			put(e, "true", 4);
		else
			put(e, "false", 5);
		break;
	case LUA_TNUMBER:
		if (lua_isinteger(L, idx))
			n = snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, idx));
		else if (isfinite(lua_tonumber(L, idx)))
			n = snprintf(num, sizeof num, "%.17g", lua_tonumber(L, idx));
		else
			n = snprintf(num, sizeof num, "null");
		put(e, num, (size_t)n);
		break;
	case LUA_TSTRING: {
		size_t len;
		const char *s = lua_tolstring(L, idx, &len);
		put_string(e, s, len);
		break;
	}
	case LUA_TTABLE:
		enc_table(L, e, idx, depth);
		break;
	default:                                /* nil, json_null, functions... */
		put(e, "null", 4);
	}
}

/* The arguments first..top as one canonical JSON array, in w->enc. */
static size_t
encode_args(lua_State *L, struct replay_world *w, int first)
{
	struct enc e = { w, 0, 0 };
	int top = lua_gettop(L);

	put(&e, "[", 1);
	for (int i = first; i <= top; i++) {
		if (i > first)
			put(&e, ",", 1);
		enc_value(L, &e, i, 1);
	}
	put(&e, "]", 1);
	return e.err ? 0 : e.n;
}

/* ---------------- JSON results back to Lua values ---------------- */

/* Pushes the elements of a JSON array (a null among them: nil); -1 if not one. */
static int
push_results(lua_State *L, const char *s, size_t len)
{
	int top = lua_gettop(L), t, n;

	if (ljson_decode(L, s, len) < 0 || !lua_istable(L, -1)) {
		lua_settop(L, top);
		return -1;
	}
	t = lua_gettop(L);
	n = (int)lua_rawlen(L, t);
	luaL_checkstack(L, n, "replay results");
	for (int i = 1; i <= n; i++) {
		if (lua_rawgeti(L, t, i) == LUA_TLIGHTUSERDATA) {
			lua_pop(L, 1);
			lua_pushnil(L);
		}
	}
	lua_remove(L, t);
	return n;
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
trace_call(struct replay_world *w, const char *name, const char *args, size_t alen,
    const char *res, size_t rlen)
{
	char line[1200];

	/* Shown without the outer brackets: dns("x", "a") -> {"127.0.0.2"}, "ok". */
	if (res)
		snprintf(line, sizeof line, "%s(%.*s) -> %.*s", name, (int)(alen > 2 ? alen - 2 : 0),
		    args + 1, (int)(rlen > 2 ? rlen - 2 : 0), res + 1);
	else
		snprintf(line, sizeof line, "%s(%.*s) -> UNANSWERED: nil, \"unanswered\"", name,
		    (int)(alen > 2 ? alen - 2 : 0), args + 1);
	w->trace(w->arg, line);
}

/* C.replay(name, ...): the recorded answer, or nil, "unanswered". */
static int
l_replay(lua_State *L)
{
	struct replay_world *w = lua_touserdata(L, lua_upvalueindex(1));
	const char *name = luaL_checkstring(L, 1);
	size_t alen = encode_args(L, w, 2);
	const char *args = w->enc;
	struct replay_call *c;
	int top = lua_gettop(L), n;

	if (!alen)
		return luaL_error(L, "%s: out of memory", name);
	c = find_answer(L, w, name, args, alen);
	if (c && (n = push_results(L, c->res, c->res_len)) >= 0) {
		c->used++;
		w->answered++;
		if (w->trace)
			trace_call(w, name, w->enc, alen, c->res, c->res_len);
		return n;
	}
	lua_settop(L, top);
	w->unanswered++;
	if (w->unanswered_cb)
		w->unanswered_cb(w->arg, name, w->enc);
	if (w->trace)
		trace_call(w, name, w->enc, alen, NULL, 0);
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
}
