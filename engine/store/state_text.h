/*
 * state_text.h - what every state backend shares (inside engine/store/
 * only): how keys are normalised and how records read and write as text,
 * so that LMDB and Redis key the same tuple the same way and the
 * operators' CLI prints and parses the same values for both.
 */
#ifndef MXGATE_STATE_TEXT_H
#define MXGATE_STATE_TEXT_H

#include "state.h"

#define STATE_KEY_MAX      480   /* under LMDB's compiled-in 511, checked at open */
#define STATE_ADDR_MAX     200   /* one address in a greylist key; longer ones are hashed */
#define STATE_IP_MAX       64    /* "ffff:...:ffff/128" and a non-IP client name */
#define STATE_CACHE_MAX    1024  /* one callout cache value */
#define STATE_TEXT_MAX     (STATE_CACHE_MAX + 64) /* a rendered value */
#define STATE_TUPLE_MAX    (STATE_IP_MAX + 2 * STATE_ADDR_MAX + 8)
#define RL_TTL_PERIODS     10    /* silence after which a rate record is dropped */
#define ALLOW_REFRESH_MAX  300.0 /* seconds an allow entry's expiry may lag */

/* One record, whatever the database: greylist {expires, first_seen},
 * allow {expires, since}, ratelimit {expires, rate, last}, callout
 * {expires, value}. */
struct state_rec {
	double expires;
	double a;          /* first_seen | since | rate */
	double b;          /* last (ratelimit) */
	size_t vlen;
	char   value[STATE_CACHE_MAX + 1];
};

/* A greylist call's keys: the exact client, its network ("192.0.2.0/24"
 * or the exact address again) and the tuple "NET <sender> <rcpt>". */
struct grey_keys {
	char exact[STATE_IP_MAX];
	char net[STATE_IP_MAX];
	char tuple[STATE_TUPLE_MAX];
};

void   state_grey_keys(const struct greylist_conf *c, const char *ip, const char *sender,
    const char *rcpt, struct grey_keys *k);
/* The key as stored, into out[STATE_KEY_MAX + 1]: allow keys canonical
 * ("2001:DB8::1" -> "2001:db8::1"), callout keys as given, the rest
 * lowercased; long keys end in a hash of the whole. */
void   state_key(enum state_db db, const char *in, char *out);
/* "expires=... first_seen=..."; the length written, or -1 when out is too small. */
int    state_render(enum state_db db, const struct state_rec *r, char *out, size_t outlen);
/* What state_render() prints (fields in any order; expires may be "+35d"): 0, or -1 and why. */
int    state_parse(enum state_db db, const char *in, struct state_rec *r, char *err, size_t errlen);
/* How long an allow entry's expiry may lag before a pass rewrites it. */
double state_allow_slack(const struct greylist_conf *c);

#endif
