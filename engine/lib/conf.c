/*
 * conf.c - read the Lua configuration file into struct conf.
 *
 * The file runs with an environment whose __newindex records the line of
 * each assignment, so a bad value is reported at the line that set it.
 * Unknown keys are errors: a typo in a limit must not silently fall back
 * to the default.
 *
 * The master reads this file again on every SIGHUP, so no config may stop
 * it: the whole load (running the file, reading every key) is one
 * protected call under an instruction and a memory budget, and the file
 * sees only data-building functions (no metatables, no pattern matching:
 * the C matcher cannot be interrupted). It either loads whole or changes
 * nothing. The rules get their `config` from the same conf_run(), so the
 * file means the same thing to both.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "conf.h"

/* Keys the core reads, then keys the rules read through their own copy of
 * this file (lua/), then free-form settings for operators' own rules. */
static const char *known_keys[] = {
	"hostname", "host_names", "listen", "workers", "user", "state_dir",
	"spool_dir", "log_file", "tls", "rules", "stdlib", "hosted_domains",
	"relay_networks", "limits", "timeouts", "bare_lf",
	"dns", "dnsbl", "greylist", "ratelimit", "callout", "verify_sender",
	"tls_enforced_senders", "our_addresses", "journal", "rule_limits", "state", "delivery",
	"postmaster", "http",
	"settings", "allow_user_nobody", NULL,
};

#define CONF_INSTRUCTIONS 10000000L     /* a config is data: a few thousand */
#define CONF_MEMORY       (64u << 20)
#define CONF_HOOK_EVERY   1000

struct reader {
	lua_State  *L;
	const char *path;
	char       *err;
	size_t      errlen;
	struct conf *c;
	int         rc;
};

/* The allocator's and the hook's state: the budget of one load. */
struct budget {
	size_t mem, mem_max;
	long   left;
	char   spent[300];
};

static int
fail(struct reader *r, const char *key, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int line = 0;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (key) {
		lua_getfield(r->L, LUA_REGISTRYINDEX, "mxgate.conf.lines");
		lua_getfield(r->L, -1, key);
		line = (int)lua_tointeger(r->L, -1);
		lua_pop(r->L, 2);
	}
	snprintf(r->err, r->errlen, "%s:%d: %s%s%s", r->path, line,
	    key ? key : "", key ? ": " : "", msg);
	return -1;
}

/* __newindex of the config environment: store the value, remember the line. */
static int
record_line(lua_State *L)
{
	lua_Debug ar;
	int line = 0;

	if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "l", &ar))
		line = ar.currentline;
	if (lua_type(L, 2) == LUA_TSTRING) {
		lua_pushvalue(L, 2);
		lua_pushinteger(L, line);
		lua_rawset(L, lua_upvalueindex(1));
	}
	lua_settop(L, 3);
	lua_rawset(L, 1);
	return 0;
}

/* What a config may call: building data, not code that runs at us. */
static const char *const safe_base[] = {
	"assert", "error", "ipairs", "next", "pairs", "rawequal", "rawget", "rawlen",
	"select", "tonumber", "tostring", "type", NULL,
};
static const char *const safe_libs[] = { "string", "table", "math", "utf8", NULL };
/* Backtracking matchers run in C, out of the instruction budget's reach. */
static const char *const unsafe_string[] = { "find", "match", "gmatch", "gsub", NULL };

static int
listed(const char *const *list, const char *name)
{
	for (; *list; list++)
		if (strcmp(*list, name) == 0)
			return 1;
	return 0;
}

