/*
 * reply.c - a verdict's reply: code, enhanced code and text, with the
 * defaults of each action and stage (RFC 3463 enhanced codes).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "reply.h"

static const char *
default_text(enum stage st)
{
	switch (st) {
	case STAGE_CONNECT:  return "Service unavailable";
	case STAGE_HELO:     return "Rejected";
	case STAGE_STARTTLS: return "TLS not available";
	case STAGE_MAIL:     return "Sender rejected";
	case STAGE_RCPT:     return "Recipient rejected";
	case STAGE_PREDATA:  return "Transaction rejected";
	case STAGE_DATA:     return "Message rejected";
	default:             return "Rejected";
	}
}

int
reply_enhanced_fits(int code, const char *enh)
{
	const char *p = enh;

	if (code < 200 || code > 599 || *p++ != '0' + code / 100 || *p++ != '.')
		return 0;
	for (int part = 0; part < 2; part++) {
		int n = 0;
		while (isdigit((unsigned char)*p) && n < 4) {
			p++;
			n++;
		}
		if (n < 1 || n > 3 || *p++ != (part ? '\0' : '.'))
			return 0;
	}
	return 1;
}

enum action
reply_for_verdict(enum stage st, const struct verdict *v, struct reply_words *w)
{
	enum action a = v->action;
	const char *deftext = default_text(st);

	w->reason = v->reason[0] ? v->reason : action_name(a);
	if (st == STAGE_RCPT && a == V_NONE) {
		/* Fail closed: no rule accepted this recipient. Never an open relay. */
		a = V_DENY;
		deftext = "Relay access denied";
		if (!v->reason[0])
			w->reason = "relay_denied";
	}
	w->code = v->code;
	if (!w->code)
		w->code = a == V_DEFER ? 451 : a == V_DROP ? 421 :
		    (a == V_DENY && st == STAGE_CONNECT) ? 554 : 550;
	/* Never on the wire unchecked: a rule's "2.0.0\r\n250" is not a code. */
	if (v->enhanced[0] && reply_enhanced_fits(w->code, v->enhanced))
		snprintf(w->enhanced, sizeof w->enhanced, "%s", v->enhanced);
	else
		snprintf(w->enhanced, sizeof w->enhanced, "%s",
		    w->code >= 500 ? "5.7.1" : w->code == 421 ? "4.7.0" : "4.7.1");
	w->text = v->text[0] ? v->text : deftext;
	return a;
}
