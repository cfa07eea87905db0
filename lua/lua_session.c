/*
 * lua_session.c - the session as rules see it: a read-only userdata whose
 * fields are read from the engine's session_info on access, so a hook call
 * builds nothing it does not use. s.data is the one writable corner: a
 * table a rule can leave notes in for a later hook (Exim's acl_m_*).
 */
#include <string.h>

#include <lauxlib.h>

#include "bridge.h"
#include "session.h"

#define SESSION_MT "mxgate.session"

void
lsession_push(lua_State *L, struct lctx *x)
{
	/* user values: 1 = s.data, 2 = this hook's cache of computed fields */
	struct lctx **u = lua_newuserdatauv(L, sizeof *u, 2);

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

/* Pushes field k of the session (or raises for an unknown one). */
static int
session_field(lua_State *L, struct lctx *x, const char *k)
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
			if (lua_getiuservalue(L, 1, 1) != LUA_TTABLE) {
				lua_pop(L, 1);
				lua_newtable(L);
				lua_pushvalue(L, -1);
				lua_setiuservalue(L, 1, 1);
			}
			return 1;
		}
		break;
	case 'e':
		if (!strcmp(k, "esmtp")) { lua_pushboolean(L, i->esmtp); return 1; }
		break;
	case 'h':
		if (!strcmp(k, "helo")) { push_str_or_nil(L, i->helo); return 1; }
		if (!strcmp(k, "headers")) { lua_pushlstring(L, i->headers ? i->headers : "", i->headers_len); return 1; }
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
 * A field does not change while a hook runs, and ten rules may read the
 * same one: the first read computes it (strings are built and interned),
 * the others find it in a per-hook cache that lua_policy.c drops at each
 * hook. Tables (s.rcpts, s.data) are not cached: a rule may change them.
 */
static int
l_session_index(lua_State *L)
{
	/* Only our userdata has this metamethod (its metatable is locked): no
	 * luaL_checkudata, whose registry look-up every field read would pay. */
	struct lctx **u = lua_touserdata(L, 1);
	struct lctx *x = u ? *u : NULL;
	const char *k = lua_tostring(L, 2);

	if (!k)
		return luaL_error(L, "session fields are named by strings");

	if (!x || !x->s)                        /* kept by a rule past its end */
		return luaL_error(L, "the session is gone");
	if (lua_getiuservalue(L, 1, 2) == LUA_TTABLE) {
		lua_pushvalue(L, 2);
		if (lua_rawget(L, -2) != LUA_TNIL)
			return 1;
		lua_pop(L, 2);
	} else {
		lua_pop(L, 1);
		lua_createtable(L, 0, 8);
		lua_setiuservalue(L, 1, 2);
	}
	session_field(L, x, k);
	if (lua_type(L, -1) != LUA_TTABLE && lua_getiuservalue(L, 1, 2) == LUA_TTABLE) {
		lua_pushvalue(L, 2);
		lua_pushvalue(L, -3);
		lua_rawset(L, -3);
	}
	lua_settop(L, 3);
	return 1;
}

static int
l_session_newindex(lua_State *L)
{
	return luaL_error(L, "the session is read-only (keep notes in s.data)");
}

static int
l_session_tostring(lua_State *L)
{
	struct lctx *x = *(struct lctx **)luaL_checkudata(L, 1, SESSION_MT);

	lua_pushfstring(L, "session %s", x && x->s ? x->s->sid : "(gone)");
	return 1;
}

void
lsession_open(lua_State *L)
{
	static const luaL_Reg meta[] = {
		{ "__index", l_session_index },
		{ "__newindex", l_session_newindex },
		{ "__tostring", l_session_tostring },
		{ NULL, NULL },
	};

	luaL_newmetatable(L, SESSION_MT);
	luaL_setfuncs(L, meta, 0);
	lua_pushliteral(L, "session");
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
}