/* A fresh table with the safe globals of L (copies: the config cannot change them). */
static void
push_safe_globals(lua_State *L)
{
	lua_newtable(L);
	lua_pushglobaltable(L);
	for (const char *const *k = safe_base; *k; k++) {
		lua_getfield(L, -1, *k);
		lua_setfield(L, -3, *k);
	}
	lua_pop(L, 1);
	luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
	for (const char *const *lib = safe_libs; *lib; lib++) {
		if (lua_getfield(L, -1, *lib) != LUA_TTABLE) {
			lua_pop(L, 1);
			continue;
		}
		lua_newtable(L);
		lua_pushnil(L);
		while (lua_next(L, -3)) {
			if (lua_type(L, -2) == LUA_TSTRING && strcmp(*lib, "string") == 0 &&
			    listed(unsafe_string, lua_tostring(L, -2))) {
				lua_pop(L, 1);
				continue;
			}
			lua_pushvalue(L, -2);
			lua_insert(L, -2);
			lua_rawset(L, -4);
		}
		lua_setfield(L, -4, *lib);
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
}

void
conf_run(lua_State *L, const char *path)
{
	int env;

	lua_newtable(L);                               /* env */
	env = lua_gettop(L);
	lua_newtable(L);                               /* its metatable */
	push_safe_globals(L);
	lua_setfield(L, -2, "__index");
	lua_newtable(L);                               /* key -> line */
	lua_pushvalue(L, -1);
	lua_setfield(L, LUA_REGISTRYINDEX, "mxgate.conf.lines");
	lua_pushcclosure(L, record_line, 1);
	lua_setfield(L, -2, "__newindex");
	lua_setmetatable(L, env);
	if (luaL_loadfilex(L, path, "t") != LUA_OK)
		lua_error(L);
	lua_pushvalue(L, env);
	lua_setupvalue(L, -2, 1);                      /* _ENV */
	lua_call(L, 0, 0);
	lua_pushnil(L);
	lua_setmetatable(L, env);                      /* plain data from here on */
}

/* Pushes the environment's value of key (nil when absent). */
static int
getkey(struct reader *r, const char *key)
{
	lua_getfield(r->L, LUA_REGISTRYINDEX, "mxgate.conf.env");
	lua_getfield(r->L, -1, key);
	lua_remove(r->L, -2);
	return lua_type(r->L, -1);
}

static int
copy_str(struct reader *r, const char *key, int idx, char *dst, size_t len)
{
	size_t n;
	const char *s;

	if (lua_type(r->L, idx) != LUA_TSTRING)
		return fail(r, key, "expected a string, got %s", luaL_typename(r->L, idx));
	s = lua_tolstring(r->L, idx, &n);
	if (n >= len)
		return fail(r, key, "longer than %zu characters", len - 1);
	memcpy(dst, s, n + 1);
	return 0;
}

static int
opt_str(struct reader *r, const char *key, char *dst, size_t len)
{
	int rc = 0;

	if (getkey(r, key) != LUA_TNIL)
		rc = copy_str(r, key, -1, dst, len);
	lua_pop(r->L, 1);
	return rc;
}

/* Reads key (or tbl.field when field is set) as a number within [lo, hi]. */
static int
opt_num(struct reader *r, const char *key, const char *field, double lo, double hi, double *out)
{
	int t, rc = 0;

	if (field) {
		t = lua_getfield(r->L, -1, field);
	} else
		t = getkey(r, key);
	if (t != LUA_TNIL) {
		if (t != LUA_TNUMBER)
			rc = fail(r, key, "%s%sexpected a number", field ? field : "", field ? ": " : "");
		else if (!(lua_tonumber(r->L, -1) >= lo && lua_tonumber(r->L, -1) <= hi))
			rc = fail(r, key, "%s%sout of range [%g, %g]", field ? field : "", field ? ": " : "", lo, hi);
		else
			*out = lua_tonumber(r->L, -1);
	}
	lua_pop(r->L, 1);
	return rc;
}

static int
opt_int(struct reader *r, const char *key, const char *field, double lo, double hi, int *out)
{
	double d = *out;

	if (opt_num(r, key, field, lo, hi, &d) < 0)
		return -1;
	*out = (int)d;
	return 0;
}

/* A count or a size: opt_num, and a fraction is refused (16.5
 * connections means a typo, not a limit). */
static int
opt_whole(struct reader *r, const char *key, const char *field, double lo, double hi, double *out)
{
	double d = *out;

	if (opt_num(r, key, field, lo, hi, &d) < 0)
		return -1;
	if (d != floor(d))
		return fail(r, key, "%s: expected a whole number, got %g", field, d);
	*out = d;
	return 0;
}

static int
opt_count(struct reader *r, const char *key, const char *field, double lo, double hi, int *out)
{
	double d = *out;

	if (opt_whole(r, key, field, lo, hi, &d) < 0)
		return -1;
	*out = (int)d;
	return 0;
}

static int
opt_size(struct reader *r, const char *key, const char *field, double lo, double hi, size_t *out)
{
	double d = (double)*out;

	if (opt_whole(r, key, field, lo, hi, &d) < 0)
		return -1;
	*out = (size_t)d;
	return 0;
}

int
conf_parse_net(const char *text, struct conf_net *out)
{
	char buf[80], *slash, *end;
	long prefix;

	if (strlen(text) >= sizeof buf)
		return -1;
	strcpy(buf, text);
	slash = strchr(buf, '/');
	if (slash)
		*slash++ = '\0';
	memset(out, 0, sizeof *out);
	if (inet_pton(AF_INET, buf, out->addr) == 1) {
		out->family = AF_INET;
		out->prefix = 32;
	} else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
		out->family = AF_INET6;
		out->prefix = 128;
	} else
		return -1;
	if (slash) {
		errno = 0;
		prefix = strtol(slash, &end, 10);
		if (*slash == '\0' || *end || prefix < 0 || prefix > out->prefix)
			return -1;
		out->prefix = (int)prefix;
	}
	return 0;
}

static int
prefix_match(const unsigned char *a, const unsigned char *b, int bits)
{
	int bytes = bits / 8, rest = bits % 8;

	if (memcmp(a, b, bytes) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((a[bytes] ^ b[bytes]) & (0xff << (8 - rest))) == 0;
}

int
conf_net_match(const struct conf_net *nets, int n, const struct sockaddr *sa)
{
	const unsigned char *addr;
	unsigned char v4[4];
	int family = sa->sa_family;

	if (family == AF_INET) {
		addr = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
	} else if (family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			memcpy(v4, &a6->s6_addr[12], 4);
			addr = v4;
			family = AF_INET;
		} else
			addr = a6->s6_addr;
	} else
		return 0;
	for (int i = 0; i < n; i++)
		if (nets[i].family == family && prefix_match(nets[i].addr, addr, nets[i].prefix))
			return 1;
	return 0;
}

static void
lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* A listener's proxy_protocol = true and proxy_from = { networks }; the
 * listener's table is on top of the stack. */
static int
read_proxy(struct reader *r, struct conf_listener *l, lua_Integer i)
{
	lua_State *L = r->L;

	lua_getfield(L, -1, "proxy_protocol");
	if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
		return fail(r, "listen", "entry %lld: proxy_protocol must be true or false", (long long)i);
	l->proxy_protocol = lua_toboolean(L, -1);
	lua_pop(L, 1);
	lua_getfield(L, -1, "proxy_from");
	if (lua_istable(L, -1)) {
		for (lua_Integer k = 1; lua_rawgeti(L, -1, k) != LUA_TNIL; k++) {
			if (l->nproxy_from == CONF_MAX_PROXY_FROM)
				return fail(r, "listen", "entry %lld: proxy_from: more than %d networks", (long long)i,
				    CONF_MAX_PROXY_FROM);
			if (lua_type(L, -1) != LUA_TSTRING ||
			    conf_parse_net(lua_tostring(L, -1), &l->proxy_from[l->nproxy_from]) < 0)
				return fail(r, "listen", "entry %lld: proxy_from: not a network (\"10.0.0.0/8\")",
				    (long long)i);
			l->nproxy_from++;
			lua_pop(L, 1);
		}
		lua_pop(L, 1);
	} else if (!lua_isnil(L, -1))
		return fail(r, "listen", "entry %lld: proxy_from: expected a list of networks", (long long)i);
	lua_pop(L, 1);
	/* Trusting a header from anyone would let any client pick its address. */
	if (l->proxy_protocol && l->nproxy_from == 0)
		return fail(r, "listen", "entry %lld: proxy_protocol needs proxy_from (the load balancers' "
		    "networks)", (long long)i);
	return 0;
}

