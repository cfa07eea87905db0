/*
 * smtp_client.c - the client side of one callout conversation.
 *
 * One command at a time (no PIPELINING: a callout is four commands and
 * the answer must name the stage that refused). Replies are read line by
 * line into a small buffer: a line longer than SMTPC_LINE_MAX or a reply
 * longer than SMTPC_REPLY_MAX ends the conversation as a failure, so a
 * hostile server costs us a bounded amount of memory.
 *
 * The client frees itself: after on_closed, or after smtp_client_abort().
 * A busy counter defers the free while one of our own frames is on the
 * stack (a callback may abort the client that is calling it).
 */
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ev.h>

#include "conn.h"
#include "smtp_client.h"

#define SMTPC_LINE_MAX   512    /* RFC 5321 4.5.3.1.5: a reply line, CRLF included */
#define SMTPC_REPLY_MAX  4096   /* a whole multi-line reply (EHLO's is the longest) */
#define SMTPC_IN_SIZE    (2 * SMTPC_LINE_MAX)
#define SMTPC_OUT_SIZE   1024   /* one command: "MAIL FROM:<" 256 ">\r\n" fits */
#define SMTPC_XOUT_SIZE  16384  /* a delivery session: pipelined commands, body chunks */
#define SMTPC_QUIT_WAIT  5.0    /* seconds for 221 and the close once answered */
#define SMTPC_ROUNDS     16     /* reads per wake-up: a flood cannot pin the loop */

enum cstate {
	C_CONNECT, C_GREETING, C_EHLO, C_HELO, C_STARTTLS, C_TLS, C_EHLO_TLS,
	C_MAIL, C_RCPT, C_QUIT, C_DRAIN, C_DONE,
	/* Delivery sessions only (smtp_client_open): after EHLO, transactions. */
	C_READY, C_TXN, C_RSET,
};

enum carg { A_NONE, A_HELO, A_FROM, A_RCPT };

/*
 * The conversation, one row per state: what we send on entering it, and
 * the stage name an answer given in it carries. What each reply leads to
 * is in on_reply().
 */
static const struct step {
	const char *stage;
	const char *fmt;        /* the command, NULL: we only listen */
	enum carg   arg;
} steps[] = {
	[C_CONNECT]  = { "connect",  NULL,                   A_NONE },
	[C_GREETING] = { "greeting", NULL,                   A_NONE },
	[C_EHLO]     = { "ehlo",     "EHLO %s\r\n",          A_HELO },
	[C_HELO]     = { "helo",     "HELO %s\r\n",          A_HELO },
	[C_STARTTLS] = { "starttls", "STARTTLS\r\n",         A_NONE },
	[C_TLS]      = { "starttls", NULL,                   A_NONE },
	[C_EHLO_TLS] = { "ehlo",     "EHLO %s\r\n",          A_HELO },
	[C_MAIL]     = { "mail",     "MAIL FROM:<%s>\r\n",   A_FROM },
	[C_RCPT]     = { "rcpt",     "RCPT TO:<%s>\r\n",     A_RCPT },
	[C_QUIT]     = { "quit",     "QUIT\r\n",             A_NONE },
	[C_DRAIN]    = { "quit",     NULL,                   A_NONE },
	[C_DONE]     = { "quit",     NULL,                   A_NONE },
	[C_READY]    = { "ready",    NULL,                   A_NONE },
	[C_TXN]      = { "mail",     NULL,                   A_NONE },
	[C_RSET]     = { "rset",     "RSET\r\n",             A_NONE },
};

/* EHLO keywords a delivery session uses (RFC 2920, 1870, 6531, 6152, 3207). */
enum { CAP_PIPELINING = 1, CAP_SIZE = 2, CAP_SMTPUTF8 = 4, CAP_8BITMIME = 8, CAP_STARTTLS = 16 };

struct smtp_client {
	struct ev_loop        *loop;
	struct conn            conn;            /* the socket, plain or TLS */
	ev_io                  io;
	ev_timer               timer;
	enum cstate            state;
	double                 connect_timeout, command_timeout;
	SSL_CTX               *tls;
	int                    tls_on;
	int                    answered, aborted, dead, busy;
	smtp_client_reply_cb  *on_reply;
	smtp_client_closed_cb *on_closed;
	void                  *arg;

