/*
 * smtp_client.h - one outgoing SMTP conversation on the loop, for
 * callouts: connect, greeting, EHLO (HELO when EHLO gets 5xx), STARTTLS
 * when offered and wanted, MAIL FROM, RCPT TO, QUIT. It never sends a
 * message and never blocks.
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

#endif
