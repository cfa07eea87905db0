/*
 * vocab.h - the words every layer shares: the stages of a session (the
 * hooks rules attach to) and the actions a verdict can take, with the one
 * table of their names used in logs, the journal and Lua.
 */
#ifndef MXGATE_VOCAB_H
#define MXGATE_VOCAB_H

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
	/* An accepted RCPT: where its mail goes, from the route hook. route
	 * "" means the config's route, looked up at delivery. */
	struct {
		char route[256];    /* "host[:port]", "[ip]:port", "mx:domain" */
		char tls[8];        /* "", "may", "require", "verify" */
		char where[160];    /* the route rule, or the stdlib default */
		int  rule;          /* 1: a rule chose it, kept with the message */
	} route;
};

const char *stage_name(enum stage st);
const char *action_name(enum action a);

#endif