static int
read_listen(struct reader *r, struct conf *c)
{
	lua_State *L = r->L;
	int t = getkey(r, "listen");

	if (t == LUA_TNIL) {
		lua_pop(L, 1);
		return 0;
	}
	if (t != LUA_TTABLE)
		return fail(r, "listen", "expected a list of { address, port, direction }");
	c->nlisten = 0;
	for (lua_Integer i = 1; lua_rawgeti(L, -1, i) != LUA_TNIL; i++) {
		struct conf_listener *l;
		char dir[16] = "inbound", port[16];
		struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_PASSIVE, .ai_socktype = SOCK_STREAM }, *ai;

		if (c->nlisten == CONF_MAX_LISTEN)
			return fail(r, "listen", "more than %d listeners", CONF_MAX_LISTEN);
		if (!lua_istable(L, -1))
			return fail(r, "listen", "entry %lld: expected a table", (long long)i);
		l = &c->listen[c->nlisten];
		memset(l, 0, sizeof *l);
		l->index = c->nlisten++;
		strcpy(l->address, "127.0.0.1");
		lua_getfield(L, -1, "address");
		if (!lua_isnil(L, -1) && copy_str(r, "listen", -1, l->address, sizeof l->address) < 0)
			return -1;
		lua_pop(L, 1);
		lua_getfield(L, -1, "direction");
		if (!lua_isnil(L, -1) && copy_str(r, "listen", -1, dir, sizeof dir) < 0)
			return -1;
		lua_pop(L, 1);
		if (strcmp(dir, "inbound") == 0)
			l->direction = DIR_INBOUND;
		else if (strcmp(dir, "outbound") == 0)
			l->direction = DIR_OUTBOUND;
		else
			return fail(r, "listen", "entry %lld: direction must be \"inbound\" or \"outbound\"", (long long)i);
		l->port = 25;
		if (opt_int(r, "listen", "port", 0, 65535, &l->port) < 0 || read_proxy(r, l, i) < 0)
			return -1;
		snprintf(port, sizeof port, "%d", l->port);
		if (getaddrinfo(l->address, port, &hints, &ai) != 0)
			return fail(r, "listen", "entry %lld: \"%s\" is not an IP address", (long long)i, l->address);
		memcpy(&l->sa, ai->ai_addr, ai->ai_addrlen);
		l->salen = ai->ai_addrlen;
		freeaddrinfo(ai);
		lua_pop(L, 1);
	}
	lua_pop(L, 2);
	return 0;
}

