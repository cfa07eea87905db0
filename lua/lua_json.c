/*
 * lua_json.c - JSON to and from Lua values (journal, replay, json_encode
 * and json_decode), on the one codec of engine/lib/json.h.
 *
 * Decoding is jansson's: a tree, then Lua values. A JSON null inside an
 * array decodes to json_null (a light userdata) so arrays keep their
 * length; in an object it is simply absent. Encoding writes with the
 * one writer; LJSON_CANONICAL gives replay.h's canonical form (keys in
 * byte order, what JSON cannot hold written as null) so a recorded
 * question and a replayed one compare as bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "bridge.h"

#define CANON_DEPTH 16              /* canonical form: deeper values are null */

/* ---------------- encode ---------------- */

struct key {
	const char *s;              /* a string key: the table keeps it alive */
	size_t      n;
	char        num[48];        /* a number key, as Lua's tostring writes it */
	int         isnum, isint;
	lua_Integer inum;
	lua_Number  fnum;
};

static int
cmp_key(const void *a, const void *b)
{
	const struct key *x = a, *y = b;
	const char *xs = x->isnum ? x->num : x->s, *ys = y->isnum ? y->num : y->s;
	size_t xn = x->isnum ? strlen(x->num) : x->n, yn = y->isnum ? strlen(y->num) : y->n;
	int c = memcmp(xs, ys, xn < yn ? xn : yn);

	return c ? c : (xn > yn) - (xn < yn);
}

static const char *enc_value(lua_State *L, struct buf *b, int idx, int depth, int flags);

/* 1..n without holes (also the empty table): an array of n. */
static int
is_array(lua_State *L, int idx, lua_Integer *len)
{
	lua_Integer n = 0, max = 0;

	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pop(L, 1);
		if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) {
			lua_pop(L, 1);
			return 0;
		}
		n++;
		if (lua_tointeger(L, -1) > max)
			max = lua_tointeger(L, -1);
	}
	*len = max;
	return n == max;
}

static const char *
enc_object(lua_State *L, struct buf *b, int idx, int depth, int flags)
{
	struct key *keys;
	int n = 0, cap = 0;
	const char *err = NULL;

	for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1))
		cap++;
	if (!(keys = calloc((size_t)cap + 1, sizeof *keys)))
		return "out of memory";
	for (lua_pushnil(L); lua_next(L, idx); ) {
		struct key *k = &keys[n];
		lua_pop(L, 1);
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
		} else if (flags & LJSON_CANONICAL) {
			continue;               /* not representable: skipped */
		} else {
			lua_pop(L, 1);
			free(keys);
			return "table keys must be strings";
		}
		if (n < cap)
			n++;
	}
	if (flags & LJSON_CANONICAL)
		qsort(keys, (size_t)n, sizeof *keys, cmp_key);
	jsonw_open(b, '{');
	for (int i = 0; i < n && !err; i++) {
		struct key *k = &keys[i];
		if (k->isnum)
			jsonw_key(b, k->num);
		else
			jsonw_keyn(b, k->s, k->n);
		if (!k->isnum)
			lua_pushlstring(L, k->s, k->n);
		else if (k->isint)
			lua_pushinteger(L, k->inum);
		else
			lua_pushnumber(L, k->fnum);
		lua_rawget(L, idx);
		err = enc_value(L, b, -1, depth + 1, flags);
		lua_pop(L, 1);
	}
	jsonw_close(b, '}');
	free(keys);
	return err;
}

/* Writes the value at idx (which stays); NULL, or why it cannot. */
static const char *
enc_value(lua_State *L, struct buf *b, int idx, int depth, int flags)
{
	idx = lua_absindex(L, idx);
	if (b->err)
		return b->err == BUF_NOMEM ? "out of memory" : "too long";
	if (depth > (flags & LJSON_CANONICAL ? CANON_DEPTH : JSON_MAX_DEPTH) || !lua_checkstack(L, 6)) {
		if (flags & LJSON_CANONICAL) {
			jsonw_null(b);
			return NULL;
		}
		return "nested too deep";
	}
	switch (lua_type(L, idx)) {
	case LUA_TNIL:
	case LUA_TLIGHTUSERDATA:
		jsonw_null(b);
		break;
	case LUA_TBOOLEAN:
		jsonw_bool(b, lua_toboolean(L, idx));
		break;
	case LUA_TNUMBER:
		if (lua_isinteger(L, idx))
			jsonw_int(b, (long long)lua_tointeger(L, idx));
		else
			jsonw_num(b, (double)lua_tonumber(L, idx));
		break;
	case LUA_TSTRING: {
		size_t n;
		const char *s = lua_tolstring(L, idx, &n);
		jsonw_str(b, s, n);
		break;
	}
	case LUA_TTABLE: {
		lua_Integer len;
		const char *err = NULL;
		if (!is_array(L, idx, &len))
			return enc_object(L, b, idx, depth, flags);
		jsonw_open(b, '[');
		for (lua_Integer i = 1; i <= len && !err; i++) {
			lua_rawgeti(L, idx, i);
			err = enc_value(L, b, -1, depth + 1, flags);
			lua_pop(L, 1);
		}
		jsonw_close(b, ']');
		return err;
	}
	default:
		if (flags & LJSON_CANONICAL)
			jsonw_null(b);
		else
			return "cannot encode a function, thread or userdata";
	}
	return b->err ? (b->err == BUF_NOMEM ? "out of memory" : "too long") : NULL;
}

