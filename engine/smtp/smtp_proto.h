/*
 * smtp_proto.h - the SMTP protocol of one session (RFC 5321, 3207, 2920),
 * without I/O: states, the command table, argument checks, every reply
 * text. The socket server (smtp_server.c) and ruletest's replay drive the
 * same machine through a small table of callbacks, so what a dry run
 * answers is what the server answers, by construction.
 */
#ifndef MXGATE_SMTP_PROTO_H
#define MXGATE_SMTP_PROTO_H

#include <stddef.h>

#include "policy.h"
#include "session.h"
#include "smtp_parse.h"

/* Where a session is in the protocol (the hooks it asks are enum stage). */
enum smtp_state {
	ST_CONNECT,     /* connect hook pending, no greeting yet */
	ST_INIT,        /* greeted; no HELO/EHLO yet (also after STARTTLS) */
	ST_HELO,        /* HELO/EHLO done, no transaction */
	ST_MAIL,        /* MAIL accepted */
	ST_RCPT,        /* at least one RCPT accepted */
	ST_DATA,        /* 354 sent: the driver streams the message */
	ST_EOM,         /* message read: data hook or commit pending */
	ST_TLS,         /* 220 to STARTTLS sent: the driver's handshake */
	ST_QUIT,        /* no more commands: closing after the last reply */
	ST_MAX
};

const char *smtp_state_name(enum smtp_state st);

struct smtp_proto;

/* decide() may also answer this: no decision could be had; *v is the reply
 * and the command is not carried out (ruletest: a rule waited outside the
 * recorded world). */
#define SMTP_UNDECIDED 2

/* What the machine asks of whoever carries its bytes. */
struct smtp_driver {
	/* One reply; '\n' in text makes it multi-line; reason keys the reject
	 * log (NULL: none). p->where names the rule behind it, if any. */
	void (*reply)(struct smtp_proto *p, int code, const char *enh, const char *text,
	    const char *reason);
	/* The hook of st: POLICY_DONE with *v, POLICY_PENDING (then
	 * smtp_proto_resume), or SMTP_UNDECIDED. */
	int  (*decide)(struct smtp_proto *p, enum stage st, struct verdict *v);
	/* After an accepted connect: 1 when the client spoke before the greeting. */
	int  (*pregreet)(struct smtp_proto *p);
	/* The 220 to STARTTLS is queued: drop buffered input (CVE-2011-0411),
	 * handshake, then smtp_proto_tls_done(). */
	void (*starttls)(struct smtp_proto *p);
	/* DATA accepted: 0 ready (354 follows), -1 cannot store (451), 1 the
	 * driver has answered itself. */
	int  (*data_begin)(struct smtp_proto *p);
	/* The data hook accepted: make the message durable, then
	 * smtp_proto_committed(), at once or later. */
	void (*commit)(struct smtp_proto *p);
	/* The transaction is reset: drop the driver's part (NULL: nothing). */
	void (*reset)(struct smtp_proto *p);
	/* No more commands: close once the last reply is out. */
	void (*close)(struct smtp_proto *p, const char *why);
};

/* One session. Embed it first in the driver's own session struct. */
struct smtp_proto {
	struct session_info info;       /* first: what the policy sees */
	const struct smtp_driver *drv;
	enum smtp_state state;
	enum smtp_verb  cmd;            /* the command being answered */
	enum stage      stage;          /* the hook last asked; STAGE_MAX: none */
	int             errors;         /* 5xx so far (limits.max_errors) */
	int             waiting;        /* a decision is pending */
	int             tls_available;  /* STARTTLS can be offered */
	const char     *where;          /* the rule behind the reply being made */
};

/* The facts of a message the driver has read (CRLF.CRLF seen). */
struct smtp_eom {
	size_t size;
	int    write_error;             /* the spool failed */
	int    too_long;                /* a line over 1000 octets */
	int    bare;                    /* a bare CR or LF */
};

/* Why the engine itself ends a session with a 421. */
enum smtp_abort { ABORT_TIMEOUT, ABORT_SHUTDOWN, ABORT_UNAVAILABLE };

void smtp_proto_init(struct smtp_proto *p, const struct smtp_driver *drv);
/* The connect hook, then the greeting (or the refusal). */
void smtp_proto_connect(struct smtp_proto *p);
/* One command line, CR LF removed. */
void smtp_proto_line(struct smtp_proto *p, const char *line);
/* A line the driver could not take ("500 5.5.2 Error: line too long"):
 * counts toward limits.max_errors like any 5xx. */
void smtp_proto_error(struct smtp_proto *p, const char *full);
/* A pending decision arrives (ignored unless one is pending). */
void smtp_proto_resume(struct smtp_proto *p, const struct verdict *v);
void smtp_proto_tls_done(struct smtp_proto *p);
void smtp_proto_eom(struct smtp_proto *p, const struct smtp_eom *m);
void smtp_proto_committed(struct smtp_proto *p, int ok);
void smtp_proto_reset(struct smtp_proto *p);
void smtp_proto_abort(struct smtp_proto *p, enum smtp_abort why);
/* Ends the session once (reply first if one is due). */
void smtp_proto_close(struct smtp_proto *p, const char *why);

#endif