static int
read_domains(struct reader *r, struct conf *c)
{
	lua_State *L = r->L;
	int t = getkey(r, "hosted_domains");

	if (t == LUA_TNIL) {
		lua_pop(L, 1);
		return 0;
	}
	if (t != LUA_TTABLE)
		return fail(r, "hosted_domains", "expected { [\"domain\"] = { route = \"host:port\" } }");
	lua_pushnil(L);
	while (lua_next(L, -2)) {
		struct conf_domain *d, *nd;

		if (lua_type(L, -2) != LUA_TSTRING)
			return fail(r, "hosted_domains", "keys are domain names");
		nd = realloc(c->domains, (c->ndomains + 1) * sizeof *c->domains);
		if (!nd)
			return fail(r, "hosted_domains", "out of memory");
		c->domains = nd;
		d = &c->domains[c->ndomains++];
		memset(d, 0, sizeof *d);
		if (copy_str(r, "hosted_domains", -2, d->name, sizeof d->name) < 0)
			return -1;
		lower(d->name);
		if (lua_istable(L, -1)) {
			lua_getfield(L, -1, "route");
			if (!lua_isnil(L, -1) && copy_str(r, "hosted_domains", -1, d->route, sizeof d->route) < 0)
				return -1;
			lua_pop(L, 1);
			lua_getfield(L, -1, "tls");
			if (!lua_isnil(L, -1) && copy_str(r, "hosted_domains", -1, d->tls, sizeof d->tls) < 0)
				return -1;
			lua_pop(L, 1);
			if (d->tls[0] && strcmp(d->tls, "require") != 0 && strcmp(d->tls, "verify") != 0 &&
			    strcmp(d->tls, "may") != 0)
				return fail(r, "hosted_domains", "%s: tls must be \"may\", \"require\" or \"verify\"", d->name);
		} else if (lua_type(L, -1) == LUA_TSTRING) {
			if (copy_str(r, "hosted_domains", -1, d->route, sizeof d->route) < 0)
				return -1;
		} else if (!lua_isboolean(L, -1))
			return fail(r, "hosted_domains", "%s: expected a table, a route string or true", d->name);
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	return 0;
}

/* The list of networks on top of the stack (popped) into *nets; key for errors. */
static int
net_list(struct reader *r, const char *key, struct conf_net **nets, int *n)
{
	lua_State *L = r->L;
	int t = lua_type(L, -1);

	if (t == LUA_TNIL) {
		lua_pop(L, 1);
		return 0;
	}
	if (t != LUA_TTABLE)
		return fail(r, key, "expected a list of networks, e.g. { \"192.0.2.0/24\" }");
	for (lua_Integer i = 1; lua_rawgeti(L, -1, i) != LUA_TNIL; i++) {
		struct conf_net *nn = realloc(*nets, (size_t)(*n + 1) * sizeof *nn);

		if (!nn)
			return fail(r, key, "out of memory");
		*nets = nn;
		if (lua_type(L, -1) != LUA_TSTRING || conf_parse_net(lua_tostring(L, -1), &nn[*n]) < 0)
			return fail(r, key, "entry %lld: not a network (\"192.0.2.0/24\", \"2001:db8::/32\")", (long long)i);
		(*n)++;
		lua_pop(L, 1);
	}
	lua_pop(L, 2);
	return 0;
}

static int
read_nets(struct reader *r, struct conf *c)
{
	getkey(r, "relay_networks");
	return net_list(r, "relay_networks", &c->relay_nets, &c->nrelay_nets);
}

static int
read_names(struct reader *r, struct conf *c)
{
	lua_State *L = r->L;
	int t = getkey(r, "host_names");
	size_t n = 0;

	if (t == LUA_TNIL) {
		lua_pop(L, 1);
		return 0;
	}
	if (t != LUA_TTABLE)
		return fail(r, "host_names", "expected a list of names");
	n = lua_rawlen(L, -1);
	c->host_names = calloc(n + 1, sizeof *c->host_names);
	if (!c->host_names)
		return fail(r, "host_names", "out of memory");
	for (size_t i = 0; i < n; i++) {
		lua_rawgeti(L, -1, (lua_Integer)i + 1);
		if (lua_type(L, -1) != LUA_TSTRING)
			return fail(r, "host_names", "entry %zu: expected a string", i + 1);
		c->host_names[i] = strdup(lua_tostring(L, -1));
		if (!c->host_names[i])
			return fail(r, "host_names", "out of memory");
		lower(c->host_names[i]);
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	return 0;
}

static int
read_table_nums(struct reader *r, struct conf *c)
{
	double size = (double)c->limits.max_message_size;

	if (getkey(r, "limits") == LUA_TTABLE) {
		if (opt_int(r, "limits", "max_connections", 1, 1e6, &c->limits.max_connections) ||
		    opt_int(r, "limits", "max_per_ip", 1, 1e6, &c->limits.max_per_ip) ||
		    opt_int(r, "limits", "max_recipients", 1, 1e5, &c->limits.max_recipients) ||
		    opt_num(r, "limits", "max_message_size", 1024, 4e9, &size) ||
		    opt_int(r, "limits", "max_errors", 1, 1000, &c->limits.max_errors) ||
		    opt_int(r, "limits", "command_line", 512, 65536, &c->limits.command_line) ||
		    opt_int(r, "limits", "text_line", 1000, 65536, &c->limits.text_line))
			return -1;
		c->limits.max_message_size = (size_t)size;
	} else if (!lua_isnil(r->L, -1))
		return fail(r, "limits", "expected a table");
	lua_pop(r->L, 1);
	if (getkey(r, "timeouts") == LUA_TTABLE) {
		if (opt_num(r, "timeouts", "greeting_delay", 0, 60, &c->timeouts.greeting_delay) ||
		    opt_num(r, "timeouts", "command", 0.1, 3600, &c->timeouts.command) ||
		    opt_num(r, "timeouts", "data", 0.1, 3600, &c->timeouts.data) ||
		    opt_num(r, "timeouts", "message", 0.1, 86400, &c->timeouts.message) ||
		    opt_num(r, "timeouts", "session", 0.1, 86400, &c->timeouts.session) ||
		    opt_num(r, "timeouts", "rule", 0.1, 3600, &c->timeouts.rule) ||
		    opt_num(r, "timeouts", "shutdown", 0, 3600, &c->timeouts.shutdown))
			return -1;
	} else if (!lua_isnil(r->L, -1))
		return fail(r, "timeouts", "expected a table");
	lua_pop(r->L, 1);
	if (getkey(r, "dns") == LUA_TTABLE) {
		lua_getfield(r->L, -1, "servers");
		if (!lua_isnil(r->L, -1) && copy_str(r, "dns", -1, c->dns.servers, sizeof c->dns.servers) < 0)
			return -1;
		lua_pop(r->L, 1);
		if (opt_num(r, "dns", "timeout", 0.05, 60, &c->dns.timeout) ||
		    opt_int(r, "dns", "tries", 1, 10, &c->dns.tries) ||
		    opt_int(r, "dns", "cache", 0, 10000000, &c->dns.cache))
			return -1;
	} else if (!lua_isnil(r->L, -1))
		return fail(r, "dns", "expected { servers = \"127.0.0.1:53\", timeout = 2, tries = 2 }");
	lua_pop(r->L, 1);
	if (getkey(r, "journal") == LUA_TTABLE) {
		lua_getfield(r->L, -1, "dir");
		if (!lua_isnil(r->L, -1) && copy_str(r, "journal", -1, c->journal.dir, sizeof c->journal.dir) < 0)
			return -1;
		lua_pop(r->L, 1);
		if (opt_num(r, "journal", "sample", 0, 1, &c->journal.sample) ||
		    opt_num(r, "journal", "max_record", 4096, 16777216, &c->journal.max_record) ||
		    opt_num(r, "journal", "max_file", 65536, 1e12, &c->journal.max_file) ||
		    opt_num(r, "journal", "max_headers", 0, 65536, &c->journal.max_headers))
			return -1;
	} else if (lua_isboolean(r->L, -1)) {
		c->journal.sample = lua_toboolean(r->L, -1) ? 1 : 0;
	} else if (!lua_isnil(r->L, -1))
		return fail(r, "journal", "expected true, false or { sample = 1, dir = ... }");
	lua_pop(r->L, 1);
	if (getkey(r, "callout") == LUA_TTABLE) {
		lua_getfield(r->L, -1, "mail_from");
		if (!lua_isnil(r->L, -1) && copy_str(r, "callout", -1, c->callout.mail_from, sizeof c->callout.mail_from) < 0)
			return -1;
		lua_pop(r->L, 1);
		lua_getfield(r->L, -1, "starttls");
		c->callout.starttls = lua_toboolean(r->L, -1);
		lua_pop(r->L, 1);
		lua_getfield(r->L, -1, "allow_networks");
		if (net_list(r, "callout", &c->callout.allow_nets, &c->callout.nallow_nets) < 0)
			return -1;
		if (opt_int(r, "callout", "port", 1, 65535, &c->callout.port) ||
		    opt_num(r, "callout", "connect_timeout", 0.05, 600, &c->callout.connect_timeout) ||
		    opt_num(r, "callout", "command_timeout", 0.05, 600, &c->callout.command_timeout) ||
		    opt_num(r, "callout", "positive_ttl", -1, 1e8, &c->callout.positive_ttl) ||
		    opt_num(r, "callout", "negative_ttl", -1, 1e8, &c->callout.negative_ttl) ||
		    opt_int(r, "callout", "max_per_host", 1, 10000, &c->callout.max_per_host))
			return -1;
	} else if (!lua_isnil(r->L, -1))
		return fail(r, "callout", "expected a table");
	lua_pop(r->L, 1);
	if (getkey(r, "delivery") == LUA_TTABLE) {
		lua_getfield(r->L, -1, "enabled");
		if (!lua_isnil(r->L, -1))
			c->delivery.enabled = lua_toboolean(r->L, -1);
		lua_pop(r->L, 1);
		lua_getfield(r->L, -1, "tls");
		if (!lua_isnil(r->L, -1) && copy_str(r, "delivery", -1, c->delivery.tls, sizeof c->delivery.tls) < 0)
			return -1;
		lua_pop(r->L, 1);
		lua_getfield(r->L, -1, "ca_file");
		if (!lua_isnil(r->L, -1) &&
		    copy_str(r, "delivery", -1, c->delivery.ca_file, sizeof c->delivery.ca_file) < 0)
			return -1;
		lua_pop(r->L, 1);
		if (c->delivery.tls[0] && strcmp(c->delivery.tls, "require") != 0 &&
		    strcmp(c->delivery.tls, "verify") != 0 && strcmp(c->delivery.tls, "may") != 0)
			return fail(r, "delivery", "tls must be \"may\", \"require\" or \"verify\"");
		if (opt_int(r, "delivery", "port", 1, 65535, &c->delivery.port) ||
		    opt_int(r, "delivery", "per_destination", 1, 10000, &c->delivery.per_destination) ||
		    opt_int(r, "delivery", "max_sessions", 1, 100000, &c->delivery.max_sessions) ||
		    opt_num(r, "delivery", "retry_min", 0.01, 1e7, &c->delivery.retry_min) ||
		    opt_num(r, "delivery", "retry_max", 0.01, 1e7, &c->delivery.retry_max) ||
		    opt_num(r, "delivery", "max_lifetime", 0.01, 1e9, &c->delivery.max_lifetime) ||
		    opt_num(r, "delivery", "connect_timeout", 0.05, 600, &c->delivery.connect_timeout) ||
		    opt_num(r, "delivery", "command_timeout", 0.05, 3600, &c->delivery.command_timeout) ||
		    opt_num(r, "delivery", "idle_time", 0, 300, &c->delivery.idle_time) ||
		    opt_num(r, "delivery", "delay_warning", 0, 1e9, &c->delivery.delay_warning))
			return -1;
	} else if (!lua_isnil(r->L, -1))
		return fail(r, "delivery", "expected a table");
	lua_pop(r->L, 1);
	if (getkey(r, "rule_limits") == LUA_TTABLE) {
		double ins = (double)c->rule_instructions, mem = (double)c->rule_memory, smem = 0;
		if (opt_num(r, "rule_limits", "instructions", 1e4, 1e10, &ins) ||
		    opt_num(r, "rule_limits", "memory", 1 << 20, 1e11, &mem) ||
		    opt_num(r, "rule_limits", "session_memory", 1 << 20, 1e11, &smem))
			return -1;
		c->rule_instructions = (long)ins;
		c->rule_memory = (size_t)mem;
		c->rule_session_memory = (size_t)smem;
		if (c->rule_session_memory > c->rule_memory)
			return fail(r, "rule_limits", "session_memory is more than memory");
	} else if (!lua_isnil(r->L, -1))
		return fail(r, "rule_limits", "expected a table");
	lua_pop(r->L, 1);
	if (!c->rule_session_memory)            /* one session may hold a quarter */
		c->rule_session_memory = c->rule_memory / 4;
	return 0;
}

/* One string field of the table on top, when present. */
static int
opt_field_str(struct reader *r, const char *key, const char *field, char *dst, size_t len)
{
	int rc = 0;

	lua_getfield(r->L, -1, field);
	if (!lua_isnil(r->L, -1))
		rc = copy_str(r, key, -1, dst, len);
	lua_pop(r->L, 1);
	return rc;
}

/* state = { backend = "redis", server = ..., fail = { greylist = "defer" } } */
static int
read_state(struct reader *r, struct conf *c)
{
	int t = getkey(r, "state");

	if (t == LUA_TTABLE) {
		if (opt_field_str(r, "state", "backend", c->state.backend, sizeof c->state.backend) ||
		    opt_field_str(r, "state", "server", c->state.server, sizeof c->state.server) ||
		    opt_field_str(r, "state", "user", c->state.user, sizeof c->state.user) ||
		    opt_field_str(r, "state", "password", c->state.password, sizeof c->state.password) ||
		    opt_field_str(r, "state", "prefix", c->state.prefix, sizeof c->state.prefix) ||
		    opt_int(r, "state", "db", 0, 1e6, &c->state.db) ||
		    opt_num(r, "state", "timeout", 0.01, 60, &c->state.timeout))
			return -1;
		if (strcmp(c->state.backend, "lmdb") != 0 && strcmp(c->state.backend, "redis") != 0)
			return fail(r, "state", "backend must be \"lmdb\" or \"redis\"");
		if (!c->state.server[0])
			return fail(r, "state", "server: expected \"host:port\" or \"unix:/path\"");
		lua_getfield(r->L, -1, "fail");
		if (lua_istable(r->L, -1)) {
			if (opt_field_str(r, "state", "greylist", c->state.fail_greylist, sizeof c->state.fail_greylist) ||
			    opt_field_str(r, "state", "ratelimit", c->state.fail_ratelimit, sizeof c->state.fail_ratelimit))
				return -1;
		} else if (!lua_isnil(r->L, -1))
			return fail(r, "state", "fail: expected { greylist = \"pass\", ratelimit = \"allow\" }");
		lua_pop(r->L, 1);
		if (strcmp(c->state.fail_greylist, "pass") != 0 && strcmp(c->state.fail_greylist, "defer") != 0)
			return fail(r, "state", "fail.greylist must be \"pass\" or \"defer\"");
		if (strcmp(c->state.fail_ratelimit, "allow") != 0 && strcmp(c->state.fail_ratelimit, "defer") != 0)
			return fail(r, "state", "fail.ratelimit must be \"allow\" or \"defer\"");
	} else if (t != LUA_TNIL)
		return fail(r, "state", "expected { backend = \"lmdb\" } or { backend = \"redis\", server = ... }");
	lua_pop(r->L, 1);
	return 0;
}

static int
read_tls(struct reader *r, struct conf *c)
{
	int t = getkey(r, "tls");

	if (t == LUA_TTABLE) {
		lua_getfield(r->L, -1, "cert");
		if (!lua_isnil(r->L, -1) && copy_str(r, "tls", -1, c->tls_cert, sizeof c->tls_cert) < 0)
			return -1;
		lua_pop(r->L, 1);
		lua_getfield(r->L, -1, "key");
		if (!lua_isnil(r->L, -1) && copy_str(r, "tls", -1, c->tls_key, sizeof c->tls_key) < 0)
			return -1;
		lua_pop(r->L, 1);
		if (!!c->tls_cert[0] != !!c->tls_key[0])
			return fail(r, "tls", "give both cert and key, or neither");
	} else if (t != LUA_TNIL)
		return fail(r, "tls", "expected { cert = FILE, key = FILE }");
	lua_pop(r->L, 1);
	return 0;
}

/* An address that only this machine reaches: 127.0.0.0/8, ::1. */
static int
is_loopback(const struct sockaddr_storage *sa)
{
	if (sa->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	return sa->ss_family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
}

/* The keys of the http table: a typo in a limit must not fall back to
 * the default unseen (the top level's rule, check_keys()). */
static const char *const http_keys[] = {
	"address", "port", "token", "user", "password", "max_connections", "max_per_ip",
	"timeout", "connection_memory", "max_page", "index_max_size", "index_retention", NULL,
};

static int
http_limits(struct reader *r, struct conf *c)
{
	lua_pushnil(r->L);
	while (lua_next(r->L, -2)) {
		lua_pop(r->L, 1);
		if (lua_type(r->L, -1) != LUA_TSTRING || !listed(http_keys, lua_tostring(r->L, -1))) {
			const char *k = lua_type(r->L, -1) == LUA_TSTRING ? lua_tostring(r->L, -1) : "?";
			return fail(r, "http", "unknown key %s (see mxgate.lua(5))", k);
		}
	}
	/* Ranges: zero would mean "none" or "no limit" to the library, and the
	 * tops are far past what one HTTP process of ours should be asked to
	 * hold (a number beyond them is a typo). */
	if (opt_count(r, "http", "max_connections", 1, 10000, &c->http.max_connections) ||
	    opt_count(r, "http", "max_per_ip", 1, 10000, &c->http.max_per_ip) ||
	    opt_count(r, "http", "timeout", 1, 3600, &c->http.timeout) ||
	    opt_size(r, "http", "connection_memory", 4096, 16 << 20, &c->http.connection_memory) ||
	    opt_size(r, "http", "max_page", 64 << 10, 1 << 30, &c->http.max_page) ||
	    opt_size(r, "http", "index_max_size", 64 << 20, 0x1p40, &c->http.index_max_size) ||
	    opt_num(r, "http", "index_retention", 1, 3650, &c->http.index_retention))
		return -1;
	if (c->http.max_per_ip > c->http.max_connections)
		return fail(r, "http", "max_per_ip (%d) is more than max_connections (%d)",
		    c->http.max_per_ip, c->http.max_connections);
	return 0;
}

/* http = { address, port, token, user, password, limits }: off when absent. */
static int
read_http(struct reader *r, struct conf *c)
{
	int t = getkey(r, "http");
	char port[16];
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_PASSIVE, .ai_socktype = SOCK_STREAM }, *ai;
	static const struct { const char *name; size_t off, len; } fields[] = {
		{ "address", offsetof(struct conf, http.address), sizeof c->http.address },
		{ "token", offsetof(struct conf, http.token), sizeof c->http.token },
		{ "user", offsetof(struct conf, http.user), sizeof c->http.user },
		{ "password", offsetof(struct conf, http.password), sizeof c->http.password },
	};

	if (t == LUA_TNIL || (t == LUA_TBOOLEAN && !lua_toboolean(r->L, -1))) {
		lua_pop(r->L, 1);
		return 0;
	}
	if (t != LUA_TTABLE)
		return fail(r, "http", "expected { address = \"127.0.0.1\", port = 8025, token = ... }");
	c->http.enabled = 1;
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		lua_getfield(r->L, -1, fields[i].name);
		if (!lua_isnil(r->L, -1) && copy_str(r, "http", -1, (char *)c + fields[i].off, fields[i].len) < 0)
			return -1;
		lua_pop(r->L, 1);
	}
	if (opt_int(r, "http", "port", 1, 65535, &c->http.port) < 0 || http_limits(r, c) < 0)
		return -1;
	if (!!c->http.user[0] != !!c->http.password[0])
		return fail(r, "http", "give both user and password (basic auth), or neither");
	snprintf(port, sizeof port, "%d", c->http.port);
	if (getaddrinfo(c->http.address, port, &hints, &ai) != 0)
		return fail(r, "http", "address: \"%s\" is not an IP address", c->http.address);
	memcpy(&c->http.sa, ai->ai_addr, ai->ai_addrlen);
	c->http.salen = ai->ai_addrlen;
	freeaddrinfo(ai);
	/* Counters and the portal's rejections (addresses) are not for anyone
	 * on the network: off loopback, a credential is required. */
	if (!is_loopback(&c->http.sa) && !c->http.token[0] && !c->http.user[0])
		return fail(r, "http", "address %s is not loopback: set token (bearer) or user and password "
		    "(basic auth)", c->http.address);
	lua_pop(r->L, 1);
	return 0;
}

static void
set_defaults(struct conf *c)
{
	memset(c, 0, sizeof *c);
	if (gethostname(c->hostname, sizeof c->hostname - 1) != 0 || !c->hostname[0])
		strcpy(c->hostname, "localhost");
	c->nlisten = 2;
	strcpy(c->listen[0].address, "127.0.0.1");
	c->listen[0].port = 2525;
	c->listen[0].direction = DIR_INBOUND;
	strcpy(c->listen[1].address, "127.0.0.1");
	c->listen[1].port = 2587;
	c->listen[1].direction = DIR_OUTBOUND;
	c->listen[1].index = 1;
	for (int i = 0; i < 2; i++) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&c->listen[i].sa;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)c->listen[i].port);
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		c->listen[i].salen = sizeof *sin;
	}
	strcpy(c->user, "mxgate");
	strcpy(c->state_dir, "var");
	strcpy(c->rules, "rules.d");
	strcpy(c->stdlib, "stdlib");
	strcpy(c->bare_lf, "normalize");
	c->limits.max_connections = 1000;
	c->limits.max_per_ip = 50;
	c->limits.max_recipients = 100;
	c->limits.max_message_size = 25 * 1024 * 1024;
	c->limits.max_errors = 10;
	c->limits.command_line = 512;
	c->limits.text_line = 1000;
	c->dns.timeout = 2;
	c->dns.tries = 2;
	c->dns.cache = 10000;
	c->journal.sample = 1;
	c->journal.max_record = 64 * 1024;
	c->journal.max_file = 100.0 * 1024 * 1024;
	c->journal.max_headers = 8192;
	c->callout.port = 25;
	c->callout.connect_timeout = 10;
	c->callout.command_timeout = 30;
	c->callout.positive_ttl = 24 * 3600;
	c->callout.negative_ttl = 2 * 3600;
	c->callout.max_per_host = 5;
	strcpy(c->state.backend, "lmdb");
	strcpy(c->state.server, "127.0.0.1:6379");
	strcpy(c->state.prefix, "mxgate:");
	c->state.timeout = 0.5;
	strcpy(c->state.fail_greylist, "pass");
	strcpy(c->state.fail_ratelimit, "allow");
	c->delivery.enabled = 1;
	c->delivery.port = 25;
	c->delivery.per_destination = 20;
	c->delivery.max_sessions = 100;
	c->delivery.retry_min = 300;
	c->delivery.retry_max = 3600;
	c->delivery.max_lifetime = 5 * 86400;
	c->delivery.connect_timeout = 30;
	c->delivery.command_timeout = 300;
	c->delivery.idle_time = 2;
	strcpy(c->http.address, "127.0.0.1");
	c->http.port = 8025;
	c->http.max_connections = 64;
	c->http.max_per_ip = 16;
	c->http.timeout = 10;
	c->http.connection_memory = 32 << 10;
	c->http.max_page = 16 << 20;
	c->http.index_max_size = (size_t)16 << 30;
	c->http.index_retention = 30;
	c->rule_instructions = 1000000;
	c->rule_memory = 256u * 1024 * 1024;
	c->timeouts.command = 300;
	c->timeouts.data = 180;
	c->timeouts.message = 900;
	c->timeouts.session = 1800;
	c->timeouts.rule = 60;
	c->timeouts.shutdown = 30;
}

