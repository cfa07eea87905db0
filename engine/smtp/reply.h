/*
 * reply.h - the words a policy verdict puts on the wire. One function for
 * the SMTP engine and for ruletest's replay, so that what a dry run shows
 * is what the server would say, defaults and fail-closed RCPT included.
 */
#ifndef MXGATE_REPLY_H
#define MXGATE_REPLY_H

#include "policy.h"

struct reply_words {
	int         code;
	char        enhanced[16];
	const char *text;        /* the verdict's, or the stage's default; not owned */
	const char *reason;      /* for the reject log: the reason key or the action */
};

/*
 * The reply for a verdict that is not a plain accept at stage st. Every
 * field the rule left empty takes the default for its action and stage;
 * at STAGE_RCPT no verdict (V_NONE) is a refusal: a recipient no rule
 * accepted is never relayed. Returns the action the engine must carry out
 * (V_DROP: close after the reply). The strings point into v or are static.
 */
/* enh is an RFC 3463 enhanced code ("5.7.1": class.subject.detail, one to
 * three digits each) whose class is code's first digit. */
int reply_enhanced_fits(int code, const char *enh);

enum action reply_for_verdict(enum stage st, const struct verdict *v, struct reply_words *w);

#endif
