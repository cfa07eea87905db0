/*
 * lua_policy.c - the Lua rules as the engine's policy.
 *
 * Each session runs its hooks in its own coroutine of the generation it
 * started on. A hook that finishes without waiting answers at once; one
 * that yields (a primitive doing I/O) answers later through
 * session_resume(). A rule that fails, or runs past its instruction
 * budget, answers 451 4.3.0 and is logged with file:line: an error never
 * accepts by accident.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>

#include "bridge.h"
#include "conf.h"
#include "log.h"
#include "metrics.h"
#include "reply.h"
#include "session.h"
#include "strcopy.h"
#include "world.h"

#define HOOK_EVERY 1000            /* instructions between budget checks */

/*
 * Once the budget is spent, the hook fires on every instruction and raises
 * each time: a pcall (or xpcall, or a __close handler) in the rule catches
 * one error, never the next, so the run unwinds all the way to lua_resume.
 * Where it ran out (the innermost line of a rule file) is kept for the log:
 * the unwinding ends elsewhere.
 */
static void
count_hook(lua_State *L, lua_Debug *ar)
{
	struct lctx *x = lctx_of(L);
	lua_Debug d;

	if (!x || (x->budget -= HOOK_EVERY) >= 0)
		return;
	if (!x->spent_at[0]) {
		snprintf(x->spent_at, sizeof x->spent_at, "?");
		for (int level = 0; lua_getstack(L, level, &d); level++) {
			if (!lua_getinfo(L, "Sl", &d) || d.currentline <= 0)
				continue;
			if (level == 0 || strncmp(d.short_src, "rules.d/", 8) == 0)
				snprintf(x->spent_at, sizeof x->spent_at, "%s:%d", d.short_src, d.currentline);
			if (strncmp(d.short_src, "rules.d/", 8) == 0)
				break;
		}
		lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
	}
	lua_pushliteral(L, "rule exceeded its instruction budget (rule_limits.instructions)");
	lua_error(L);
}

static void renew_rules(struct lpolicy *pol, struct lgen *full, const struct conf *c,
    const char *name, const char *where);

static void
live_insert(struct lpolicy *pol, struct lctx *x)
{
	struct lctx **head = &pol->live[x->key % 256];

	x->hnext = *head;
	*head = x;
}

static void
live_remove(struct lpolicy *pol, struct lctx *x)
{
	for (struct lctx **p = &pol->live[x->key % 256]; *p; p = &(*p)->hnext)
		if (*p == x) {
			*p = x->hnext;
			return;
		}
}

/* The session's coroutine and its `s` userdata, anchored in the registry. */
static int
new_session_objects(lua_State *L)
{
	struct lctx *x = lua_touserdata(L, 1);

	x->co = lua_newthread(L);
	x->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lsession_push(L, x);
	lsession_proxy(L);                      /* sess_ref holds `s`, which holds the anchor */
	x->sess_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	return 0;
}

static int
lp_start(void *self, struct session_info *s)
{
	struct lpolicy *pol = self;
	struct lgen *g = pol->cur;
	struct lctx *x = calloc(1, sizeof *x);
	lua_State *L = g->L;

	if (!x)
		return -1;
	x->pol = pol;
	x->gen = g;
	x->s = s;
	x->key = s->id;
	g->refs++;
	x->co_ref = x->sess_ref = LUA_NOREF;
	/* At the generation's memory cap Lua raises: protected, not an abort. */
	lua_pushcfunction(L, new_session_objects);
	lua_pushlightuserdata(L, x);
	g->full = 0;
	if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
		int full = g->full;
		log_event("rule_error", "sid", s->sid, "error", lua_tostring(L, -1), NULL);
		lua_pop(L, 1);
		luaL_unref(L, LUA_REGISTRYINDEX, x->co_ref);
		luaL_unref(L, LUA_REGISTRYINDEX, x->sess_ref);
		lgen_unref(g);
		free(x);
		if (full && g == pol->cur) {    /* full: fresh rules, and this session on them */
			renew_rules(pol, g, s->conf, "", "session start");
			if (pol->cur != g)
				return lp_start(self, s);
		}
		return -1;
	}
	*(struct lctx **)lua_getextraspace(x->co) = x;
	lua_sethook(x->co, count_hook, LUA_MASKCOUNT, HOOK_EVERY);
	live_insert(pol, x);
	s->policy_data = x;
	return 0;
}