static int
check_keys(struct reader *r)
{
	lua_State *L = r->L;

	lua_getfield(L, LUA_REGISTRYINDEX, "mxgate.conf.env");
	lua_pushnil(L);
	while (lua_next(L, -2)) {
		int ok = 0;
		lua_pop(L, 1);
		if (lua_type(L, -1) != LUA_TSTRING)
			continue;
		for (const char **k = known_keys; *k; k++)
			ok |= strcmp(*k, lua_tostring(L, -1)) == 0;
		if (!ok)
			return fail(r, lua_tostring(L, -1), "unknown key (see README.md, \"Configuration\")");
	}
	lua_pop(L, 1);
	return 0;
}

/*
 * NaN passes every range check written as "v < lo || v > hi", and an
 * infinity is no count, size or delay: no number anywhere in the config
 * (keys the rules read included) may be either. Tables seen once (cycles).
 */
static const char *
not_finite(lua_State *L, int idx)
{
	double v;

	if (lua_type(L, idx) != LUA_TNUMBER || lua_isinteger(L, idx) || isfinite(v = lua_tonumber(L, idx)))
		return NULL;
	return isnan(v) ? "nan" : v > 0 ? "inf" : "-inf";
}

/* The table on top; top is the config key it hangs from, path the way down. */
static int
check_numbers(struct reader *r, const char *top, char *path, size_t len, int depth)
{
	lua_State *L = r->L;
	size_t n = strlen(path);

	luaL_checkstack(L, 8, "config nested too deep");
	if (depth > 64)
		return fail(r, top, "nested more than 64 tables deep");
	lua_getfield(L, LUA_REGISTRYINDEX, "mxgate.conf.seen");
	lua_pushvalue(L, -2);
	if (lua_rawget(L, -2) != LUA_TNIL) {
		lua_pop(L, 2);
		return 0;
	}
	lua_pop(L, 1);
	lua_pushvalue(L, -2);
	lua_pushboolean(L, 1);
	lua_rawset(L, -3);
	lua_pop(L, 1);
	lua_pushnil(L);
	while (lua_next(L, -2)) {
		const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
		const char *key = top ? top : k, *bad;

		if (top && k)
			snprintf(path + n, len - n, "%s%s", n ? "." : "", k);
		else if (top && lua_isinteger(L, -2))
			snprintf(path + n, len - n, "[%lld]", (long long)lua_tointeger(L, -2));
		if ((bad = not_finite(L, -2)) || (bad = not_finite(L, -1)))
			return fail(r, key, "%s%snot a finite number (%s)", path, path[0] ? ": " : "", bad);
		if (lua_type(L, -1) == LUA_TTABLE && check_numbers(r, key, path, len, depth + 1) < 0)
			return -1;
		path[n] = '\0';
		lua_pop(L, 1);
	}
	return 0;
}

