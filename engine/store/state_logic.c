/* state_logic.c - greylisting and Exim's smoothed rate over a backend's records (LMDB and the in-memory store share it). */
#include <math.h>
#include <string.h>

#include "state_logic.h"

int state_grey_allowed(const struct state_recs *io, const struct grey_keys *k, double now,
    const char **key, struct state_vals *v)
{
	int rc = io->get(io->ctx, STATE_ALLOW, k->exact, now, v);

	*key = k->exact;
	if (rc == STATE_ABSENT && strcmp(k->exact, k->net) != 0) {
		rc = io->get(io->ctx, STATE_ALLOW, k->net, now, v);
		*key = k->net;
	}
	return rc;
}

int state_grey_step(const struct state_recs *io, const struct greylist_conf *c,
    const struct grey_keys *k, double now, struct greylist_result *out)
{
	const char *akey;
	struct state_vals r;
	int rc;

	out->wait = 0;
	if ((rc = state_grey_allowed(io, k, now, &akey, &r)) == 0) {
		out->verdict = GREY_PASS_ALLOWED;
		if (now + c->allow_ttl - r.expires < state_allow_slack(c))
			return 0;
		r.expires = now + c->allow_ttl;
		return io->put(io->ctx, STATE_ALLOW, akey, &r);
	}
	if (rc != STATE_ABSENT)
		return rc;

	rc = io->get(io->ctx, STATE_GREYLIST, k->tuple, now, &r);
	if (rc == STATE_ABSENT) {
		struct state_vals n = { now + c->tuple_ttl, now, 0 };
		out->verdict = GREY_DEFER_NEW;
		out->wait = c->delay;
		return io->put(io->ctx, STATE_GREYLIST, k->tuple, &n);
	}
	if (rc)
		return rc;
	double age = now - r.a;
	if (age < c->delay) {
		out->verdict = GREY_DEFER_EARLY;
		/* a clock stepped back must not promise more than one delay */
		out->wait = age < 0 ? c->delay : c->delay - age;
		return 0;
	}
	/* The allow entry now speaks for this client; the tuple has done its
	 * job and would only wait for the sweep. */
	struct state_vals a = { now + c->allow_ttl, now, 0 };
	out->verdict = GREY_PASS_RETRY;
	if ((rc = io->put(io->ctx, STATE_ALLOW, k->net, &a)))
		return rc;
	return io->del(io->ctx, STATE_GREYLIST, k->tuple);
}

/*
 * Exim's acl_ratelimit(), which this follows point by point:
 *  - a key seen for the first time starts at rate = count;
 *  - an interval <= 0 (same instant, clock stepped back) counts as 1e-9 s;
 *  - rate = (1 - a) * count / (i/p) + a * rate, a = exp(-i/p), with 1 - a
 *    taken as -expm1(-i/p): at i/p ~ 1e-13 plain 1 - exp() keeps only a few
 *    digits and a burst's count would drift off by up to 1e-3 each step;
 *  - a rate below count is raised to count, so that the first message
 *    after a long silence counts as a full message per period;
 *  - a client at the limit is over it (rate >= limit), as in Exim;
 *  - leaky stores the new rate only when not over, so a client that keeps
 *    retrying while over still decays and gets through; strict always
 *    stores it.
 */
int state_rl_step(const struct state_recs *io, const char *key, double limit, double period,
    int mode, double count, double now, struct ratelimit_result *out)
{
	struct state_vals r;
	double rate;
	int rc = io->get(io->ctx, STATE_RATELIMIT, key, now, &r);

	if (rc == STATE_ABSENT) {
		rate = count;
	} else if (rc) {
		return rc;
	} else {
		double i = now - r.b;
		if (i <= 0)
			i = 1e-9;
		double x = i / period;
		rate = -expm1(-x) * count / x + exp(-x) * r.a;
		if (rate < count)
			rate = count;
	}
	out->rate = rate;
	out->over = rate >= limit;
	if (out->over && mode != RL_STRICT)
		return 0;
	/* After RL_TTL_PERIODS of silence the old rate weighs e^-10 of itself:
	 * dropping the record changes nothing a client could notice. */
	struct state_vals n = { now + RL_TTL_PERIODS * period, rate, now };
	return io->put(io->ctx, STATE_RATELIMIT, key, &n);
}