const char *
ljson_write(lua_State *L, struct buf *b, int idx, int flags)
{
	return enc_value(L, b, idx, 0, flags);
}

/* The values first..last (nil as null) as one JSON array. */
const char *
ljson_write_list(lua_State *L, struct buf *b, int first, int last, int flags)
{
	const char *err = NULL;

	jsonw_open(b, '[');
	for (int i = first; i <= last && !err; i++)
		err = enc_value(L, b, i, 1, flags);
	jsonw_close(b, ']');
	return err;
}

/* A table.pack()ed table (with .n) as a JSON array, nils as null. */
const char *
ljson_write_packed(lua_State *L, struct buf *b, int idx, int flags)
{
	const char *err = NULL;
	lua_Integer n;

	idx = lua_absindex(L, idx);
	lua_getfield(L, idx, "n");
	n = lua_tointeger(L, -1);
	lua_pop(L, 1);
	jsonw_open(b, '[');
	for (lua_Integer i = 1; i <= n && !err; i++) {
		lua_rawgeti(L, idx, i);
		err = enc_value(L, b, -1, 1, flags);
		lua_pop(L, 1);
	}
	jsonw_close(b, ']');
	return err;
}

/* json_encode(value) -> text; raises on what JSON cannot hold. */
static int
l_json_encode(lua_State *L)
{
	struct buf b = BUF_INIT(0);
	const char *err;

	luaL_checkany(L, 1);
	if ((err = ljson_write(L, &b, 1, 0)) != NULL) {
		buf_free(&b);
		return luaL_error(L, "json: %s", err);
	}
	lua_pushlstring(L, buf_str(&b), b.len);
	buf_free(&b);
	return 1;
}

/* ---------------- decode ---------------- */

void
ljson_push(lua_State *L, const json_t *v)
{
	luaL_checkstack(L, 4, "json");
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		const char *k;
		json_t *m;
		lua_createtable(L, 0, (int)json_object_size(v));
		json_object_foreach((json_t *)v, k, m) {
			if (json_is_null(m))
				continue;       /* a null member: absent */
			ljson_push(L, m);
			lua_setfield(L, -2, k);
		}
		break;
	}
	case JSON_ARRAY: {
		size_t i;
		json_t *e;
		lua_createtable(L, (int)json_array_size(v), 0);
		json_array_foreach((json_t *)v, i, e) {
			ljson_push(L, e);
			lua_rawseti(L, -2, (lua_Integer)i + 1);
		}
		break;
	}
	case JSON_STRING:
		lua_pushlstring(L, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		lua_pushinteger(L, (lua_Integer)json_integer_value(v));
		break;
	case JSON_REAL:
		lua_pushnumber(L, (lua_Number)json_real_value(v));
		break;
	case JSON_TRUE:
		lua_pushboolean(L, 1);
		break;
	case JSON_FALSE:
		lua_pushboolean(L, 0);
		break;
	default:
		lua_pushlightuserdata(L, NULL);
	}
}

int
ljson_decode(lua_State *L, const char *s, size_t n)
{
	json_t *v = jsonr_parse(s, n, JSON_MAX_DEPTH, NULL);

	if (!v)
		return -1;
	ljson_push(L, v);
	json_decref(v);
	return 0;
}

/* json_decode(text) -> value, or nil and "offset N: why". */
static int
l_json_decode(lua_State *L)
{
	size_t n;
	const char *s = luaL_checklstring(L, 1, &n);
	struct json_err e;
	json_t *v = jsonr_parse(s, n, JSON_MAX_DEPTH, &e);

	if (!v) {
		luaL_pushfail(L);
		lua_pushfstring(L, "offset %d: %s", (int)e.offset, e.text);
		return 2;
	}
	ljson_push(L, v);
	json_decref(v);
	return 1;
}

void
ljson_open(lua_State *L)
{
	static const luaL_Reg fns[] = {
		{ "json_encode", l_json_encode },
		{ "json_decode", l_json_decode },
		{ NULL, NULL },
	};

	luaL_setfuncs(L, fns, 0);
	lua_pushlightuserdata(L, NULL);
	lua_setfield(L, -2, "json_null");
}
