/* state_logic.h - greylisting and Exim's smoothed rate, once, for every backend that keeps records itself. */
#ifndef MXGATE_STATE_LOGIC_H
#define MXGATE_STATE_LOGIC_H

#include "state_text.h"

#define STATE_ABSENT (-1)   /* get: no such record, or it has expired */

/* A greylist, allow or rate-limit record: { expires, first_seen | since | rate, 0 | last }. */
struct state_vals {
	double expires;
	double a;
	double b;
};

/*
 * A backend's records inside one of its transactions (LMDB) or its memory
 * (state_mem.c). get: 0 (*v filled), STATE_ABSENT, or the backend's error
 * code; put and del: 0 or the backend's error code (del of an absent key is 0).
 */
struct state_recs {
	void *ctx;
	int (*get)(void *ctx, enum state_db db, const char *key, double now, struct state_vals *v);
	int (*put)(void *ctx, enum state_db db, const char *key, const struct state_vals *v);
	int (*del)(void *ctx, enum state_db db, const char *key);
};

/* The allow entry (exact address first, then its network) that admits k's client:
 * 0 with *key and *v, STATE_ABSENT, or an error. */
int state_grey_allowed(const struct state_recs *io, const struct grey_keys *k, double now,
    const char **key, struct state_vals *v);
/* One greylist call: 0 with *out, or the backend's error code. */
int state_grey_step(const struct state_recs *io, const struct greylist_conf *c,
    const struct grey_keys *k, double now, struct greylist_result *out);
/* One rate-limit call on a key already normalised (state_key): 0 with *out, or an error. */
int state_rl_step(const struct state_recs *io, const char *key, double limit, double period,
    int mode, double count, double now, struct ratelimit_result *out);

#endif