static int
check_all_numbers(struct reader *r)
{
	char path[512] = "";

	lua_newtable(r->L);
	lua_setfield(r->L, LUA_REGISTRYINDEX, "mxgate.conf.seen");
	lua_getfield(r->L, LUA_REGISTRYINDEX, "mxgate.conf.env");
	if (check_numbers(r, NULL, path, sizeof path, 0) < 0)
		return -1;
	lua_pop(r->L, 1);
	return 0;
}

static int
read_all(struct reader *r, struct conf *c)
{
	lua_State *L = r->L;
	int t;

	if (check_keys(r) < 0 || check_all_numbers(r) < 0 ||
	    opt_str(r, "hostname", c->hostname, sizeof c->hostname) ||
	    opt_str(r, "user", c->user, sizeof c->user) ||
	    opt_str(r, "state_dir", c->state_dir, sizeof c->state_dir) ||
	    opt_str(r, "spool_dir", c->spool_dir, sizeof c->spool_dir) ||
	    opt_str(r, "log_file", c->log_file, sizeof c->log_file) ||
	    opt_str(r, "stdlib", c->stdlib, sizeof c->stdlib) ||
	    opt_str(r, "bare_lf", c->bare_lf, sizeof c->bare_lf) ||
	    opt_str(r, "postmaster", c->postmaster, sizeof c->postmaster) ||
	    opt_int(r, "workers", NULL, 0, 256, &c->workers) ||
	    read_listen(r, c) || read_domains(r, c) || read_nets(r, c) ||
	    read_names(r, c) || read_table_nums(r, c) || read_tls(r, c) || read_state(r, c) ||
	    read_http(r, c))
		return -1;
	lower(c->hostname);
	if (getkey(r, "allow_user_nobody") != LUA_TNIL && !lua_isboolean(L, -1))
		return fail(r, "allow_user_nobody", "expected true or false");
	c->allow_user_nobody = lua_toboolean(L, -1);
	lua_pop(L, 1);
	/* Other daemons run as nobody (smtp-sink, NFS squashing...): as that
	 * user they could read and change queued mail. */
	if (strcmp(c->user, "nobody") == 0 && !c->allow_user_nobody)
		return fail(r, "user", "\"nobody\" is shared with other daemons, which could then read and "
		    "change queued mail: run as a dedicated account (the default \"mxgate\": adduser --system "
		    "--group --no-create-home mxgate), or set allow_user_nobody = true");
	if (strcmp(c->bare_lf, "normalize") != 0 && strcmp(c->bare_lf, "reject") != 0)
		return fail(r, "bare_lf", "must be \"normalize\" or \"reject\"");
	t = getkey(r, "rules");
	if (t == LUA_TBOOLEAN && !lua_toboolean(L, -1))
		c->rules[0] = '\0';
	else if (t != LUA_TNIL && copy_str(r, "rules", -1, c->rules, sizeof c->rules) < 0)
		return -1;
	lua_pop(L, 1);
	if (!c->spool_dir[0] &&
	    snprintf(c->spool_dir, sizeof c->spool_dir, "%s/spool", c->state_dir) >= (int)sizeof c->spool_dir)
		return fail(r, "state_dir", "too long");
	if (!c->postmaster[0]) {
		/* postmaster@ the first hosted domain (by name: a Lua table has
		 * no order), else @ our hostname. */
		const char *d = c->hostname;
		for (int i = 0; i < c->ndomains; i++)
			if (i == 0 || strcmp(c->domains[i].name, d) < 0)
				d = c->domains[i].name;
		snprintf(c->postmaster, sizeof c->postmaster, "postmaster@%.250s", d);
	} else if (!strchr(c->postmaster, '@') || strpbrk(c->postmaster, " <>\r\n"))
		return fail(r, "postmaster", "expected an address, user@domain");
	if (!c->journal.dir[0])
		snprintf(c->journal.dir, sizeof c->journal.dir, "%.500s/journal", c->state_dir);
	if (c->nlisten == 0)
		return fail(r, "listen", "no listener");
	return 0;
}

