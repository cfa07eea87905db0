/*
 * smtp_server.c - SMTP sessions on sockets: the driver of the protocol
 * core (smtp_proto.c) with buffers, plain/TLS I/O, DATA streaming and the
 * spool.
 *
 * The flow is io -> line -> smtp_proto_line() -> (policy decision, maybe
 * later) -> replies. While a decision is pending the session reads no
 * further line: pipelined commands (RFC 2920) simply wait, in order, in
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

#include "clock.h"
#include "conn.h"
#include "data.h"
#include "journal.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "session.h"
#include "smtp_parse.h"
#include "smtp_proto.h"
#include "smtp_server.h"
#include "spool.h"

#define IN_SIZE   4096   /* >= command_line; DATA streams through it */
#define OUT_SIZE  4096
#define OUT_ROOM  1024   /* stop reading commands when less is free */
#define HDR_MAX   65536  /* header section kept for the data stage */
static const char SESSION_DEADLINE[] = "session";

struct session {
	struct smtp_proto   p;           /* first: the protocol, its info first */
	struct server      *srv;
	struct conf        *conf;        /* held: the config this session started on */
	struct session     *next, *prev;
	struct conn         conn;        /* the socket, plain or TLS */
	ev_io               io;
	ev_timer            timer;       /* idle, command deadline, rule wait, last reply */
	ev_timer            deadline;    /* the message's and the session's (Slowloris) */
	ev_tstamp           session_end;
	const char         *deadline_what;
	int                 committing;
	double              commit_start;   /* clock_mono() at drv_commit */  /* the spool thread owns our message */
	int                 closing;     /* no more input; free when settled */
	int                 discard_line;/* inside an overlong command line */
	int                 policy_started;
	const char         *close_why;   /* a literal, from session_close(): logged at the end */
	const struct conf_listener *listener;

	struct data_parser  data;
	struct spool_msg   *msg;
	int                 data_error;  /* spool write failed */
	struct buf          hdr;         /* header section, for the data stage (HDR_MAX) */
	int                 hdr_done;

	size_t              inlen, outlen, outoff;
	/* Allocated when bytes come or replies go, freed when the session
	 * waits with them empty: an idle session holds neither. */
	char               *in;          /* IN_SIZE */
	char               *out;         /* OUT_SIZE */
};

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
/* the protocol's driver: replies, the policy, STARTTLS, the spool    */

static void
out_append(struct session *s, const char *p, size_t n)
{
	if (!s->out && !(s->out = malloc(OUT_SIZE))) {
		session_close(s, "out of memory");
		return;
	}
	if (s->outlen + n > OUT_SIZE)
		n = OUT_SIZE - s->outlen;       /* cannot happen: OUT_ROOM guards */
	memcpy(s->out + s->outlen, p, n);
	s->outlen += n;
}

/*
 * Every byte the client sees: "CODE ENH text" (RFC 2034 enhanced code on
 * every reply); a '\n' in text makes a multi-line reply. Replies of 400
 * and up are logged.
 */
