/*
 * callout.c - cache, coalescing, routing and per-host limits in front of
 * smtp_client.c.
 *
 * A request is answered from the cache (synchronously), or joins the job
 * in flight for the same key (route or domain, sender, address), or
 * starts a job: resolve the route to a list of addresses (all the DNS
 * first, so the connect phase never re-enters dns.c), then try them in
 * order. Each address:port is a host with at most max_per_host
 * connections; a job that finds its host full waits in the host's FIFO
 * and starts when a connection to that host closes. A connection keeps
 * its slot until the socket is closed (after QUIT), not just until the
 * answer, so the server never sees more than the limit.
 *
 * User callbacks run inside callout_verify() (cache hit, bad input, DNS
 * answered from its cache and no address), inside dns.c's callbacks and
 * inside smtp_client.c's. A callback may call callout_verify() or
 * callout_free(): the busy counter defers the free to the outermost frame.
 *
 * Routes resolve in route.c (shared with delivery); freeing a job
 * cancels its lookups.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "callout.h"
#include "destguard.h"
#include "dns.h"
#include "htab.h"
#include "log.h"
#include "route.h"
#include "smtp_client.h"
#include "state.h"
#include "tls.h"

#define CALLOUT_PATH_MAX     254   /* RFC 5321 4.5.3.1.3: 256 octets with the <> */
#define CALLOUT_PATH_BUF     320   /* sizeof conf.mail_from: room for any path we send */
#define CALLOUT_KEY_MAX      1024
#define CALLOUT_ADDR_TEXT    ROUTE_ADDR_TEXT
#define CALLOUT_CACHE_VALUE  1024  /* what state_cache_put() takes */

/* ------------------------------------------------------------------ */
/* state                                                              */

struct waiter {
	struct waiter *next;
	callout_cb    *cb;
	void          *arg;
};

/* A look-up in the state store's cache in flight; orphaned (co = NULL)
 * by callout_free(), so that a late answer only frees it. */
struct lookup {
	struct lookup  *prev, *next;
	struct callout *co;
	struct job     *job;
};

struct host;
struct conn;

struct job {
	struct hnode           h;           /* in co->jobs by key */
	struct callout        *co;
	struct waiter         *head, **tail;
	int                    nwaiters;
	char                   key[CALLOUT_KEY_MAX];
	char                   dest[DNS_RR_TEXT];       /* domain or route host, for logs */
	char                   route[DNS_RR_TEXT];      /* as given, "" for the MX */
	int                    has_route;
	struct lookup         *lookup;      /* asking the store's cache */
	char                   from[CALLOUT_PATH_BUF];
	char                   rcpt[CALLOUT_PATH_BUF];
	int                    port;
	struct route_query    *rq;          /* resolving the route */
	struct route_target    t[ROUTE_MAX_TARGETS];
	int                    nt, cur, tried;
	struct job            *qnext;       /* in a host's queue */
	struct conn           *conn;
	struct callout_answer  a;           /* the best answer so far */
	int                    have;
	double                 started;
	char                   refused[ROUTE_ADDR_TEXT + 64]; /* why destguard refused one */
};

struct host {
	struct hnode  h;
	int           inflight, pinned;
	struct job   *qhead, **qtail;
	char          key[CALLOUT_ADDR_TEXT];
};

struct conn {
	struct conn        *prev, *next;    /* co->conns */
	struct callout     *co;
	struct host        *host;
	struct job         *job;            /* NULL once it has its answer */
	struct smtp_client *c;
	char                addr[CALLOUT_ADDR_TEXT];
};

struct centry {
	struct hnode         h;              /* key: key[] */
	struct lru_node      lru;
	double               expires;
	enum callout_result  result;
	int                  code;
	char                 stage[16];
	char                *text, *host;   /* into key[] */
	char                 key[];
};

struct callout {
	struct ev_loop          *loop;
	struct dns              *dns;
	struct state            *st;
	struct callout_conf      conf;
	SSL_CTX                 *tls;
	struct destguard        *guard;
	struct smtp_client_conf  cc;
	struct htab              jobs, hosts, cache;
	struct lru               lru;
	struct conn             *conns;
	struct lookup           *lookups;
	int                      busy, closing;
	struct callout_stats     stats;
};