	/* The reply being read. */
	int                    r_code, r_lines, r_starttls;
	size_t                 r_bytes;
	char                   r_text[256];

	char                   in[SMTPC_IN_SIZE];
	size_t                 inlen;
	char                  *out;             /* obuf, or xout in a delivery session */
	size_t                 outcap, outlen, outoff;
	char                   obuf[SMTPC_OUT_SIZE];

	char                   helo[256];
	char                   from[SMTPC_OUT_SIZE / 2];
	char                   rcpt[SMTPC_OUT_SIZE / 2];
	char                   sni[256];

	/* A delivery session (smtp_client_open): capabilities and the
	 * transaction in flight. */
	int                    delivery, tls_require, tls_verify;
	unsigned               caps, r_caps;
	unsigned long long     size_max, r_size;
	struct smtp_client_msg msg;
	struct smtp_client_txn *txn;
	smtp_client_txn_cb    *txn_cb;
	void                  *txn_arg;
	int                    t_sent;          /* commands queued: MAIL, RCPTs, DATA */
	int                    t_replies;       /* replies read, in the same order */
	int                    t_accepted;      /* RCPTs answered 2xx */
	int                    t_body;          /* 1: streaming the body, 2: the dot is out */
	long long              t_off;           /* body bytes read so far */
	int                    t_bol, t_cr;     /* dot-stuffing and CRLF state */
	char                  *xout;
};

static enum cstate after_ehlo(struct smtp_client *c);
static void txn_reply(struct smtp_client *c);
static void txn_end(struct smtp_client *c, const char *why);
static void fill(struct smtp_client *c);
static void delivery_step(struct smtp_client *c, enum cstate st);
static int  fill_wanted(const struct smtp_client *c);

/* ------------------------------------------------------------------ */
/* lifecycle                                                          */

static void
settle(struct smtp_client *c)
{
	if (c->dead && c->busy == 0) {
		free(c->xout);
		free(c);
	}
}

static void
timer_set(struct smtp_client *c, double secs)
{
	ev_timer_stop(c->loop, &c->timer);
	ev_timer_set(&c->timer, secs, 0.);
	ev_timer_start(c->loop, &c->timer);
}

/* Closes the socket; on_closed unless aborted. The memory goes in settle(). */
static void
close_now(struct smtp_client *c, int graceful)
{
	if (c->state == C_DONE)
		return;
	c->state = C_DONE;
	ev_io_stop(c->loop, &c->io);
	ev_timer_stop(c->loop, &c->timer);
	conn_close(&c->conn, graceful);
	c->dead = 1;
	if (!c->aborted && c->on_closed)
		c->on_closed(c->arg);
}

/* The deciding reply (replied) or the failure: told to the caller once.
 * on_reply() then says QUIT; fail() closes. */
static void
answer(struct smtp_client *c, int replied, const char *fmt, ...)
{
	struct smtp_client_result r;
	va_list ap;

	if (c->answered)
		return;
	c->answered = 1;
	memset(&r, 0, sizeof r);
	r.replied = replied;
	r.code = replied ? c->r_code : 0;
	r.stage = steps[c->state].stage;
	r.tls = c->tls_on;
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(r.text, sizeof r.text, fmt, ap);
		va_end(ap);
	} else
		memcpy(r.text, c->r_text, sizeof r.text);
	if (!c->aborted)
		c->on_reply(c->arg, &r);
}

/* No deciding reply: connect failure, timeout, lost connection, garbage. */
static void
fail(struct smtp_client *c, const char *why)
{
	if (c->txn)
		txn_end(c, why);
	if (!c->answered)
		answer(c, 0, "%s", why);
	close_now(c, 0);
}

/* The connection ended: an error unless the answer is already out. */
static void
lost(struct smtp_client *c, const char *why)
{
	if (c->txn)
		txn_end(c, why);
	if (c->answered)
		close_now(c, 0);
	else
		fail(c, why);
}

/* ------------------------------------------------------------------ */
/* the conversation                                                   */