static void
lp_end(void *self, struct session_info *s)
{
	struct lpolicy *pol = self;
	struct lctx *x = s->policy_data;
	lua_State *L;

	if (!x)
		return;
	s->policy_data = NULL;
	/* Late answers look us up by key and find nothing: they become no-ops. */
	live_remove(pol, x);
	if (pol->loop)
		ev_timer_stop(pol->loop, &x->sleep);
	L = x->gen->L;
	*(struct lctx **)lua_getextraspace(x->co) = NULL;
	/* A rule may have kept s in a global: it finds the session gone, not freed memory. */
	lua_rawgeti(L, LUA_REGISTRYINDEX, x->sess_ref);
	lsession_cut(L, -1);
	lua_pop(L, 1);
	luaL_unref(L, LUA_REGISTRYINDEX, x->sess_ref);
	luaL_unref(L, LUA_REGISTRYINDEX, x->co_ref);
	lgen_unref(x->gen);
	free(x);
}

static void
copy_field(lua_State *L, int t, const char *k, char *dst, size_t len)
{
	if (lua_getfield(L, t, k) == LUA_TSTRING)
		str_copy(dst, len, lua_tostring(L, -1));
	lua_pop(L, 1);
}

/*
 * The rules' memory is full (rule_limits.memory): every later session
 * would fail the same way until SIGHUP, so the rules are loaded afresh
 * now, as a reload would; sessions on the full generation finish on it.
 * Only from the current generation, whose config the session holds.
 */
static void
renew_rules(struct lpolicy *pol, struct lgen *full, const struct conf *c,
    const char *name, const char *where)
{
	char err[512], mem[32];
	struct lgen *g;

	if (full != pol->cur || !c)
		return;                         /* already renewed, or reloaded */
	snprintf(mem, sizeof mem, "%zu", full->mem);
	if (!(g = lgen_load(pol, c, err, sizeof err))) {
		log_event("rules_renew_failed", "rule", name, "where", where, "error", err, NULL);
		return;
	}
	lgen_unref(pol->cur);
	pol->cur = g;
	log_event("rules_renewed", "why", "rule_limits.memory is full", "rule", name,
	    "where", where, "mem", mem, NULL);
}

static void
rule_error(struct lctx *x, struct verdict *v, const char *where, const char *why)
{
	struct session_info *i = x->s;
	char name[128] = "", more[600];

	/* Out of memory: whose limit, and the rule that ran into it. */
	if (strstr(why, "not enough memory") && (x->over || x->gen->full)) {
		lua_State *co = x->co;
		if (lua_gettop(co) > 0 && lua_istable(co, -1))
			copy_field(co, -1, "name", name, sizeof name);
		snprintf(more, sizeof more, "%s (%s)", why, x->over ?
		    "this session's rules hold more than rule_limits.session_memory" :
		    "the rules' memory, rule_limits.memory, is full: loading them afresh");
		why = more;
	}
	log_event("rule_error", "sid", i->sid, "where", where, "rule", name[0] ? name : NULL,
	    "error", why, NULL);
	metrics_count(strstr(why, "instruction budget") ? MC_RULE_INSTRUCTIONS :
	    strstr(why, "not enough memory") ? MC_RULE_MEMORY : MC_RULE_ERROR, 1);
	if (!x->over && x->gen->full && why == more)
		renew_rules(x->pol, x->gen, i->conf, name, where);
	memset(v, 0, sizeof *v);
	v->action = V_DEFER;
	v->code = 451;
	snprintf(v->enhanced, sizeof v->enhanced, "4.3.0");
	snprintf(v->text, sizeof v->text, "Temporary local problem, try again later");
	snprintf(v->reason, sizeof v->reason, "rule_error");
	snprintf(v->where, sizeof v->where, "%s", where);
}

