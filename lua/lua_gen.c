/*
 * lua_gen.c - a generation: one Lua state with the stdlib and every
 * rules.d/ files loaded, compiled and checked.
 *
 * A generation is built whole or not at all: SIGHUP builds the next one
 * beside the running one and swaps only when it loaded cleanly. Rule files
 * load as text only (bytecode can crash the VM) into the sandbox that
 * stdlib/mxgate.lua builds; the state's allocator is capped, and loading
 * runs under an instruction budget as rules do.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lauxlib.h>
#include <lualib.h>

#include "bridge.h"
#include "conf.h"
#include "metrics.h"

#define RULE_FILE_MAX (1024 * 1024)
#define LOAD_HOOK_EVERY 1000
/* Loading may take this many times one hook run's budget, and at least LOAD_MIN. */
#define LOAD_BUDGET_FACTOR 10
#define LOAD_MIN 10000000L

/*
 * Small blocks Lua frees are kept, per 16-byte class up to 256 bytes, for
 * its next allocation of that class: every hook makes and drops tables and
 * strings, and glibc's malloc and free were 4% of a replayed session (13%
 * over a million sessions, the heap fragmented by longer-lived data). A
 * pooled block always holds its whole class (it was allocated so). Per
 * generation: a Lua state is used by one thread at a time. Under ASan
 * nothing is kept, so a use after free is still caught.
 */
#define POOL_STEP 16
#define POOL_MAX  (POOL_STEP * POOL_CLASSES)
#if defined(__SANITIZE_ADDRESS__)
#define POOL_KEEP 0
#else
#define POOL_KEEP 1024                  /* blocks per class: at most 2.2 MiB a generation */
#endif
#define CLASS(n)  (((n) - 1) / POOL_STEP)

static void *
pool_get(struct lgen *g, size_t n)
{
	size_t c = CLASS(n);
	void *p = g->pool[c];

	if (!p)
		return malloc((c + 1) * POOL_STEP);
	g->pool[c] = *(void **)p;
	g->npool[c]--;
	return p;
}

/* A block Lua allocated with size n is done with. */
static void
release(struct lgen *g, void *p, size_t n)
{
	size_t c = CLASS(n);

	if (n > POOL_MAX || g->npool[c] + 1 > POOL_KEEP) {
		free(p);
		return;
	}
	*(void **)p = g->pool[c];
	g->pool[c] = p;
	g->npool[c]++;
}

static void
pool_drain(struct lgen *g)
{
	for (int c = 0; c < POOL_CLASSES; c++)
		while (g->pool[c]) {
			void *p = g->pool[c];
			g->pool[c] = *(void **)p;
			free(p);
		}
}

/* ptr (osize bytes, or NULL) as nsize > 0 bytes; NULL when out of memory. */
static void *
resize(struct lgen *g, void *ptr, size_t osize, size_t nsize)
{
	void *p;

	if (!ptr)
		return nsize <= POOL_MAX ? pool_get(g, nsize) : malloc(nsize);
	if (osize > POOL_MAX && nsize > POOL_MAX)
		return realloc(ptr, nsize);
	if (osize <= POOL_MAX && nsize <= POOL_MAX && CLASS(osize) == CLASS(nsize))
		return ptr;
	p = nsize <= POOL_MAX ? pool_get(g, nsize) : malloc(nsize);
	if (!p)
		/* Lua counts on a shrink never failing: the block is big enough. */
		return nsize <= osize ? ptr : NULL;
	memcpy(p, ptr, osize < nsize ? osize : nsize);
	release(g, ptr, osize);
	return p;
}

/*
 * Every byte counts against the generation's cap; while a session's rules
 * run, what they allocate and free also counts against that session's own
 * budget (rule_limits.session_memory), so one session keeping data in a
 * file-level global is stopped long before it fills the generation for
 * everyone. Over either cap Lua collects garbage (credited to whoever
 * runs), tries again, then raises "not enough memory" in the rule.
 */
