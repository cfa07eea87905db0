/*
 * smtp_server.c - one SMTP session: I/O, the command table, DATA, STARTTLS.
 *
 * The flow is io -> line -> command table check -> policy decision (maybe
 * later) -> proceed -> reply. While a decision is pending the session reads
 * no further line: pipelined commands (RFC 2920) simply wait, in order, in
 * the input buffer. Replies accumulate in the output buffer and go out
 * when the session would otherwise wait, so a pipelined group gets one
 * write. Sessions are freed only at the end of a libev callback
 * (session_settle), never from inside a function still using them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <openssl/err.h>

#include "data.h"
#include "journal.h"
#include "json.h"
#include "log.h"
#include "reply.h"
#include "session.h"
#include "smtp_grammar.h"
#include "smtp_parse.h"
#include "smtp_server.h"
#include "spool.h"

#define IN_SIZE   4096   /* >= command_line; DATA streams through it */
#define OUT_SIZE  4096
#define OUT_ROOM  1024   /* stop reading commands when less is free */
#define HDR_MAX   65536  /* header section kept for the data stage */

enum state {
	S_CONNECT = PHASE_CONNECT, /* connect hook, greeting not yet sent */
	S_INIT = PHASE_INIT,       /* greeted; no HELO/EHLO yet (also after STARTTLS) */
	S_HELO = PHASE_HELO,       /* HELO/EHLO done, no transaction */
	S_MAIL = PHASE_MAIL,       /* MAIL accepted */
	S_RCPT = PHASE_RCPT,       /* at least one RCPT accepted */
	S_DATA,         /* reading the message */
	S_EOM,          /* message read; data hook or commit pending */
	S_TLS,          /* TLS handshake */
	S_QUIT,         /* closing after the last reply */
	S_NSTATES
};

static const char *state_names[S_NSTATES] = {
	"connect", "init", "helo", "mail", "rcpt", "data", "eom", "tls", "quit",
};


struct session {
	struct session_info info;        /* first: what the policy sees */
	struct server      *srv;
	struct conf        *conf;        /* held: the config this session started on */
	struct session     *next, *prev;
	int                 fd;
	SSL                *ssl;
	int                 ssl_want_write; /* an SSL call needs the socket writable */
	ev_io               io;
	ev_timer            timer;
	enum state          state;
	int                 errors;
	int                 waiting;     /* a policy decision is pending */
	int                 committing;  /* the spool thread owns our message */
	int                 closing;     /* no more input; free when settled */
	int                 discard_line;/* inside an overlong command line */
	int                 eof;
	int                 policy_started;
	const char         *rule_where;
	const char         *close_why;   /* a literal, from session_close() */  /* the rule behind the reply being logged */
	enum smtp_verb      cmd;         /* the command awaiting its decision */
	enum stage          stage;
	const struct conf_listener *listener;

	struct data_parser  data;
	struct spool_msg   *msg;
	int                 data_error;  /* spool write failed */
	struct buf          hdr;         /* header section, for the data stage (HDR_MAX) */
	int                 hdr_done;
	unsigned            nmsgs;

	size_t              inlen, outlen, outoff;
	char                in[IN_SIZE];
	char                out[OUT_SIZE];
};

struct command {
	const char  *(*check)(struct session *, const char *args);
	void         (*proceed)(struct session *, const struct verdict *);
};