static void
go(struct smtp_client *c, enum cstate st)
{
	const struct step *s = &steps[st];
	const char *arg = "";
	int n;

	if (c->delivery && (st == C_READY || st == C_DONE)) {
		delivery_step(c, st);
		return;
	}
	c->state = st;
	c->r_code = c->r_lines = c->r_starttls = 0;
	c->r_caps = 0;
	c->r_size = 0;
	c->r_bytes = 0;
	c->r_text[0] = '\0';
	if (s->fmt) {
		switch (s->arg) {
		case A_HELO: arg = c->helo; break;
		case A_FROM: arg = c->from; break;
		case A_RCPT: arg = c->rcpt; break;
		case A_NONE: break;
		}
		n = snprintf(c->out + c->outlen, c->outcap - c->outlen, s->fmt, arg);
		if (n < 0 || (size_t)n >= c->outcap - c->outlen) {
			fail(c, "command too long");
			return;
		}
		c->outlen += (size_t)n;
	}
	timer_set(c, st == C_QUIT ?
	    (c->command_timeout < SMTPC_QUIT_WAIT ? c->command_timeout : SMTPC_QUIT_WAIT) :
	    c->command_timeout);
}

/* A complete reply arrived in c->r_*: where it leads. */
static void
on_reply(struct smtp_client *c)
{
	int ok = c->r_code / 100 == 2;

	switch (c->state) {
	case C_GREETING:
		/* RFC 5321 3.1: a 554 greeting still wants our QUIT. */
		if (ok)
			go(c, C_EHLO);
		else
			answer(c, 1, NULL);
		break;
	case C_EHLO:
		if (ok)
			go(c, after_ehlo(c));
		else if (c->r_code / 100 == 5)
			go(c, C_HELO);     /* RFC 5321 3.2: an old server; try HELO */
		else
			answer(c, 1, NULL);
		break;
	case C_HELO:
	case C_EHLO_TLS:
		if (ok)
			go(c, after_ehlo(c));
		else
			answer(c, 1, NULL);
		break;
	case C_STARTTLS:
		if (c->r_code == 220) {
			c->state = C_TLS;
			timer_set(c, c->command_timeout);
		} else if (c->tls_require)
			answer(c, 1, NULL);
		else
			go(c, c->delivery ? after_ehlo(c) : C_MAIL);  /* opportunistic: carry on in the clear */
		break;
	case C_MAIL:
		if (ok)
			go(c, C_RCPT);
		else
			answer(c, 1, NULL);
		break;
	case C_RCPT:
		answer(c, 1, NULL);
		break;
	case C_QUIT:
		c->state = C_DRAIN;    /* the server closes after 221; wait for it */
		break;
	case C_TXN:
		txn_reply(c);
		/* Replies to pipelined commands follow one another. */
		c->r_lines = 0;
		c->r_bytes = 0;
		break;
	case C_RSET:
		c->state = C_READY;
		ev_timer_stop(c->loop, &c->timer);
		txn_end(c, NULL);
		break;
	default:
		break;
	}
	/* Answered before RCPT or at it: say goodbye politely. */
	if (c->answered && c->state < C_QUIT && !c->dead)
		go(c, C_QUIT);
}

/* An EHLO line's keyword, for a delivery session (the first line is a name). */
static void
ehlo_keyword(struct smtp_client *c, const char *kw, size_t len)
{
	static const struct { const char *name; unsigned cap; } known[] = {
		{ "PIPELINING", CAP_PIPELINING }, { "SIZE", CAP_SIZE },
		{ "SMTPUTF8", CAP_SMTPUTF8 }, { "8BITMIME", CAP_8BITMIME },
	};

	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
		size_t n = strlen(known[i].name);

		if (len < n || strncasecmp(kw, known[i].name, n) != 0 || (len > n && kw[n] != ' '))
			continue;
		c->r_caps |= known[i].cap;
		/* RFC 1870: "SIZE 10240000"; no number or 0: no fixed limit. */
		if (known[i].cap == CAP_SIZE && len > n + 1)
			c->r_size = strtoull(kw + n + 1, NULL, 10);
	}
}

/* One reply line (CR LF stripped). Returns 1 when the reply is complete,
 * 0 when more lines follow, -1 when it is not SMTP. */