static void *
gen_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct lgen *g = ud;
	struct lctx *x = g->running;

	if (!ptr)
		osize = 0;
	if (nsize == 0) {
		if (ptr)
			release(g, ptr, osize);
		g->mem -= osize;
		if (x)
			x->mem -= (long)osize;
		return NULL;
	}
	if (g->mem_max && g->mem - osize + nsize > g->mem_max) {
		g->full = 1;
		return NULL;
	}
	if (x && nsize > osize && x->mem + (long)(nsize - osize) > (long)g->pol->session_mem) {
		x->over = 1;
		return NULL;
	}
	ptr = resize(g, ptr, osize, nsize);
	if (ptr) {
		g->mem = g->mem - osize + nsize;
		if (x)
			x->mem += (long)nsize - (long)osize;
	}
	return ptr;
}

/* Reads a whole (bounded) file: a malloc'd, NUL-terminated string. */
static char *
slurp(const char *path, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 || n > RULE_FILE_MAX ||
	    fseek(f, 0, SEEK_SET) < 0 || !(buf = malloc((size_t)n + 1))) {
		snprintf(err, errlen, "%s: unreadable or larger than %d bytes", path, RULE_FILE_MAX);
		fclose(f);
		return NULL;
	}
	if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
		snprintf(err, errlen, "%s: read error", path);
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

/* C.read_file(path) for the stdlib: contents, or nil and why. */
static int
l_read_file(lua_State *L)
{
	char err[512];
	size_t len;
	char *buf = slurp(luaL_checkstring(L, 1), &len, err, sizeof err);

	if (!buf) {
		luaL_pushfail(L);
		lua_pushstring(L, err);
		return 2;
	}
	lua_pushlstring(L, buf, len);
	free(buf);
	return 1;
}

/*
 * The config file again, as a plain table for the rules (config.dnsbl,
 * config.greylist, ...): conf_run() runs it in the sandbox conf_load()
 * used, so the rules read what the server validated.
 */
static int
l_push_config(lua_State *L)
{
	conf_run(L, lua_touserdata(L, 1));
	return 1;
}

static int
push_config(lua_State *L, const char *path, char *err, size_t errlen)
{
	lua_pushcfunction(L, l_push_config);
	lua_pushlightuserdata(L, (void *)path);
	if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
		snprintf(err, errlen, "%s", lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) :
		    "the config raised a non-string error");
		return -1;
	}
	return 0;
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* rules.d/NAME.lua in file-name order: "10-helo.lua" before "20-relay.lua". */
static char **
list_rules(const char *dir, int *n, char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	int cap = 0;

	*n = 0;
	if (!d) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return NULL;
	}
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		if (de->d_name[0] == '.' || len < 5 || strcmp(de->d_name + len - 4, ".lua") != 0)
			continue;
		if (*n == cap) {
			char **nn = realloc(names, (size_t)(cap = cap ? cap * 2 : 16) * sizeof *names);
			if (!nn)
				break;
			names = nn;
		}
		names[(*n)++] = strdup(de->d_name);
	}
	closedir(d);
	if (*n)
		qsort(names, (size_t)*n, sizeof *names, cmp_names);
	if (!names)
		names = calloc(1, sizeof *names);
	return names;
}

void
lgen_unref(struct lgen *g)
{
	if (--g->refs > 0)
		return;
	lua_close(g->L);
	pool_drain(g);
	free(g);
	metrics_gauge_add(MG_GENERATIONS, -1);
}

/*
 * Loading runs under a budget too: a loop at the top of a rule file fails
 * the load (the old generation stays) instead of hanging the worker. As
 * for rules, once spent every instruction raises, so no pcall holds on;
 * the first place it ran out is the error reported.
 */
static void
load_hook(lua_State *L, lua_Debug *ar)
{
	struct lgen *g;
	lua_Debug d;

	lua_getallocf(L, (void **)&g);
	if ((g->load_budget -= LOAD_HOOK_EVERY) >= 0)
		return;
	if (!g->load_spent[0]) {
		const char *src = "?";
		int line = 0;
		if (lua_getstack(L, 0, &d) && lua_getinfo(L, "Sl", &d)) {
			src = d.short_src;
			line = d.currentline;
		}
		snprintf(g->load_spent, sizeof g->load_spent,
		    "%s:%d: loading exceeded its instruction budget (rule_limits.instructions)", src, line);
		lua_sethook(L, load_hook, LUA_MASKCOUNT, 1);
	}
	lua_pushstring(L, g->load_spent);
	lua_error(L);
}