static const char why_unfit[] = "reply code or enhanced code does not fit the verdict "
    "(deny: 5xx, defer: 4xx, drop: 4xx or 5xx; enhanced: class.subject.detail of the same class)";

/*
 * code and enhanced of the verdict table at t into v; 0 when either does
 * not fit the action. A typo must not turn deny into 250, and an enhanced
 * code is checked here, whole, before it is cut to fit v: "2.0.0\r\n250"
 * would be a reply line of the rule's own.
 */
static int
reply_fields(lua_State *co, int t, struct verdict *v)
{
	int ok = 1, cls;
	lua_Integer code = 0;
	size_t n;
	const char *e;

	switch (lua_getfield(co, t, "code")) {
	case LUA_TNIL:
		break;
	case LUA_TNUMBER:
		code = lua_tointegerx(co, -1, &ok);     /* 550.0 is 550; 550.5 is no code */
		break;
	default:
		ok = 0;
	}
	lua_pop(co, 1);
	if (ok && code && (v->action == V_ACCEPT || code < 400 || code > 599 ||
	    (v->action == V_DEFER && code >= 500) || (v->action == V_DENY && code < 500)))
		ok = 0;
	v->code = ok ? (int)code : 0;
	/* The class the reply will have: the code's, or its action's default's. */
	cls = v->code ? v->code : v->action == V_DENY ? 550 : 451;
	switch (lua_getfield(co, t, "enhanced")) {
	case LUA_TNIL:
		break;
	case LUA_TSTRING:
		e = lua_tolstring(co, -1, &n);
		if (v->action != V_ACCEPT &&
		    (n >= sizeof v->enhanced || strlen(e) != n || !reply_enhanced_fits(cls, e)))
			ok = 0;
		else
			snprintf(v->enhanced, sizeof v->enhanced, "%s", e);
		break;
	default:
		ok = 0;
	}
	lua_pop(co, 1);
	return ok;
}

/* The runner's result, on top of co, as a verdict. */
static void
to_verdict(struct lctx *x, lua_State *co, int nres, struct verdict *v)
{
	int t = lua_gettop(co);
	const char *a;

	memset(v, 0, sizeof *v);
	if (nres < 1 || lua_isnil(co, t))
		return;                                 /* V_NONE */
	lua_getfield(co, t, "action");
	a = lua_tostring(co, -1);
	if (!a)
		a = "";
	if (!strcmp(a, "accept"))
		v->action = V_ACCEPT;
	else if (!strcmp(a, "deny"))
		v->action = V_DENY;
	else if (!strcmp(a, "defer"))
		v->action = V_DEFER;
	else if (!strcmp(a, "drop"))
		v->action = V_DROP;
	else {
		char where[160] = "?", why[400] = "?";
		copy_field(co, t, "where", where, sizeof where);
		copy_field(co, t, "text", why, sizeof why);
		lua_pop(co, 1);
		rule_error(x, v, where, why);
		return;
	}
	lua_pop(co, 1);
	copy_field(co, t, "text", v->text, sizeof v->text);
	copy_field(co, t, "reason", v->reason, sizeof v->reason);
	copy_field(co, t, "where", v->where, sizeof v->where);
	/* An accepted RCPT carries its route (mxgate.lua checked its form). */
	copy_field(co, t, "route", v->route.route, sizeof v->route.route);
	copy_field(co, t, "route_tls", v->route.tls, sizeof v->route.tls);
	copy_field(co, t, "route_where", v->route.where, sizeof v->route.where);
	lua_getfield(co, t, "route_rule");
	v->route.rule = v->route.route[0] && lua_toboolean(co, -1);
	lua_pop(co, 1);
	if (!reply_fields(co, t, v)) {
		char where[sizeof v->where];
		snprintf(where, sizeof where, "%s", v->where);   /* rule_error clears v */
		rule_error(x, v, where, why_unfit);
	}
}
/*
 * An error that escaped the runner leaves the thread dead and, when the
 * count hook raised it, with hooks off for good (Lua turns them back on
 * only at a pcall): the session goes on in a fresh thread; the old one is
 * garbage.
 */