static void job_next(struct job *j);
static void job_finish(struct job *j);
static void callout_destroy(struct callout *co);

static const char *const result_names[] = {
	[CO_OK] = "ok", [CO_REJECTED] = "rejected", [CO_RCPT_REJECTED] = "rcpt_rejected",
	[CO_RCPT_DEFERRED] = "rcpt_deferred", [CO_UNREACHABLE] = "unreachable",
};

const char *
callout_result_str(enum callout_result r)
{
	return (unsigned)r < sizeof result_names / sizeof result_names[0] ? result_names[r] : "?";
}

static void
co_enter(struct callout *co)
{
	co->busy++;
}

static void
co_leave(struct callout *co)
{
	if (--co->busy == 0 && co->closing)
		callout_destroy(co);
}

static void
set_answer(struct callout_answer *a, enum callout_result r, int code, const char *stage,
    const char *host, const char *fmt, ...)
{
	va_list ap;

	memset(a, 0, sizeof *a);
	a->result = r;
	a->code = code;
	snprintf(a->stage, sizeof a->stage, "%s", stage);
	snprintf(a->host, sizeof a->host, "%s", host ? host : "");
	va_start(ap, fmt);
	vsnprintf(a->text, sizeof a->text, fmt, ap);
	va_end(ap);
}

static void
log_answer(const struct callout *co, const char *dest, const char *from, const char *rcpt,
    const struct callout_answer *a, double ms, int tried, int waiters)
{
	char code[16], msbuf[32], t[16], w[16];

	snprintf(code, sizeof code, "%d", a->code);
	snprintf(msbuf, sizeof msbuf, "%.0f", ms);
	snprintf(t, sizeof t, "%d", tried);
	snprintf(w, sizeof w, "%d", waiters);
	log_event("callout", "rcpt", rcpt, "from", from, "dest", dest, "host", a->host,
	    "stage", a->stage, "code", code, "result", callout_result_str(a->result),
	    "cached", a->cached ? "1" : "0", "ms", msbuf, "tried", t, "waiters", w,
	    "text", a->text, NULL);
}

/* ------------------------------------------------------------------ */
/* the cache                                                          */

/* Only definitive answers are kept: a 2xx for positive_ttl, a 5xx for
 * negative_ttl; temporary answers and unreachable hosts are asked again. */
static double
cache_ttl(const struct callout *co, const struct callout_answer *a)
{
	if (a->result == CO_OK)
		return co->conf.positive_ttl;
	if (a->result == CO_RCPT_REJECTED || (a->result == CO_REJECTED && a->code / 100 == 5))
		return co->conf.negative_ttl;
	return -1;
}

static void
centry_drop(struct callout *co, struct centry *e)
{
	htab_del(&co->cache, &e->h);
	lru_unlink(&co->lru, &e->lru);
	free(e);
}

static void
mem_put(struct callout *co, const char *key, uint64_t hash, const struct callout_answer *a,
    double expires)
{
	size_t klen = strlen(key) + 1, tlen = strlen(a->text) + 1, hlen = strlen(a->host) + 1;
	struct hnode *old = htab_find(&co->cache, hash, key, klen - 1);
	struct centry *e;

	if (old)
		centry_drop(co, container_of(old, struct centry, h));
	while (co->cache.n >= co->conf.cache_entries && co->lru.tail)
		centry_drop(co, container_of(co->lru.tail, struct centry, lru));
	if (!(e = malloc(sizeof *e + klen + tlen + hlen)))
		return;
	memcpy(e->key, key, klen);
	e->text = e->key + klen;
	memcpy(e->text, a->text, tlen);
	e->host = e->text + tlen;
	memcpy(e->host, a->host, hlen);
	e->h.key = e->key;
	e->h.keylen = klen - 1;
	e->h.hash = hash;
	e->expires = expires;
	e->result = a->result;
	e->code = a->code;
	memcpy(e->stage, a->stage, sizeof e->stage);
	if (htab_add(&co->cache, &e->h) < 0) {
		free(e);
		return;
	}
	lru_push(&co->lru, &e->lru);
}

/* The store's value: "result=ok code=250 stage=rcpt expires=EPOCH host=H text=T",
 * text last so that it may hold spaces. */