static void
drv_reply(struct smtp_proto *pr, int code, const char *enh, const char *text, const char *reason)
{
	struct session *s = (struct session *)pr;
	char line[600];
	const char *p = text;

	if (pr->info.journal) {
		char full[700];
		snprintf(full, sizeof full, "%s%s%s", enh && *enh ? enh : "", enh && *enh ? " " : "", text);
		journal_reply(pr->info.journal, code, full);
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
	/* The same reason key as the reject line: the portal's counts and the
	 * metrics agree. */
	metrics_reply(pr->stage, code, reason ? reason : code >= 400 ? "protocol" : NULL);
	if (code >= 400) {
		char c[16];
		snprintf(c, sizeof c, "%d", code);
		log_event("reject", "sid", pr->info.sid, "dir", direction_str(pr->info.direction),
		    "client", pr->info.client_ip, "stage", stage_name(pr->stage),
		    "cmd", smtp_verb_name(pr->cmd), "code", c, "enhanced", enh,
		    "reason", reason ? reason : "protocol", "rule", pr->where, "text", text,
		    "from", pr->info.has_mail || pr->stage == STAGE_MAIL ? pr->info.mail.addr : NULL,
		    "rcpt", pr->stage == STAGE_RCPT ? pr->info.rcpt.addr : NULL, NULL);
	}
}

/* The policy answers now, or later through session_resume(). */
static int
drv_decide(struct smtp_proto *p, enum stage st, struct verdict *v)
{
	struct session *s = (struct session *)p;
	struct policy *pol = &s->srv->policy;

	journal_hook(p->info.journal, st, &p->info);
	if (pol->ops->decide(pol->self, &p->info, st, v) == POLICY_PENDING) {
		ev_timer_stop(s->srv->loop, &s->timer);
		s->timer.repeat = s->conf->timeouts.rule;      /* a rule waiting on the network */
		ev_timer_again(s->srv->loop, &s->timer);
		return POLICY_PENDING;
	}
	journal_verdict(p->info.journal, st, v);
	return POLICY_DONE;
}

/* s->p.info.resume: a pending verdict arrives. */
static void
session_resume(struct session_info *i, const struct verdict *v)
{
	struct session *s = (struct session *)i;

	if (!s->p.waiting)
		return;
	s->timer.repeat = s->conf->timeouts.command;
	ev_timer_again(s->srv->loop, &s->timer);
	journal_verdict(i->journal, s->p.stage, v);
	smtp_proto_resume(&s->p, v);
	if (!s->closing)
		process(s);
	session_io(s);
	session_settle(s);
}

static int
drv_pregreet(struct smtp_proto *p)
{
	struct session *s = (struct session *)p;
	char peek;

	return s->conf->timeouts.greeting_delay > 0 &&
	    recv(s->conn.fd, &peek, 1, MSG_PEEK | MSG_DONTWAIT) == 1;
}

static void
drv_starttls(struct smtp_proto *p)
{
	/* CVE-2011-0411: anything the client pipelined after STARTTLS arrived
	 * in plaintext and must not be executed inside the TLS session. */
	((struct session *)p)->inlen = 0;
}

static int write_envelope(struct session *s);

/* The next deadline that no amount of trickled bytes moves. */
static void
set_deadline(struct session *s, ev_tstamp at, const char *what)
{
	ev_timer_stop(s->srv->loop, &s->deadline);
	ev_timer_set(&s->deadline, at - ev_now(s->srv->loop), 0);
	ev_timer_start(s->srv->loop, &s->deadline);
	s->deadline_what = what;
}

static int
drv_data_begin(struct smtp_proto *p)
{
	struct session *s = (struct session *)p;

	qid_new(p->info.qid);
	s->msg = spool_create(s->srv->spool, p->info.qid);
	if (!s->msg || write_envelope(s) < 0) {
		log_event("spool_error", "sid", p->info.sid, "error", strerror(errno), NULL);
		if (s->msg) {
			spool_abort(s->msg);
			s->msg = NULL;
		}
		return -1;
	}
	data_init(&s->data, (size_t)s->conf->limits.text_line);
	s->data_error = 0;
	s->timer.repeat = s->conf->timeouts.data;
	ev_timer_again(s->srv->loop, &s->timer);
	if (ev_now(s->srv->loop) + s->conf->timeouts.message < s->session_end)
		set_deadline(s, ev_now(s->srv->loop) + s->conf->timeouts.message, "message");
	return 0;
}

static void committed(void *arg, int ok);

static void
drv_commit(struct smtp_proto *p)
{
	struct session *s = (struct session *)p;

	s->committing = 1;
	s->commit_start = clock_mono();
	spool_commit(s->msg, committed, s);
	s->msg = NULL;
}

static void
drv_reset(struct smtp_proto *p)
{
	struct session *s = (struct session *)p;

	buf_free(&s->hdr);
	s->hdr_done = 0;
	if (s->msg) {
		spool_abort(s->msg);
		s->msg = NULL;
	}
}

static void
drv_close(struct smtp_proto *p, const char *why)
{
	session_close((struct session *)p, why);
}

static const struct smtp_driver server_driver = {
	.reply = drv_reply,
	.decide = drv_decide,
	.pregreet = drv_pregreet,
	.starttls = drv_starttls,
	.data_begin = drv_data_begin,
	.commit = drv_commit,
	.reset = drv_reset,
	.close = drv_close,
};

/* ------------------------------------------------------------------ */
/* DATA                                                               */

/*
 * The envelope travels with the message: one JSON line, then the message
 * with our Received: trace header (RFC 5321 4.4) first.
 */
static int
write_envelope(struct session *s)
{
	struct session_info *i = &s->p.info;
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
	if (i->routes) {
		/* A rule's route per recipient (null: the config's, at delivery). */
		jsonw_key(&b, "routes");
		jsonw_open(&b, '[');
		for (int r = 0; r < i->nrcpts; r++) {
			const char *sp = i->routes[r] ? strchr(i->routes[r], ' ') : NULL;

			if (!sp) {
				jsonw_null(&b);
				continue;
			}
			jsonw_open(&b, '{');
			jsonw_key(&b, "route");
			jsonw_str(&b, i->routes[r], (size_t)(sp - i->routes[r]));
			jsonw_key(&b, "tls");
			jsonw_strz(&b, sp + 1);
			jsonw_close(&b, '}');
		}
		jsonw_close(&b, ']');
	}
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

/* CRLF.CRLF seen: the protocol checks what the stream told us. */
static void
end_of_data(struct session *s)
{
	struct smtp_eom m = {
		.size = s->data.size, .write_error = s->data_error,
		.too_long = s->data.too_long, .bare = s->data.bare,
	};

	s->timer.repeat = s->conf->timeouts.command;
	ev_timer_again(s->srv->loop, &s->timer);
	if (s->deadline_what != SESSION_DEADLINE)
		set_deadline(s, s->session_end, SESSION_DEADLINE);
	s->p.info.headers = buf_str(&s->hdr);
	s->p.info.headers_len = s->hdr.len;
	smtp_proto_eom(&s->p, &m);
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
	metrics_observe(MH_SPOOL_COMMIT, clock_mono() - s->commit_start);
	if (!s->closing) {
		if (ok) {
			char n[32], size[32];
			snprintf(n, sizeof n, "%d", s->p.info.nrcpts);
			snprintf(size, sizeof size, "%zu", s->p.info.size);
			log_event("accepted", "sid", s->p.info.sid, "qid", s->p.info.qid,
			    "dir", direction_str(s->p.info.direction), "client", s->p.info.client_ip,
			    "from", s->p.info.mail.addr, "rcpts", n, "size", size, NULL);
		}
		smtp_proto_committed(&s->p, ok);
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

	while (!s->p.waiting && !s->committing && !s->closing && off < s->inlen &&
	    s->outlen + OUT_ROOM <= OUT_SIZE) {
		char *p = s->in + off, *lf;
		size_t avail = s->inlen - off, len;

		if (s->p.state == ST_DATA) {
			off += feed_data(s, p, avail);
			continue;
		}
		if (s->p.state != ST_INIT && s->p.state != ST_HELO && s->p.state != ST_MAIL &&
		    s->p.state != ST_RCPT)
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
				smtp_proto_error(&s->p, "500 5.5.2 Error: line too long");
				s->discard_line = 1;
				off = s->inlen;
			}
			break;
		}
		len = (size_t)(lf - p) + 1;
		off += len;
		/* A whole line: the next one's deadline starts now. Bytes alone
		 * never move it (Slowloris). */
		ev_timer_again(s->srv->loop, &s->timer);
		if (len > limit) {
			smtp_proto_error(&s->p, "500 5.5.2 Error: line too long");
			continue;
		}
		len--;                          /* LF */
		if (len && p[len - 1] == '\r')
			len--;
		p[len] = '\0';
		if (memchr(p, '\0', len)) {
			smtp_proto_error(&s->p, "500 5.5.2 Error: NUL in command");
			continue;
		}
		journal_cmd(s->p.info.journal, p);
		if (log_debug)
			log_event("command", "sid", s->p.info.sid, "line", p, NULL);
		smtp_proto_line(&s->p, p);
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

	s->p.info.tls = 1;
	snprintf(s->p.info.tls_version, sizeof s->p.info.tls_version, "%s", SSL_get_version(s->conn.ssl));
	snprintf(s->p.info.tls_cipher, sizeof s->p.info.tls_cipher, "%s", SSL_get_cipher_name(s->conn.ssl));
	if ((peer = SSL_get1_peer_certificate(s->conn.ssl)) != NULL) {
		X509_NAME_oneline(X509_get_subject_name(peer), s->p.info.tls_peer, sizeof s->p.info.tls_peer);
		X509_free(peer);
	}
}

static void
handshake(struct session *s)
{
	int rc;

	if (!s->conn.ssl && conn_tls(&s->conn, s->srv->tls, 1, NULL) < 0) {
		session_close(s, "SSL_new failed");
		return;
	}
	if ((rc = conn_handshake(&s->conn)) == 1) {
		tls_facts(s);
		journal_tls(s->p.info.journal, &s->p.info);
		smtp_proto_tls_done(&s->p);
		log_event("starttls", "sid", s->p.info.sid, "version", s->p.info.tls_version,
		    "cipher", s->p.info.tls_cipher, NULL);
		return;
	}
	if (rc < 0)
		session_close(s, "TLS handshake failed");
}

/* 1 when all is out, 0 to wait, -1 when the connection failed (after a TLS
 * failure nothing more goes out, least of all in plaintext). */
static int
flush_out(struct session *s)
{
	int rc = conn_write(&s->conn, s->out, s->outlen, &s->outoff);

	if (rc == 1)
		s->outlen = s->outoff = 0;
	return rc;
}

/* Reads what fits; drains SSL's own buffer, which never wakes libev. */
static void
read_in(struct session *s)
{
	if (!s->in && !(s->in = malloc(IN_SIZE))) {
		session_close(s, "out of memory");
		return;
	}
	while (s->inlen < IN_SIZE && !s->conn.eof) {
		ssize_t n = conn_read(&s->conn, s->in + s->inlen, IN_SIZE - s->inlen);

		if (n < 0)
			s->conn.eof = 1;        /* closed or failed: no more input */
		if (n <= 0)
			return;
		s->inlen += (size_t)n;
		if (s->p.state == ST_DATA)      /* the next data block came (4.5.3.2.6) */
			ev_timer_again(s->srv->loop, &s->timer);
	}
}

static int
can_read(struct session *s)
{
	return !s->p.waiting && !s->committing && !s->closing && s->p.state != ST_CONNECT &&
	    s->p.state != ST_EOM && s->inlen < IN_SIZE && s->outlen + OUT_ROOM <= OUT_SIZE;
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
		if (s->p.state == ST_TLS && !s->outlen && !s->closing)
			handshake(s);
		if (!can_read(s) || s->p.state == ST_TLS)
			break;
		before = s->inlen;
		read_in(s);
		got = s->inlen;
		process(s);
		if (s->conn.eof && !s->closing && !s->p.waiting && !s->committing) {
			if (s->p.state == ST_DATA)
				log_event("lost", "sid", s->p.info.sid, "why", "connection lost in DATA", NULL);
			session_close(s, "client closed");
		}
		if (got == before && s->inlen == got && !conn_pending(&s->conn))
			break;
	}
	/* Data inside SSL's buffer never wakes libev. */
	if (conn_pending(&s->conn) && can_read(s))
		ev_feed_event(s->srv->loop, &s->io, EV_READ);
	if (s->closing) {
		if (s->outlen && flush_out(s) == 0 && !s->conn.eof)
			events |= EV_WRITE;      /* let the last reply go out */
		else
			s->outlen = 0;
	} else {
		if (s->outlen || s->conn.want_write)
			events |= EV_WRITE;
		if (can_read(s) || s->p.state == ST_TLS)
			events |= EV_READ;
	}
	/* About to wait with nothing buffered: give the buffers back. */
	if (!s->inlen && s->in) {
		free(s->in);
		s->in = NULL;
	}
	if (!s->outlen && s->out) {
		free(s->out);
		s->out = NULL;
	}
	if (events != (s->io.events & (EV_READ | EV_WRITE))) {
		ev_io_stop(s->srv->loop, &s->io);
		ev_io_set(&s->io, s->conn.fd, events);
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
		log_event("timeout", "sid", s->p.info.sid, "state", smtp_state_name(s->p.state),
		    "deadline", s->p.waiting ? "rule" : s->p.state == ST_DATA ? "data" : "command", NULL);
		s->outlen = 0;
		smtp_proto_abort(&s->p, ABORT_TIMEOUT);
	}
	session_io(s);
	session_settle(s);
}

static void
on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct session *s = w->data;

	if (!s->closing) {
		log_event("timeout", "sid", s->p.info.sid, "state", smtp_state_name(s->p.state),
		    "deadline", s->deadline_what, NULL);
		s->outlen = 0;
		smtp_proto_abort(&s->p, ABORT_TIMEOUT);
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
	s->p.state = ST_QUIT;
	/* The last reply gets a few seconds, then the connection goes anyway. */
	ev_timer_stop(s->srv->loop, &s->deadline);
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

	if (!s->closing || (s->outlen && !s->conn.eof && s->conn.fd >= 0 && ev_is_active(&s->timer)))
		return;
	/* The policy drops its pending work; its late answer becomes a no-op. */
	s->p.waiting = 0;
	if (s->committing)
		return;                         /* committed() settles us again */
	if (s->policy_started) {
		s->policy_started = 0;
		p->ops->end(p->self, &s->p.info);
	}
	ev_io_stop(srv->loop, &s->io);
	ev_timer_stop(srv->loop, &s->timer);
	ev_timer_stop(srv->loop, &s->deadline);
	smtp_proto_reset(&s->p);
	journal_end(s->p.info.journal);
	s->p.info.journal = NULL;
	conn_close(&s->conn, 1);
	free(s->in);
	free(s->out);
	if (s->prev)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	srv->nsessions--;
	metrics_session(s->listener->index, 0);
	conf_release(s->conf);
	if (srv->closed)
		srv->closed(srv, (struct sockaddr *)&s->p.info.client_sa);
	/* Logged last: once "close" is in the log, the connection no longer counts. */
	log_event("close", "sid", s->p.info.sid, "why", s->close_why, NULL);
	free(s);
}

static void
on_greeting_delay(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct session *s = w->data;

	ev_timer_stop(loop, w);
	w->repeat = s->conf->timeouts.command;
	ev_set_cb(w, on_timer);
	ev_timer_again(loop, w);
	smtp_proto_connect(&s->p);
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
	conn_init(&s->conn, fd);
	s->conf = conf_hold(srv->conf);
	s->listener = l;
	smtp_proto_init(&s->p, &server_driver);
	s->p.tls_available = srv->tls != NULL;
	s->p.info.conf = s->conf;
	s->p.info.id = ++srv->next_id;
	s->p.info.direction = l->direction;
	gettimeofday(&tv, NULL);
	s->p.info.start = (double)tv.tv_sec + tv.tv_usec / 1e6;
	snprintf(s->p.info.sid, sizeof s->p.info.sid, "%08lx%05x%06llx", (unsigned long)tv.tv_sec,
	    (unsigned)getpid() & 0xfffff, (unsigned long long)(s->p.info.id & 0xffffff));
	memcpy(&s->p.info.client_sa, peer, peerlen < sizeof s->p.info.client_sa ? peerlen : sizeof s->p.info.client_sa);
	if (peer->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)peer;
		inet_ntop(AF_INET, &in->sin_addr, s->p.info.client_ip, sizeof s->p.info.client_ip);
		s->p.info.client_port = ntohs(in->sin_port);
	} else if (peer->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)peer;
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], s->p.info.client_ip, sizeof s->p.info.client_ip);
		else
			inet_ntop(AF_INET6, &in6->sin6_addr, s->p.info.client_ip, sizeof s->p.info.client_ip);
		s->p.info.client_port = ntohs(in6->sin6_port);
	}
	if (getsockname(fd, (struct sockaddr *)&local, &llen) == 0) {
		if (local.ss_family == AF_INET) {
			struct sockaddr_in *in = (void *)&local;
			inet_ntop(AF_INET, &in->sin_addr, s->p.info.local_ip, sizeof s->p.info.local_ip);
			s->p.info.local_port = ntohs(in->sin_port);
		} else if (local.ss_family == AF_INET6) {
			struct sockaddr_in6 *in6 = (void *)&local;
			inet_ntop(AF_INET6, &in6->sin6_addr, s->p.info.local_ip, sizeof s->p.info.local_ip);
			s->p.info.local_port = ntohs(in6->sin6_port);
		}
	}
	s->next = srv->sessions;
	if (s->next)
		s->next->prev = s;
	srv->sessions = s;
	srv->nsessions++;
	metrics_session(l->index, 1);
	ev_io_init(&s->io, on_io, fd, 0);
	s->io.data = s;
	s->session_end = ev_now(srv->loop) + s->conf->timeouts.session;
	ev_timer_init(&s->deadline, on_deadline, s->conf->timeouts.session, 0);
	s->deadline.data = s;
	s->deadline_what = SESSION_DEADLINE;
	ev_timer_start(srv->loop, &s->deadline);
	log_event("connect", "sid", s->p.info.sid, "dir", direction_str(l->direction),
	    "client", s->p.info.client_ip, "listener", l->address, NULL);
	s->p.info.resume = session_resume;
	{
		char lis[96];
		snprintf(lis, sizeof lis, "%s:%d", l->address, l->port);
		s->p.info.journal = journal_begin(srv->journal, &s->p.info, lis);
	}
	if (srv->policy.ops->start(srv->policy.self, &s->p.info) < 0) {
		smtp_proto_abort(&s->p, ABORT_UNAVAILABLE);
	} else if ((s->policy_started = 1) && s->conf->timeouts.greeting_delay > 0) {
		ev_timer_init(&s->timer, on_greeting_delay, s->conf->timeouts.greeting_delay, 0);
		s->timer.data = s;
		ev_timer_start(srv->loop, &s->timer);
		return;
	} else {
		ev_timer_init(&s->timer, on_timer, 0, s->conf->timeouts.command);
		s->timer.data = s;
		ev_timer_again(srv->loop, &s->timer);
		smtp_proto_connect(&s->p);
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
		if (s->p.state != ST_DATA && s->p.state != ST_TLS && !s->conn.want_write) {
			s->outlen = 0;
			smtp_proto_abort(&s->p, ABORT_SHUTDOWN);
		}
		session_close(s, why);
		session_io(s);
		session_settle(s);
	}
}
