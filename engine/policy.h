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

struct session_info;
struct conf;

enum stage {
	STAGE_CONNECT, STAGE_HELO, STAGE_STARTTLS, STAGE_MAIL, STAGE_RCPT,
	STAGE_PREDATA, STAGE_DATA, STAGE_QUIT, STAGE_MAX
};

enum action {
	V_NONE = 0,     /* no rule decided: the stage's default */
	V_ACCEPT,
	V_DENY,         /* 5xx */
	V_DEFER,        /* 4xx */
	V_DROP,         /* reply, then close the connection */
};

struct verdict {
	enum action action;
	int         code;           /* 0: the default for action and stage */
	char        enhanced[16];   /* "": default */
	char        text[512];      /* "": default; may hold '\n' for multi-line */
	char        reason[128];    /* reason key: logs and the portal report */
	char        where[160];     /* rule (file:line) that decided, for logs */
};

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

const char *stage_name(enum stage st);
const char *action_name(enum action a);

/* The built-in C policy: hosted domains inbound, relay networks outbound. */
int  policy_builtin(struct policy *p, const struct conf *c);

/* The policy the config asks for: Lua rules, or the built-in one. */
struct ev_loop;
int  policy_open(struct policy *p, const struct conf *c, struct ev_loop *loop,
    char *err, size_t errlen);

/*
 * A policy that returned POLICY_PENDING answers through s->resume(s, v)
 * (session.h): the SMTP engine and ruletest's replay each supply theirs.
 */

#endif