static void
renew_thread(struct lctx *x)
{
	lua_State *L = x->gen->L;

	*(struct lctx **)lua_getextraspace(x->co) = NULL;
	luaL_unref(L, LUA_REGISTRYINDEX, x->co_ref);
	x->co = lua_newthread(L);
	x->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	*(struct lctx **)lua_getextraspace(x->co) = x;
}

/* Resumes the session's rules, their allocations charged to the session. */
static int
run(struct lctx *x, int nargs, int *nres)
{
	int rc;

	x->over = x->gen->full = 0;
	x->gen->running = x;
	rc = lua_resume(x->co, NULL, nargs, nres);
	x->gen->running = NULL;
	return rc;
}

/* After lua_resume: DONE with *v, or PENDING while a primitive waits. */
static int
settle(struct lctx *x, int rc, int nres, struct verdict *v)
{
	lua_State *co = x->co;

	if (rc == LUA_YIELD) {
		lua_pop(co, nres);
		return POLICY_PENDING;
	}
	x->running = 0;
	if (rc == LUA_OK) {
		to_verdict(x, co, nres, v);
		lua_settop(co, 0);
	} else {
		/* Outside the runner's pcall: budget, memory. The thread is dead. */
		lua_Debug ar;
		char where[160] = "?";
		if (x->spent_at[0])
			snprintf(where, sizeof where, "%s", x->spent_at);
		else
			for (int level = 0; lua_getstack(co, level, &ar); level++)
				if (lua_getinfo(co, "Sl", &ar) && ar.currentline > 0) {
					snprintf(where, sizeof where, "%s:%d", ar.short_src, ar.currentline);
					break;
				}
		rule_error(x, v, where, lua_tostring(co, -1) ? lua_tostring(co, -1) : "error");
		renew_thread(x);
	}
	return POLICY_DONE;
}

static int
lp_decide(void *self, struct session_info *s, enum stage st, struct verdict *v)
{
	struct lctx *x = s->policy_data;
	lua_State *co = x->co;
	int nres, rc;

	x->stage = st;
	/* No rule on this hook: it decides nothing, and a resume, the runner
	 * and its pcall would cost as much as a small rule. (predata, data
	 * and quit in the shipped rules.d: three hooks of seven a session.) */
	if (!(x->gen->hooks & 1u << st)) {
		memset(v, 0, sizeof *v);                /* V_NONE */
		return POLICY_DONE;
	}
	x->budget = x->pol->budget;
	x->spent_at[0] = '\0';
	x->wait = 0;
	x->running = 1;
	lua_sethook(co, count_hook, LUA_MASKCOUNT, HOOK_EVERY);
	lua_rawgeti(co, LUA_REGISTRYINDEX, x->gen->run_ref);
	lua_pushstring(co, stage_name(st));
	lua_rawgeti(co, LUA_REGISTRYINDEX, x->sess_ref);  /* `s`: fields of the last hook dropped */
	lsession_forget(co, -1);
	rc = run(x, 2, &nres);
	return settle(x, rc, nres, v);
}

void
lctx_resume(struct lctx *x, int nargs)
{
	struct verdict v;
	int nres, rc;

	if (!x->s || !x->running)
		return;
	rc = run(x, nargs, &nres);
	if (settle(x, rc, nres, &v) == POLICY_DONE)
		x->s->resume(x->s, &v);         /* may free x: nothing after this */
}