static int
reply_line(struct smtp_client *c, const char *line, size_t len)
{
	int code;
	char sep;
	size_t i, n;

	if (len < 3 || line[0] < '1' || line[0] > '5' || !isdigit((unsigned char)line[1]) ||
	    !isdigit((unsigned char)line[2]))
		return -1;
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	sep = len > 3 ? line[3] : ' ';
	if (sep != ' ' && sep != '-')
		return -1;
	c->r_bytes += len + 2;
	if (c->r_bytes > SMTPC_REPLY_MAX)
		return -1;
	if (c->r_lines++ == 0) {
		c->r_code = code;
		/* Server text goes into logs and replies: no control bytes. */
		for (i = 4, n = 0; i < len && n + 1 < sizeof c->r_text; i++, n++) {
			unsigned char ch = (unsigned char)line[i];
			c->r_text[n] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
		}
		c->r_text[n] = '\0';
	} else if (code != c->r_code)
		return -1;             /* RFC 5321 4.2.1: one code for every line */
	else if (len >= 12 && strncasecmp(line + 4, "STARTTLS", 8) == 0 &&
	    (len == 12 || line[12] == ' '))
		c->r_starttls = 1;
	else if (c->delivery)
		ehlo_keyword(c, line + 4, len - 4);
	return sep == ' ';
}

/* Consumes the complete lines in the buffer. */
static void
parse(struct smtp_client *c)
{
	size_t off = 0;
	char *nl;

	while (c->state != C_DONE && (nl = memchr(c->in + off, '\n', c->inlen - off)) != NULL) {
		char *line = c->in + off;
		size_t len = (size_t)(nl - line);
		int rc;

		off += len + 1;
		if (len + 1 > SMTPC_LINE_MAX) {
			lost(c, "reply line too long");
			return;
		}
		if (len && line[len - 1] == '\r')
			len--;
		if (c->state == C_DRAIN || c->state == C_TLS)
			continue;
		if ((rc = reply_line(c, line, len)) < 0) {
			lost(c, "malformed reply");
			return;
		}
		if (rc == 0)
			continue;
		on_reply(c);
		if (c->state == C_TLS) {
			/* CVE-2011-0411 (client side): whatever followed the 220
			 * came in the clear and must not be read as TLS replies. */
			c->inlen = 0;
			return;
		}
	}
	if (c->state == C_DONE)
		return;
	if (c->inlen - off >= SMTPC_LINE_MAX) {
		lost(c, "reply line too long");
		return;
	}
	memmove(c->in, c->in + off, c->inlen - off);
	c->inlen -= off;
}

/* ------------------------------------------------------------------ */
/* socket and TLS I/O                                                 */

/* 1 when done, 0 to wait, -1 on failure. */
static int
handshake(struct smtp_client *c)
{
	int rc;

	if (!c->conn.ssl && (conn_tls(&c->conn, c->tls, 0, c->sni) < 0 ||
	    (c->tls_verify && conn_tls_verify(&c->conn, c->sni) < 0)))
		return -1;
	if ((rc = conn_handshake(&c->conn)) == 1) {
		c->tls_on = 1;
		/* RFC 3207 4.2: forget what EHLO said before TLS; ask again. */
		go(c, C_EHLO_TLS);
	}
	return rc;
}

/* 1 when all is written, 0 to wait, -1 on failure. */
static int
flush_out(struct smtp_client *c)
{
	int rc = conn_write(&c->conn, c->out, c->outlen, &c->outoff);

	if (rc == 1)
		c->outlen = c->outoff = 0;
	return rc;
}

/* 1 when bytes came, 0 to wait, -1 on EOF or error. */
static int
read_in(struct smtp_client *c)
{
	ssize_t n = conn_read(&c->conn, c->in + c->inlen, sizeof c->in - c->inlen);

	if (n <= 0)
		return (int)n;
	c->inlen += (size_t)n;
	return 1;
}

static void
arm(struct smtp_client *c)
{
	int events = EV_READ;

	if (c->state == C_DONE)
		return;
	if (c->state == C_CONNECT || c->outoff < c->outlen || c->conn.want_write || fill_wanted(c))
		events |= EV_WRITE;
	if (c->state == C_CONNECT)
		events = EV_WRITE;
	if (events != (c->io.events & (EV_READ | EV_WRITE))) {
		ev_io_stop(c->loop, &c->io);
		ev_io_set(&c->io, c->conn.fd, events);
		ev_io_start(c->loop, &c->io);
	}
	/* Bytes already decrypted inside SSL never wake libev. */
	if (c->state != C_TLS && conn_pending(&c->conn))
		ev_feed_event(c->loop, &c->io, EV_READ);
}