static int
value_parse(const char *v, struct callout_answer *a, double *expires)
{
	char res[32], stage[16], host[256];
	const char *t = strstr(v, " text=");
	int code, i;

	if (!t || sscanf(v, "result=%31s code=%d stage=%15s expires=%lf host=%255s",
	    res, &code, stage, expires, host) != 5)
		return -1;
	memset(a, 0, sizeof *a);
	for (i = 0; i <= CO_UNREACHABLE; i++)
		if (strcmp(res, result_names[i]) == 0)
			break;
	if (i > CO_UNREACHABLE)
		return -1;
	a->result = (enum callout_result)i;
	a->code = code;
	memcpy(a->stage, stage, sizeof a->stage);
	snprintf(a->host, sizeof a->host, "%s", strcmp(host, "-") ? host : "");
	snprintf(a->text, sizeof a->text, "%s", t + 6);
	return 0;
}

static int
cache_get(struct callout *co, const char *key, uint64_t hash, struct callout_answer *a)
{
	double now = ev_now(co->loop);
	struct hnode *h = htab_find(&co->cache, hash, key, strlen(key));
	struct centry *e = h ? container_of(h, struct centry, h) : NULL;

	if (e && e->expires <= now) {
		centry_drop(co, e);
		e = NULL;
	}
	if (!e)
		return 0;
	memset(a, 0, sizeof *a);
	a->result = e->result;
	a->code = e->code;
	memcpy(a->stage, e->stage, sizeof a->stage);
	snprintf(a->text, sizeof a->text, "%s", e->text);
	snprintf(a->host, sizeof a->host, "%s", e->host);
	lru_touch(&co->lru, &e->lru);
	return 1;
}

/* Writes to the store are fire and forget: a failure costs a callout later. */
static void
on_store_put(void *arg, const struct state_reply *r)
{
	if (r->rc < 0)
		log_event("callout_cache_error", "op", "put", "error", r->error, NULL);
}

static void
cache_put(struct callout *co, const char *key, const struct callout_answer *a)
{
	double ttl = cache_ttl(co, a), expires;
	char val[CALLOUT_CACHE_VALUE];

	if (ttl <= 0)
		return;
	expires = ev_now(co->loop) + ttl;
	mem_put(co, key, htab_hash(key, strlen(key)), a, expires);
	if (!co->st)
		return;
	snprintf(val, sizeof val, "result=%s code=%d stage=%s expires=%.0f host=%s text=%s",
	    callout_result_str(a->result), a->code, a->stage, expires,
	    a->host[0] ? a->host : "-", a->text);
	co->st->ops->cache_put(co->st, key, val, expires, ev_now(co->loop), on_store_put, NULL);
}

/* ------------------------------------------------------------------ */
/* hosts: per address:port slots and their queues                      */

static struct host *
host_get(struct callout *co, const char *addr)
{
	uint64_t hash = htab_hash(addr, strlen(addr));
	struct hnode *found = htab_find(&co->hosts, hash, addr, strlen(addr));
	struct host *h = found ? container_of(found, struct host, h) : NULL;

	if (h)
		return h;
	if (!(h = calloc(1, sizeof *h)))
		return NULL;
	snprintf(h->key, sizeof h->key, "%s", addr);
	h->h.key = h->key;
	h->h.keylen = strlen(h->key);
	h->h.hash = hash;
	h->qtail = &h->qhead;
	if (htab_add(&co->hosts, &h->h) < 0) {
		free(h);
		return NULL;
	}
	return h;
}

static void
host_put(struct callout *co, struct host *h)
{
	if (h->inflight == 0 && !h->qhead && !h->pinned) {
		htab_del(&co->hosts, &h->h);
		free(h);
	}
}

/* A slot came free: start the jobs waiting, in order, while slots last. */
static void
host_pump(struct callout *co, struct host *h)
{
	struct job *j;

	h->pinned++;
	while (!co->closing && h->inflight < co->conf.max_per_host && (j = h->qhead)) {
		if (!(h->qhead = j->qnext))
			h->qtail = &h->qhead;
		j->qnext = NULL;
		job_next(j);
	}
	h->pinned--;
	host_put(co, h);
}

/* ------------------------------------------------------------------ */
/* connections                                                        */

/* Keeps the answer that says most: a server's reply beats a failure. */
static void
job_note(struct job *j, const struct callout_answer *a)
{
	if (!j->have || a->result != CO_UNREACHABLE || j->a.result == CO_UNREACHABLE) {
		j->a = *a;
		j->have = 1;
	}
}

