/*
 * callout.h - recipient callouts and sender verification (portal rows 6-9):
 * ask the server that would receive the mail whether it takes RCPT TO for
 * an address, without sending anything.
 *
 * One struct callout per worker, on its loop. Answers are cached (in
 * memory, and in the state store's callout cache when there is one), a
 * callout for a key already in flight joins it, and each destination
 * address:port gets at most max_per_host connections at a time; the rest
 * wait their turn in order.
 */
#ifndef MXGATE_CALLOUT_H
#define MXGATE_CALLOUT_H

#include <stddef.h>
#include <stdint.h>

struct ev_loop;
struct conf_net;
struct conf_listener;
struct dns;
struct state;
struct callout;

/* A zero field takes its default. */
struct callout_conf {
	int    port;               /* for MX, A and literal-domain routes (25) */
	double connect_timeout;    /* seconds (10) */
	double command_timeout;    /* seconds per reply (30) */
	char   helo[256];          /* our EHLO name (gethostname()) */
	char   mail_from[320];     /* "" = the null sender <> */
	int    starttls;           /* STARTTLS when offered (opportunistic, unverified) */
	double positive_ttl;       /* cache RCPT 2xx (24 h); < 0: never */
	double negative_ttl;       /* cache 5xx answers (2 h); < 0: never */
	int    max_per_host;       /* connections per address:port at once (5) */
	size_t cache_entries;      /* in-memory cache size (10000) */
	/* A callout to an address's own domain (route NULL: sender
	 * verification) goes where the address's writer says: never to a
	 * loopback, private, link-local or our own address unless it is in
	 * allow_nets, never to one of our listeners (destguard.h). Copied by
	 * callout_new(). */
	const struct conf_net      *allow_nets;
	int                         nallow_nets;
	const struct conf_listener *listen;
	int                         nlisten;
};

enum callout_result {
	CO_OK,              /* RCPT TO answered 2xx */
	CO_REJECTED,        /* refused before RCPT: greeting, EHLO/HELO or MAIL
	                       FROM answered an error (code says 4xx/5xx) */
	CO_RCPT_REJECTED,   /* RCPT TO answered 5xx */
	CO_RCPT_DEFERRED,   /* RCPT TO answered 4xx (or anything not 2xx/5xx) */
	CO_UNREACHABLE,     /* no route or address, connect refused or failed,
	                       timeout, connection lost, garbage; or an address
	                       we will not send (stage "input"); or only
	                       destinations the guard refuses (stage "policy") */
};

struct callout_answer {
	enum callout_result result;
	int    code;               /* the server's reply code, 0 if none */
	char   stage[16];          /* "dns" "connect" "greeting" "ehlo" "helo"
	                              "starttls" "mail" "rcpt" "input" "policy" */
	char   text[256];          /* the reply's first line after the code, or why */
	char   host[256];          /* "1.2.3.4:25", "[::1]:25"; the name for DNS failures */
	int    cached;             /* answered from the cache */
};

typedef void callout_cb(void *arg, const struct callout_answer *a);

/* st and dns may be NULL: no shared cache; literal routes only. conf NULL:
 * all defaults. Free the callout before the dns it uses. */
struct callout *callout_new(struct ev_loop *loop, struct dns *dns, struct state *st,
    const struct callout_conf *conf, char *err, size_t errlen);
/* No callback fires after this; from inside a callback, the free waits
 * until callout.c has unwound. */
void callout_free(struct callout *co);

/*
 * route: "host", "host:port", "[1.2.3.4]:port", "[2001:db8::1]:port" (a
 * fixed inbound route: the host's A then AAAA), "mx:domain" (that
 * domain's MX), or NULL: the MX of the address's own domain. MX hosts are
 * tried in preference order, each host's A then AAAA addresses; a domain
 * without MX is its own implicit MX (RFC 5321 5.1); an address that is
 * unreachable or greets 4xx sends us to the next. mail_from NULL: the
 * conf's. cb fires exactly once (unless callout_free comes first), and may
 * fire before callout_verify returns.
 */
void callout_verify(struct callout *co, const char *route, const char *mail_from,
    const char *address, callout_cb *cb, void *arg);

const char *callout_result_str(enum callout_result r);   /* "ok", "rcpt_rejected", ... */

struct callout_stats {
	uint64_t requests;         /* callout_verify() calls */
	uint64_t cache_hits;
	uint64_t coalesced;        /* joined a callout in flight */
	uint64_t connections;      /* SMTP connections opened */
	uint64_t queued;           /* waits for a per-host slot */
	size_t   inflight;         /* distinct callouts in flight now */
	size_t   open;             /* connections open now (QUIT included) */
};

void callout_get_stats(const struct callout *co, struct callout_stats *s);

#endif
