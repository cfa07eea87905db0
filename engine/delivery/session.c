/*
 * session.c - a delivery session: the destination's addresses (route.c),
 * tried in order until one is ready (RFC 5321 5.1: an address that cannot
 * be reached, or that greets with an error, sends us on to the next), then
 * its jobs one transaction after another on the same connection
 * (smtp_client.c pipelines each), and QUIT when nothing is left.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "route.h"
#include "routing.h"
#include "scheduler.h"
#include "session.h"
#include "smtp_client.h"

#define MAX_RECEIVED 50         /* RFC 5321 6.3: more is a loop */

struct dsession {
	struct sched              *s;
	struct dest               *d;
	struct dsession           *prev, *next;
	struct route_query        *rq;
	struct route_answer        ra;
	int                        cur;         /* the address being tried */
	struct smtp_client        *c;
	int                        ready;
	struct job                *job;         /* in flight */
	int                        fd;
	struct smtp_client_txn     txn;
	const char               **rcpts;
	char                       relay[ROUTE_ADDR_TEXT + DNS_RR_TEXT + 4];
	char                       tls[96];
	int                        last_code;
	char                       last[1024];  /* why the last address failed */
	struct dsession           *inext;       /* in d->idle */
	int                        idle;
	ev_timer                   idle_timer;
};

static void connect_next(struct dsession *ss);
static void next_job(struct dsession *ss);

static void
unidle(struct dsession *ss)
{
	struct dsession **p = &ss->d->idle;

	if (!ss->idle)
		return;
	while (*p && *p != ss)
		p = &(*p)->inext;
	if (*p)
		*p = ss->inext;
	ss->idle = 0;
	ev_timer_stop(ss->s->loop, &ss->idle_timer);
}

static void
session_end(struct dsession *ss)
{
	struct sched *s = ss->s;
	struct dest *d = ss->d;

	unidle(ss);
	if (ss->prev)
		ss->prev->next = ss->next;
	else
		s->all = ss->next;
	if (ss->next)
		ss->next->prev = ss->prev;
	route_cancel(&ss->rq);
	s->sessions--;
	d->sessions--;
	if (ss->ready)
		d->live--;
	free(ss);
	sched_session_gone(s, d);
}

/* Every address failed: the destination is unreachable for now. */
static void
unreachable(struct dsession *ss)
{
	struct dest *d = ss->d;
	char why[1100];

	snprintf(why, sizeof why, "4.4.1 %s", ss->last[0] ? ss->last : "no address to try");
	/* Another session is delivering there: this was one bad connection. */
	if (d->live == 0)
		sched_dest_failed(ss->s, d, 0, ss->relay, ss->last_code, why);
	session_end(ss);
}

static void
set_relay(struct dsession *ss)
{
	const struct route_target *t = &ss->ra.t[ss->cur];

	if (t->name[0])
		snprintf(ss->relay, sizeof ss->relay, "%s[%s]", t->name, t->addr);
	else
		snprintf(ss->relay, sizeof ss->relay, "%s", t->addr);
}

static void
on_ready(void *arg, const struct smtp_client_result *r)
{
	struct dsession *ss = arg;

	if (r->replied && strcmp(r->stage, "ready") == 0) {
		ss->ready = 1;
		ss->d->live++;
		smtp_client_tls_info(ss->c, ss->tls, sizeof ss->tls);
		sched_dest_alive(ss->s, ss->d);
		next_job(ss);
		return;
	}
	ss->last_code = r->replied ? r->code : 0;
	if (r->replied)
		snprintf(ss->last, sizeof ss->last, "%s said at %s: %d %s", ss->relay, r->stage,
		    r->code, r->text);
	else
		snprintf(ss->last, sizeof ss->last, "%s: %s", ss->relay, r->text);
	/* The client QUITs or closes; on_closed moves on. */
}

static void
on_closed(void *arg)
{
	struct dsession *ss = arg;

	ss->c = NULL;
	if (ss->job) {
		/* The transaction callback has run: nothing is in flight. */
		ss->job = NULL;
	}
	if (ss->ready) {
		session_end(ss);
		return;
	}
	ss->cur++;
	connect_next(ss);
}