static void reply(struct session *s, int code, const char *enh, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void session_io(struct session *s);
static void process(struct session *s);
static void session_close(struct session *s, const char *why);
static void session_settle(struct session *s);

/* ------------------------------------------------------------------ */
/* shared configuration                                               */

struct conf *
conf_hold(struct conf *c)
{
	c->refs++;
	return c;
}

void
conf_release(struct conf *c)
{
	if (--c->refs == 0) {
		conf_free(c);
		free(c);
	}
}

/* ------------------------------------------------------------------ */
/* replies: every byte the client sees goes through reply()           */

static void
out_append(struct session *s, const char *p, size_t n)
{
	if (s->outlen + n > OUT_SIZE)
		n = OUT_SIZE - s->outlen;       /* cannot happen: OUT_ROOM guards */
	memcpy(s->out + s->outlen, p, n);
	s->outlen += n;
}

/*
 * Formats "CODE ENH text" (RFC 2034 enhanced code on every reply); a '\n'
 * in text makes a multi-line reply. Replies of 400 and up are logged.
 */
static void
reply_text(struct session *s, int code, const char *enh, const char *text, const char *reason)
{
	char line[600];
	const char *p = text;

	if (s->info.journal) {
		char full[700];
		snprintf(full, sizeof full, "%s%s%s", enh && *enh ? enh : "", enh && *enh ? " " : "", text);
		journal_reply(s->info.journal, code, full);
	}
	do {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		int len;

		if (n > 480)
			n = 480;
		len = snprintf(line, sizeof line, "%03d%c%s%s", code, nl ? '-' : ' ',
		    enh && *enh ? enh : "", enh && *enh ? " " : "");
		/* A rule's text (or a downstream's, quoted in it) must not end the
		 * line early or smuggle a reply of its own: no control bytes. */
		for (size_t i = 0; i < n && len < (int)sizeof line - 3; i++)
			line[len++] = ((unsigned char)p[i] < 0x20 || p[i] == 0x7f) ? ' ' : p[i];
		line[len++] = '\r';
		line[len++] = '\n';
		out_append(s, line, (size_t)len);
		p = nl ? nl + 1 : NULL;
	} while (p);
	if (code >= 400) {
		char c[16];
		snprintf(c, sizeof c, "%d", code);
		log_event("reject", "sid", s->info.sid, "dir", direction_str(s->info.direction),
		    "client", s->info.client_ip, "stage", stage_name(s->stage),
		    "cmd", smtp_verb_name(s->cmd), "code", c, "enhanced", enh,
		    "reason", reason ? reason : "protocol", "rule", s->rule_where, "text", text,
		    "from", s->info.has_mail || s->stage == STAGE_MAIL ? s->info.mail.addr : NULL,
		    "rcpt", s->stage == STAGE_RCPT ? s->info.rcpt.addr : NULL, NULL);
	}
}

static void
reply(struct session *s, int code, const char *enh, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	reply_text(s, code, enh, text, NULL);
}

/* A protocol error; 5xx ones count toward limits.max_errors (then 421, close). */
static void
reply_error(struct session *s, const char *full)
{
	int code = atoi(full);
	char enh[16] = "";
	const char *text = full + 4;

	if (sscanf(text, "%15s", enh) == 1 && strchr(enh, '.'))
		text += strlen(enh) + 1;
	else
		enh[0] = '\0';
	reply_text(s, code, enh, text, code == 452 ? "too_many_recipients" : "protocol");
	if (code >= 500 && ++s->errors >= s->conf->limits.max_errors) {
		reply(s, 421, "4.7.0", "%s Error: too many errors", s->conf->hostname);
		session_close(s, "too many errors");
	}
}

/*
 * The reply for a policy verdict that is not a plain accept at stage st.
 * reply.c holds the defaults, shared with ruletest so the two cannot drift.
 */
static void
reply_verdict(struct session *s, enum stage st, const struct verdict *v)
{
	struct reply_words w;
	enum action a = reply_for_verdict(st, v, &w);

	s->rule_where = v->where[0] ? v->where : NULL;
	reply_text(s, w.code, w.enhanced, w.text, w.reason);
	s->rule_where = NULL;
	if (a == V_DROP)
		session_close(s, "dropped by policy");
}

/* ------------------------------------------------------------------ */
/* transaction state                                                  */

static void
reset_transaction(struct session *s)
{
	for (int i = 0; i < s->info.nrcpts; i++)
		free(s->info.rcpts[i]);
	free(s->info.rcpts);
	s->info.rcpts = NULL;
	s->info.nrcpts = 0;
	s->info.has_mail = 0;
	memset(&s->info.mail, 0, sizeof s->info.mail);
	buf_free(&s->hdr);
	s->hdr_done = 0;
	s->info.headers = NULL;
	s->info.headers_len = 0;
	s->info.size = 0;
	s->info.qid[0] = '\0';
	if (s->msg) {
		spool_abort(s->msg);
		s->msg = NULL;
	}
	if (s->state == S_MAIL || s->state == S_RCPT || s->state == S_DATA || s->state == S_EOM)
		s->state = S_HELO;
}

/* ------------------------------------------------------------------ */
/* the policy seam                                                    */

/*
 * Asks the policy for this stage's verdict; proceed runs now or when the
 * answer comes back through session_resume().
 */
static void
decide(struct session *s, enum stage st, void (*proceed)(struct session *, const struct verdict *))
{
	struct verdict v;
	struct policy *p = &s->srv->policy;

	memset(&v, 0, sizeof v);
	s->stage = st;
	journal_hook(s->info.journal, st, &s->info);
	if (p->ops->decide(p->self, &s->info, st, &v) == POLICY_PENDING) {
		s->waiting = 1;
		ev_timer_stop(s->srv->loop, &s->timer);
		s->timer.repeat = s->conf->timeouts.rule;      /* a rule waiting on the network */
		ev_timer_again(s->srv->loop, &s->timer);
		return;
	}
	journal_verdict(s->info.journal, st, &v);
	proceed(s, &v);
}

static const struct command handlers[CMD_MAX];

/* s->info.resume: a pending verdict arrives. info is our first member. */
static void
session_resume(struct session_info *i, const struct verdict *v)
{
	struct session *s = (struct session *)i;

	if (!s->waiting)
		return;
	s->waiting = 0;
	s->timer.repeat = s->conf->timeouts.command;
	ev_timer_again(s->srv->loop, &s->timer);
	journal_verdict(s->info.journal, s->stage, v);
	if (s->stage == STAGE_CONNECT || s->stage == STAGE_DATA) {
		extern void smtp_after_connect(struct session *, const struct verdict *);
		extern void smtp_after_data(struct session *, const struct verdict *);
		if (s->stage == STAGE_CONNECT)
			smtp_after_connect(s, v);
		else
			smtp_after_data(s, v);
	} else if (s->cmd > CMD_UNKNOWN && s->cmd < CMD_MAX && handlers[s->cmd].proceed)
		handlers[s->cmd].proceed(s, v);
	if (!s->closing)
		process(s);
	session_io(s);
	session_settle(s);
}

/* ------------------------------------------------------------------ */
/* commands: check (syntax and state) then proceed (after the policy) */

static const char *
check_helo(struct session *s, const char *args)
{
	const char *why = smtp_check_helo(args);

	if (why)
		return why;
	reset_transaction(s);
	snprintf(s->info.helo, sizeof s->info.helo, "%s", args);
	s->info.esmtp = (s->cmd == CMD_EHLO);
	return NULL;
}

static void
proceed_helo(struct session *s, const struct verdict *v)
{
	if (v->action != V_NONE && v->action != V_ACCEPT) {
		s->info.helo[0] = '\0';
		reply_verdict(s, STAGE_HELO, v);
		return;
	}
	s->state = S_HELO;
	if (!s->info.esmtp) {
		reply(s, 250, "", "%s", s->conf->hostname);
		return;
	}
	/* RFC 2034: the EHLO response carries no enhanced codes. */
	char text[512];
	snprintf(text, sizeof text, "%s\nPIPELINING\nSIZE %zu\n8BITMIME\n%sENHANCEDSTATUSCODES\nSMTPUTF8",
	    s->conf->hostname, s->conf->limits.max_message_size,
	    (s->srv->tls && !s->info.tls) ? "STARTTLS\n" : "");
	reply_text(s, 250, "", text, NULL);
}

static const char *
check_mail(struct session *s, const char *args)
{
	return smtp_check_mail(&s->info, args);
}

static void
proceed_mail(struct session *s, const struct verdict *v)
{
	if (v->action != V_NONE && v->action != V_ACCEPT) {
		reply_verdict(s, STAGE_MAIL, v);      /* its log line names the sender */
		memset(&s->info.mail, 0, sizeof s->info.mail);
		return;
	}
	s->info.has_mail = 1;
	s->state = S_MAIL;
	reply(s, 250, "2.1.0", "Ok");
}

static const char *
check_rcpt(struct session *s, const char *args)
{
	return smtp_check_rcpt(&s->info, args);
}

static void
proceed_rcpt(struct session *s, const struct verdict *v)
{
	char **r;

	switch (v->action) {
	case V_ACCEPT:
		break;
	default:
		/* V_NONE too: no rule accepted this recipient, so reply_for_verdict
		 * refuses it (fail closed). Never an open relay. */
		reply_verdict(s, STAGE_RCPT, v);
		return;
	}
	r = realloc(s->info.rcpts, (size_t)(s->info.nrcpts + 1) * sizeof *r);
	if (!r || !(r[s->info.nrcpts] = strdup(s->info.rcpt.addr))) {
		if (r)
			s->info.rcpts = r;
		reply(s, 452, "4.3.1", "Insufficient system resources");
		return;
	}
	s->info.rcpts = r;
	s->info.nrcpts++;
	s->state = S_RCPT;
	reply(s, 250, "2.1.5", "Ok");
}

static const char *
check_data(struct session *s, const char *args)
{
	if (*args)
		return "501 5.5.4 Syntax: DATA takes no argument";
	return NULL;
}

static int write_envelope(struct session *s);

static void
proceed_data(struct session *s, const struct verdict *v)
{
	if (v->action != V_NONE && v->action != V_ACCEPT) {
		reply_verdict(s, STAGE_PREDATA, v);
		return;
	}
	qid_new(s->info.qid);
	s->msg = spool_create(s->srv->spool, s->info.qid);
	if (!s->msg || write_envelope(s) < 0) {
		log_event("spool_error", "sid", s->info.sid, "error", strerror(errno), NULL);
		reply(s, 451, "4.3.0", "Error: queue file write error");
		if (s->msg) {
			spool_abort(s->msg);
			s->msg = NULL;
		}
		return;
	}
	data_init(&s->data, (size_t)s->conf->limits.text_line);
	s->data_error = 0;
	s->state = S_DATA;
	s->timer.repeat = s->conf->timeouts.data;
	ev_timer_again(s->srv->loop, &s->timer);
	reply(s, 354, "", "End data with <CR><LF>.<CR><LF>");
}

static const char *
check_rset(struct session *s, const char *args)
{
	return NULL;
}

static void
proceed_rset(struct session *s, const struct verdict *v)
{
	reset_transaction(s);
	reply(s, 250, "2.0.0", "Ok");
}

static void
proceed_noop(struct session *s, const struct verdict *v)
{
	reply(s, 250, "2.0.0", "Ok");
}

static void
proceed_vrfy(struct session *s, const struct verdict *v)
{
	/* RFC 5321 3.5.3: 252 neither confirms nor denies; no address harvesting. */
	reply(s, 252, "2.0.0", "Cannot VRFY user, but will accept message and attempt delivery");
}

static void
proceed_expn(struct session *s, const struct verdict *v)
{
	reply(s, 502, "5.5.1", "EXPN not available");
}

static void
proceed_help(struct session *s, const struct verdict *v)
{
	reply(s, 214, "2.0.0", "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS\n"
	    "See RFC 5321");
}

static void
proceed_quit(struct session *s, const struct verdict *v)
{
	reply(s, 221, "2.0.0", "Bye");
	session_close(s, "quit");
}

static const char *
check_starttls(struct session *s, const char *args)
{
	if (!s->srv->tls)
		return "502 5.5.1 STARTTLS not available";
	if (s->info.tls)
		return "503 5.5.1 TLS already active";
	if (*args)
		return "501 5.5.4 Syntax: STARTTLS takes no argument";
	return NULL;
}

static void
proceed_starttls(struct session *s, const struct verdict *v)
{
	if (v->action != V_NONE && v->action != V_ACCEPT) {
		reply_verdict(s, STAGE_STARTTLS, v);
		return;
	}
	reply(s, 220, "2.0.0", "Ready to start TLS");
	/*
	 * CVE-2011-0411: anything the client pipelined after STARTTLS arrived
	 * in plaintext and must not be executed inside the TLS session.
	 */
	s->inlen = 0;
	s->state = S_TLS;               /* the handshake starts once the 220 is out */
}

static const char *
check_unimplemented(struct session *s, const char *args)
{
	return "502 5.5.1 Error: command not implemented";
}

static const char *
check_none(struct session *s, const char *args)
{
	return NULL;
}

/* What each command does here; where it is allowed is smtp_grammar.c's. */
static const struct command handlers[CMD_MAX] = {
	[CMD_EHLO] = { check_helo, proceed_helo },
	[CMD_HELO] = { check_helo, proceed_helo },
	[CMD_STARTTLS] = { check_starttls, proceed_starttls },
	[CMD_MAIL] = { check_mail, proceed_mail },
	[CMD_RCPT] = { check_rcpt, proceed_rcpt },
	[CMD_DATA] = { check_data, proceed_data },
	[CMD_RSET] = { check_rset, proceed_rset },
	[CMD_NOOP] = { check_none, proceed_noop },
	[CMD_VRFY] = { check_none, proceed_vrfy },
	[CMD_EXPN] = { check_none, proceed_expn },
	[CMD_HELP] = { check_none, proceed_help },
	[CMD_QUIT] = { check_none, proceed_quit },
	[CMD_AUTH] = { check_unimplemented, NULL },
	[CMD_BDAT] = { check_unimplemented, NULL },
};

static void
command(struct session *s, char *line)
{
	const char *args, *why;
	const struct smtp_grammar *g;
	const struct command *c;

	s->cmd = smtp_parse_verb(line, &args);
	journal_cmd(s->info.journal, line);
	if (log_debug)
		log_event("command", "sid", s->info.sid, "line", line, NULL);
	g = smtp_grammar(s->cmd);
	s->stage = g ? g->stage : STAGE_MAX;
	if (!g) {
		reply_error(s, "500 5.5.2 Error: command not recognized");
		return;
	}
	if (!(g->phases & PHASE_BIT(s->state))) {
		reply_error(s, g->sequence_error);
		return;
	}
	c = &handlers[s->cmd];
	if ((why = c->check(s, args)) != NULL) {
		reply_error(s, why);
		return;
	}
	if (g->stage == STAGE_MAX) {
		if (c->proceed)
			c->proceed(s, &(struct verdict){ .action = V_NONE });
		return;
	}
	decide(s, g->stage, c->proceed);
}

/* ------------------------------------------------------------------ */
/* DATA                                                               */

/*
 * The envelope travels with the message: one JSON line, then the message
 * with our Received: trace header (RFC 5321 4.4) first.
 */
static int
write_envelope(struct session *s)
{
	struct session_info *i = &s->info;
	struct buf b = BUF_INIT(0);             /* our fields, sizes bounded by the parser */
	char date[64], listener[300];
	time_t now = time(NULL);
	struct tm tm;
	int rc;

	/* spool_create() opened the object with its "length" field. */
	snprintf(listener, sizeof listener, "%s:%d", s->listener->address, s->listener->port);
	jsonw_key(&b, "v");
	jsonw_int(&b, 1);
	jsonw_key(&b, "qid");
	jsonw_strz(&b, i->qid);
	jsonw_key(&b, "time");
	jsonw_int(&b, (long long)now);
	jsonw_key(&b, "direction");
	jsonw_strz(&b, direction_str(i->direction));
	jsonw_key(&b, "listener");
	jsonw_strz(&b, listener);
	jsonw_key(&b, "client");
	jsonw_strz(&b, i->client_ip);
	jsonw_key(&b, "client_port");
	jsonw_int(&b, i->client_port);
	jsonw_key(&b, "helo");
	jsonw_strz(&b, i->helo);
	jsonw_key(&b, "tls");
	jsonw_bool(&b, i->tls);
	if (i->tls) {
		jsonw_key(&b, "tls_version");
		jsonw_strz(&b, i->tls_version);
		jsonw_key(&b, "tls_cipher");
		jsonw_strz(&b, i->tls_cipher);
	}
	jsonw_key(&b, "sid");
	jsonw_strz(&b, i->sid);
	jsonw_key(&b, "sender");
	jsonw_strz(&b, i->mail.addr);
	jsonw_key(&b, "body");
	jsonw_strz(&b, i->mail.body8bit ? "8BITMIME" : "7BIT");
	jsonw_key(&b, "smtputf8");
	jsonw_bool(&b, i->mail.smtputf8);
	jsonw_key(&b, "rcpts");
	jsonw_open(&b, '[');
	for (int r = 0; r < i->nrcpts; r++)
		jsonw_strz(&b, i->rcpts[r]);
	jsonw_close(&b, ']');
	buf_adds(&b, "}\n");
	localtime_r(&now, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm);
	/* The HELO is client-controlled: only printable ASCII goes into a header. */
	char helo[256];
	size_t h = 0;
	for (const char *p = i->helo; *p && h < sizeof helo - 1; p++)
		helo[h++] = (*p > 0x20 && *p < 0x7f && *p != '(' && *p != ')') ? *p : '?';
	helo[h] = '\0';
	buf_printf(&b, "Received: from %s ([%s])\r\n\tby %s (mxgate) with %s%s%s id %s", helo, i->client_ip,
	    s->conf->hostname, i->mail.smtputf8 ? "UTF8" : "", i->esmtp ? "ESMTP" : "SMTP",
	    i->tls ? "S" : "", i->qid);
	if (i->nrcpts == 1 && strlen(i->rcpts[0]) < 200)
		buf_printf(&b, "\r\n\tfor <%s>", i->rcpts[0]);
	buf_printf(&b, ";\r\n\t%s\r\n", date);
	if (b.err) {
		buf_free(&b);
		errno = ENOMEM;
		return -1;
	}
	rc = spool_write(s->msg, b.p, b.len);
	buf_free(&b);
	return rc;
}

/* Keeps the header section (up to the first empty line) for the data hook. */
static void
keep_headers(struct session *s, const char *p, size_t n)
{
	struct buf *h = &s->hdr;
	char *end;

	if (s->hdr_done)
		return;
	h->max = HDR_MAX;
	if (h->len + n > HDR_MAX)
		n = HDR_MAX - h->len;
	if (buf_add(h, p, n) < 0)
		return;
	end = h->len >= 2 && h->p[0] == '\r' && h->p[1] == '\n' ? h->p : strstr(h->p, "\r\n\r\n");
	if (end) {
		buf_truncate(h, (size_t)(end - h->p) + (end == h->p ? 0 : 2));
		s->hdr_done = 1;
	} else if (h->len >= HDR_MAX)
		s->hdr_done = 1;
}

static void committed(void *arg, int ok);

void
smtp_after_data(struct session *s, const struct verdict *v)
{
	if (v->action != V_NONE && v->action != V_ACCEPT) {
		reply_verdict(s, STAGE_DATA, v);
		reset_transaction(s);
		return;
	}
	s->committing = 1;
	spool_commit(s->msg, committed, s);
	s->msg = NULL;
}

/* CRLF.CRLF seen: check what the stream told us, then ask the data hook. */
static void
end_of_data(struct session *s)
{
	const struct conf *c = s->conf;

	s->state = S_EOM;
	s->timer.repeat = c->timeouts.command;
	ev_timer_again(s->srv->loop, &s->timer);
	s->info.size = s->data.size;
	s->info.headers = buf_str(&s->hdr);
	s->info.headers_len = s->hdr.len;
	s->cmd = CMD_DATA;
	s->stage = STAGE_DATA;
	if (s->data_error) {
		reply(s, 451, "4.3.0", "Error: queue file write error");
	} else if (s->data.size > c->limits.max_message_size) {
		reply_text(s, 552, "5.3.4", "Message size exceeds fixed limit", "size_limit");
	} else if (s->data.too_long) {
		reply_text(s, 500, "5.5.2", "Message has a line longer than 1000 octets (RFC 5321 4.5.3.1.6)",
		    "line_too_long");
	} else if (s->data.bare && strcmp(c->bare_lf, "reject") == 0) {
		reply_text(s, 550, "5.6.2", "Message contains bare CR or LF (RFC 5321 2.3.8)", "bare_lf");
	} else {
		decide(s, STAGE_DATA, smtp_after_data);
		return;
	}
	reset_transaction(s);
}

/* Streams DATA bytes from the input buffer to the spool file. */
static size_t
feed_data(struct session *s, const char *p, size_t n)
{
	char out[2 * IN_SIZE + 2];
	size_t outn, used, before = s->data.size;

	used = data_feed(&s->data, p, n, out, &outn);
	if (outn && !s->data_error) {
		keep_headers(s, out, outn);
		/* Past the limit we keep reading, to answer 552 at the end. */
		if (before + outn <= s->conf->limits.max_message_size &&
		    spool_write(s->msg, out, outn) < 0)
			s->data_error = 1;
	}
	if (s->data.done)
		end_of_data(s);
	return used;
}

static void
committed(void *arg, int ok)
{
	struct session *s = arg;

	s->committing = 0;
	if (!s->closing) {
		if (ok) {
			char n[32], size[32];
			snprintf(n, sizeof n, "%d", s->info.nrcpts);
			snprintf(size, sizeof size, "%zu", s->info.size);
			log_event("accepted", "sid", s->info.sid, "qid", s->info.qid,
			    "dir", direction_str(s->info.direction), "client", s->info.client_ip,
			    "from", s->info.mail.addr, "rcpts", n, "size", size, NULL);
			reply(s, 250, "2.0.0", "Ok: queued as %s", s->info.qid);
			s->nmsgs++;
		} else
			reply(s, 451, "4.3.0", "Error: queue file write error");
		reset_transaction(s);
		process(s);
	}
	session_io(s);
	session_settle(s);
}

/* ------------------------------------------------------------------ */
/* input                                                              */

/*
 * Runs every complete command (or the DATA stream) in the input buffer
 * until the session must wait: a pending decision, a commit, a full
 * output buffer, or no more complete input.
 */
static void
process(struct session *s)
{
	size_t off = 0;
	/* A line longer than the input buffer could never be seen whole. */
	const size_t limit = s->conf->limits.command_line < IN_SIZE ? (size_t)s->conf->limits.command_line : IN_SIZE;

	while (!s->waiting && !s->committing && !s->closing && off < s->inlen &&
	    s->outlen + OUT_ROOM <= OUT_SIZE) {
		char *p = s->in + off, *lf;
		size_t avail = s->inlen - off, len;

		if (s->state == S_DATA) {
			off += feed_data(s, p, avail);
			continue;
		}
		if (s->state == S_EOM || s->state == S_TLS || s->state == S_CONNECT || s->state == S_QUIT)
			break;
		lf = memchr(p, '\n', avail);
		if (s->discard_line) {          /* rest of an overlong line */
			if (!lf) {
				off = s->inlen;
				break;
			}
			s->discard_line = 0;
			off += (size_t)(lf - p) + 1;
			continue;
		}
		if (!lf) {
			if (avail >= limit) {
				/* RFC 5321 4.5.3.1.4: 512 octets, CRLF included. */
				reply_error(s, "500 5.5.2 Error: line too long");
				s->discard_line = 1;
				off = s->inlen;
			}
			break;
		}
		len = (size_t)(lf - p) + 1;
		off += len;
		if (len > limit) {
			reply_error(s, "500 5.5.2 Error: line too long");
			continue;
		}
		len--;                          /* LF */
		if (len && p[len - 1] == '\r')
			len--;
		p[len] = '\0';
		if (memchr(p, '\0', len)) {
			reply_error(s, "500 5.5.2 Error: NUL in command");
			continue;
		}
		command(s, p);
	}
	/* STARTTLS emptied the buffer itself (inlen = 0). */
	if (off > s->inlen)
		off = s->inlen;
	if (off) {
		memmove(s->in, s->in + off, s->inlen - off);
		s->inlen -= off;
	}
}

/* ------------------------------------------------------------------ */
/* socket and TLS I/O                                                 */

static void
tls_facts(struct session *s)
{
	X509 *peer;

	s->info.tls = 1;
	snprintf(s->info.tls_version, sizeof s->info.tls_version, "%s", SSL_get_version(s->ssl));
	snprintf(s->info.tls_cipher, sizeof s->info.tls_cipher, "%s", SSL_get_cipher_name(s->ssl));
	if ((peer = SSL_get1_peer_certificate(s->ssl)) != NULL) {
		X509_NAME_oneline(X509_get_subject_name(peer), s->info.tls_peer, sizeof s->info.tls_peer);
		X509_free(peer);
	}
}

/* Returns 1 when progress is possible, 0 to wait, -1 on a fatal error. */
static int
ssl_result(struct session *s, int rc)
{
	switch (SSL_get_error(s->ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		return 0;
	case SSL_ERROR_WANT_WRITE:
		s->ssl_want_write = 1;
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		s->eof = 1;
		return -1;
	default:
		ERR_clear_error();
		/* After an SSL or SYSCALL error, no SSL_shutdown (it would fail again). */
		SSL_free(s->ssl);
		s->ssl = NULL;
		return -1;
	}
}

static void
handshake(struct session *s)
{
	int rc;

	if (!s->ssl) {
		s->ssl = SSL_new(s->srv->tls);
		if (!s->ssl || !SSL_set_fd(s->ssl, s->fd)) {
			session_close(s, "SSL_new failed");
			return;
		}
	}
	s->ssl_want_write = 0;
	if ((rc = SSL_accept(s->ssl)) == 1) {
		tls_facts(s);
		journal_tls(s->info.journal, &s->info);
		/* RFC 3207 4.2: forget everything learnt before TLS. */
		reset_transaction(s);
		s->info.helo[0] = '\0';
		s->info.esmtp = 0;
		s->state = S_INIT;
		log_event("starttls", "sid", s->info.sid, "version", s->info.tls_version,
		    "cipher", s->info.tls_cipher, NULL);
		return;
	}
	if (ssl_result(s, rc) < 0)
		session_close(s, "TLS handshake failed");
}

static int
flush_out(struct session *s)
{
	/* TLS failed (ssl_result freed it): nothing more goes out, least of all in plaintext. */
	if (!s->ssl && s->info.tls)
		return -1;
	while (s->outoff < s->outlen) {
		ssize_t n;
		size_t len = s->outlen - s->outoff;

		if (s->ssl) {
			s->ssl_want_write = 0;
			n = SSL_write(s->ssl, s->out + s->outoff, (int)len);
			if (n <= 0)
				return ssl_result(s, (int)n) < 0 ? -1 : 0;
		} else {
			n = send(s->fd, s->out + s->outoff, len, MSG_NOSIGNAL);
			if (n < 0)
				return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
		}
		s->outoff += (size_t)n;
	}
	s->outlen = s->outoff = 0;
	return 1;
}

/* Reads what fits; drains SSL's own buffer, which never wakes libev. */
static void
read_in(struct session *s)
{
	while (s->inlen < IN_SIZE && !s->eof) {
		ssize_t n;

		if (s->ssl) {
			n = SSL_read(s->ssl, s->in + s->inlen, (int)(IN_SIZE - s->inlen));
			if (n <= 0) {
				if (ssl_result(s, (int)n) < 0)
					s->eof = 1;
				return;
			}
		} else {
			n = recv(s->fd, s->in + s->inlen, IN_SIZE - s->inlen, 0);
			if (n == 0) {
				s->eof = 1;
				return;
			}
			if (n < 0) {
				if (errno != EAGAIN && errno != EINTR)
					s->eof = 1;
				return;
			}
		}
		s->inlen += (size_t)n;
		ev_timer_again(s->srv->loop, &s->timer);
	}
}

static int
can_read(struct session *s)
{
	return !s->waiting && !s->committing && !s->closing && s->state != S_CONNECT &&
	    s->state != S_EOM && s->inlen < IN_SIZE && s->outlen + OUT_ROOM <= OUT_SIZE;
}

/*
 * One pass: write what is pending, advance TLS, read, process, and arm
 * exactly the events the session now waits for.
 */
static void
session_io(struct session *s)
{
	int events = 0;

	/* Bounded rounds: one busy client cannot starve the others. */
	for (int round = 0; round < 64; round++) {
		size_t before, got;

		if (s->outlen && flush_out(s) < 0) {
			session_close(s, "write error");
			s->outlen = 0;
		}
		if (s->state == S_TLS && !s->outlen && !s->closing)
			handshake(s);
		if (!can_read(s) || s->state == S_TLS)
			break;
		before = s->inlen;
		read_in(s);
		got = s->inlen;
		process(s);
		if (s->eof && !s->closing && !s->waiting && !s->committing) {
			if (s->state == S_DATA)
				log_event("lost", "sid", s->info.sid, "why", "connection lost in DATA", NULL);
			session_close(s, "client closed");
		}
		if (got == before && s->inlen == got && !(s->ssl && SSL_pending(s->ssl)))
			break;
	}
	/* Data inside SSL's buffer never wakes libev. */
	if (s->ssl && SSL_pending(s->ssl) && can_read(s))
		ev_feed_event(s->srv->loop, &s->io, EV_READ);
	if (s->closing) {
		if (s->outlen && flush_out(s) == 0 && !s->eof)
			events |= EV_WRITE;      /* let the last reply go out */
		else
			s->outlen = 0;
	} else {
		if (s->outlen || s->ssl_want_write)
			events |= EV_WRITE;
		if (can_read(s) || s->state == S_TLS)
			events |= EV_READ;
	}
	if (events != (s->io.events & (EV_READ | EV_WRITE))) {
		ev_io_stop(s->srv->loop, &s->io);
		ev_io_set(&s->io, s->fd, events);
		if (events)
			ev_io_start(s->srv->loop, &s->io);
	}
}

static void
on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct session *s = w->data;

	session_io(s);
	session_settle(s);
}

static void
on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct session *s = w->data;

	if (s->closing) {
		s->outlen = 0;                  /* client will not read: give up */
	} else {
		log_event("timeout", "sid", s->info.sid, "state", state_names[s->state], NULL);
		s->outlen = 0;
		reply(s, 421, "4.4.2", "%s Error: timeout exceeded", s->conf->hostname);
		session_close(s, "timeout");
	}
	session_io(s);
	session_settle(s);
}

