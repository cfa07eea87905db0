/*
 * policy.h - the seam between the SMTP engine and whatever decides.
 *
 * At each stage the engine asks the policy for a verdict. The policy
 * answers at once (POLICY_DONE) or later (POLICY_PENDING, then exactly one
 * s->resume()); meanwhile the session reads no further command, so
 * pipelined commands wait in order. The engine, not the policy, enforces
 * the one rule that must never bend: a RCPT that no rule accepted is
 * refused (V_NONE at STAGE_RCPT -> 550 5.7.1).
 */
#ifndef MXGATE_POLICY_H
#define MXGATE_POLICY_H

#include <stddef.h>

#include "vocab.h"

struct session_info;
struct conf;

enum { POLICY_DONE = 0, POLICY_PENDING = 1 };

struct policy_ops {
	const char *name;
	/* Session begins / ends; end must make any pending answer a no-op. */
	int  (*start)(void *self, struct session_info *s);
	void (*end)(void *self, struct session_info *s);
	int  (*decide)(void *self, struct session_info *s, enum stage st, struct verdict *v);
	/* SIGHUP: new sessions use c; 0, or -1 with why (the old one stays). */
	int  (*reload)(void *self, const struct conf *c, char *err, size_t errlen);
	void (*free)(void *self);
};

struct policy {
	const struct policy_ops *ops;
	void                    *self;
};

/* The built-in C policy: hosted domains inbound, relay networks outbound. */
int  policy_builtin(struct policy *p, const struct conf *c);

/* The policy the config asks for: Lua rules, or the built-in one. w is
 * what it may ask of the world (world.h; NULL: nothing, as in `mxgate
 * -t`); it stays the caller's and must outlive the policy. */
struct world;
int  policy_open(struct policy *p, const struct conf *c, const struct world *w,
    char *err, size_t errlen);
/* The world's services were replaced (a reload's new resolver and callout
 * client): a policy that asks them uses these from now on. */
void policy_world_changed(struct policy *p, const struct world *w);

/*
 * A policy that returned POLICY_PENDING answers through s->resume(s, v)
 * (session.h): the SMTP engine and ruletest's replay each supply theirs.
 */

#endif