/* Writes what is queued, advances TLS, reads and parses: as far as it can go. */
static void
pump(struct smtp_client *c)
{
	for (int round = 0; round < SMTPC_ROUNDS && c->state != C_DONE; round++) {
		int rc;

		if (fill_wanted(c)) {
			fill(c);
			if (c->state == C_DONE)
				return;
		}
		if (c->outoff < c->outlen && flush_out(c) < 0) {
			lost(c, "connection lost while sending");
			return;
		}
		if (c->state == C_TLS) {
			if ((rc = handshake(c)) < 0) {
				const char *v = conn_verify_error(&c->conn);
				char why[200];

				snprintf(why, sizeof why, "TLS handshake failed%s%s", v ? ": certificate: " : "",
				    v ? v : "");
				fail(c, why);
				return;
			}
			if (rc == 0)
				break;
			continue;          /* EHLO queued: send it */
		}
		if ((rc = read_in(c)) < 0) {
			if (c->state == C_QUIT || c->state == C_DRAIN)
				close_now(c, 1);
			else
				lost(c, c->conn.eof ? "connection closed by server" : "connection lost");
			return;
		}
		if (rc == 0)
			break;
		parse(c);
	}
	arm(c);
}

static void
connected(struct smtp_client *c)
{
	int err = 0;
	socklen_t len = sizeof err;

	if (getsockopt(c->conn.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err == EINPROGRESS || err == EALREADY)
		return;
	if (err) {
		char why[128];

		snprintf(why, sizeof why, "connect: %s", strerror(err));
		fail(c, why);
		return;
	}
	go(c, C_GREETING);
	pump(c);
}

static void
on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct smtp_client *c = w->data;

	c->busy++;
	if (c->state == C_CONNECT)
		connected(c);
	else
		pump(c);
	c->busy--;
	settle(c);
}

static void
on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct smtp_client *c = w->data;
	char why[128];

	c->busy++;
	if (c->state == C_QUIT || c->state == C_DRAIN)
		close_now(c, 0);
	else {
		if (c->state == C_CONNECT)
			snprintf(why, sizeof why, "connect timed out after %gs", c->connect_timeout);
		else
			snprintf(why, sizeof why, "timed out after %gs waiting for the %s reply",
			    c->command_timeout, steps[c->state].stage);
		fail(c, why);
	}
	c->busy--;
	settle(c);
}

/* ------------------------------------------------------------------ */
/* interface                                                          */