static void
connect_next(struct dsession *ss)
{
	struct sched *s = ss->s;
	const struct conf *c = s->conf;
	struct smtp_client_conf cc = {
		.connect_timeout = c->delivery.connect_timeout,
		.command_timeout = c->delivery.command_timeout,
		.helo = c->hostname,
		.tls = s->tls,
		.tls_require = ss->d->tls > 0,
		.tls_verify = ss->d->tls == 2,
	};
	char err[200];

	for (; ss->cur < ss->ra.n; ss->cur++) {
		const struct route_target *t = &ss->ra.t[ss->cur];

		set_relay(ss);
		ss->c = smtp_client_open(s->loop, &cc, (const struct sockaddr *)&t->sa, t->salen,
		    t->name[0] ? t->name : NULL, on_ready, on_closed, ss, err, sizeof err);
		if (ss->c)
			return;
		ss->last_code = 0;
		snprintf(ss->last, sizeof ss->last, "%s: %s", ss->relay, err);
	}
	unreachable(ss);
}

static void
on_route(void *arg, const struct route_answer *a)
{
	struct dsession *ss = arg;
	char why[1100];

	if (a->status != ROUTE_OK) {
		/* A recipient domain that cannot take mail fails for good; a
		 * configured route that does not resolve is the operator's to fix:
		 * retried until max_lifetime. */
		int perm = a->status == ROUTE_PERM && strncmp(ss->d->key, "mx:", 3) == 0;

		/* RFC 7505 3: a null MX is 556 5.1.10; a domain that does not
		 * exist 5.1.2 (RFC 3463); DNS trouble 4.4.3. */
		snprintf(why, sizeof why, "%s %s", !perm ? "4.4.3" : a->null_mx ? "5.1.10" :
		    "5.1.2", a->why);
		sched_dest_failed(ss->s, ss->d, perm, a->host, perm ? (a->null_mx ? 556 : 550) : 0, why);
		session_end(ss);
		return;
	}
	ss->ra = *a;
	if (routing_loops(ss->s->conf, a, why + 6, sizeof why - 6)) {
		memcpy(why, "5.4.6 ", 6);
		sched_dest_failed(ss->s, ss->d, 1, "", 554, why);
		session_end(ss);
		return;
	}
	ss->cur = 0;
	connect_next(ss);
}

/* "250 2.0.0 Ok", or the client's why when there was no reply. */
static void
reply_text(char *out, size_t len, const struct smtp_client_reply *r)
{
	if (r->code)
		snprintf(out, len, "%d %s", r->code, r->text);
	else
		snprintf(out, len, "%s", r->text);
}

static void
on_txn(void *arg, struct smtp_client_txn *t)
{
	struct dsession *ss = arg;
	struct job *j = ss->job;
	char text[400];

	ss->job = NULL;
	for (int k = 0; k < j->n; k++) {
		const struct smtp_client_reply *r = &t->rcpt[k];

		reply_text(text, sizeof text, r);
		if (r->code / 100 == 2 && t->completed)
			sched_rcpt_delivered(ss->s, j, k, ss->relay, text, ss->tls);
		else if (r->code / 100 == 5)
			sched_rcpt_failed(ss->s, j, k, ss->relay, r->code, text, ss->tls);
		else
			sched_rcpt_deferred(ss->s, j, k, ss->relay, r->code, text, ss->tls);
	}
	close(ss->fd);
	ss->fd = -1;
	free(t->rcpt);
	free(ss->rcpts);
	t->rcpt = NULL;
	ss->rcpts = NULL;
	sched_done(ss->s, j);
	/* Still connected and idle: the next job; otherwise on_closed ends it. */
	if (ss->c && smtp_client_idle(ss->c))
		next_job(ss);
}

/* What the next hop cannot take, refused before any command. */
static int
refuse(struct dsession *ss, struct job *j)
{
	const struct qenv *e = &j->m->env;
	const char *why = NULL;
	int code = 554;
	char text[300];
	unsigned long long max = smtp_client_size_max(ss->c);

	if (e->received > MAX_RECEIVED)
		why = "5.4.6 too many Received: headers, a mail loop (RFC 5321 6.3)";
	else if (e->smtputf8 && !smtp_client_offers(ss->c, "SMTPUTF8")) {
		code = 553;
		why = "5.6.7 the next hop does not support SMTPUTF8 (RFC 6531 3.4)";
	} else if (max && (unsigned long long)(e->size - e->body_off) > max) {
		code = 552;
		why = "5.3.4 message larger than the next hop's SIZE limit";
	}
	if (!why)
		return 0;
	snprintf(text, sizeof text, "%d %s", code, why);
	for (int k = 0; k < j->n; k++)
		sched_rcpt_failed(ss->s, j, k, ss->relay, code, text, ss->tls);
	sched_done(ss->s, j);
	return 1;
}

