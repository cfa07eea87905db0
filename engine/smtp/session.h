/*
 * session.h - one SMTP session as the policy sees it.
 *
 * struct session_info is everything a rule may read; the engine keeps the
 * rest private (smtp_server.c), which is why the policy sees only this. Strings are owned by the session and live
 * as long as it does, except rcpt, valid during STAGE_RCPT only.
 */
#ifndef MXGATE_SESSION_H
#define MXGATE_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "conf.h"
#include "policy.h"
#include "smtp_parse.h"

#define IP_TEXT 48

/* headers_len of a replayed message whose record kept no headers (an
 * older journal, journal.max_headers = 0): s.headers is then a question
 * the record cannot answer, not an empty header section. */
#define HEADERS_UNRECORDED ((size_t)-1)

struct session_info {
	uint64_t        id;                 /* unique within the worker */
	char            sid[24];            /* unique everywhere: logs, journal */
	enum direction  direction;
	char            client_ip[IP_TEXT];
	int             client_port;
	char            local_ip[IP_TEXT];
	int             local_port;
	struct sockaddr_storage client_sa;
	char            helo[256];
	int             esmtp;
	int             tls;                /* STARTTLS completed */
	char            tls_version[16];
	char            tls_cipher[64];
	char            tls_peer[256];      /* peer certificate subject, if any */
	struct smtp_path mail;              /* valid when has_mail */
	int             has_mail;
	char          **rcpts;              /* accepted so far */
	int             nrcpts;
	/* Parallel to rcpts: a rule's route for that recipient (the route
	 * hook), NULL where the config's route applies. NULL: none at all. */
	char          **routes;             /* "ROUTE TLS", TLS "" for the config's */
	struct smtp_path rcpt;              /* the one being decided (STAGE_RCPT) */
	size_t          size;               /* STAGE_DATA: message octets */
	const char     *headers;            /* STAGE_DATA: header section */
	size_t          headers_len;        /* HEADERS_UNRECORDED: ruletest's record has none */
	char            qid[24];            /* STAGE_DATA: the queue id */
	double          start;              /* connect time, epoch seconds */
	const struct conf *conf;            /* the configuration the worker runs */
	void           *policy_data;        /* the policy's per-session state */
	/* Where a pending verdict goes: the SMTP engine, or ruletest's replay.
	 * It may free the session: the caller touches nothing after it. */
	void          (*resume)(struct session_info *s, const struct verdict *v);
	struct journal *journal;            /* this session's record, or NULL */
};

#endif
