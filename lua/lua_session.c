/*
 * lua_session.c - the session as rules see it.
 *
 * Every hook of a session gets the same `s`, one read-only table per
 * session (not one per hook): a field is computed from the engine's
 * session_info on its first read in a hook and stored in the table, so a
 * hook builds nothing it does not use and ten rules reading s.ip pay for
 * one C call, not ten; at the next hook the stored fields are dropped
 * (lsession_forget), so no hook sees an earlier one's values. The table
 * points at the session's anchor, a
 * userdata that lives as long as the session (it holds s.data, the one
 * writable corner, and is cut loose when the session ends, so an `s` a rule
 * kept past its session reads as gone, never as freed memory).
 *
 * The link from `s` to its anchor is kept out of `s` itself, in a
 * registry table with weak keys: pairs(s) and next(s) show a rule only
 * the fields it read, and no rule can swap the anchor for a value of its
 * own (issue 11: `s[k] = k` made the next read dereference a global byte).
 */
#include <string.h>
#include <strings.h>

#include <lauxlib.h>

#include "bridge.h"
#include "session.h"

#define SESSION_MT "mxgate.session"
#define PROXY_MT   "mxgate.session.proxy"

static char anchors_key;            /* registry: { [s] = anchor }, weak keys */

/* Pushes the anchor of `s` at idx, or nil. */
static void
push_anchor(lua_State *L, int idx)
{
	idx = lua_absindex(L, idx);
	lua_rawgetp(L, LUA_REGISTRYINDEX, &anchors_key);
	lua_pushvalue(L, idx);
	lua_rawget(L, -2);
	lua_remove(L, -2);
}

/* The session `s` at idx stands for, NULL once it ended (or never was). */
static struct lctx *
anchored(lua_State *L, int idx)
{
	struct lctx **u;

	push_anchor(L, idx);
	u = luaL_testudata(L, -1, SESSION_MT);
	lua_pop(L, 1);
	return u ? *u : NULL;
}

void
lsession_push(lua_State *L, struct lctx *x)
{
	/* user value 1: s.data */
	struct lctx **u = lua_newuserdatauv(L, sizeof *u, 1);

	*u = x;
	luaL_setmetatable(L, SESSION_MT);
}

static void
push_str_or_nil(lua_State *L, const char *s)
{
	if (s && *s)
		lua_pushstring(L, s);
	else
		lua_pushnil(L);
}

static void
push_domain(lua_State *L, const char *addr)
{
	const char *at = strrchr(addr, '@');

	if (at && at[1]) {
		luaL_Buffer b;
		luaL_buffinit(L, &b);
		for (const char *p = at + 1; *p; p++)
			luaL_addchar(&b, (*p >= 'A' && *p <= 'Z') ? (char)(*p + 32) : *p);
		luaL_pushresult(&b);
	} else
		lua_pushnil(L);
}

/* Pushes field k of the session (or raises for an unknown one); the
 * session's anchor userdata is at stack index anchor. */
static int
session_field(lua_State *L, struct lctx *x, int anchor, const char *k)
{
	struct session_info *i = x->s;

	switch (k[0]) {
	case 'c':
		if (!strcmp(k, "client_ip")) { lua_pushstring(L, i->client_ip); return 1; }
		if (!strcmp(k, "client_port")) { lua_pushinteger(L, i->client_port); return 1; }
		break;
	case 'd':
		if (!strcmp(k, "direction")) { lua_pushstring(L, direction_str(i->direction)); return 1; }
		if (!strcmp(k, "data")) {
			if (lua_getiuservalue(L, anchor, 1) != LUA_TTABLE) {
				lua_pop(L, 1);
				lua_newtable(L);
				lua_pushvalue(L, -1);
				lua_setiuservalue(L, anchor, 1);
			}
			return 1;
		}
		break;
	case 'e':
		if (!strcmp(k, "esmtp")) { lua_pushboolean(L, i->esmtp); return 1; }
		break;
	case 'h':
		if (!strcmp(k, "helo")) { push_str_or_nil(L, i->helo); return 1; }
		if (!strcmp(k, "headers")) {
			if (i->headers_len == HEADERS_UNRECORDED) {
				/* ruletest: counted unanswered (replay.c), read as "". */
				if (lua_getfield(L, LUA_REGISTRYINDEX, "mxgate.unrecorded") == LUA_TFUNCTION) {
					lua_pushliteral(L, "s.headers");
					lua_call(L, 1, 0);
				} else
					lua_pop(L, 1);
				lua_pushliteral(L, "");
				return 1;
			}
			lua_pushlstring(L, i->headers ? i->headers : "", i->headers_len);
			return 1;
		}
		if (!strcmp(k, "hostname")) { lua_pushstring(L, i->conf->hostname); return 1; }
		break;
	case 'i':
		if (!strcmp(k, "id")) { lua_pushstring(L, i->sid); return 1; }
		if (!strcmp(k, "ip")) { lua_pushstring(L, i->client_ip); return 1; }
		if (!strcmp(k, "inbound")) { lua_pushboolean(L, i->direction == DIR_INBOUND); return 1; }
		break;
	case 'l':
		if (!strcmp(k, "local_ip")) { lua_pushstring(L, i->local_ip); return 1; }
		if (!strcmp(k, "local_port")) { lua_pushinteger(L, i->local_port); return 1; }
		break;
	case 'n':
		if (!strcmp(k, "nrcpts")) { lua_pushinteger(L, i->nrcpts); return 1; }
		break;
	case 'o':
		if (!strcmp(k, "outbound")) { lua_pushboolean(L, i->direction == DIR_OUTBOUND); return 1; }
		break;
	case 'p':
		if (!strcmp(k, "port")) { lua_pushinteger(L, i->client_port); return 1; }
		/* The recipient is our postmaster (RFC 5321 4.5.1: accept it). */
		if (!strcmp(k, "postmaster")) {
			lua_pushboolean(L, x->stage == STAGE_RCPT && strcasecmp(i->rcpt.addr, i->conf->postmaster) == 0);
			return 1;
		}
		break;
	case 'q':
		if (!strcmp(k, "qid")) { push_str_or_nil(L, i->qid); return 1; }
		break;
	case 'r':
		if (!strcmp(k, "rcpt")) { push_str_or_nil(L, i->rcpt.addr); return 1; }
		if (!strcmp(k, "rcpt_domain")) { push_domain(L, i->rcpt.addr); return 1; }
		if (!strcmp(k, "rcpts")) {
			lua_createtable(L, i->nrcpts, 0);
			for (int r = 0; r < i->nrcpts; r++) {
				lua_pushstring(L, i->rcpts[r]);
				lua_rawseti(L, -2, r + 1);
			}
			return 1;
		}
		break;
	case 's':
		if (!strcmp(k, "sender")) {
			/* "" is the null sender <>, from the MAIL hook on. */
			if (i->has_mail || i->mail.addr[0] || x->stage == STAGE_MAIL)
				lua_pushstring(L, i->mail.addr);
			else
				lua_pushnil(L);
			return 1;
		}
		if (!strcmp(k, "sender_domain")) { push_domain(L, i->mail.addr); return 1; }
		if (!strcmp(k, "size")) { lua_pushinteger(L, (lua_Integer)i->size); return 1; }
		if (!strcmp(k, "smtputf8")) { lua_pushboolean(L, i->mail.smtputf8); return 1; }
		break;
	case 't':
		if (!strcmp(k, "tls")) { lua_pushboolean(L, i->tls); return 1; }
		if (!strcmp(k, "tls_version")) { push_str_or_nil(L, i->tls_version); return 1; }
		if (!strcmp(k, "tls_cipher")) { push_str_or_nil(L, i->tls_cipher); return 1; }
		if (!strcmp(k, "tls_peer")) { push_str_or_nil(L, i->tls_peer); return 1; }
		break;
	}
	return luaL_error(L, "session has no field '%s'", k);
}