static void
on_client_reply(void *arg, const struct smtp_client_result *r)
{
	struct conn *cn = arg;
	struct callout *co = cn->co;
	struct job *j = cn->job;
	struct callout_answer a;
	enum callout_result res;

	if (co->closing || !j)
		return;
	co_enter(co);
	if (!r->replied)
		res = CO_UNREACHABLE;
	else if (strcmp(r->stage, "rcpt") != 0)
		res = CO_REJECTED;
	else if (r->code / 100 == 2)
		res = CO_OK;
	else if (r->code / 100 == 5)
		res = CO_RCPT_REJECTED;
	else
		res = CO_RCPT_DEFERRED;
	set_answer(&a, res, r->code, r->stage, cn->addr, "%s", r->text);
	job_note(j, &a);
	/* RFC 5321 5.1: an address that cannot be reached, or a 4xx greeting
	 * (a server shedding load), sends us on to the next; the next is
	 * tried once this connection is closed and its slot is free. */
	if (res != CO_UNREACHABLE && !(res == CO_REJECTED && r->code / 100 == 4 &&
	    strcmp(r->stage, "greeting") == 0 && j->cur + 1 < j->nt)) {
		cn->job = NULL;
		j->conn = NULL;
		job_finish(j);
	}
	co_leave(co);
}

static void
on_client_closed(void *arg)
{
	struct conn *cn = arg;
	struct callout *co = cn->co;
	struct host *h = cn->host;
	struct job *j = cn->job;

	if (cn->prev)
		cn->prev->next = cn->next;
	else
		co->conns = cn->next;
	if (cn->next)
		cn->next->prev = cn->prev;
	co->stats.open--;
	free(cn);
	if (co->closing)
		return;                 /* callout_destroy() frees hosts and jobs */
	co_enter(co);
	h->inflight--;
	host_pump(co, h);
	if (j && !co->closing) {
		j->conn = NULL;
		j->cur++;
		job_next(j);
	}
	co_leave(co);
}

/* 0 when connecting; -1 when it failed at once (noted in the job). */
static int
job_connect(struct job *j, struct host *h, const struct route_target *t)
{
	struct callout *co = j->co;
	struct callout_answer a;
	struct conn *cn = calloc(1, sizeof *cn);
	char err[128];

	if (!cn) {
		set_answer(&a, CO_UNREACHABLE, 0, "connect", t->addr, "out of memory");
		job_note(j, &a);
		return -1;
	}
	j->tried++;
	cn->co = co;
	cn->host = h;
	cn->job = j;
	snprintf(cn->addr, sizeof cn->addr, "%s", t->addr);
	cn->c = smtp_client_start(co->loop, &co->cc, (const struct sockaddr *)&t->sa, t->salen,
	    t->name[0] ? t->name : NULL, j->from, j->rcpt, on_client_reply, on_client_closed, cn, err, sizeof err);
	if (!cn->c) {
		set_answer(&a, CO_UNREACHABLE, 0, "connect", t->addr, "%s", err);
		job_note(j, &a);
		free(cn);
		return -1;
	}
	h->inflight++;
	j->conn = cn;
	cn->next = co->conns;
	if (co->conns)
		co->conns->prev = cn;
	co->conns = cn;
	co->stats.connections++;
	co->stats.open++;
	return 0;
}

/* Tries the targets from j->cur on: connect, queue for a slot, or finish. */
static void
job_next(struct job *j)
{
	struct callout *co = j->co;
	struct callout_answer a;

	while (j->cur < j->nt) {
		struct route_target *t = &j->t[j->cur];
		struct host *h = host_get(co, t->addr);

		if (!h) {
			set_answer(&a, CO_UNREACHABLE, 0, "connect", t->addr, "out of memory");
			job_note(j, &a);
		} else if (h->inflight >= co->conf.max_per_host) {
			*h->qtail = j;
			h->qtail = &j->qnext;
			co->stats.queued++;
			return;
		} else if (job_connect(j, h, t) == 0)
			return;
		if (h)
			host_put(co, h);
		j->cur++;
	}
	job_finish(j);
}

/* ------------------------------------------------------------------ */
/* routes (route.c)                                                   */

