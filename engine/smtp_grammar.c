/*
 * smtp_grammar.c - the command table's shared half (RFC 5321 4.1.4: the
 * order of commands; RFC 3207: STARTTLS only after EHLO, outside a
 * transaction).
 */
#include <stddef.h>

#include "smtp_grammar.h"

#define GREETED (PHASE_BIT(PHASE_INIT) | PHASE_BIT(PHASE_HELO) | PHASE_BIT(PHASE_MAIL) | PHASE_BIT(PHASE_RCPT))
#define BAD_SEQUENCE "503 5.5.1 Error: bad sequence of commands"

static const struct smtp_grammar grammar[] = {
	{ CMD_EHLO, GREETED, BAD_SEQUENCE, STAGE_HELO },
	{ CMD_HELO, GREETED, BAD_SEQUENCE, STAGE_HELO },
	{ CMD_STARTTLS, PHASE_BIT(PHASE_HELO), "503 5.5.1 Error: send EHLO first, outside a transaction",
	  STAGE_STARTTLS },
	{ CMD_MAIL, PHASE_BIT(PHASE_HELO), "503 5.5.1 Error: send HELO/EHLO first, or nested MAIL command",
	  STAGE_MAIL },
	{ CMD_RCPT, PHASE_BIT(PHASE_MAIL) | PHASE_BIT(PHASE_RCPT), "503 5.5.1 Error: need MAIL command",
	  STAGE_RCPT },
	{ CMD_DATA, PHASE_BIT(PHASE_RCPT), "503 5.5.1 Error: need RCPT command", STAGE_PREDATA },
	{ CMD_RSET, GREETED, BAD_SEQUENCE, STAGE_MAX },
	{ CMD_NOOP, GREETED, BAD_SEQUENCE, STAGE_MAX },
	{ CMD_VRFY, GREETED, BAD_SEQUENCE, STAGE_MAX },
	{ CMD_EXPN, GREETED, BAD_SEQUENCE, STAGE_MAX },
	{ CMD_HELP, GREETED, BAD_SEQUENCE, STAGE_MAX },
	{ CMD_QUIT, GREETED, BAD_SEQUENCE, STAGE_QUIT },
	{ CMD_AUTH, GREETED, BAD_SEQUENCE, STAGE_MAX },
	{ CMD_BDAT, GREETED, BAD_SEQUENCE, STAGE_MAX },
};

const struct smtp_grammar *
smtp_grammar(enum smtp_verb v)
{
	for (size_t i = 0; i < sizeof grammar / sizeof *grammar; i++)
		if (grammar[i].verb == v)
			return &grammar[i];
	return NULL;
}