/*
 * __index of a hook's `s`: only reached for a field not read yet in this
 * hook. Tables (s.rcpts, s.data) are not stored: a rule may change them.
 */
static int
l_proxy_index(lua_State *L)
{
	const char *k = lua_tostring(L, 2);
	struct lctx **u, *x;

	if (!k)
		return luaL_error(L, "session fields are named by strings");
	lua_settop(L, 2);
	push_anchor(L, 1);                      /* 3: the anchor */
	u = luaL_testudata(L, 3, SESSION_MT);
	x = u ? *u : NULL;
	if (!x || !x->s)                        /* kept by a rule past its end */
		return luaL_error(L, "the session is gone");
	session_field(L, x, 3, k);              /* 4 */
	if (!lua_istable(L, 4)) {
		lua_pushvalue(L, 2);
		lua_pushvalue(L, 4);
		lua_rawset(L, 1);
	}
	return 1;
}

/* The session's `s`, for the session anchored at the top of the stack (replaced). */
void
lsession_proxy(lua_State *L)
{
	lua_createtable(L, 0, 8);
	luaL_setmetatable(L, PROXY_MT);
	lua_rawgetp(L, LUA_REGISTRYINDEX, &anchors_key);
	lua_pushvalue(L, -2);
	lua_pushvalue(L, -4);
	lua_rawset(L, -3);
	lua_pop(L, 1);
	lua_replace(L, -2);
}

/* A new hook: forget the fields `s` (at idx) stored, keep its anchor. */
void
lsession_forget(lua_State *L, int idx)
{
	idx = lua_absindex(L, idx);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pop(L, 1);
		lua_pushvalue(L, -1);
		lua_pushnil(L);
		lua_rawset(L, idx);                 /* clearing a field during next() is allowed */
	}
}

static int
l_session_newindex(lua_State *L)
{
	return luaL_error(L, "the session is read-only (keep notes in s.data)");
}

static int
l_session_tostring(lua_State *L)
{
	struct lctx *x = anchored(L, 1);

	lua_pushfstring(L, "session %s", x && x->s ? x->s->sid : "(gone)");
	return 1;
}

void
lsession_open(lua_State *L)
{
	static const luaL_Reg meta[] = {
		{ "__index", l_proxy_index },
		{ "__newindex", l_session_newindex },
		{ "__tostring", l_session_tostring },
		{ NULL, NULL },
	};

	/* The anchor: no metamethods, no way in from a rule. */
	luaL_newmetatable(L, SESSION_MT);
	lua_pushliteral(L, "session");
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
	luaL_newmetatable(L, PROXY_MT);
	luaL_setfuncs(L, meta, 0);
	lua_pushliteral(L, "session");
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
	lua_newtable(L);                        /* anchors: an `s` no one holds goes */
	lua_createtable(L, 0, 1);
	lua_pushliteral(L, "k");
	lua_setfield(L, -2, "__mode");
	lua_setmetatable(L, -2);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &anchors_key);
}

/* The session ended: an `s` a rule kept now reads as gone. */
void
lsession_cut(lua_State *L, int idx)
{
	struct lctx **u;

	idx = lua_absindex(L, idx);
	lsession_forget(L, idx);
	push_anchor(L, idx);
	if ((u = luaL_testudata(L, -1, SESSION_MT)) != NULL)
		*u = NULL;
	lua_pop(L, 1);
}