static int
gen_fail(struct lgen *g, char *err, size_t errlen, const char *msg)
{
	if (g->load_spent[0])
		msg = g->load_spent;
	snprintf(err, errlen, "%s", msg ? msg : "(error object is not a string)");
	return -1;
}

/* A rule file failed: the message names the file even when the error does not. */
static int
file_fail(struct lgen *g, char *err, size_t errlen, const char *shown, const char *msg)
{
	size_t n = strlen(shown);

	if (g->load_spent[0])
		msg = g->load_spent;
	if (!msg)
		msg = "(error object is not a string)";
	if (strncmp(msg, shown, n) == 0 && msg[n] == ':')
		snprintf(err, errlen, "%s", msg);
	else
		snprintf(err, errlen, "%s: %s", shown, msg);
	return -1;
}

struct lgen *
lgen_load(struct lpolicy *pol, const struct conf *c, char *err, size_t errlen)
{
	struct lgen *g = calloc(1, sizeof *g);
	char path[1024], **names = NULL;
	int n = 0, ok = 0, mod;
	size_t len;
	char *src;
	lua_State *L;

	if (!g) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	g->pol = pol;
	g->mem_max = c->rule_memory;
	g->load_budget = LOAD_BUDGET_FACTOR * c->rule_instructions;
	if (g->load_budget < LOAD_MIN)
		g->load_budget = LOAD_MIN;
	g->refs = 1;
	if (!(L = g->L = lua_newstate(gen_alloc, g))) {
		free(g);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	luaL_openlibs(L);
	lmatch_open(L);                         /* string.find & co. under the budget */
	lprim_open(L);                          /* table C on the stack */
	lua_pushcfunction(L, l_read_file);
	lua_setfield(L, -2, "read_file");
	lua_pushstring(L, pol->world ? pol->world : "live");
	lua_setfield(L, -2, "world");
	if (pol->world_open)
		pol->world_open(L, pol->world_arg);
	lsession_open(L);
	lua_sethook(L, load_hook, LUA_MASKCOUNT, LOAD_HOOK_EVERY);

	snprintf(path, sizeof path, "%s/mxgate.lua", c->stdlib);
	if (!(src = slurp(path, &len, err, errlen)))
		goto out;
	if (luaL_loadbufferx(L, src, len, "@stdlib/mxgate.lua", "t") != LUA_OK) {
		free(src);
		gen_fail(g, err, errlen, lua_tostring(L, -1));
		goto out;
	}
	free(src);
	lua_pushvalue(L, -2);                   /* C */
	if (push_config(L, c->path, err, errlen) < 0)
		goto out;
	lua_pushstring(L, c->stdlib);
	if (lua_pcall(L, 3, 1, 0) != LUA_OK) {
		gen_fail(g, err, errlen, lua_tostring(L, -1));
		goto out;
	}
	mod = lua_gettop(L);                    /* the stdlib module M */

	if (!(names = list_rules(c->rules, &n, err, errlen)))
		goto out;
	for (int i = 0; i < n; i++) {
		char shown[600];
		snprintf(path, sizeof path, "%s/%s", c->rules, names[i]);
		snprintf(shown, sizeof shown, "rules.d/%s", names[i]);
		if (!(src = slurp(path, &len, err, errlen)))
			goto out;
		lua_getfield(L, mod, "load_file");
		lua_pushstring(L, shown);
		lua_pushlstring(L, src, len);
		free(src);
		if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
			file_fail(g, err, errlen, shown, lua_tostring(L, -1));
			goto out;
		}
	}
	lua_getfield(L, mod, "finish");
	if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
		gen_fail(g, err, errlen, lua_tostring(L, -1));
		goto out;
	}
	lua_sethook(L, NULL, 0, 0);             /* sessions' threads get their own */
	/* The stages some rule runs on (a stdlib without the list: all of them). */
	if (lua_getfield(L, mod, "hooks_with_rules") != LUA_TFUNCTION) {
		g->hooks = ~0u;
		lua_pop(L, 1);
	} else if (lua_pcall(L, 0, 1, 0) != LUA_OK || !lua_istable(L, -1)) {
		gen_fail(g, err, errlen, lua_isstring(L, -1) ? lua_tostring(L, -1) : "hooks_with_rules: not a list");
		goto out;
	} else {
		for (lua_Integer i = 1; lua_geti(L, -1, i) == LUA_TSTRING; i++) {
			for (int st = 0; st < STAGE_MAX; st++)
				if (!strcmp(lua_tostring(L, -1), stage_name((enum stage)st)))
					g->hooks |= 1u << st;
			lua_pop(L, 1);
		}
		lua_pop(L, 2);
	}
	lua_getfield(L, mod, "run");
	g->run_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_pushvalue(L, mod);
	lua_setfield(L, LUA_REGISTRYINDEX, "mxgate.M");
	lua_settop(L, 0);
	lua_gc(L, LUA_GCGEN, 0, 0);             /* many short-lived tables per hook */
	g->id = ++pol->next_gen;
	ok = 1;
	metrics_gauge_add(MG_GENERATIONS, 1);
