/*
 * lua_dns.c - dns(name, type) for rules, and dns_prefetch().
 *
 *   local recs, status = dns("example.com", "mx")
 *   -- recs: { "1.2.3.4", ... } or, for MX, { { pref = 10, host = "mx1" }, ... }
 *   -- status: "ok", "nxdomain", "nodata", "timeout", "servfail"
 *   -- ttl (answers only): the shortest TTL of the records, in seconds
 *
 * A cached answer comes back at once; otherwise the rule yields until the
 * answer arrives. DNSBL checks (stdlib/dnsbl.lua) are built on this, so a
 * recorded session replays them exactly from its dns answers.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include <strings.h>

#include "bridge.h"
#include "clock.h"
#include "dns.h"
#include "metrics.h"

struct dns_req {
	struct lpolicy   *pol;
	uint64_t          key;         /* the session, looked up again on answer */
	uint64_t          token;       /* what that session waits for */
	enum dns_type     type;
	int               in_call;     /* still inside dns_query() */
	int               answered;
	struct dns_answer answer;      /* a synchronous (cached) answer */
	double            started;     /* clock_mono() */
	enum metrics_hist hist;        /* MH_DNSBL for a DNSBL's name, else MH_DNS */
};

/*
 * A DNSBL query is an A lookup of a reversed address under a zone:
 * four decimal labels (IPv4) or 32 one-nibble labels (IPv6) first, and
 * not the reverse tree itself. Known by its shape, so stdlib/dnsbl.lua
 * and replays stay as they are.
 */
static int
dnsbl_name(const char *name, enum dns_type type)
{
	const char *p = name;
	int v4 = 1, v6 = 1;

	if (type != DNS_A)
		return 0;
	for (int i = 0; i < 4 && v4; i++) {
		size_t n = strspn(p, "0123456789");
		if (n == 0 || n > 3 || p[n] != '.')
			v4 = 0;
		else
			p += n + 1;
	}
	if (!v4) {
		p = name;
		for (int i = 0; i < 32 && v6; i++) {
			if (!isxdigit((unsigned char)p[0]) || p[1] != '.')
				v6 = 0;
			else
				p += 2;
		}
	}
	return (v4 || v6) && *p && strcasecmp(p, "in-addr.arpa") != 0 && strcasecmp(p, "ip6.arpa") != 0;
}

static int
parse_type(lua_State *L, int arg)
{
	static const char *names[] = { "a", "aaaa", "mx", "ptr", "txt", NULL };
	static const enum dns_type types[] = { DNS_A, DNS_AAAA, DNS_MX, DNS_PTR, DNS_TXT };

	return (int)types[luaL_checkoption(L, arg, "a", names)];
}

/* Pushes (records, status) for an answer. */
static int
push_answer(lua_State *L, enum dns_type type, const struct dns_answer *a)
{
	static const char *status[] = {
		[DNS_OK] = "ok", [DNS_NXDOMAIN] = "nxdomain", [DNS_NODATA] = "nodata",
		[DNS_TIMEOUT] = "timeout", [DNS_SERVFAIL] = "servfail",
	};

	if (a->status != DNS_OK) {
		lua_pushnil(L);
		lua_pushstring(L, (unsigned)a->status <= DNS_SERVFAIL ? status[a->status] : "servfail");
		return 2;
	}
	lua_createtable(L, a->n, 0);
	for (int i = 0; i < a->n; i++) {
		if (type == DNS_MX) {
			lua_createtable(L, 0, 2);
			lua_pushinteger(L, a->rr[i].pref);
			lua_setfield(L, -2, "pref");
			lua_pushstring(L, a->rr[i].text);
			lua_setfield(L, -2, "host");
		} else
			lua_pushstring(L, a->rr[i].text);
		lua_rawseti(L, -2, i + 1);
	}
	lua_pushliteral(L, "ok");
	/* The TTL too: the journal keeps it, and ruletest lends the answer to
	 * other sessions for that long. */
	uint32_t ttl = a->n ? a->rr[0].ttl : 0;
	for (int i = 1; i < a->n; i++)
		if (a->rr[i].ttl < ttl)
			ttl = a->rr[i].ttl;
	lua_pushinteger(L, ttl);
	return 3;
}

static void
on_answer(void *arg, const struct dns_answer *a)
{
	struct dns_req *r = arg;
	struct lctx *x;

	metrics_observe(r->hist, clock_mono() - r->started);
	if (r->in_call) {
		r->answer = *a;
		r->answered = 1;
		return;
	}
	x = lctx_find(r->pol, r->key);
	if (x && x->running && x->wait == r->token) {
		x->wait = 0;
		int n = push_answer(x->co, r->type, a);
		free(r);
		lctx_resume(x, n);
		return;
	}
	free(r);                        /* the session is gone: a no-op */
}

static int
l_dns(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	enum dns_type type = (enum dns_type)parse_type(L, 2);
	struct lctx *x = lctx_need(L, "dns");
	struct dns_req *r;

	if (!x->pol->dns)
		return luaL_error(L, "dns: no resolver in this process");
	if (!(r = calloc(1, sizeof *r)))
		return luaL_error(L, "dns: out of memory");
	r->pol = x->pol;
	r->key = x->key;
	r->type = type;
	r->token = ++x->pol->next_token;
	r->in_call = 1;
	r->started = clock_mono();
	r->hist = dnsbl_name(name, type) ? MH_DNSBL : MH_DNS;
	dns_query(x->pol->dns, name, type, on_answer, r);
	r->in_call = 0;
	if (r->answered) {
		int n = push_answer(L, type, &r->answer);
		free(r);
		return n;
	}
	/* Inside a metamethod or a sort/gsub callback a rule cannot wait: the
	 * late answer finds no one waiting for its token and is dropped. */
	if (!lua_isyieldable(L))
		return luaL_error(L, "dns: cannot wait for an answer here (metamethod or callback)");
	x->wait = r->token;
	return lua_yield(L, 0);
}

static void
on_prefetch(void *arg, const struct dns_answer *a)
{
}

/* dns_prefetch(name, type): start a lookup, wait for nothing (fills the cache). */
static int
l_dns_prefetch(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	enum dns_type type = (enum dns_type)parse_type(L, 2);
	struct lctx *x = lctx_need(L, "dns_prefetch");

	if (x->pol->dns)
		dns_query(x->pol->dns, name, type, on_prefetch, NULL);
	return 0;
}

/* reverse_ip("192.0.2.4") -> "4.2.0.192" (IPv6: nibbles), for DNSBL names. */
static int
l_reverse_ip(lua_State *L)
{
	char out[80];

	if (dns_reverse_name(luaL_checkstring(L, 1), out, sizeof out) < 0) {
		luaL_pushfail(L);
		lua_pushliteral(L, "not an IP address");
		return 2;
	}
	lua_pushstring(L, out);
	return 1;
}

void
ldns_open(lua_State *L)
{
	static const luaL_Reg fns[] = {
		{ "dns", l_dns },
		{ "dns_prefetch", l_dns_prefetch },
		{ "reverse_ip", l_reverse_ip },
		{ NULL, NULL },
	};

	luaL_setfuncs(L, fns, 0);
}