/*
 * The targets to try. Without a fixed route (sender verification) the
 * address's writer chose them: those destguard refuses are never
 * connected to, the first one's reason kept for the answer.
 */
static void
guard_targets(struct job *j, const struct route_answer *ra)
{
	j->nt = 0;
	for (int i = 0; i < ra->n; i++) {
		const char *why = j->has_route ? NULL :
		    destguard_check(j->co->guard, (const struct sockaddr *)&ra->t[i].sa);
		if (why) {
			if (!j->refused[0])
				snprintf(j->refused, sizeof j->refused, "%s: %s address, not verified",
				    ra->t[i].addr, why);
			continue;
		}
		j->t[j->nt++] = ra->t[i];
	}
}

static void
on_route(void *arg, const struct route_answer *ra)
{
	struct job *j = arg;
	struct callout *co = j->co;

	co_enter(co);
	if (ra->status != ROUTE_OK) {
		set_answer(&j->a, CO_UNREACHABLE, 0, ra->stage, ra->host, "%s", ra->why);
		j->have = 1;
		job_finish(j);
	} else {
		guard_targets(j, ra);
		if (j->nt == 0) {
			set_answer(&j->a, CO_UNREACHABLE, 0, "policy", j->dest, "%s", j->refused);
			j->have = 1;
			job_finish(j);
		} else
			job_next(j);
	}
	co_leave(co);
}

static void
job_start(struct job *j, const char *route)
{
	int port;

	if (!route)
		snprintf(j->dest, sizeof j->dest, "%s", strrchr(j->rcpt, '@') + 1);
	else if (strncasecmp(route, "mx:", 3) == 0)
		snprintf(j->dest, sizeof j->dest, "%s", route + 3);
	else if (route_parse(route, j->dest, sizeof j->dest, &port) < 0)
		snprintf(j->dest, sizeof j->dest, "%s", route);
	route_resolve(&j->rq, j->co->dns, route, route ? NULL : j->dest, j->port, on_route, j);
}

/* The job is over: cache, log, and answer every request that joined it.
 * cached: the answer came from the store's cache (not written back). */
static void
job_finish_as(struct job *j, int cached)
{
	struct callout *co = j->co;
	struct waiter *w;
	struct callout_answer a;

	htab_del(&co->jobs, &j->h);
	co->stats.inflight--;
	if (j->have)
		a = j->a;
	else
		set_answer(&a, CO_UNREACHABLE, 0, "dns", j->dest, "%s: no address to try", j->dest);
	a.cached = cached;
	if (!cached)
		cache_put(co, j->key, &a);
	log_answer(co, j->dest, j->from, j->rcpt, &a, cached ? 0 : (ev_time() - j->started) * 1000.,
	    j->tried, j->nwaiters);
	/* A callback may start a callout for the same key: this job is
	 * already out of the table, so that one is a cache hit or a new job. */
	while ((w = j->head) != NULL) {
		j->head = w->next;
		if (!co->closing)
			w->cb(w->arg, &a);
		free(w);
	}
	route_cancel(&j->rq);
	free(j);
}

static void
job_finish(struct job *j)
{
	job_finish_as(j, 0);
}

/* The store's cache answered a job's look-up: a hit answers the job,
 * a miss (absent, expired, unreadable, or the store failed) calls out. */
static void
on_store_get(void *arg, const struct state_reply *r)
{
	struct lookup *l = arg;
	struct callout *co = l->co;
	struct job *j = l->job;
	struct callout_answer a;
	double expires;

	if (co) {
		if (l->prev)
			l->prev->next = l->next;
		else
			co->lookups = l->next;
		if (l->next)
			l->next->prev = l->prev;
	}
	free(l);
	if (!co || co->closing)
		return;
	j->lookup = NULL;
	co_enter(co);
	if (r->rc < 0)
		log_event("callout_cache_error", "op", "get", "error", r->error, NULL);
	if (r->rc == 0 && r->text && value_parse(r->text, &a, &expires) == 0 &&
	    expires > ev_now(co->loop)) {
		mem_put(co, j->key, j->h.hash, &a, expires);
		co->stats.cache_hits++;
		j->a = a;
		j->have = 1;
		job_finish_as(j, 1);
	} else {
		job_start(j, j->has_route ? j->route : NULL);
	}
	co_leave(co);
}

