/*
 * state.h - state that outlives a session and is shared by every worker:
 * greylist tuples, the greylist allow list, rate-limit records and the
 * callout cache. One LMDB environment per process, opened after fork.
 *
 * These calls are the whole interface: a later Redis backend implements
 * the same operations, so nothing outside state*.c knows it is LMDB.
 * Calls are synchronous and short (one write transaction each); no
 * transaction is ever held across a yield. Each process opens its own
 * handle after fork; a handle carried across fork refuses to work.
 */
#ifndef MXGATE_STATE_H
#define MXGATE_STATE_H

#include <stddef.h>
#include <stdint.h>

struct state;

enum state_db { STATE_GREYLIST, STATE_ALLOW, STATE_RATELIMIT, STATE_CALLOUT, STATE_NDB };

/* map_size 0: an existing store keeps its size, a new one gets 256 MiB. */
struct state *state_open(const char *dir, size_t map_size, char *err, size_t errlen);
void          state_close(struct state *st);

/* Why the last call that returned -1 failed. */
const char   *state_error(const struct state *st);

/* Drops expired records and syncs the store to disk; returns how many
 * were dropped, or -1. Called from a timer (every minute or so). */
long          state_sweep(struct state *st, double now);

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
	GREY_ERROR,            /* store failed: caller decides (fail open/closed) */
};

struct greylist_result {
	enum greylist_verdict verdict;
	double                wait;   /* seconds left before a retry passes */
};

/* Sender is normalised (case, BATV prvs=, SRS) before keying. Returns 0,
 * or -1 with verdict GREY_ERROR. */
int state_greylist(struct state *st, const struct greylist_conf *c,
    const char *ip, const char *sender, const char *rcpt, double now,
    struct greylist_result *out);

/* Exim's smoothed rate: a = exp(-i/p); rate = (1-a)*count/(i/p) + a*rate.
 * The key is lowercased; `mxgate state del ratelimit KEY` releases it. */
enum { RL_LEAKY = 0, RL_STRICT = 1 };

struct ratelimit_result {
	int    over;       /* 1 when the new rate reaches the limit (Exim: >=) */
	double rate;       /* the computed rate (per period) */
};

int state_ratelimit(struct state *st, const char *key, double limit,
    double period, int mode, double count, double now,
    struct ratelimit_result *out);

/* Operators' view: raw records as text, expired ones included, values as
 * "expires=EPOCH first_seen=|since=|rate= last=|value=..." (put parses the
 * same; expires may also be "+35d"). Return 0, 1 when get/del find no
 * record, -1 on failure (state_error()). cb must not call state_*. */
typedef void state_each_cb(void *arg, const char *key, const char *value);
int state_list(struct state *st, enum state_db db, state_each_cb *cb, void *arg);
int state_get(struct state *st, enum state_db db, const char *key, char *val, size_t vlen);
int state_put(struct state *st, enum state_db db, const char *key, const char *val);
int state_del(struct state *st, enum state_db db, const char *key);

/* The callout cache: a small text value (<= 1024 bytes) with its own
 * expiry. get returns 0, 1 when absent or expired, -1 on failure. */
int state_cache_get(struct state *st, const char *key, double now, char *val, size_t vlen);
int state_cache_put(struct state *st, const char *key, const char *val, double expires);

/* "greylist" <-> STATE_GREYLIST ...; NULL or -1 when unknown. */
const char *state_db_name(enum state_db db);
int         state_db_lookup(const char *name);

#endif