static void
next_job(struct dsession *ss)
{
	struct job *j;

	while ((j = sched_take(ss->s, ss->d)) != NULL) {
		const struct qenv *e = &j->m->env;
		struct smtp_client_msg msg;

		if (refuse(ss, j))
			continue;
		ss->fd = queue_open(ss->s->conf->spool_dir, e->qid);
		ss->txn.rcpt = calloc((size_t)j->n, sizeof *ss->txn.rcpt);
		ss->rcpts = calloc((size_t)j->n, sizeof *ss->rcpts);
		if (ss->fd < 0 || !ss->txn.rcpt || !ss->rcpts) {
			for (int k = 0; k < j->n; k++)
				sched_rcpt_deferred(ss->s, j, k, ss->relay, 0,
				    "4.3.0 cannot read the queue file", ss->tls);
			if (ss->fd >= 0)
				close(ss->fd);
			free(ss->txn.rcpt);
			free(ss->rcpts);
			ss->txn.rcpt = NULL;
			ss->rcpts = NULL;
			ss->fd = -1;
			sched_done(ss->s, j);
			continue;
		}
		for (int k = 0; k < j->n; k++)
			ss->rcpts[k] = e->rcpt[j->idx[k]].addr;
		msg = (struct smtp_client_msg){
			.from = e->sender, .rcpts = ss->rcpts, .nrcpts = j->n, .fd = ss->fd,
			.offset = e->body_off, .length = e->size - e->body_off,
			.smtputf8 = e->smtputf8, .body8bit = e->body8bit,
		};
		ss->job = j;
		if (smtp_client_send(ss->c, &msg, &ss->txn, on_txn, ss) == 0)
			return;
		ss->job = NULL;
		for (int k = 0; k < j->n; k++)
			sched_rcpt_deferred(ss->s, j, k, ss->relay, 0, "4.3.0 session not ready", ss->tls);
		close(ss->fd);
		ss->fd = -1;
		free(ss->txn.rcpt);
		free(ss->rcpts);
		ss->txn.rcpt = NULL;
		ss->rcpts = NULL;
		sched_done(ss->s, j);
		smtp_client_abort(ss->c);
		ss->c = NULL;
		session_end(ss);
		return;
	}
	/* Nothing now: keep the connection a moment for the next message
	 * (Postfix's smtp_connection_cache_time_limit), then QUIT. */
	if (ss->s->conf->delivery.idle_time > 0) {
		ss->idle = 1;
		ss->inext = ss->d->idle;
		ss->d->idle = ss;
		ev_timer_set(&ss->idle_timer, ss->s->conf->delivery.idle_time, 0);
		ev_timer_start(ss->s->loop, &ss->idle_timer);
		return;
	}
	smtp_client_quit(ss->c);
}

static void
on_idle(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dsession *ss = w->data;

	unidle(ss);
	smtp_client_quit(ss->c);        /* on_closed ends the session */
}

int
session_wake(struct dest *d)
{
	struct dsession *ss = d->idle;

	if (!ss)
		return 0;
	unidle(ss);
	if (!ss->c || !smtp_client_idle(ss->c))
		return 1;                       /* closing: on_closed ends it */
	next_job(ss);
	return 1;
}

int
session_start(struct sched *s, struct dest *d)
{
	struct dsession *ss = calloc(1, sizeof *ss);

	if (!ss)
		return -1;
	ss->s = s;
	ss->d = d;
	ss->fd = -1;
	ev_timer_init(&ss->idle_timer, on_idle, 0, 0);
	ss->idle_timer.data = ss;
	ss->next = s->all;
	if (s->all)
		s->all->prev = ss;
	s->all = ss;
	s->sessions++;
	d->sessions++;
	route_resolve(&ss->rq, s->dns, d->key, d->domain, s->conf->delivery.port, on_route, ss);
	return 0;
}

void
session_abort_all(struct sched *s)
{
	struct dsession *ss;

	while ((ss = s->all) != NULL) {
		s->all = ss->next;
		ev_timer_stop(s->loop, &ss->idle_timer);
		route_cancel(&ss->rq);
		if (ss->c)
			smtp_client_abort(ss->c);
		if (ss->fd >= 0)
			close(ss->fd);
		free(ss->txn.rcpt);
		free(ss->rcpts);
		free(ss);
	}
	s->sessions = 0;
}