/* A new job asks the store's cache first, when there is a store. */
static void
job_begin(struct job *j, const char *route)
{
	struct callout *co = j->co;
	struct lookup *l;

	if (route) {
		snprintf(j->route, sizeof j->route, "%s", route);
		j->has_route = 1;
	}
	if (!co->st || !(l = calloc(1, sizeof *l))) {
		job_start(j, route);
		return;
	}
	snprintf(j->dest, sizeof j->dest, "%s", route ? route : strrchr(j->rcpt, '@') + 1);
	l->co = co;
	l->job = j;
	l->next = co->lookups;
	if (co->lookups)
		co->lookups->prev = l;
	co->lookups = l;
	j->lookup = l;
	co->st->ops->cache_get(co->st, j->key, ev_now(co->loop), on_store_get, l);
}

static void
job_free(struct job *j)
{
	struct waiter *w;

	while ((w = j->head) != NULL) {
		j->head = w->next;
		free(w);
	}
	route_cancel(&j->rq);
	free(j);
}

/* ------------------------------------------------------------------ */
/* interface                                                          */

struct callout *
callout_new(struct ev_loop *loop, struct dns *dns, struct state *st,
    const struct callout_conf *conf, char *err, size_t errlen)
{
	struct callout *co = calloc(1, sizeof *co);
	struct callout_conf *c;

	if (!co) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	co->loop = loop;
	co->dns = dns;
	co->st = st;
	c = &co->conf;
	if (conf)
		*c = *conf;
	c->helo[sizeof c->helo - 1] = '\0';
	c->mail_from[sizeof c->mail_from - 1] = '\0';
	if (c->port <= 0 || c->port > 65535)
		c->port = 25;
	if (c->connect_timeout <= 0)
		c->connect_timeout = 10;
	if (c->command_timeout <= 0)
		c->command_timeout = 30;
	if (c->positive_ttl == 0)
		c->positive_ttl = 24 * 3600;    /* Exim's callout cache defaults */
	if (c->negative_ttl == 0)
		c->negative_ttl = 2 * 3600;
	if (c->max_per_host <= 0)
		c->max_per_host = 5;
	if (c->cache_entries == 0)
		c->cache_entries = 10000;
	if (!c->helo[0] && (gethostname(c->helo, sizeof c->helo - 1) < 0 || !c->helo[0]))
		snprintf(c->helo, sizeof c->helo, "localhost");
	for (const char *p = c->helo; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
			snprintf(err, errlen, "callout helo: bad character");
			free(co);
			return NULL;
		}
	for (const char *p = c->mail_from; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			snprintf(err, errlen, "callout mail_from: control character");
			free(co);
			return NULL;
		}
	if (!(co->guard = destguard_new(c->allow_nets, c->nallow_nets, c->listen, c->nlisten,
	    err, errlen))) {
		free(co);
		return NULL;
	}
	/* Only the guard keeps them: the caller's lists may go. */
	c->allow_nets = NULL;
	c->listen = NULL;
	if (c->starttls && !(co->tls = tls_client_ctx(err, errlen))) {
		destguard_free(co->guard);
		free(co);
		return NULL;
	}
	co->cc.connect_timeout = c->connect_timeout;
	co->cc.command_timeout = c->command_timeout;
	co->cc.helo = c->helo;
	co->cc.tls = co->tls;
	return co;
}

static void
callout_destroy(struct callout *co)
{
	struct conn *cn;
	size_t i;

	while ((cn = co->conns) != NULL) {
		co->conns = cn->next;
		smtp_client_abort(cn->c);
		free(cn);
	}
	for (struct lookup *l = co->lookups; l; l = l->next)
		l->co = NULL;
	for (i = 0; co->jobs.b && i <= co->jobs.mask; i++)
		while (co->jobs.b[i]) {
			struct job *j = container_of(co->jobs.b[i], struct job, h);

			co->jobs.b[i] = j->h.next;
			job_free(j);
		}
	for (i = 0; co->hosts.b && i <= co->hosts.mask; i++)
		while (co->hosts.b[i]) {
			struct hnode *h = co->hosts.b[i];

			co->hosts.b[i] = h->next;
			free(h);
		}
	while (co->lru.head)
		centry_drop(co, container_of(co->lru.head, struct centry, lru));
	htab_free(&co->jobs);
	htab_free(&co->hosts);
	htab_free(&co->cache);
	if (co->tls)
		SSL_CTX_free(co->tls);
	destguard_free(co->guard);
	free(co);
}

