/*
 * smtp_grammar.c - the command table's shared half (RFC 5321 4.1.4: the
 * order of commands; RFC 3207: STARTTLS only after EHLO, outside a
 * transaction).
 */
#include <stddef.h>
#include <string.h>

#include "session.h"
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

const char *
smtp_check_helo(const char *name)
{
	/* a name or an address literal, one word */
	if (!*name || strchr(name, ' ') || !smtp_valid_domain(name, 1))
		return "501 5.5.4 Syntax: EHLO hostname";
	return NULL;
}

const char *
smtp_check_mail(struct session_info *i, const char *args)
{
	const char *why = smtp_parse_mail(args, &i->mail);

	if (why)
		return why;
	if (i->mail.size > 0 && (size_t)i->mail.size > i->conf->limits.max_message_size)
		return "552 5.3.4 Message size exceeds fixed limit";
	return NULL;
}

const char *
smtp_check_rcpt(struct session_info *i, const char *args)
{
	const char *why = smtp_parse_rcpt(args, &i->rcpt);
	const unsigned char *p;

	if (why)
		return why;
	for (p = (const unsigned char *)i->rcpt.addr; *p && *p < 0x80; p++)
		;
	if (*p && !i->mail.smtputf8)
		return "553 5.6.7 Non-ASCII address requires SMTPUTF8";
	if (i->nrcpts >= i->conf->limits.max_recipients)
		return "452 4.5.3 Error: too many recipients";
	return NULL;
}