static void *
conf_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct budget *b = ud;

	if (!ptr)
		osize = 0;
	if (nsize == 0) {
		free(ptr);
		b->mem -= osize;
		return NULL;
	}
	if (b->mem - osize + nsize > b->mem_max)
		return NULL;
	ptr = realloc(ptr, nsize);
	if (ptr)
		b->mem = b->mem - osize + nsize;
	return ptr;
}

/* Once spent, every instruction raises again: no pcall in the file holds on. */
static void
conf_hook(lua_State *L, lua_Debug *ar)
{
	struct budget *b;
	lua_Debug d;

	lua_getallocf(L, (void **)&b);
	if ((b->left -= CONF_HOOK_EVERY) >= 0)
		return;
	if (!b->spent[0]) {
		const char *src = "?";
		int line = 0;
		if (lua_getstack(L, 0, &d) && lua_getinfo(L, "Sl", &d)) {
			src = d.short_src;
			line = d.currentline;
		}
		snprintf(b->spent, sizeof b->spent, "%s:%d: the config ran past its budget of %ld "
		    "instructions (a loop that never ends?)", src, line, CONF_INSTRUCTIONS);
		lua_sethook(L, conf_hook, LUA_MASKCOUNT, 1);
	}
	lua_pushstring(L, b->spent);
	lua_error(L);
}

