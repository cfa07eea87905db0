/*
 * smtp_server.h - the SMTP server side of a connection (RFC 5321).
 */
#ifndef MXGATE_SMTP_SERVER_H
#define MXGATE_SMTP_SERVER_H

#include <stdint.h>
#include <sys/socket.h>
#include <openssl/ssl.h>

#include "conf.h"
#include "policy.h"

struct ev_loop;
struct spool;
struct session;
struct journal_writer;

/* What a worker lends its sessions. */
struct server {
	struct ev_loop *loop;
	struct conf    *conf;        /* for new sessions; see conf_hold() */
	struct spool   *spool;
	SSL_CTX        *tls;
	struct policy   policy;
	struct journal_writer *journal;  /* NULL: no session records */
	uint64_t        next_id;
	int             nsessions;
	struct session *sessions;    /* all live sessions */
	/* The worker's bookkeeping when a session is gone (connection counts). */
	void          (*closed)(struct server *srv, const struct sockaddr *peer);
};

/* Takes ownership of fd. */
void smtp_session_start(struct server *srv, int fd, const struct conf_listener *l,
    const struct sockaddr *peer, socklen_t peerlen);

/* SIGTERM grace over: answer 421 to every session and close it. */
void smtp_close_all(struct server *srv, const char *why);

/* Configurations are shared by the sessions that started under them. */
struct conf *conf_hold(struct conf *c);
void         conf_release(struct conf *c);

#endif