struct smtp_client *
smtp_client_start(struct ev_loop *loop, const struct smtp_client_conf *conf,
    const struct sockaddr *sa, socklen_t salen, const char *servername,
    const char *mail_from, const char *rcpt, smtp_client_reply_cb *on_reply,
    smtp_client_closed_cb *on_closed, void *arg, char *err, size_t errlen)
{
	struct smtp_client *c;
	int one = 1;

	if (strlen(mail_from) >= sizeof c->from || strlen(rcpt) >= sizeof c->rcpt ||
	    strlen(conf->helo) >= sizeof c->helo) {
		snprintf(err, errlen, "address too long");
		return NULL;
	}
	if (!(c = calloc(1, sizeof *c))) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	conn_init(&c->conn, socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
	if (c->conn.fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		free(c);
		return NULL;
	}
	setsockopt(c->conn.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(c->conn.fd, sa, salen) < 0 && errno != EINPROGRESS) {
		snprintf(err, errlen, "connect: %s", strerror(errno));
		close(c->conn.fd);
		free(c);
		return NULL;
	}
	c->loop = loop;
	c->connect_timeout = conf->connect_timeout;
	c->command_timeout = conf->command_timeout;
	c->tls = conf->tls;
	c->on_reply = on_reply;
	c->on_closed = on_closed;
	c->arg = arg;
	snprintf(c->helo, sizeof c->helo, "%s", conf->helo);
	snprintf(c->from, sizeof c->from, "%s", mail_from);
	snprintf(c->rcpt, sizeof c->rcpt, "%s", rcpt);
	snprintf(c->sni, sizeof c->sni, "%s", servername ? servername : "");
	c->out = c->obuf;
	c->outcap = sizeof c->obuf;
	c->state = C_CONNECT;
	/* Even a loopback connect that completed at once is reported by EV_WRITE. */
	ev_io_init(&c->io, on_io, c->conn.fd, EV_WRITE);
	c->io.data = c;
	ev_io_start(loop, &c->io);
	ev_timer_init(&c->timer, on_timer, conf->connect_timeout, 0.);
	c->timer.data = c;
	ev_timer_start(loop, &c->timer);
	return c;
}

void
smtp_client_abort(struct smtp_client *c)
{
	c->aborted = 1;
	close_now(c, 0);
	settle(c);
}

/* ------------------------------------------------------------------ */
/* delivery sessions: one connection, many transactions               */

/* After EHLO (or HELO, or EHLO again inside TLS): what comes next. */
static enum cstate
after_ehlo(struct smtp_client *c)
{
	if (c->state == C_EHLO || c->state == C_EHLO_TLS)
		c->caps = c->r_caps | (c->r_starttls ? CAP_STARTTLS : 0);
	else
		c->caps = 0;                    /* HELO: plain RFC 821, no extensions */
	c->size_max = (c->caps & CAP_SIZE) ? c->r_size : 0;
	if (c->tls && c->r_starttls && !c->tls_on && c->state != C_HELO)
		return C_STARTTLS;
	if (!c->delivery)
		return C_MAIL;
	if (c->tls_require && !c->tls_on) {
		/* Not a reply of theirs to pass on: our policy refuses the clear. */
		c->r_code = 0;
		return C_DONE;
	}
	return C_READY;
}

/* In a delivery session, go() into C_READY or C_DONE comes here. */
static void
delivery_step(struct smtp_client *c, enum cstate st)
{
	if (st == C_DONE) {
		fail(c, "TLS required, but the server offers no STARTTLS");
		return;
	}
	c->state = C_READY;
	ev_timer_stop(c->loop, &c->timer);
	answer(c, 1, NULL);     /* ready: the caller may send */
}

static int
fill_wanted(const struct smtp_client *c)
{
	if (c->state != C_TXN || c->outlen - c->outoff > c->outcap / 2)
		return 0;
	if (c->t_body == 1)
		return 1;
	if (c->t_body)
		return 0;
	if (c->t_sent > c->msg.nrcpts + 1)
		return 0;
	/* Without PIPELINING, one command at a time (RFC 5321 4.1). */
	return (c->caps & CAP_PIPELINING) || c->t_replies == c->t_sent;
}

static int
put(struct smtp_client *c, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(c->out + c->outlen, c->outcap - c->outlen, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= c->outcap - c->outlen)
		return -1;
	c->outlen += (size_t)n;
	return 0;
}

/*
 * The body, as stored (CRLF lines, not dot-stuffed), into the output
 * buffer: a "." at the start of a line doubled (RFC 5321 4.5.2), any bare
 * CR or LF written as CRLF so the next hop never sees one (SMTP smuggling),
 * then the final CRLF.CRLF.
 */
static void
fill_body(struct smtp_client *c)
{
	char chunk[4096];
	size_t room = c->outcap - c->outlen, want;
	ssize_t got;

	if (c->outoff == c->outlen)
		c->outoff = c->outlen = 0, room = c->outcap;
	if (room < 16)
		return;
	want = (room - 8) / 3;          /* worst case: every byte a bare CR -> ".\r\n" */
	if (want > sizeof chunk)
		want = sizeof chunk;
	if ((long long)want > c->msg.length - c->t_off)
		want = (size_t)(c->msg.length - c->t_off);
	if (want > 0) {
		got = pread(c->msg.fd, chunk, want, (off_t)(c->msg.offset + c->t_off));
		if (got <= 0) {
			/* The queue file changed under us: never send half a message. */
			fail(c, got < 0 ? "queue file read error" : "queue file shorter than its length");
			return;
		}
		c->t_off += got;
		for (ssize_t i = 0; i < got; i++) {
			char ch = chunk[i];

			if (c->t_cr) {
				c->out[c->outlen++] = '\r';
				c->out[c->outlen++] = '\n';
				c->t_cr = 0;
				c->t_bol = 1;
				if (ch == '\n')
					continue;
			}
			if (ch == '\r') {
				c->t_cr = 1;
				continue;
			}
			if (ch == '\n') {
				c->out[c->outlen++] = '\r';
				c->out[c->outlen++] = '\n';
				c->t_bol = 1;
				continue;
			}
			if (c->t_bol && ch == '.')
				c->out[c->outlen++] = '.';
			c->out[c->outlen++] = ch;
			c->t_bol = 0;
		}
	}
	if (c->t_off < c->msg.length)
		return;
	if (c->t_cr || !c->t_bol)
		put(c, "\r\n");
	put(c, ".\r\n");
	c->t_body = 2;
	c->t_sent++;
}

/* Queues the next commands of the transaction, or the next body bytes. */
static void
fill(struct smtp_client *c)
{
	int n = c->msg.nrcpts;

	if (c->t_body == 1) {
		fill_body(c);
		return;
	}
	while (fill_wanted(c) && c->outcap - c->outlen > SMTPC_LINE_MAX + 64) {
		int rc;

		if (c->t_sent == 0) {
			rc = put(c, "MAIL FROM:<%s>", c->msg.from);
			if (rc == 0 && (c->caps & CAP_SIZE))
				rc = put(c, " SIZE=%lld", c->msg.length);
			if (rc == 0 && c->msg.body8bit && (c->caps & CAP_8BITMIME))
				rc = put(c, " BODY=8BITMIME");
			if (rc == 0 && c->msg.smtputf8)
				rc = put(c, " SMTPUTF8");
			if (rc == 0)
				rc = put(c, "\r\n");
		} else if (c->t_sent <= n)
			rc = put(c, "RCPT TO:<%s>\r\n", c->msg.rcpts[c->t_sent - 1]);
		else
			rc = put(c, "DATA\r\n");
		if (rc < 0) {
			fail(c, "command too long");
			return;
		}
		c->t_sent++;
		if (!(c->caps & CAP_PIPELINING))
			break;
	}
}

static void
copy_reply(struct smtp_client *c, struct smtp_client_reply *r)
{
	r->code = c->r_code;
	memcpy(r->text, c->r_text, sizeof r->text);
}

/* One reply of the transaction, in the order the commands went out. */
static void
txn_reply(struct smtp_client *c)
{
	struct smtp_client_txn *t = c->txn;
	int n = c->msg.nrcpts, i = c->t_replies++, ok = c->r_code / 100 == 2;

	timer_set(c, c->command_timeout);
	if (i == 0) {
		copy_reply(c, &t->mail);
		if (!ok && !(c->caps & CAP_PIPELINING)) {
			c->state = C_READY;
			ev_timer_stop(c->loop, &c->timer);
			txn_end(c, NULL);
			return;
		}
	} else if (i <= n) {
		copy_reply(c, &t->rcpt[i - 1]);
		c->t_accepted += ok;
		if (i == n && !(c->caps & CAP_PIPELINING) && (t->mail.code / 100 != 2 || c->t_accepted == 0)) {
			go(c, C_RSET);
			return;
		}
	} else if (i == n + 1) {
		if (c->r_code == 354 && t->mail.code / 100 == 2 && c->t_accepted > 0) {
			c->t_body = 1;
			c->t_bol = 1;
			return;
		}
		copy_reply(c, &t->data);
		if (c->r_code == 354) {
			/* 354 with no recipient: an empty message it must refuse. */
			put(c, ".\r\n");
			c->t_body = 2;
			c->t_sent++;
			return;
		}
		if (t->mail.code / 100 == 2)
			go(c, C_RSET);
		else {
			c->state = C_READY;
			ev_timer_stop(c->loop, &c->timer);
			txn_end(c, NULL);
		}
	} else {
		if (t->data.code == 0)
			copy_reply(c, &t->data);
		t->completed = 1;
		c->state = C_READY;
		ev_timer_stop(c->loop, &c->timer);
		txn_end(c, NULL);
	}
}

/*
 * The transaction is over (why: the connection failed first). Each
 * recipient's reply becomes its outcome: MAIL's refusal, its own RCPT
 * refusal, or, for an accepted RCPT, the reply to the end of data.
 */
static void
txn_end(struct smtp_client *c, const char *why)
{
	struct smtp_client_txn *t = c->txn;
	smtp_client_txn_cb *cb = c->txn_cb;

	if (!t)
		return;
	c->txn = NULL;
	if (why) {
		if (t->mail.code == 0 && c->t_replies == 0)
			snprintf(t->mail.text, sizeof t->mail.text, "%s", why);
		if (t->data.code == 0 || t->data.code == 354) {
			t->data.code = 0;
			snprintf(t->data.text, sizeof t->data.text, "%s", why);
			t->completed = 0;
		}
	}
	for (int i = 0; i < c->msg.nrcpts; i++) {
		struct smtp_client_reply *r = &t->rcpt[i];

		if (t->mail.code / 100 != 2)
			*r = t->mail;
		else if (r->code == 0 && why)
			snprintf(r->text, sizeof r->text, "%s", why);
		else if (r->code / 100 == 2)
			*r = t->data;
	}
	if (!c->aborted)
		cb(c->txn_arg, t);
}

struct smtp_client *
smtp_client_open(struct ev_loop *loop, const struct smtp_client_conf *conf,
    const struct sockaddr *sa, socklen_t salen, const char *servername,
    smtp_client_reply_cb *on_ready, smtp_client_closed_cb *on_closed, void *arg,
    char *err, size_t errlen)
{
	struct smtp_client *c;
	char *x = malloc(SMTPC_XOUT_SIZE);

	if (!x) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c = smtp_client_start(loop, conf, sa, salen, servername, "", "", on_ready, on_closed,
	    arg, err, errlen);
	if (!c) {
		free(x);
		return NULL;
	}
	c->delivery = 1;
	c->tls_require = conf->tls_require && conf->tls;
	c->tls_verify = conf->tls_verify;
	/* Verified without a name: the certificate must carry the address
	 * (conn_tls sends no SNI for an address literal). */
	if (c->tls_verify && !c->sni[0] && !inet_ntop(sa->sa_family, sa->sa_family == AF_INET6 ?
	    (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr :
	    (const void *)&((const struct sockaddr_in *)sa)->sin_addr, c->sni, sizeof c->sni))
		c->sni[0] = '\0';
	c->xout = c->out = x;
	c->outcap = SMTPC_XOUT_SIZE;
	if (conf->tls_require && !conf->tls)
		c->tls_require = 1;     /* no TLS context: every server fails the check */
	return c;
}

int
smtp_client_send(struct smtp_client *c, const struct smtp_client_msg *m,
    struct smtp_client_txn *t, smtp_client_txn_cb *cb, void *arg)
{
	if (!c->delivery || c->state != C_READY || c->txn || m->nrcpts < 1)
		return -1;
	memset(&t->mail, 0, sizeof t->mail);
	memset(&t->data, 0, sizeof t->data);
	t->completed = 0;
	for (int i = 0; i < m->nrcpts; i++)
		memset(&t->rcpt[i], 0, sizeof t->rcpt[i]);
	c->msg = *m;
	c->txn = t;
	c->txn_cb = cb;
	c->txn_arg = arg;
	c->t_sent = c->t_replies = c->t_accepted = c->t_body = 0;
	c->t_off = 0;
	c->t_cr = 0;
	c->t_bol = 1;
	c->state = C_TXN;
	c->r_code = c->r_lines = 0;
	c->r_bytes = 0;
	timer_set(c, c->command_timeout);
	if (!c->busy) {
		c->busy++;
		fill(c);
		arm(c);
		c->busy--;
		settle(c);
	}
	return 0;
}

void
smtp_client_quit(struct smtp_client *c)
{
	if (c->state != C_READY) {
		smtp_client_abort(c);
		return;
	}
	go(c, C_QUIT);
	if (!c->busy)
		arm(c);
}

int
smtp_client_idle(const struct smtp_client *c)
{
	return c->state == C_READY && !c->txn;
}

int
smtp_client_offers(const struct smtp_client *c, const char *what)
{
	if (strcmp(what, "SMTPUTF8") == 0)
		return !!(c->caps & CAP_SMTPUTF8);
	if (strcmp(what, "PIPELINING") == 0)
		return !!(c->caps & CAP_PIPELINING);
	if (strcmp(what, "8BITMIME") == 0)
		return !!(c->caps & CAP_8BITMIME);
	if (strcmp(what, "STARTTLS") == 0)
		return !!(c->caps & CAP_STARTTLS);
	return 0;
}

unsigned long long
smtp_client_size_max(const struct smtp_client *c)
{
	return c->size_max;
}

void
smtp_client_tls_info(const struct smtp_client *c, char *out, size_t len)
{
	if (!c->conn.ssl || !c->tls_on)
		snprintf(out, len, "none");
	else
		snprintf(out, len, "%s:%s", SSL_get_version(c->conn.ssl), SSL_get_cipher_name(c->conn.ssl));
}