out:
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (!ok) {
		lua_close(g->L);
		pool_drain(g);
		free(g);
		return NULL;
	}
	return g;
}

/* The loaded generation's state with M[field] pushed (of type want), and the
 * stack top before it in *top; NULL (stack as it was) when there is none. */
static lua_State *
m_field(struct policy *p, const char *field, int want, int *top)
{
	struct lpolicy *pol = p->self;
	lua_State *L;

	if (!pol || !pol->cur)
		return NULL;
	L = pol->cur->L;
	*top = lua_gettop(L);
	if (lua_getfield(L, LUA_REGISTRYINDEX, "mxgate.M") != LUA_TTABLE || lua_getfield(L, -1, field) != want) {
		lua_settop(L, *top);
		return NULL;
	}
	return L;
}

int
policy_reasons(struct policy *p, void (*each)(void *arg, const char *key, lua_State *L), void *arg)
{
	int top;
	lua_State *L = m_field(p, "reasons", LUA_TTABLE, &top);

	if (!L)
		return -1;
	for (lua_pushnil(L); lua_next(L, -2); lua_pop(L, 1))
		if (lua_type(L, -2) == LUA_TSTRING && lua_istable(L, -1))
			each(arg, lua_tostring(L, -2), L);
	lua_settop(L, top);
	return 0;
}

/* ruletest --coverage: M.coverage(), one call of each per rule in load order. */
int
policy_coverage(struct policy *p, void (*each)(void *arg, const struct rule_cov *rc), void *arg)
{
	int top;
	lua_State *L = m_field(p, "coverage", LUA_TFUNCTION, &top);

	if (!L)
		return -1;
	if (lua_pcall(L, 0, 1, 0) != LUA_OK || !lua_istable(L, -1)) {
		lua_settop(L, top);
		return -1;
	}
	for (lua_Integer i = 1; lua_rawgeti(L, -1, i) == LUA_TTABLE; i++) {
		struct rule_cov rc;
		lua_getfield(L, -1, "hook");
		lua_getfield(L, -2, "name");
		lua_getfield(L, -3, "where");
		lua_getfield(L, -4, "reached");
		lua_getfield(L, -5, "decided");
		lua_getfield(L, -6, "disabled");
		rc.hook = lua_tostring(L, -6);
		rc.name = lua_tostring(L, -5);
		rc.where = lua_tostring(L, -4);
		rc.reached = (long)lua_tointeger(L, -3);
		rc.decided = (long)lua_tointeger(L, -2);
		rc.disabled = lua_toboolean(L, -1);
		if (rc.hook && rc.name && rc.where)
			each(arg, &rc);
		lua_pop(L, 7);
	}
	lua_settop(L, top);
	return 0;
}
