/*
 * state.h - the seam to the state that outlives a session and is shared
 * by every worker (and, with Redis, by every host): greylist tuples, the
 * greylist allow list, rate-limit records and the callout cache.
 *
 * A backend is an ops table (struct state_ops). Every call answers
 * through a callback, exactly once: at once, before the call returns
 * (LMDB: one short transaction), or later from the event loop (Redis: one
 * round trip, or the timeout). Callers handle both, the way dns() does.
 * Backends: state_lmdb.c (the embedded default), state_redis.c, and
 * state_mem.c ("memory": ruletest's simulation, one process, nothing kept).
 * Each process opens its own handle after fork.
 */
#ifndef MXGATE_STATE_H
#define MXGATE_STATE_H

#include <stddef.h>
#include <stdint.h>

struct ev_loop;

enum state_db { STATE_GREYLIST, STATE_ALLOW, STATE_RATELIMIT, STATE_CALLOUT, STATE_NDB };

/* The config's `state = { ... }`; a zero field takes its default. */
struct state_conf {
	char   backend[16];    /* "lmdb" (default) or "redis" */
	char   dir[600];       /* lmdb: the environment (state_dir/state) */
	size_t map_size;       /* lmdb: 0 = an existing store's size, else 256 MiB */
	int    readonly;       /* lmdb: an existing store, read only (ruletest --state) */
	char   server[256];    /* redis: "127.0.0.1:6379", "[::1]:6379", "unix:/path" */
	int    db;             /* redis: SELECT db */
	char   user[64];       /* redis: ACL user ("" = AUTH with the password alone) */
	char   password[256];
	char   prefix[64];     /* redis: before every key ("mxgate:") */
	double timeout;        /* redis: seconds a call may take (0.5) */
};

struct greylist_conf {
	double delay;          /* minimum seconds before a retry passes (60) */
	double tuple_ttl;      /* unretried tuple lifetime (48 h) */
	double allow_ttl;      /* allow-list lifetime, refreshed on each pass (35 d) */
	int    v4_prefix;      /* key IPv4 clients by /N (32 or 0 = exact) */
	int    v6_prefix;      /* key IPv6 clients by /N (128 or 0 = exact) */
};

enum greylist_verdict {
	GREY_PASS_ALLOWED,     /* client is on the allow list */
	GREY_PASS_RETRY,       /* retried after the delay: passes, client now allowed */
	GREY_DEFER_NEW,        /* tuple never seen: recorded, defer */
	GREY_DEFER_EARLY,      /* retried before the delay: defer */
	GREY_ERROR,            /* store failed: caller decides (its fail mode) */
};

struct greylist_result {
	enum greylist_verdict verdict;
	double                wait;   /* seconds left before a retry passes */
};

enum { RL_LEAKY = 0, RL_STRICT = 1 };

struct ratelimit_result {
	int    over;       /* 1 when the new rate reaches the limit (Exim: >=) */
	double rate;       /* the computed rate (per period) */
};

/* What every call answers. Pointers are valid during the callback only. */
struct state_reply {
	int                     rc;     /* 0 done, 1 no such record (get, del,
	                                   cache_get: absent or expired), -1 failed */
	const char             *error;  /* rc -1: why */
	struct greylist_result  grey;
	struct ratelimit_result rl;
	const char             *text;   /* get, cache_get: the value */
	long                    count;  /* sweep: records dropped */
};

typedef void state_cb(void *arg, const struct state_reply *r);
/* list: one call per record, before the final state_cb. */
typedef void state_each_cb(void *arg, const char *key, const char *value);

struct state;

/*
 * The calls. Keys and values are normalised the same way by every
 * backend (state_text.c): greylist senders lose case, <>, BATV and SRS;
 * clients are keyed by network prefix; ratelimit keys are lowercased.
 * Operators' values are text: "expires=EPOCH first_seen=|since=|rate=
 * last=|value=..." (put parses the same; expires may be "+35d").
 * `now` is the caller's clock; expiry compares against it.
 */
