/*
 * smtp_proto.c - the SMTP protocol core: one command table (verb, where it
 * is allowed, its 503, its hook, check, proceed) and every reply text.
 *
 * The flow is line -> table -> allowed here? -> check (syntax) -> decide
 * (the policy, maybe later) -> proceed -> reply. No I/O: the driver table
 * sends replies, asks the policy, stores the message and runs TLS. The
 * server drives it with sockets, ruletest with recorded lines.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "reply.h"
#include "smtp_proto.h"
#include "strcopy.h"

struct smtp_command {
	unsigned     states;            /* bits of enum smtp_state where allowed */
	const char  *sequence_error;    /* the reply elsewhere */
	enum stage   stage;             /* the hook it asks; STAGE_MAX: none */
	const char *(*check)(struct smtp_proto *, const char *args);
	void       (*proceed)(struct smtp_proto *, const struct verdict *);
};

static const char *state_names[ST_MAX] = {
	"connect", "init", "helo", "mail", "rcpt", "data", "eom", "tls", "quit",
};

const char *
smtp_state_name(enum smtp_state st)
{
	return st < ST_MAX ? state_names[st] : "?";
}

/* ------------------------------------------------------------------ */
/* replies: every one goes through the driver's reply()               */

static void reply(struct smtp_proto *p, int code, const char *enh, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
reply(struct smtp_proto *p, int code, const char *enh, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	p->drv->reply(p, code, enh, text, NULL);
}

void
smtp_proto_close(struct smtp_proto *p, const char *why)
{
	if (p->state == ST_QUIT)
		return;
	p->state = ST_QUIT;
	p->drv->close(p, why);
}

static const char ROUTING_DENIED[];

/* "CODE ENH text": a protocol error; 5xx count toward limits.max_errors. */
void
smtp_proto_error(struct smtp_proto *p, const char *full)
{
	int code = atoi(full);
	char enh[16] = "";
	const char *text = full + 4;

	if (sscanf(text, "%15s", enh) == 1 && strchr(enh, '.'))
		text += strlen(enh) + 1;
	else
		enh[0] = '\0';
	p->drv->reply(p, code, enh, text, code == 452 ? "too_many_recipients" :
	    full == ROUTING_DENIED ? "sender_routing" : "protocol");
	if (code >= 500 && ++p->errors >= p->info.conf->limits.max_errors) {
		reply(p, 421, "4.7.0", "%s Error: too many errors", p->info.conf->hostname);
		smtp_proto_close(p, "too many errors");
	}
}

/* The reply to a verdict that is not a plain accept (reply.c's words). */
static void
reply_verdict(struct smtp_proto *p, enum stage st, const struct verdict *v)
{
	struct reply_words w;
	enum action a = reply_for_verdict(st, v, &w);

	p->where = v->where[0] ? v->where : NULL;
	p->drv->reply(p, w.code, w.enhanced, w.text, w.reason);
	p->where = NULL;
	if (a == V_DROP)
		smtp_proto_close(p, "dropped by policy");
}

static void after_data(struct smtp_proto *p, const struct verdict *v);

static int
refused(const struct verdict *v)
{
	return v->action != V_NONE && v->action != V_ACCEPT;
}

void
smtp_proto_abort(struct smtp_proto *p, enum smtp_abort why)
{
	const char *host = p->info.conf->hostname;

	switch (why) {
	case ABORT_TIMEOUT:
		reply(p, 421, "4.4.2", "%s Error: timeout exceeded", host);
		smtp_proto_close(p, "timeout");
		break;
	case ABORT_SHUTDOWN:
		reply(p, 421, "4.3.2", "%s Service shutting down", host);
		break;
	case ABORT_UNAVAILABLE:
		p->stage = STAGE_CONNECT;
		reply(p, 421, "4.3.0", "%s Error: cannot start a session, try later", host);
		smtp_proto_close(p, "policy start failed");
		break;
	}
}

/* ------------------------------------------------------------------ */
/* transaction state                                                  */

void
smtp_proto_reset(struct smtp_proto *p)
{
	struct session_info *i = &p->info;

	for (int n = 0; n < i->nrcpts; n++) {
		free(i->rcpts[n]);
		if (i->routes)
			free(i->routes[n]);
	}
	free(i->rcpts);
	free(i->routes);
	i->rcpts = NULL;
	i->routes = NULL;
	i->nrcpts = 0;
	i->has_mail = 0;
	memset(&i->mail, 0, sizeof i->mail);
	i->headers = NULL;
	i->headers_len = 0;
	i->size = 0;
	i->qid[0] = '\0';
	if (p->drv->reset)
		p->drv->reset(p);
	if (p->state == ST_MAIL || p->state == ST_RCPT || p->state == ST_DATA || p->state == ST_EOM)
		p->state = ST_HELO;
}

/* Asks the hook of st: POLICY_DONE, POLICY_PENDING or SMTP_UNDECIDED. */
static int
ask(struct smtp_proto *p, enum stage st, struct verdict *v)
{
	int rc;

	memset(v, 0, sizeof *v);
	p->stage = st;
	rc = p->drv->decide(p, st, v);
	if (rc == POLICY_PENDING)
		p->waiting = 1;
	return rc;
}

/* ------------------------------------------------------------------ */
/* connection                                                         */

static void
after_connect(struct smtp_proto *p, const struct verdict *v)
{
	if (refused(v)) {
		reply_verdict(p, STAGE_CONNECT, v);       /* deny: 554 by default */
		smtp_proto_close(p, "rejected at connect");
		return;
	}
	/* postscreen's pregreet test: a client that talks before our greeting
	 * is a bot that does not wait for the server (RFC 5321 3.1). */
	if (p->drv->pregreet && p->drv->pregreet(p)) {
		p->drv->reply(p, 554, "5.5.1", "Error: talked before the greeting", "pregreet");
		smtp_proto_close(p, "pregreet");
		return;
	}
	p->state = ST_INIT;
	reply(p, 220, "", "%s ESMTP mxgate", p->info.conf->hostname);
}

void
smtp_proto_connect(struct smtp_proto *p)
{
	struct verdict v;

	if (ask(p, STAGE_CONNECT, &v) != POLICY_PENDING)
		after_connect(p, &v);
}

/* ------------------------------------------------------------------ */
/* commands: check (syntax, before the hook) then proceed (after it)  */

static const char *
check_helo(struct smtp_proto *p, const char *args)
{
	/* a name or an address literal, one word */
	if (!*args || strchr(args, ' ') || !smtp_valid_domain(args, 1))
		return "501 5.5.4 Syntax: EHLO hostname";
	smtp_proto_reset(p);
	str_copy(p->info.helo, sizeof p->info.helo, args);
	p->info.esmtp = (p->cmd == CMD_EHLO);
	return NULL;
}

static void
proceed_helo(struct smtp_proto *p, const struct verdict *v)
{
	const struct conf *c = p->info.conf;
	char text[512];

	if (refused(v)) {
		p->info.helo[0] = '\0';
		reply_verdict(p, STAGE_HELO, v);
		return;
	}
	p->state = ST_HELO;
	if (!p->info.esmtp) {
		reply(p, 250, "", "%s", c->hostname);
		return;
	}
	/* RFC 2034: the EHLO response carries no enhanced codes. */
	snprintf(text, sizeof text, "%s\nPIPELINING\nSIZE %zu\n8BITMIME\n%sENHANCEDSTATUSCODES\nSMTPUTF8",
	    c->hostname, c->limits.max_message_size,
	    (p->tls_available && !p->info.tls) ? "STARTTLS\n" : "");
	p->drv->reply(p, 250, "", text, NULL);
}

static const char *
check_mail(struct smtp_proto *p, const char *args)
{
	struct session_info *i = &p->info;
	const char *why = smtp_parse_mail(args, &i->mail);

	if (why)
		return why;
	if (i->mail.size > 0 && (size_t)i->mail.size > i->conf->limits.max_message_size)
		return "552 5.3.4 Message size exceeds fixed limit";
	return NULL;
}

static void
proceed_mail(struct smtp_proto *p, const struct verdict *v)
{
	if (refused(v)) {
		reply_verdict(p, STAGE_MAIL, v);      /* its log line names the sender */
		memset(&p->info.mail, 0, sizeof p->info.mail);
		return;
	}
	p->info.has_mail = 1;
	p->state = ST_MAIL;
	reply(p, 250, "2.1.0", "Ok");
}

/*
 * Sender-specified routing (user%host@us, host!user@us, "user@host"@us):
 * the downstream of a hosted domain may well forward it as the sender
 * asks, which makes us a relay for anyone. Refused from untrusted
 * (inbound) clients, as Postfix's allow_untrusted_routing = no does for
 * its relay domains; relay-network clients are trusted with their own.
 */
static const char ROUTING_DENIED[] =
    "550 5.7.1 Sender-specified routing denied (%, ! or @ in the local part)";

static int
routed(const struct smtp_path *r)
{
	const char *at = strrchr(r->addr, '@');

	for (const char *c = r->addr; at && c < at; c++)
		if (*c == '%' || *c == '!' || *c == '@')
			return 1;
	return 0;
}

static const char *
check_rcpt(struct smtp_proto *p, const char *args)
{
	struct session_info *i = &p->info;
	const char *why = smtp_parse_rcpt(args, &i->rcpt);
	const unsigned char *c;

	if (why)
		return why;
	if (!i->rcpt.domain && strcasecmp(i->rcpt.addr, "postmaster") == 0) {
		/* RFC 5321 4.5.1: <postmaster> with no domain is ours: the
		 * configured address, which rules and delivery then see. */
		snprintf(i->rcpt.addr, sizeof i->rcpt.addr, "%s", i->conf->postmaster);
		i->rcpt.domain = strrchr(i->rcpt.addr, '@');
		if (i->rcpt.domain)
			i->rcpt.domain++;
	}
	if (i->direction == DIR_INBOUND && routed(&i->rcpt))
		return ROUTING_DENIED;
	for (c = (const unsigned char *)i->rcpt.addr; *c && *c < 0x80; c++)
		;
	if (*c && !i->mail.smtputf8)
		return "553 5.6.7 Non-ASCII address requires SMTPUTF8";
	if (i->nrcpts >= i->conf->limits.max_recipients)
		return "452 4.5.3 Error: too many recipients";
	return NULL;
}

/* A rule's route for the recipient being accepted, in i->routes at
 * nrcpts (the array made on the first one); the config's: NULL there. */
static int
keep_route(struct session_info *i, const struct verdict *v)
{
	char **r = i->routes;
	char buf[sizeof v->route.route + sizeof v->route.tls + 1];

	if (!r && !v->route.rule)
		return 0;
	if (!(r = realloc(r, (size_t)(i->nrcpts + 1) * sizeof *r)))
		return -1;
	if (!i->routes)
		memset(r, 0, (size_t)(i->nrcpts + 1) * sizeof *r);
	i->routes = r;
	r[i->nrcpts] = NULL;
	if (!v->route.rule)
		return 0;
	snprintf(buf, sizeof buf, "%s %s", v->route.route, v->route.tls);
	return (r[i->nrcpts] = strdup(buf)) ? 0 : -1;
}

static void
proceed_rcpt(struct smtp_proto *p, const struct verdict *v)
{
	struct session_info *i = &p->info;
	char **r;

	if (v->action != V_ACCEPT) {
		/* V_NONE too: no rule accepted this recipient, so reply_for_verdict
		 * refuses it (fail closed). Never an open relay. */
		reply_verdict(p, STAGE_RCPT, v);
		return;
	}
	r = realloc(i->rcpts, (size_t)(i->nrcpts + 1) * sizeof *r);
	if (r)
		i->rcpts = r;
	if (!r || keep_route(i, v) < 0) {
		reply(p, 452, "4.3.1", "Insufficient system resources");
		return;
	}
	if (!(r[i->nrcpts] = strdup(i->rcpt.addr))) {
		if (i->routes) {        /* keep_route made room at nrcpts */
			free(i->routes[i->nrcpts]);
			i->routes[i->nrcpts] = NULL;
		}
		reply(p, 452, "4.3.1", "Insufficient system resources");
		return;
	}
	i->nrcpts++;
	p->state = ST_RCPT;
	reply(p, 250, "2.1.5", "Ok");
}

static const char *
check_data(struct smtp_proto *p, const char *args)
{
	return *args ? "501 5.5.4 Syntax: DATA takes no argument" : NULL;
}

static void
proceed_data(struct smtp_proto *p, const struct verdict *v)
{
	int rc;

	if (refused(v)) {
		reply_verdict(p, STAGE_PREDATA, v);
		return;
	}
	rc = p->drv->data_begin(p);
	if (rc < 0) {
		reply(p, 451, "4.3.0", "Error: queue file write error");
	} else if (rc == 0) {
		p->state = ST_DATA;
		reply(p, 354, "", "End data with <CR><LF>.<CR><LF>");
	}
}

static void
proceed_rset(struct smtp_proto *p, const struct verdict *v)
{
	smtp_proto_reset(p);
	reply(p, 250, "2.0.0", "Ok");
}

static void
proceed_noop(struct smtp_proto *p, const struct verdict *v)
{
	reply(p, 250, "2.0.0", "Ok");
}

static void
proceed_vrfy(struct smtp_proto *p, const struct verdict *v)
{
	/* RFC 5321 3.5.3: 252 neither confirms nor denies; no address harvesting. */
	reply(p, 252, "2.0.0", "Cannot VRFY user, but will accept message and attempt delivery");
}

static void
proceed_expn(struct smtp_proto *p, const struct verdict *v)
{
	reply(p, 502, "5.5.1", "EXPN not available");
}

static void
proceed_help(struct smtp_proto *p, const struct verdict *v)
{
	reply(p, 214, "2.0.0", "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS\n"
	    "See RFC 5321");
}

static void
proceed_quit(struct smtp_proto *p, const struct verdict *v)
{
	reply(p, 221, "2.0.0", "Bye");
	smtp_proto_close(p, "quit");
}

static const char *
check_starttls(struct smtp_proto *p, const char *args)
{
	if (!p->tls_available)
		return "502 5.5.1 STARTTLS not available";
	if (p->info.tls)
		return "503 5.5.1 TLS already active";
	if (*args)
		return "501 5.5.4 Syntax: STARTTLS takes no argument";
	return NULL;
}

static void
proceed_starttls(struct smtp_proto *p, const struct verdict *v)
{
	if (refused(v)) {
		reply_verdict(p, STAGE_STARTTLS, v);
		return;
	}
	reply(p, 220, "2.0.0", "Ready to start TLS");
	p->state = ST_TLS;              /* the handshake starts once the 220 is out */
	p->drv->starttls(p);
}

/* RFC 3207 4.2: forget everything learnt before TLS. */
void
smtp_proto_tls_done(struct smtp_proto *p)
{
	smtp_proto_reset(p);
	p->info.helo[0] = '\0';
	p->info.esmtp = 0;
	p->state = ST_INIT;
}

static const char *
check_none(struct smtp_proto *p, const char *args)
{
	return NULL;
}

static const char *
check_unimplemented(struct smtp_proto *p, const char *args)
{
	return "502 5.5.1 Error: command not implemented";
}

#define BIT(st) (1u << (st))
#define GREETED (BIT(ST_INIT) | BIT(ST_HELO) | BIT(ST_MAIL) | BIT(ST_RCPT))
#define BAD_SEQUENCE "503 5.5.1 Error: bad sequence of commands"

/*
 * The protocol, one row per verb (RFC 5321 4.1.4: the order of commands;
 * RFC 3207: STARTTLS only after EHLO, outside a transaction).
 */
static const struct smtp_command commands[CMD_MAX] = {
	[CMD_EHLO] = { GREETED, BAD_SEQUENCE, STAGE_HELO, check_helo, proceed_helo },
	[CMD_HELO] = { GREETED, BAD_SEQUENCE, STAGE_HELO, check_helo, proceed_helo },
	[CMD_STARTTLS] = { BIT(ST_HELO), "503 5.5.1 Error: send EHLO first, outside a transaction",
	    STAGE_STARTTLS, check_starttls, proceed_starttls },
	[CMD_MAIL] = { BIT(ST_HELO), "503 5.5.1 Error: send HELO/EHLO first, or nested MAIL command",
	    STAGE_MAIL, check_mail, proceed_mail },
	[CMD_RCPT] = { BIT(ST_MAIL) | BIT(ST_RCPT), "503 5.5.1 Error: need MAIL command",
	    STAGE_RCPT, check_rcpt, proceed_rcpt },
	[CMD_DATA] = { BIT(ST_RCPT), "503 5.5.1 Error: need RCPT command",
	    STAGE_PREDATA, check_data, proceed_data },
	[CMD_RSET] = { GREETED, BAD_SEQUENCE, STAGE_MAX, check_none, proceed_rset },
	[CMD_NOOP] = { GREETED, BAD_SEQUENCE, STAGE_MAX, check_none, proceed_noop },
	[CMD_VRFY] = { GREETED, BAD_SEQUENCE, STAGE_MAX, check_none, proceed_vrfy },
	[CMD_EXPN] = { GREETED, BAD_SEQUENCE, STAGE_MAX, check_none, proceed_expn },
	[CMD_HELP] = { GREETED, BAD_SEQUENCE, STAGE_MAX, check_none, proceed_help },
	[CMD_QUIT] = { GREETED, BAD_SEQUENCE, STAGE_QUIT, check_none, proceed_quit },
	[CMD_AUTH] = { GREETED, BAD_SEQUENCE, STAGE_MAX, check_unimplemented, NULL },
	[CMD_BDAT] = { GREETED, BAD_SEQUENCE, STAGE_MAX, check_unimplemented, NULL },
};

void
smtp_proto_line(struct smtp_proto *p, const char *line)
{
	const struct smtp_command *c;
	const char *args, *why;
	struct verdict v;
	int rc;

	p->cmd = smtp_parse_verb(line, &args);
	c = &commands[p->cmd];
	p->stage = c->check ? c->stage : STAGE_MAX;
	if (!c->check) {
		smtp_proto_error(p, "500 5.5.2 Error: command not recognized");
		return;
	}
	if (!(c->states & BIT(p->state))) {
		smtp_proto_error(p, c->sequence_error);
		return;
	}
	if ((why = c->check(p, args)) != NULL) {
		smtp_proto_error(p, why);
		return;
	}
	if (c->stage == STAGE_MAX) {
		if (c->proceed)
			c->proceed(p, &(struct verdict){ .action = V_NONE });
		return;
	}
	rc = ask(p, c->stage, &v);
	if (rc == POLICY_PENDING)
		return;
	if (rc == SMTP_UNDECIDED)
		reply_verdict(p, c->stage, &v);
	else
		c->proceed(p, &v);
}

void
smtp_proto_resume(struct smtp_proto *p, const struct verdict *v)
{
	if (!p->waiting)
		return;
	p->waiting = 0;
	if (p->stage == STAGE_CONNECT)
		after_connect(p, v);
	else if (p->stage == STAGE_DATA)
		after_data(p, v);
	else if (commands[p->cmd].proceed)
		commands[p->cmd].proceed(p, v);
}

/* ------------------------------------------------------------------ */
/* end of message                                                     */

static void
after_data(struct smtp_proto *p, const struct verdict *v)
{
	if (refused(v)) {
		reply_verdict(p, STAGE_DATA, v);
		smtp_proto_reset(p);
		return;
	}
	p->drv->commit(p);
}

/* CRLF.CRLF seen: what the stream told us, then the data hook. */
void
smtp_proto_eom(struct smtp_proto *p, const struct smtp_eom *m)
{
	const struct conf *c = p->info.conf;
	struct verdict v;

	p->state = ST_EOM;
	p->info.size = m->size;
	p->cmd = CMD_DATA;
	p->stage = STAGE_DATA;
	if (m->write_error) {
		reply(p, 451, "4.3.0", "Error: queue file write error");
	} else if (m->size > c->limits.max_message_size) {
		p->drv->reply(p, 552, "5.3.4", "Message size exceeds fixed limit", "size_limit");
	} else if (m->too_long) {
		p->drv->reply(p, 500, "5.5.2", "Message has a line longer than 1000 octets (RFC 5321 4.5.3.1.6)",
		    "line_too_long");
	} else if (m->bare && strcmp(c->bare_lf, "reject") == 0) {
		p->drv->reply(p, 550, "5.6.2", "Message contains bare CR or LF (RFC 5321 2.3.8)", "bare_lf");
	} else {
		if (ask(p, STAGE_DATA, &v) != POLICY_PENDING)
			after_data(p, &v);
		return;
	}
	smtp_proto_reset(p);
}

void
smtp_proto_committed(struct smtp_proto *p, int ok)
{
	if (ok)
		reply(p, 250, "2.0.0", "Ok: queued as %s", p->info.qid);
	else
		reply(p, 451, "4.3.0", "Error: queue file write error");
	smtp_proto_reset(p);
}

void
smtp_proto_init(struct smtp_proto *p, const struct smtp_driver *drv)
{
	p->drv = drv;
	p->state = ST_CONNECT;
	p->cmd = CMD_UNKNOWN;
	p->stage = STAGE_MAX;
}