/* error({}), error(nil): still a message with the place it came from. */
static int
conf_msgh(lua_State *L)
{
	lua_Debug ar;

	if (lua_type(L, 1) == LUA_TSTRING)
		return 1;
	for (int level = 1; lua_getstack(L, level, &ar); level++) {
		if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
			lua_pushfstring(L, "%s:%d: error object is a %s value", ar.short_src, ar.currentline,
			    luaL_typename(L, 1));
			return 1;
		}
	}
	lua_pushfstring(L, "error object is a %s value", luaL_typename(L, 1));
	return 1;
}

/* The whole load, in one protected call: open libraries, run, read. */
static int
load_body(lua_State *L)
{
	struct reader *r = lua_touserdata(L, 1);

	lua_settop(L, 0);
	luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
	luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
	luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
	luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
	luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 1);
	lua_settop(L, 0);
	/* Our own state: gone from the library itself, so ("a"):find() too. */
	luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
	lua_getfield(L, -1, LUA_STRLIBNAME);
	for (const char *const *k = unsafe_string; *k; k++) {
		lua_pushnil(L);
		lua_setfield(L, -2, *k);
	}
	lua_settop(L, 0);
	conf_run(L, r->path);
	lua_setfield(L, LUA_REGISTRYINDEX, "mxgate.conf.env");
	r->rc = read_all(r, r->c);
	return 0;
}

int
conf_load(struct conf *c, const char *path, char *err, size_t errlen)
{
	struct budget b = { .mem_max = CONF_MEMORY, .left = CONF_INSTRUCTIONS };
	struct reader r = { .path = path, .err = err, .errlen = errlen, .c = c, .rc = -1 };
	lua_State *L;
	int st;

	set_defaults(c);
	c->path = strdup(path);
	L = r.L = lua_newstate(conf_alloc, &b);
	if (!L || !c->path) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	lua_sethook(L, conf_hook, LUA_MASKCOUNT, CONF_HOOK_EVERY);
	lua_pushcfunction(L, conf_msgh);
	lua_pushcfunction(L, load_body);
	lua_pushlightuserdata(L, &r);
	st = lua_pcall(L, 1, 0, 1);
	if (b.spent[0])
		snprintf(err, errlen, "%s", b.spent);
	else if (st == LUA_ERRMEM)
		snprintf(err, errlen, "%s: the config needs more than its %u MiB of memory", path,
		    CONF_MEMORY >> 20);
	else if (st != LUA_OK)
		snprintf(err, errlen, "%s", lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) :
		    "error while reporting an error");
	if (st != LUA_OK)
		r.rc = -1;
out:
	if (L)
		lua_close(L);
	return r.rc;
}

void
conf_free(struct conf *c)
{
	if (c->host_names)
		for (char **n = c->host_names; *n; n++)
			free(*n);
	free(c->host_names);
	free(c->domains);
	free(c->relay_nets);
	free(c->callout.allow_nets);
	free(c->path);
	memset(c, 0, sizeof *c);
}

const struct conf_domain *
conf_domain(const struct conf *c, const char *domain)
{
	for (int i = 0; i < c->ndomains; i++)
		if (strcasecmp(c->domains[i].name, domain) == 0)
			return &c->domains[i];
	return NULL;
}

const char *
direction_str(enum direction d)
{
	return d == DIR_OUTBOUND ? "outbound" : "inbound";
}
