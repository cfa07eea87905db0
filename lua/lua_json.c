/*
 * lua_json.c - JSON to and from Lua values, for the session journal.
 *
 * Enough JSON for what the journal holds: strings, numbers, booleans,
 * null, arrays and objects, bounded in depth. A JSON null inside an array
 * decodes to json_null (a light userdata) so arrays keep their length;
 * in an object it is simply absent.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "bridge.h"

#define JSON_DEPTH 32

/* ---------------- encode ---------------- */

/* Our own buffer: Lua's luaL_Buffer wants the stack top, recursion does not. */
struct ebuf {
	char       *p;
	size_t      n, cap;
	const char *err;
};

static void
eadd(struct ebuf *b, const char *s, size_t n)
{
	if (b->err)
		return;
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		char *np;
		while (cap < b->n + n + 1)
			cap *= 2;
		if (!(np = realloc(b->p, cap))) {
			b->err = "out of memory";
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
}

static void
eadds(struct ebuf *b, const char *s)
{
	eadd(b, s, strlen(s));
}

static void
enc_string(struct ebuf *b, const char *s, size_t n)
{
	eadd(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		size_t run = i;
		while (run < n && (unsigned char)s[run] >= 0x20 && s[run] != '"' && s[run] != '\\' && s[run] != 0x7f)
			run++;
		if (run > i) {
			eadd(b, s + i, run - i);
			i = run - 1;
			continue;
		}
		if (c == '"' || c == '\\') {
			char esc[2] = { '\\', (char)c };
			eadd(b, esc, 2);
		} else {
			char esc[8];
			snprintf(esc, sizeof esc, "\\u%04x", c);
			eadds(b, esc);
		}
	}
	eadd(b, "\"", 1);
}

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

/* Encodes the value at idx (which stays); failures set b->err. */
static void
enc_value(lua_State *L, struct ebuf *b, int idx, int depth)
{
	char num[64];

	idx = lua_absindex(L, idx);
	if (b->err)
		return;
	if (depth > JSON_DEPTH || !lua_checkstack(L, 4)) {
		b->err = "nested too deep";
		return;
	}
	switch (lua_type(L, idx)) {
	case LUA_TNIL:
	case LUA_TLIGHTUSERDATA:
		eadds(b, "null");
		break;
	case LUA_TBOOLEAN:
		eadds(b, lua_toboolean(L, idx) ? "true" : "false");
		break;
	case LUA_TNUMBER:
		if (lua_isinteger(L, idx))
			snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, idx));
		else if (isfinite(lua_tonumber(L, idx)))
			snprintf(num, sizeof num, "%.17g", lua_tonumber(L, idx));
		else
			snprintf(num, sizeof num, "null");
		eadds(b, num);
		break;
	case LUA_TSTRING: {
		size_t n;
		const char *s = lua_tolstring(L, idx, &n);
		enc_string(b, s, n);
		break;
	}
	case LUA_TTABLE: {
		lua_Integer len;
		int first = 1;
		if (is_array(L, idx, &len)) {
			eadds(b, "[");
			for (lua_Integer i = 1; i <= len; i++) {
				if (i > 1)
					eadds(b, ",");
				lua_rawgeti(L, idx, i);
				enc_value(L, b, -1, depth + 1);
				lua_pop(L, 1);
			}
			eadds(b, "]");
			break;
		}
		eadds(b, "{");
		lua_pushnil(L);
		while (lua_next(L, idx)) {
			size_t n;
			const char *k;
			if (lua_type(L, -2) != LUA_TSTRING && lua_type(L, -2) != LUA_TNUMBER) {
				b->err = "table keys must be strings";
				lua_pop(L, 2);
				return;
			}
			if (!first)
				eadds(b, ",");
			first = 0;
			lua_pushvalue(L, -2);
			k = lua_tolstring(L, -1, &n);
			enc_string(b, k, n);
			lua_pop(L, 1);
			eadds(b, ":");
			enc_value(L, b, -1, depth + 1);
			lua_pop(L, 1);
		}
		eadds(b, "}");
		break;
	}
	default:
		b->err = "cannot encode a function, thread or userdata";
	}
}

/* Pushes the JSON text of the value at idx, or raises. */
void
ljson_encode(lua_State *L, int idx)
{
	struct ebuf b = { 0 };

	enc_value(L, &b, idx, 0);
	if (b.err) {
		free(b.p);
		luaL_error(L, "json: %s", b.err);
	}
	lua_pushlstring(L, b.p ? b.p : "", b.n);
	free(b.p);
}