void
callout_free(struct callout *co)
{
	if (!co || co->closing)
		return;
	co->closing = 1;
	if (co->busy == 0)
		callout_destroy(co);
}

/* Paths go between <> in our commands: no control bytes, bounded. */
static int
bad_path(const char *s)
{
	if (strlen(s) > CALLOUT_PATH_MAX)
		return 1;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

static void
fold(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s + ('a' - 'A'));
}

/* Local parts are the receiving server's business (RFC 5321 2.4);
 * domains are case-blind. */
static void
fold_domain(char *addr)
{
	char *at = strrchr(addr, '@');

	if (at)
		fold(at);
}

/* "route <from> <rcpt>", or "mx:domain <from> <rcpt>". */
static void
make_key(char *key, size_t len, const char *route, const char *from, const char *rcpt)
{
	char r[CALLOUT_PATH_BUF + 4], f[CALLOUT_PATH_BUF], t[CALLOUT_PATH_BUF];

	snprintf(r, sizeof r, "%s%s", route ? "" : "mx:", route ? route : strrchr(rcpt, '@') + 1);
	fold(r);
	snprintf(f, sizeof f, "%s", from);
	fold_domain(f);
	snprintf(t, sizeof t, "%s", rcpt);
	fold_domain(t);
	snprintf(key, len, "%s <%s> <%s>", r, f, t);
}

void
callout_verify(struct callout *co, const char *route, const char *mail_from,
    const char *address, callout_cb *cb, void *arg)
{
	struct callout_answer a;
	struct waiter *w = NULL;
	struct job *j = NULL;
	char key[CALLOUT_KEY_MAX];
	struct hnode *found;
	uint64_t hash;

	if (co->closing)
		return;                  /* freed: no callback ever */
	co_enter(co);
	co->stats.requests++;
	if (!mail_from)
		mail_from = co->conf.mail_from;
	if (bad_path(address) || bad_path(mail_from) || (route && (bad_path(route) || !*route)) ||
	    (!route && !strchr(address, '@'))) {
		set_answer(&a, CO_UNREACHABLE, 0, "input", route, "address or route refused");
		log_answer(co, route ? route : "", mail_from, address, &a, 0, 0, 1);
		cb(arg, &a);
		goto out;
	}
	make_key(key, sizeof key, route, mail_from, address);
	hash = htab_hash(key, strlen(key));
	if (cache_get(co, key, hash, &a)) {
		a.cached = 1;
		co->stats.cache_hits++;
		log_answer(co, route ? route : strrchr(address, '@') + 1, mail_from, address, &a,
		    0, 0, 1);
		cb(arg, &a);
		goto out;
	}
	if (!(w = calloc(1, sizeof *w)))
		goto oom;
	w->cb = cb;
	w->arg = arg;
	if ((found = htab_find(&co->jobs, hash, key, strlen(key))) != NULL) {
		j = container_of(found, struct job, h);
		*j->tail = w;
		j->tail = &w->next;
		j->nwaiters++;
		co->stats.coalesced++;
		goto out;
	}
	if (!(j = calloc(1, sizeof *j)))
		goto oom;
	j->co = co;
	memcpy(j->key, key, sizeof key);
	j->h.key = j->key;
	j->h.keylen = strlen(j->key);
	j->h.hash = hash;
	snprintf(j->from, sizeof j->from, "%s", mail_from);
	snprintf(j->rcpt, sizeof j->rcpt, "%s", address);
	j->port = co->conf.port;
	j->started = ev_time();
	j->head = w;
	j->tail = &w->next;
	j->nwaiters = 1;
	if (htab_add(&co->jobs, &j->h) < 0)
		goto oom;
	co->stats.inflight++;
	/* From here on the job answers for itself, maybe before this returns. */
	job_begin(j, route);
	goto out;
oom:
	free(w);
	free(j);
	set_answer(&a, CO_UNREACHABLE, 0, "input", route, "out of memory");
	cb(arg, &a);
out:
	co_leave(co);
}

void
callout_get_stats(const struct callout *co, struct callout_stats *s)
{
	*s = co->stats;
}