/* ------------------------------------------------------------------ */
/* lifecycle                                                          */

static void
session_close(struct session *s, const char *why)
{
	if (s->closing)
		return;
	s->closing = 1;
	s->state = S_QUIT;
	/* The last reply gets a few seconds, then the connection goes anyway. */
	ev_timer_stop(s->srv->loop, &s->timer);
	s->timer.repeat = 5;
	ev_timer_again(s->srv->loop, &s->timer);
	s->close_why = why;             /* logged when the session is gone */
}

/* Frees the session once nothing refers to it any more. */
static void
session_settle(struct session *s)
{
	struct server *srv = s->srv;
	struct policy *p = &srv->policy;

	if (!s->closing || (s->outlen && !s->eof && s->fd >= 0 && ev_is_active(&s->timer)))
		return;
	if (s->waiting) {
		/* The policy drops its pending work; its late answer becomes a no-op. */
		s->waiting = 0;
	}
	if (s->committing)
		return;                         /* committed() settles us again */
	if (s->policy_started) {
		s->policy_started = 0;
		p->ops->end(p->self, &s->info);
	}
	ev_io_stop(srv->loop, &s->io);
	ev_timer_stop(srv->loop, &s->timer);
	if (s->ssl) {
		if (!s->eof)
			SSL_shutdown(s->ssl);
		SSL_free(s->ssl);
	}
	reset_transaction(s);
	journal_end(s->info.journal);
	s->info.journal = NULL;
	close(s->fd);
	if (s->prev)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	srv->nsessions--;
	conf_release(s->conf);
	if (srv->closed)
		srv->closed(srv, (struct sockaddr *)&s->info.client_sa);
	/* Logged last: once "close" is in the log, the connection no longer counts. */
	log_event("close", "sid", s->info.sid, "why", s->close_why, NULL);
	free(s);
}