/* Pushes a table.pack()ed table (with .n) as a JSON array, nils as null. */
void
ljson_encode_packed(lua_State *L, int idx)
{
	struct ebuf b = { 0 };
	lua_Integer n;

	idx = lua_absindex(L, idx);
	lua_getfield(L, idx, "n");
	n = lua_tointeger(L, -1);
	lua_pop(L, 1);
	eadds(&b, "[");
	for (lua_Integer i = 1; i <= n; i++) {
		if (i > 1)
			eadds(&b, ",");
		lua_rawgeti(L, idx, i);
		enc_value(L, &b, -1, 1);
		lua_pop(L, 1);
	}
	eadds(&b, "]");
	if (b.err) {
		free(b.p);
		luaL_error(L, "json: %s", b.err);
	}
	lua_pushlstring(L, b.p, b.n);
	free(b.p);
}

static int
l_json_encode(lua_State *L)
{
	luaL_checkany(L, 1);
	ljson_encode(L, 1);
	return 1;
}

/* ---------------- decode ---------------- */

struct dec {
	lua_State  *L;
	const char *p, *end;
	const char *err;
};

static void
skip_ws(struct dec *d)
{
	while (d->p < d->end && (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r'))
		d->p++;
}

static int dec_value(struct dec *d, int depth);

static void
put_utf8(luaL_Buffer *b, unsigned long cp)
{
	if (cp < 0x80)
		luaL_addchar(b, (char)cp);
	else if (cp < 0x800) {
		luaL_addchar(b, (char)(0xc0 | (cp >> 6)));
		luaL_addchar(b, (char)(0x80 | (cp & 0x3f)));
	} else if (cp < 0x10000) {
		luaL_addchar(b, (char)(0xe0 | (cp >> 12)));
		luaL_addchar(b, (char)(0x80 | ((cp >> 6) & 0x3f)));
		luaL_addchar(b, (char)(0x80 | (cp & 0x3f)));
	} else {
		luaL_addchar(b, (char)(0xf0 | (cp >> 18)));
		luaL_addchar(b, (char)(0x80 | ((cp >> 12) & 0x3f)));
		luaL_addchar(b, (char)(0x80 | ((cp >> 6) & 0x3f)));
		luaL_addchar(b, (char)(0x80 | (cp & 0x3f)));
	}
}

static int
hex4(const char *p, unsigned long *out)
{
	*out = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		*out <<= 4;
		if (c >= '0' && c <= '9') *out |= (unsigned long)(c - '0');
		else if (c >= 'a' && c <= 'f') *out |= (unsigned long)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F') *out |= (unsigned long)(c - 'A' + 10);
		else return -1;
	}
	return 0;
}

static int
dec_string(struct dec *d)
{
	luaL_Buffer b;

	const char *q = ++d->p;                 /* past the opening quote */

	/* The common case, no escape: one push, no buffer. */
	while (q < d->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20)
		q++;
	if (q < d->end && *q == '"') {
		lua_pushlstring(d->L, d->p, (size_t)(q - d->p));
		d->p = q + 1;
		return 0;
	}
	luaL_buffinit(d->L, &b);
	while (d->p < d->end && *d->p != '"') {
		if ((unsigned char)*d->p < 0x20) {
			d->err = "control character in string";
			return -1;
		}
		if (*d->p != '\\') {
			luaL_addchar(&b, *d->p++);
			continue;
		}
		if (++d->p >= d->end)
			break;
		switch (*d->p) {
		case '"': case '\\': case '/': luaL_addchar(&b, *d->p); break;
		case 'b': luaL_addchar(&b, '\b'); break;
		case 'f': luaL_addchar(&b, '\f'); break;
		case 'n': luaL_addchar(&b, '\n'); break;
		case 'r': luaL_addchar(&b, '\r'); break;
		case 't': luaL_addchar(&b, '\t'); break;
		case 'u': {
			unsigned long cp, lo;
			if (d->end - d->p < 5 || hex4(d->p + 1, &cp) < 0) {
				d->err = "bad \\u escape";
				return -1;
			}
			d->p += 4;
			if (cp >= 0xd800 && cp < 0xdc00 && d->end - d->p >= 7 && d->p[1] == '\\' &&
			    d->p[2] == 'u' && hex4(d->p + 3, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000) {
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				d->p += 6;
			}
			put_utf8(&b, cp);
			break;
		}
		default:
			d->err = "bad escape";
			return -1;
		}
		d->p++;
	}
	if (d->p >= d->end) {
		d->err = "unterminated string";
		return -1;
	}
	d->p++;
	luaL_pushresult(&b);
	return 0;
}

static int
dec_container(struct dec *d, int depth, int array)
{
	lua_State *L = d->L;
	lua_Integer n = 0;

	d->p++;
	lua_newtable(L);
	skip_ws(d);
	if (d->p < d->end && *d->p == (array ? ']' : '}')) {
		d->p++;
		return 0;
	}
	for (;;) {
		skip_ws(d);
		if (!array) {
			if (d->p >= d->end || *d->p != '"') {
				d->err = "expected a key";
				return -1;
			}
			if (dec_string(d) < 0)
				return -1;
			skip_ws(d);
			if (d->p >= d->end || *d->p++ != ':') {
				d->err = "expected ':'";
				return -1;
			}
		}
		if (dec_value(d, depth + 1) < 0)
			return -1;
		if (array)
			lua_rawseti(L, -2, ++n);
		else if (lua_islightuserdata(L, -1))
			lua_pop(L, 2);                  /* a null member: absent */
		else
			lua_rawset(L, -3);
		skip_ws(d);
		if (d->p < d->end && *d->p == ',') {
			d->p++;
			continue;
		}
		if (d->p < d->end && *d->p == (array ? ']' : '}')) {
			d->p++;
			return 0;
		}
		d->err = array ? "expected ',' or ']'" : "expected ',' or '}'";
		return -1;
	}
}

static int
dec_value(struct dec *d, int depth)
{
	lua_State *L = d->L;

	if (depth > JSON_DEPTH) {
		d->err = "nested too deep";
		return -1;
	}
	luaL_checkstack(L, 4, "json");
	skip_ws(d);
	if (d->p >= d->end) {
		d->err = "unexpected end";
		return -1;
	}
	switch (*d->p) {
	case '{': return dec_container(d, depth, 0);
	case '[': return dec_container(d, depth, 1);
	case '"': return dec_string(d);
	case 't':
		if (d->end - d->p >= 4 && !memcmp(d->p, "true", 4)) { d->p += 4; lua_pushboolean(L, 1); return 0; }
		break;
	case 'f':
		if (d->end - d->p >= 5 && !memcmp(d->p, "false", 5)) { d->p += 5; lua_pushboolean(L, 0); return 0; }
		break;
	case 'n':
		if (d->end - d->p >= 4 && !memcmp(d->p, "null", 4)) { d->p += 4; lua_pushlightuserdata(L, NULL); return 0; }
		break;
	default: {
		char buf[64], *e;
		size_t n = 0;
		while (d->p + n < d->end && n < sizeof buf - 1 && strchr("+-0123456789.eE", d->p[n]))
			n++;
		if (n == 0)
			break;
		memcpy(buf, d->p, n);
		buf[n] = '\0';
		if (!strpbrk(buf, ".eE")) {
			long long v = strtoll(buf, &e, 10);
			if (*e == '\0') {
				lua_pushinteger(L, v);
				d->p += n;
				return 0;
			}
		}
		double v = strtod(buf, &e);
		if (*e != '\0')
			break;
		lua_pushnumber(L, v);
		d->p += n;
		return 0;
	}
	}
	d->err = "unexpected character";
	return -1;
}

/* Pushes the value JSON text s holds; -1 (nothing pushed) when it is not JSON. */
int
ljson_decode(lua_State *L, const char *s, size_t n)
{
	struct dec d = { L, s, s + n, NULL };
	int top = lua_gettop(L);

	if (dec_value(&d, 0) == 0) {
		skip_ws(&d);
		if (d.p == d.end)
			return 0;
	}
	lua_settop(L, top);
	return -1;
}

/* json_decode(text) -> value, or nil and "offset N: why". */
static int
l_json_decode(lua_State *L)
{
	size_t n;
	const char *s = luaL_checklstring(L, 1, &n);
	struct dec d = { L, s, s + n, NULL };
	int top = lua_gettop(L);

	if (dec_value(&d, 0) == 0) {
		skip_ws(&d);
		if (d.p == d.end)
			return 1;
		d.err = "trailing characters";
	}
	lua_settop(L, top);
	luaL_pushfail(L);
	lua_pushfstring(L, "offset %d: %s", (int)(d.p - s), d.err);
	return 2;
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
