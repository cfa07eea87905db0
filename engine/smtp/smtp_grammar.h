/*
 * smtp_grammar.h - where each SMTP command is allowed and which hook it
 * asks: the one table the SMTP engine and ruletest's replay both follow,
 * so a replay cannot drift from what the server does.
 */
#ifndef MXGATE_SMTP_GRAMMAR_H
#define MXGATE_SMTP_GRAMMAR_H

#include "policy.h"
#include "smtp_parse.h"

/* The states both share, numbered alike (the engine has more after these). */
enum smtp_phase { PHASE_CONNECT, PHASE_INIT, PHASE_HELO, PHASE_MAIL, PHASE_RCPT };

#define PHASE_BIT(p) (1u << (p))

struct smtp_grammar {
	enum smtp_verb verb;
	unsigned       phases;          /* PHASE_BITs where it is allowed */
	const char    *sequence_error;  /* the reply elsewhere */
	enum stage     stage;           /* the hook it asks; STAGE_MAX: none */
};

/* NULL for a verb we do not know (500). */
const struct smtp_grammar *smtp_grammar(enum smtp_verb v);

/*
 * The argument checks both follow too: NULL, or the error reply. MAIL and
 * RCPT parse into i->mail and i->rcpt and apply i->conf's limits.
 */
struct session_info;
const char *smtp_check_helo(const char *name);
const char *smtp_check_mail(struct session_info *i, const char *args);
const char *smtp_check_rcpt(struct session_info *i, const char *args);

#endif
