/*
 * smtp_client.h - one outgoing SMTP conversation on the loop: connect,
 * greeting, EHLO (HELO when EHLO gets 5xx), STARTTLS when offered and
 * wanted; then either a callout (MAIL FROM, RCPT TO, QUIT: nothing is
 * sent), or a delivery session (smtp_client_open: any number of mail
 * transactions, pipelined when the server offers PIPELINING). It never
 * blocks.
 *
 * Callbacks fire only from the loop, never inside smtp_client_start().
 */
#ifndef MXGATE_SMTP_CLIENT_H
#define MXGATE_SMTP_CLIENT_H

#include <stddef.h>
#include <sys/socket.h>
#include <openssl/ssl.h>

struct ev_loop;
struct smtp_client;

struct smtp_client_conf {
	double      connect_timeout;   /* seconds to connect */
	double      command_timeout;   /* seconds for each reply */
	const char *helo;              /* our name in EHLO/HELO */
	SSL_CTX    *tls;               /* STARTTLS when offered; NULL: never */
	int         tls_require;       /* delivery: no STARTTLS, no session */
	int         tls_verify;        /* delivery: and the certificate must chain to
	                                  tls's CAs and name servername (or, without
	                                  one, the address connected to) */
};

struct smtp_client_result {
	int         replied;   /* 0: no deciding reply (connect failed, timeout,
	                          connection lost, malformed reply) */
	int         code;      /* the deciding reply's code; 0 when !replied */
	const char *stage;     /* "connect" "greeting" "ehlo" "helo" "starttls"
	                          "mail" "rcpt" (static storage) */
	char        text[256]; /* first line of the reply after the code, or why */
	int         tls;       /* the conversation was encrypted */
};

/*
 * on_reply fires once: with RCPT's reply, or with the first refusal or
 * failure before it. The client then QUITs on its own (waiting a few
 * seconds for 221 and the close) and on_closed fires once the socket is
 * closed; the client is freed when on_closed returns.
 */
typedef void smtp_client_reply_cb(void *arg, const struct smtp_client_result *r);
typedef void smtp_client_closed_cb(void *arg);

/*
 * mail_from and rcpt go between <> as given: the caller has rejected
 * control bytes. servername (may be NULL) is sent as TLS SNI. Returns
 * NULL with err set when the connection cannot even start.
 */
struct smtp_client *smtp_client_start(struct ev_loop *loop,
    const struct smtp_client_conf *conf, const struct sockaddr *sa,
    socklen_t salen, const char *servername, const char *mail_from,
    const char *rcpt, smtp_client_reply_cb *on_reply,
    smtp_client_closed_cb *on_closed, void *arg, char *err, size_t errlen);

/* Drops the connection; no callback fires after this. Safe from inside
 * the client's own callbacks. */
void smtp_client_abort(struct smtp_client *c);

/*
 * A delivery session. on_ready fires once: replied=1, code 250 when the
 * session is ready for smtp_client_send(); anything else is the failure
 * (the client then QUITs or closes on its own). on_closed as above.
 */
struct smtp_client *smtp_client_open(struct ev_loop *loop,
    const struct smtp_client_conf *conf, const struct sockaddr *sa,
    socklen_t salen, const char *servername, smtp_client_reply_cb *on_ready,
    smtp_client_closed_cb *on_closed, void *arg, char *err, size_t errlen);

/* One message: the envelope, and its bytes as stored (CRLF lines, not
 * dot-stuffed) at offset in fd. Strings are copied by reference: they
 * must live until the transaction's callback. */
struct smtp_client_msg {
	const char         *from;
	const char *const  *rcpts;
	int                 nrcpts;
	int                 fd;
	long long           offset, length;
	int                 smtputf8, body8bit;
};

struct smtp_client_reply {
	int  code;             /* 0: no reply (the connection failed: why in text) */
	char text[256];        /* the first line after the code, control bytes '?' */
};

/* The outcome. rcpt[i] is recipient i's final word: MAIL's refusal, its
 * RCPT's refusal, or for an accepted RCPT the reply to the end of data
 * (2xx: delivered). completed: the end-of-data reply was read. */
struct smtp_client_txn {
	struct smtp_client_reply  mail, data;
	struct smtp_client_reply *rcpt;    /* nrcpts entries, the caller's */
	int                       completed;
};

typedef void smtp_client_txn_cb(void *arg, struct smtp_client_txn *t);

/* Starts a transaction on a ready session; cb fires once, when the
 * session is ready again or gone. -1 when the session is not ready. */
int  smtp_client_send(struct smtp_client *c, const struct smtp_client_msg *m,
    struct smtp_client_txn *t, smtp_client_txn_cb *cb, void *arg);
/* Connected, past EHLO, no transaction in flight. */
int  smtp_client_idle(const struct smtp_client *c);
/* QUIT when idle (on_closed follows); otherwise like smtp_client_abort. */
void smtp_client_quit(struct smtp_client *c);
/* What EHLO offered: "SMTPUTF8", "PIPELINING", "8BITMIME", "STARTTLS". */
int  smtp_client_offers(const struct smtp_client *c, const char *what);
unsigned long long smtp_client_size_max(const struct smtp_client *c);  /* 0: none */
/* "TLSv1.3:TLS_AES_256_GCM_SHA384", or "none". */
void smtp_client_tls_info(const struct smtp_client *c, char *out, size_t len);

#endif