/* What the rules see when the store fails (state.fail in the config). */
static void
fail_modes(struct lpolicy *pol, const struct conf *c)
{
	pol->grey_fail_defer = strcmp(c->state.fail_greylist, "defer") == 0;
	pol->rl_fail_defer = strcmp(c->state.fail_ratelimit, "defer") == 0;
}

static int
lp_reload(void *self, const struct conf *c, char *err, size_t errlen)
{
	struct lpolicy *pol = self;
	struct lgen *g = lgen_load(pol, c, err, errlen);

	if (!g)
		return -1;
	lgen_unref(pol->cur);                   /* freed when its last session ends */
	pol->cur = g;
	pol->budget = c->rule_instructions;
	pol->mem_max = c->rule_memory;
	fail_modes(pol, c);
	pol->session_mem = c->rule_session_memory;
	return 0;
}

static void
lp_free(void *self)
{
	struct lpolicy *pol = self;

	lgen_unref(pol->cur);
	free(pol);                      /* the world is the caller's */
}

static const struct policy_ops lua_ops = {
	.name = "lua", .start = lp_start, .end = lp_end, .decide = lp_decide,
	.reload = lp_reload, .free = lp_free,
};

/* A Lua policy in this world (NULL: none, as in replay and `mxgate -t`). */
static struct lpolicy *
lp_new(const struct conf *c, const struct world *w, const char *kind,
    void (*world_open)(lua_State *L, void *arg), void *arg, char *err, size_t errlen)
{
	struct lpolicy *pol = calloc(1, sizeof *pol);

	if (!pol) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (w) {
		pol->loop = w->loop;
		pol->dns = w->dns;
		pol->state = w->state;
		pol->callout = w->callout;
	}
	pol->world = kind;
	pol->world_open = world_open;
	pol->world_arg = arg;
	pol->budget = c->rule_instructions;
	pol->mem_max = c->rule_memory;
	pol->session_mem = c->rule_session_memory;
	fail_modes(pol, c);
	if (!(pol->cur = lgen_load(pol, c, err, errlen))) {
		free(pol);
		return NULL;
	}
	return pol;
}

int
policy_open(struct policy *p, const struct conf *c, const struct world *w, char *err, size_t errlen)
{
	struct lpolicy *pol;

	if (!c->rules[0])
		return policy_builtin(p, c);
	if (!(pol = lp_new(c, w, NULL, NULL, NULL, err, errlen)))
		return -1;
	p->ops = &lua_ops;
	p->self = pol;
	return 0;
}

void
policy_world_changed(struct policy *p, const struct world *w)
{
	struct lpolicy *pol = p->self;

	if (p->ops != &lua_ops || !pol->loop)
		return;                 /* the built-in policy asks nothing */
	pol->dns = w->dns;
	pol->callout = w->callout;
}

int
policy_open_replay(struct policy *p, const struct conf *c,
    void (*world_open)(lua_State *L, void *arg), void *arg, char *err, size_t errlen)
{
	struct lpolicy *pol;

	if (!c->rules[0]) {
		snprintf(err, errlen, "%s: rules = false (the built-in policy): nothing to replay", c->path);
		return -1;
	}
	/* the same policy, in a world with no services */
	if (!(pol = lp_new(c, NULL, "replay", world_open, arg, err, errlen)))
		return -1;
	p->ops = &lua_ops;
	p->self = pol;
	return 0;
}

void
policy_replay_world(struct policy *p, const struct world *w)
{
	struct lpolicy *pol = p->self;

	pol->loop = w->loop;
	pol->dns = w->dns;
	pol->state = w->state;
	pol->callout = w->callout;
}

void
policy_replay_clock(struct policy *p, const double *now)
{
	((struct lpolicy *)p->self)->replay_now = now;
}