void
smtp_after_connect(struct session *s, const struct verdict *v)
{
	char peek;

	if (v->action != V_NONE && v->action != V_ACCEPT) {
		reply_verdict(s, STAGE_CONNECT, v);       /* deny: 554 by default */
		session_close(s, "rejected at connect");
		return;
	}
	/*
	 * postscreen's pregreet test: a client that talks before our greeting
	 * is a bot that does not wait for the server (RFC 5321 3.1).
	 */
	if (s->conf->timeouts.greeting_delay > 0 && recv(s->fd, &peek, 1, MSG_PEEK | MSG_DONTWAIT) == 1) {
		reply_text(s, 554, "5.5.1", "Error: talked before the greeting", "pregreet");
		session_close(s, "pregreet");
		return;
	}
	s->state = S_INIT;
	reply(s, 220, "", "%s ESMTP mxgate", s->conf->hostname);
}

static void
on_greeting_delay(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct session *s = w->data;

	ev_timer_stop(loop, w);
	w->repeat = s->conf->timeouts.command;
	ev_set_cb(w, on_timer);
	ev_timer_again(loop, w);
	decide(s, STAGE_CONNECT, smtp_after_connect);
	session_io(s);
	session_settle(s);
}

void
smtp_session_start(struct server *srv, int fd, const struct conf_listener *l,
    const struct sockaddr *peer, socklen_t peerlen)
{
	struct session *s = calloc(1, sizeof *s);
	struct sockaddr_storage local;
	socklen_t llen = sizeof local;
	struct timeval tv;

	if (!s) {
		close(fd);
		if (srv->closed)
			srv->closed(srv, peer);
		return;
	}
	s->srv = srv;
	s->fd = fd;
	s->conf = conf_hold(srv->conf);
	s->listener = l;
	s->state = S_CONNECT;
	s->stage = STAGE_MAX;
	s->info.conf = s->conf;
	s->info.id = ++srv->next_id;
	s->info.direction = l->direction;
	gettimeofday(&tv, NULL);
	s->info.start = (double)tv.tv_sec + tv.tv_usec / 1e6;
	snprintf(s->info.sid, sizeof s->info.sid, "%08lx%05x%06llx", (unsigned long)tv.tv_sec,
	    (unsigned)getpid() & 0xfffff, (unsigned long long)(s->info.id & 0xffffff));
	memcpy(&s->info.client_sa, peer, peerlen < sizeof s->info.client_sa ? peerlen : sizeof s->info.client_sa);
	if (peer->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)peer;
		inet_ntop(AF_INET, &in->sin_addr, s->info.client_ip, sizeof s->info.client_ip);
		s->info.client_port = ntohs(in->sin_port);
	} else if (peer->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)peer;
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], s->info.client_ip, sizeof s->info.client_ip);
		else
			inet_ntop(AF_INET6, &in6->sin6_addr, s->info.client_ip, sizeof s->info.client_ip);
		s->info.client_port = ntohs(in6->sin6_port);
	}
	if (getsockname(fd, (struct sockaddr *)&local, &llen) == 0) {
		if (local.ss_family == AF_INET) {
			struct sockaddr_in *in = (void *)&local;
			inet_ntop(AF_INET, &in->sin_addr, s->info.local_ip, sizeof s->info.local_ip);
			s->info.local_port = ntohs(in->sin_port);
		} else if (local.ss_family == AF_INET6) {
			struct sockaddr_in6 *in6 = (void *)&local;
			inet_ntop(AF_INET6, &in6->sin6_addr, s->info.local_ip, sizeof s->info.local_ip);
			s->info.local_port = ntohs(in6->sin6_port);
		}
	}
	s->next = srv->sessions;
	if (s->next)
		s->next->prev = s;
	srv->sessions = s;
	srv->nsessions++;
	ev_io_init(&s->io, on_io, fd, 0);
	s->io.data = s;
	log_event("connect", "sid", s->info.sid, "dir", direction_str(l->direction),
	    "client", s->info.client_ip, "listener", l->address, NULL);
	s->info.resume = session_resume;
	{
		char lis[96];
		snprintf(lis, sizeof lis, "%s:%d", l->address, l->port);
		s->info.journal = journal_begin(srv->journal, &s->info, lis);
	}
	if (srv->policy.ops->start(srv->policy.self, &s->info) < 0) {
		s->stage = STAGE_CONNECT;
		reply(s, 421, "4.3.0", "%s Error: cannot start a session, try later", s->conf->hostname);
		session_close(s, "policy start failed");
	} else if ((s->policy_started = 1) && s->conf->timeouts.greeting_delay > 0) {
		ev_timer_init(&s->timer, on_greeting_delay, s->conf->timeouts.greeting_delay, 0);
		s->timer.data = s;
		ev_timer_start(srv->loop, &s->timer);
		return;
	} else {
		ev_timer_init(&s->timer, on_timer, 0, s->conf->timeouts.command);
		s->timer.data = s;
		ev_timer_again(srv->loop, &s->timer);
		decide(s, STAGE_CONNECT, smtp_after_connect);
	}
	if (!ev_is_active(&s->timer)) {
		ev_timer_init(&s->timer, on_timer, 0, 5);
		s->timer.data = s;
		ev_timer_again(srv->loop, &s->timer);
	}
	session_io(s);
	session_settle(s);
}

void
smtp_close_all(struct server *srv, const char *why)
{
	struct session *s, *next;

	for (s = srv->sessions; s; s = next) {
		next = s->next;
		if (s->closing)
			continue;
		if (s->state != S_DATA && s->state != S_TLS && !s->ssl_want_write) {
			s->outlen = 0;
			reply(s, 421, "4.3.2", "%s Service shutting down", s->conf->hostname);
		}
		session_close(s, why);
		session_io(s);
		session_settle(s);
	}
}
