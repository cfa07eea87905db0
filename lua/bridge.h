/*
 * bridge.h - what the files of lua/ share: generations, per-session
 * coroutines and the primitives' way back to a waiting rule.
 */
#ifndef MXGATE_BRIDGE_H
#define MXGATE_BRIDGE_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>
#include <ev.h>

#include "policy.h"
#include "json.h"

struct session_info;
struct lpolicy;

#define POOL_CLASSES 16              /* lua_gen.c: small-block classes of 16 bytes */

/* One loaded ruleset: stdlib + rules.d, compiled and checked. */
struct lgen {
	lua_State      *L;
	unsigned        id;
	int             refs;        /* sessions on it, +1 while it is current */
	int             run_ref;     /* registry: the stdlib's hook runner */
	unsigned        hooks;       /* 1 << stage for each stage some rule runs on */
	size_t          mem, mem_max;/* allocator accounting and cap */
	struct lctx    *running;     /* the session whose rules run now: charged */
	int             full;        /* an allocation found mem_max reached */
	long            load_budget; /* instructions left for loading it */
	char            load_spent[200]; /* why loading ran out, "" while it lasts */
	struct lpolicy *pol;
	void           *pool[POOL_CLASSES]; /* gen_alloc: freed blocks of 16, 32, ... 256 bytes */
	unsigned        npool[POOL_CLASSES];
};

/* A session's side of the bridge: its coroutine in its generation. */
struct lctx {
	struct lpolicy *pol;
	struct lgen    *gen;
	struct session_info *s;      /* NULL once the session is gone */
	uint64_t        key;         /* id the late answers look us up by */
	lua_State      *co;          /* the session's coroutine */
	int             co_ref;
	int             sess_ref;    /* registry: the session userdata */
	int             running;     /* a hook is in progress */
	long            budget;      /* instructions left for this hook */
	long            mem;         /* bytes its rules allocated and did not free */
	int             over;        /* an allocation found session_mem reached */
	char            spent_at[160]; /* file:line where it ran out, "" while it lasts */
	enum stage      stage;       /* the hook running or last run */
	uint64_t        wait;        /* token of the answer the rule waits for */
	ev_timer        sleep;       /* the sleep() primitive's timer */
	struct lctx    *hnext;       /* live-session hash chain */
};

struct dns;
struct state;
struct callout;

struct lpolicy {
	struct ev_loop *loop;        /* NULL in `mxgate -t`: nothing runs */
	const char     *world;       /* "live" (mxgate) or "replay" (ruletest) */
	/* replay: adds the world's own functions (C.replay, C.trace) to the
	 * table C, on top of the stack, before the stdlib loads. */
	void          (*world_open)(lua_State *L, void *arg);
	void           *world_arg;
	struct dns     *dns;
	struct state   *state;
	struct callout *callout;
	const double   *replay_now;  /* replay: the simulated clock (the replayed session's time); NULL: the wall clock */
	int             grey_fail_defer; /* the store failed: greylist() defers (else passes) */
	int             rl_fail_defer;   /* ... ratelimit() answers over (else allows) */
	uint64_t        next_token;
	struct lgen    *cur;
	unsigned        next_gen;
	long            budget;      /* instructions per hook run */
	size_t          mem_max;
	size_t          session_mem; /* what one session's rules may hold */
	struct lctx    *live[256];   /* by key, for late answers */
};

/*
 * lua_policy.c: ruletest's policy. The same generation code as mxgate's,
 * in the "replay" world: no loop, no resolver, no store, nothing written;
 * world primitives answer through what world_open put into C.
 */
int policy_open_replay(struct policy *p, const struct conf *c,
    void (*world_open)(lua_State *L, void *arg), void *arg, char *err, size_t errlen);
struct world;
/* ruletest: the services a replay may use (its simulated store; with --live
 * the resolver and callout client on w->loop), and the simulated clock the
 * store runs on (the replay world's, advanced as recorded calls go by). */
void policy_replay_world(struct policy *p, const struct world *w);
void policy_replay_clock(struct policy *p, const double *now);

/* lua_gen.c */
struct lgen *lgen_load(struct lpolicy *pol, const struct conf *c, char *err, size_t errlen);
void         lgen_unref(struct lgen *g);
/* The reason table the rules of a loaded policy see (stdlib/reasons.lua
 * with their reason() overrides): each(arg, key, L) with that reason's
 * table on top of L's stack. For `mxgate report`. */
int          policy_reasons(struct policy *p, void (*each)(void *arg, const char *key, lua_State *L),
    void *arg);
/* One rule's counts under ruletest --coverage (C.coverage): sessions that
 * ran it and sessions it decided (accept, deny, defer, drop or an error). */
struct rule_cov {
	const char *hook, *name, *where;   /* where: "rules.d/10-helo.lua:4" */
	long        reached, decided;
	int         disabled;
};
int          policy_coverage(struct policy *p, void (*each)(void *arg, const struct rule_cov *rc), void *arg);

/* lua_dns.c: dns(), dns_prefetch(), reverse_ip() into the table on top */
void ldns_open(lua_State *L);

/* lua_store.c: greylist(), ratelimit() into the table on top */
void lstore_open(lua_State *L);

/* lua_json.c: json_encode(), json_decode(), json_null into the table on top;
 * the writers return NULL, or why the value cannot be JSON. */
#define LJSON_CANONICAL 1   /* replay.h's form: sorted keys, the unencodable as null */
void ljson_open(lua_State *L);
const char *ljson_write(lua_State *L, struct buf *b, int idx, int flags);
const char *ljson_write_list(lua_State *L, struct buf *b, int first, int last, int flags);
const char *ljson_write_packed(lua_State *L, struct buf *b, int idx, int flags); /* table.pack() */
void ljson_push(lua_State *L, const json_t *v);     /* a jansson value as Lua values */
int  ljson_decode(lua_State *L, const char *s, size_t n); /* pushes, or -1 */

/* lua_callout.c: callout(), verify_sender() into the table on top */
void lcallout_open(lua_State *L);

/* lua_match.c: string.find/match/gmatch/gsub charged to the instruction budget */
void lmatch_open(lua_State *L);

/* lua_session.c */
void lsession_push(lua_State *L, struct lctx *x);   /* new userdata for x */
void lsession_open(lua_State *L);                  /* its metatable */
void lsession_proxy(lua_State *L);                 /* anchor on top -> the session's `s` */
void lsession_forget(lua_State *L, int idx);       /* a new hook: drop stored fields */
void lsession_cut(lua_State *L, int idx);          /* the session ended */

/* lua_prim.c */
void lprim_open(lua_State *L);                     /* registers primitives */
struct lctx *lctx_of(lua_State *co);               /* NULL outside a rule */
struct lctx *lctx_need(lua_State *co, const char *what); /* raises outside */
struct lctx *lctx_find(struct lpolicy *pol, uint64_t key);
/* A primitive's answer is on co's stack (nres values): run the rule on. */
void lctx_resume(struct lctx *x, int nres);

#endif