struct state_ops {
	const char *name;
	int         ttl_expiry;        /* records expire by themselves: no sweep timer */
	/* Before starting (and `mxgate -t`), synchronously: 0 fine, 1 cannot
	 * reach it now (a warning: the fail modes apply until it comes),
	 * -1 it refuses us (a wrong password, db...). NULL: nothing to check. */
	int (*probe)(const struct state_conf *c, char *err, size_t errlen);
	struct state *(*open)(const struct state_conf *c, struct ev_loop *loop,
	    char *err, size_t errlen);
	void (*close)(struct state *st);
	/* Sender normalised before keying. Answers rc 0 with .grey, or -1. */
	void (*greylist)(struct state *st, const struct greylist_conf *c, const char *ip,
	    const char *sender, const char *rcpt, double now, state_cb *cb, void *arg);
	/* Exim's smoothed rate: a = exp(-i/p); rate = (1-a)*count/(i/p) + a*rate,
	 * read, computed and stored atomically. Answers .rl. */
	void (*ratelimit)(struct state *st, const char *key, double limit, double period,
	    int mode, double count, double now, state_cb *cb, void *arg);
	/* The callout cache: a text value (<= 1024 bytes) with its own expiry. */
	void (*cache_get)(struct state *st, const char *key, double now, state_cb *cb, void *arg);
	void (*cache_put)(struct state *st, const char *key, const char *val, double expires,
	    double now, state_cb *cb, void *arg);
	/* Operators' view: raw records as text, expired ones included. */
	void (*list)(struct state *st, enum state_db db, state_each_cb *each, void *each_arg,
	    state_cb *cb, void *arg);
	void (*get)(struct state *st, enum state_db db, const char *key, state_cb *cb, void *arg);
	void (*put)(struct state *st, enum state_db db, const char *key, const char *val,
	    double now, state_cb *cb, void *arg);
	void (*del)(struct state *st, enum state_db db, const char *key, state_cb *cb, void *arg);
	/* Drops records expired at now (and syncs LMDB to disk). */
	void (*sweep)(struct state *st, double now, state_cb *cb, void *arg);
};

/* Every backend's handle starts with this. */
struct state {
	const struct state_ops *ops;
	struct ev_loop         *loop;
	char                    err[256];  /* the last failure seen by the *_wait calls */
};

/* Opens c->backend (NULL c: LMDB defaults). loop may be NULL for LMDB. */
struct state *state_open(const struct state_conf *c, struct ev_loop *loop,
    char *err, size_t errlen);
void          state_close(struct state *st);
/* The backend's probe (above); 0 for a backend without one, -1 for an unknown one. */
int           state_probe(const struct state_conf *c, char *err, size_t errlen);

/* "greylist" <-> STATE_GREYLIST ...; NULL or -1 when unknown. */
const char *state_db_name(enum state_db db);
int         state_db_lookup(const char *name);

/*
 * Waiting for the answer, for the operators' CLI and the tests only (never
 * on the SMTP path): each runs the handle's loop until its callback came
 * and returns its rc; state_error() says why the last one failed.
 */
const char *state_error(const struct state *st);
int  state_greylist_wait(struct state *st, const struct greylist_conf *c, const char *ip,
    const char *sender, const char *rcpt, double now, struct greylist_result *out);
int  state_ratelimit_wait(struct state *st, const char *key, double limit, double period,
    int mode, double count, double now, struct ratelimit_result *out);
int  state_cache_get_wait(struct state *st, const char *key, double now, char *val, size_t vlen);
int  state_cache_put_wait(struct state *st, const char *key, const char *val, double expires,
    double now);
int  state_list_wait(struct state *st, enum state_db db, state_each_cb *each, void *arg);
int  state_get_wait(struct state *st, enum state_db db, const char *key, char *val, size_t vlen);
int  state_put_wait(struct state *st, enum state_db db, const char *key, const char *val, double now);
int  state_del_wait(struct state *st, enum state_db db, const char *key);
long state_sweep_wait(struct state *st, double now);
/* Every record of from (expired ones too) put into to: how many, or -1 (state_error(to) or (from)). */
long state_copy_wait(struct state *from, struct state *to);

/* The memory backend only (ruletest --jobs): touched(arg, key, n, write) for
 * every record a call reads or (write) changes, key being its database's
 * byte then the key. */
void state_mem_watch(struct state *st, void (*touched)(void *arg, const char *key, size_t n, int write),
    void *arg);

#endif
