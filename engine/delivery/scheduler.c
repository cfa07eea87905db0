/*
 * scheduler.c - the scheduler: every queued message in memory, split into
 * jobs (its pending recipients for one destination), each destination's
 * ready list, the retry heap and the dead-destination marks.
 *
 * A destination that cannot be reached is marked dead for its backoff
 * interval: what waits for it is deferred at once (one log line per
 * recipient), and when the interval ends ONE session probes it; only when
 * that session is ready do others start. So 10,000 messages for a dead
 * route cost one connection attempt per interval, not 10,000.
 *
 * Picking the next due job is O(log n) (a binary heap); a destination's
 * ready list is a FIFO.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "bounce.h"
#include "conf.h"
#include "log.h"
#include "metrics.h"
#include "queue.h"
#include "reaper.h"
#include "routing.h"
#include "scheduler.h"
#include "session.h"

static void kick(struct sched *s, struct dest *d);
static void msg_finish(struct sched *s, struct msg *m);

static double
backoff(const struct conf *c, int attempts)
{
	double d = c->delivery.retry_min * pow(2, attempts > 1 ? attempts - 1 : 0);

	return d > c->delivery.retry_max ? c->delivery.retry_max : d;
}

/* ------------------------------------------------------------------ */
/* retry heap                                                         */

static void
heap_swap(struct sched *s, int a, int b)
{
	struct job *t = s->heap[a];

	s->heap[a] = s->heap[b];
	s->heap[b] = t;
	s->heap[a]->heap = a;
	s->heap[b]->heap = b;
}

static void
heap_up(struct sched *s, int i)
{
	while (i > 0 && s->heap[(i - 1) / 2]->due > s->heap[i]->due) {
		heap_swap(s, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void
heap_down(struct sched *s, int i)
{
	for (;;) {
		int l = 2 * i + 1, r = l + 1, m = i;

		if (l < s->nheap && s->heap[l]->due < s->heap[m]->due)
			m = l;
		if (r < s->nheap && s->heap[r]->due < s->heap[m]->due)
			m = r;
		if (m == i)
			return;
		heap_swap(s, i, m);
		i = m;
	}
}

static void
arm_retry(struct sched *s)
{
	ev_timer_stop(s->loop, &s->retry);
	if (s->nheap == 0)
		return;
	double in = s->heap[0]->due - ev_now(s->loop);
	ev_timer_set(&s->retry, in > 0 ? in : 0, 0);
	ev_timer_start(s->loop, &s->retry);
}

static int
heap_push(struct sched *s, struct job *j)
{
	if (s->nheap == s->heapcap) {
		int cap = s->heapcap ? s->heapcap * 2 : 64;
		struct job **h = realloc(s->heap, (size_t)cap * sizeof *h);
		if (!h)
			return -1;
		s->heap = h;
		s->heapcap = cap;
	}
	j->heap = s->nheap;
	s->heap[s->nheap++] = j;
	heap_up(s, j->heap);
	if (j->heap == 0)
		arm_retry(s);
	return 0;
}

static void
heap_remove(struct sched *s, struct job *j)
{
	int i = j->heap;

	if (i < 0)
		return;
	j->heap = -1;
	if (i == --s->nheap)
		return;
	s->heap[i] = s->heap[s->nheap];
	s->heap[i]->heap = i;
	heap_down(s, i);
	heap_up(s, i);
}

/* ------------------------------------------------------------------ */
/* destinations                                                       */

static void
on_probe(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dest *d = w->data;

	kick(d->sched, d);
}

static struct dest *
dest_get(struct sched *s, const char *key, const char *domain, int tls)
{
	uint64_t h = htab_hash(key, strlen(key));
	struct hnode *n = htab_find(&s->dests, h, key, strlen(key));
	struct dest *d;

	if (n) {
		/* Two policies for one destination (a rule's route and the
		 * config's): the stricter holds for both. */
		d = container_of(n, struct dest, h);
		if (tls > d->tls)
			d->tls = tls;
		return d;
	}
	if (!(d = calloc(1, sizeof *d)) || !(d->key = strdup(key)) || !(d->domain = strdup(domain))) {
		if (d)
			free(d->key);
		free(d);
		return NULL;
	}
	d->tail = &d->head;
	d->tls = tls;
	d->sched = s;
	ev_timer_init(&d->probe, on_probe, 0, 0);
	d->probe.data = d;
	d->h.key = d->key;
	d->h.keylen = strlen(d->key);
	d->h.hash = h;
	if (htab_add(&s->dests, &d->h) < 0) {
		free(d->key);
		free(d->domain);
		free(d);
		return NULL;
	}
	return d;
}

static void
ready(struct sched *s, struct job *j)
{
	struct dest *d = j->d;

	j->next = NULL;
	*d->tail = j;
	d->tail = &j->next;
	d->nready++;
}

/* Starts sessions while work waits and the limits allow. */
static void
kick(struct sched *s, struct dest *d)
{
	double now = ev_now(s->loop);
	int want;

	if (d->dead_until > now) {
		if (!ev_is_active(&d->probe)) {
			ev_timer_set(&d->probe, d->dead_until - now, 0);
			ev_timer_start(s->loop, &d->probe);
		}
		return;
	}
	/* A connection already open comes first (connection reuse). */
	while (d->nready > 0 && session_wake(d))
		;
	/* Dead until now: one probe; alive: as many as the work wants. */
	want = d->dead_until ? 1 : d->nready;
	if (want > s->conf->delivery.per_destination)
		want = s->conf->delivery.per_destination;
	while (d->nready > 0 && d->sessions < want && s->sessions < s->conf->delivery.max_sessions) {
		if (session_start(s, d) < 0)
			break;
	}
}

static void
kick_all(struct sched *s)
{
	for (size_t i = 0; s->dests.b && i <= s->dests.mask; i++)
		for (struct hnode *n = s->dests.b[i]; n; n = n->next) {
			struct dest *d = container_of(n, struct dest, h);

			if (d->nready && s->sessions < s->conf->delivery.max_sessions)
				kick(s, d);
		}
}

struct job *
sched_take(struct sched *s, struct dest *d)
{
	struct job *j;

	while ((j = d->head) != NULL) {
		if (!(d->head = j->next))
			d->tail = &d->head;
		d->nready--;
		j->next = NULL;
		if (j->m->env.held || j->m->deleted) {
			/* Held: dropped; release routes the message again. */
			struct msg *m = j->m;

			free(j->idx);
			free(j);
			if (--m->njobs == 0 && m->deleted)
				msg_finish(s, m);
			continue;
		}
		j->inflight = 1;
		return j;
	}
	return NULL;
}

void
sched_dest_alive(struct sched *s, struct dest *d)
{
	d->failures = 0;
	d->dead_until = 0;
	ev_timer_stop(s->loop, &d->probe);
	kick(s, d);
}

void
sched_session_gone(struct sched *s, struct dest *d)
{
	int was_full = s->sessions + 1 >= s->conf->delivery.max_sessions;

	kick(s, d);
	if (was_full)
		kick_all(s);
}

/* ------------------------------------------------------------------ */
/* recipients                                                         */

static int
pending(const struct msg *m)
{
	int n = 0;

	for (int i = 0; i < m->env.nrcpt; i++)
		n += m->env.rcpt[i].state == R_PENDING;
	return n;
}

static void
log_rcpt(struct sched *s, const char *event, struct job *j, int k, const char *relay,
    const char *reply, const char *tls)
{
	struct msg *m = j->m;
	char delay[32], attempts[16];

	metrics_count(!strcmp(event, "delivered") ? MC_DELIVERED : !strcmp(event, "bounced") ? MC_BOUNCED :
	    MC_DEFERRED, 1);
	snprintf(delay, sizeof delay, "%.3f", ev_now(s->loop) - (double)m->env.arrived);
	snprintf(attempts, sizeof attempts, "%d", j->attempts + 1);
	log_event(event, "qid", m->env.qid, "rcpt", m->env.rcpt[j->idx[k]].addr,
	    "from", m->env.sender, "relay", relay && relay[0] ? relay : "-", "reply", reply,
	    "delay", delay, "attempts", attempts, "tls", tls && tls[0] ? tls : "none", NULL);
}

/* relay and reply may be r's own (an expiry keeps the last ones). */
static void
set_reply(struct qrcpt *r, int code, const char *relay, const char *reply)
{
	char *nrelay = strdup(relay ? relay : ""), *nreply = strdup(reply ? reply : "");

	free(r->reply);
	free(r->relay);
	r->code = code;
	r->reply = nreply;
	r->relay = nrelay;
}

void
sched_rcpt_delivered(struct sched *s, struct job *j, int k, const char *relay,
    const char *reply, const char *tls)
{
	struct msg *m = j->m;
	struct qrcpt *r = &m->env.rcpt[j->idx[k]];

	r->state = R_DONE;
	log_rcpt(s, "delivered", j, k, relay, reply, tls);
	/* The last one needs no record: the queue file is about to go. */
	if (pending(m) > 0 || m->env.bounced)
		queue_note(s->conf->spool_dir, m->env.qid, 1, "D %d", j->idx[k]);
	else
		for (int i = 0; i < m->env.nrcpt; i++)
			if (m->env.rcpt[i].state == R_FAILED) {
				queue_note(s->conf->spool_dir, m->env.qid, 1, "D %d", j->idx[k]);
				break;
			}
}

void
sched_rcpt_failed(struct sched *s, struct job *j, int k, const char *relay, int code,
    const char *reply, const char *tls)
{
	struct msg *m = j->m;
	struct qrcpt *r = &m->env.rcpt[j->idx[k]];

	r->state = R_FAILED;
	set_reply(r, code, relay, reply);
	log_rcpt(s, "bounced", j, k, r->relay, r->reply, tls);
	queue_note(s->conf->spool_dir, m->env.qid, 1, "P %d %s %d %s", j->idx[k],
	    r->relay && r->relay[0] ? r->relay : "-", code, r->reply ? r->reply : "");
}

void
sched_rcpt_deferred(struct sched *s, struct job *j, int k, const char *relay, int code,
    const char *reply, const char *tls)
{
	struct qrcpt *r = &j->m->env.rcpt[j->idx[k]];

	set_reply(r, code, relay, reply);
	log_rcpt(s, "deferred", j, k, r->relay, r->reply, tls);
}

static void
job_free(struct sched *s, struct job *j)
{
	struct msg *m = j->m;

	heap_remove(s, j);
	free(j->idx);
	free(j);
	if (--m->njobs == 0)
		msg_finish(s, m);
}

static void
warned(void *arg, int ok)
{
	char *qid = arg;

	log_event(ok ? "delay_warning" : "dsn_error", "qid", qid, NULL);
	free(qid);
}

/*
 * delivery.delay_warning (Postfix's delay_warning_time): once a message has
 * waited that long, its sender hears once that it is delayed (RFC 3464
 * Action: delayed). "W" is on disk first: a crash may lose the warning,
 * never send it twice. Mail from <> is never warned about.
 */
static void
warn_delay(struct sched *s, struct msg *m, double now)
{
	char *qid;

	if (s->conf->delivery.delay_warning <= 0 || m->env.warned || !m->env.sender[0] ||
	    now - (double)m->env.arrived < s->conf->delivery.delay_warning)
		return;
	m->env.warned = 1;
	if (queue_note(s->conf->spool_dir, m->env.qid, 1, "W") < 0 || !(qid = strdup(m->env.qid)))
		return;
	if (bounce_queue(s->spool, s->conf, &m->env, DSN_DELAYED, warned, qid) < 0)
		warned(qid, 0);
}

void
sched_done(struct sched *s, struct job *j)
{
	struct msg *m = j->m;
	double now = ev_now(s->loop);
	int n = 0;

	j->inflight = 0;
	if (m->deleted) {
		job_free(s, j);
		return;
	}
	for (int k = 0; k < j->n; k++)
		if (m->env.rcpt[j->idx[k]].state == R_PENDING)
			j->idx[n++] = j->idx[k];
	j->n = n;
	if (n == 0) {
		job_free(s, j);
		return;
	}
	j->attempts++;
	m->attempts++;
	if (now - (double)m->env.arrived >= s->conf->delivery.max_lifetime) {
		/* RFC 3463 4.4.7: the message stayed queued too long. */
		for (int k = 0; k < j->n; k++) {
			struct qrcpt *r = &m->env.rcpt[j->idx[k]];
			char why[600];

			snprintf(why, sizeof why, "4.4.7 delivery time expired; last error: %s",
			    r->reply && r->reply[0] ? r->reply : "none");
			sched_rcpt_failed(s, j, k, r->relay, r->code, why, NULL);
		}
		job_free(s, j);
		return;
	}
	warn_delay(s, m, now);
	j->due = now + backoff(s->conf, j->attempts);
	if (heap_push(s, j) < 0)
		ready(s, j);
	{
		const struct qrcpt *r = &m->env.rcpt[j->idx[0]];
		/* For `mxgate queue list`; a crash losing it costs nothing. */
		queue_note(s->conf->spool_dir, m->env.qid, 0, "T %lld %d %s",
		    (long long)(time(NULL) + (j->due - now)), m->attempts, r->reply ? r->reply : "");
	}
}

static void
on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sched *s = w->data;
	double now = ev_now(loop);

	while (s->nheap > 0 && s->heap[0]->due <= now) {
		struct job *j = s->heap[0];

		heap_remove(s, j);
		ready(s, j);
		kick(s, j->d);
	}
	arm_retry(s);
}

void
sched_dest_failed(struct sched *s, struct dest *d, int perm, const char *relay, int code,
    const char *why)
{
	double now = ev_now(s->loop);
	struct job *j;

	if (!perm && d->dead_until <= now) {
		d->failures++;
		d->dead_until = now + backoff(s->conf, d->failures);
	}
	/* Everything waiting for it gets this attempt's answer. */
	while ((j = sched_take(s, d)) != NULL) {
		for (int k = 0; k < j->n; k++) {
			if (perm)
				sched_rcpt_failed(s, j, k, relay, code, why, NULL);
			else
				sched_rcpt_deferred(s, j, k, relay, code, why, NULL);
		}
		sched_done(s, j);
	}
	if (!perm)
		kick(s, d);     /* arms the probe */
}

/* ------------------------------------------------------------------ */
/* messages                                                           */

struct msg *
sched_find(struct sched *s, const char *qid)
{
	struct hnode *n = htab_find(&s->msgs, htab_hash(qid, strlen(qid)), qid, strlen(qid));

	return n ? container_of(n, struct msg, h) : NULL;
}

/* The message leaves the queue (its last 250, bounce or deletion is behind us). */
static void
retire(struct sched *s, const char *qid)
{
	if (s->reaper)
		reaper_remove(s->reaper, qid);
	else
		queue_remove(s->conf->spool_dir, qid);
}

static void
msg_unlink(struct sched *s, struct msg *m)
{
	htab_del(&s->msgs, &m->h);
	s->nmsgs--;
	queue_env_free(&m->env);
	free(m);
}

/* The DSN is durable (ok), or could not be queued: the file stays for a restart. */
static void
bounced(void *arg, int ok)
{
	struct msg *m = arg;
	struct sched *s = m->sched;

	m->finishing = 0;
	if (ok)
		retire(s, m->env.qid);
	else
		log_event("dsn_error", "qid", m->env.qid, NULL);
	msg_unlink(s, m);
}

/* Every recipient is done or failed: bounce what failed, then forget it. */
static void
msg_finish(struct sched *s, struct msg *m)
{
	int failed = 0;

	if (m->finishing)
		return;         /* its DSN is being queued */
	if (m->deleted) {
		log_event("deleted", "qid", m->env.qid, NULL);
		retire(s, m->env.qid);
		msg_unlink(s, m);
		return;
	}
	if (pending(m) > 0)
		return;         /* held: it stays */
	for (int i = 0; i < m->env.nrcpt; i++)
		failed += m->env.rcpt[i].state == R_FAILED;
	if (failed && !m->env.bounced && m->env.sender[0]) {
		m->finishing = 1;
		if (bounce_queue(s->spool, s->conf, &m->env, DSN_FAILED, bounced, m) < 0)
			bounced(m, 0);
		return;
	}
	/* RFC 5321 6.1, RFC 3464: never bounce a bounce. */
	if (failed && !m->env.bounced)
		log_event("dsn_dropped", "qid", m->env.qid, "why", "null sender", NULL);
	retire(s, m->env.qid);
	msg_unlink(s, m);
}

/* The message's pending recipients into jobs, one per destination. */
static void
msg_route(struct sched *s, struct msg *m)
{
	char why[256], key[600], domain[300];
	struct job **jobs = NULL;
	struct dest **dests;
	int njobs = 0;

	if (m->env.held || m->njobs > 0)
		return;
	if (!(jobs = calloc((size_t)m->env.nrcpt, sizeof *jobs)))
		goto out;
	/* One job per destination, recipients in envelope order. */
	for (int i = 0; i < m->env.nrcpt; i++) {
		struct qrcpt *r = &m->env.rcpt[i];
		struct dest *d;
		struct job *j = NULL;
		int tls, k;

		if (r->state != R_PENDING)
			continue;
		if (routing_dest(s->conf, r, key, sizeof key, domain, sizeof domain, &tls,
		    why, sizeof why) < 0 || !(d = dest_get(s, key, domain, tls))) {
			struct job one = { .m = m, .idx = &i, .n = 1, .heap = -1 };
			sched_rcpt_failed(s, &one, 0, "", 550, "5.1.3 bad destination address", NULL);
			continue;
		}
		for (k = 0; k < njobs; k++)
			if (jobs[k]->d == d)
				j = jobs[k];
		if (!j) {
			if (!(j = calloc(1, sizeof *j)) || !(j->idx = calloc((size_t)m->env.nrcpt, sizeof *j->idx))) {
				free(j);
				continue;
			}
			j->m = m;
			j->d = d;
			j->heap = -1;
			jobs[njobs++] = j;
			m->njobs++;
		}
		j->idx[j->n++] = i;
	}
	if (njobs == 0) {
		free(jobs);
		msg_finish(s, m);
		return;
	}
	/* A kick may fail a job at once and finish (free) the message: take
	 * the destinations first, touch neither m nor its jobs after. */
	dests = (struct dest **)jobs;   /* same size; each job's slot becomes its dest's */
	for (int k = 0; k < njobs; k++) {
		struct dest *d = jobs[k]->d;

		ready(s, jobs[k]);
		dests[k] = d;
	}
	for (int k = 0; k < njobs; k++)
		kick(s, dests[k]);
out:
	free(jobs);
}

void
sched_add(struct sched *s, const char *qid)
{
	struct msg *m;
	char why[256];

	if (sched_find(s, qid))
		return;
	if (!(m = calloc(1, sizeof *m)))
		return;
	if (queue_load(s->conf->spool_dir, qid, &m->env, why, sizeof why) < 0) {
		if (strcmp(why, "No such file or directory") != 0) {
			queue_quarantine(s->conf->spool_dir, qid);
			log_event("queue_skipped", "qid", qid, "why", why, NULL);
		}
		free(m);
		return;
	}
	m->sched = s;
	m->h.key = m->env.qid;
	m->h.keylen = strlen(m->env.qid);
	m->h.hash = htab_hash(m->env.qid, m->h.keylen);
	if (htab_add(&s->msgs, &m->h) < 0) {
		queue_env_free(&m->env);
		free(m);
		return;
	}
	s->nmsgs++;
	msg_route(s, m);
}

static int
flush_match(const struct job *j, const char *what)
{
	return !what || strcmp(j->m->env.qid, what) == 0 || strcasecmp(j->d->domain, what) == 0 ||
	    strcasecmp(j->d->key, what) == 0;
}

void
sched_flush(struct sched *s, const char *what)
{
	for (int i = 0; i < s->nheap;) {
		struct job *j = s->heap[i];

		if (!flush_match(j, what)) {
			i++;
			continue;
		}
		heap_remove(s, j);      /* the last one moved into i */
		j->d->dead_until = 0;
		ev_timer_stop(s->loop, &j->d->probe);
		ready(s, j);
	}
	arm_retry(s);
	kick_all(s);
}

void
sched_refresh(struct sched *s, const char *qid)
{
	struct msg *m = sched_find(s, qid);
	struct qenv e;
	char why[256];

	if (!m)
		return;
	if (queue_load(s->conf->spool_dir, qid, &e, why, sizeof why) < 0) {
		/* Deleted: its jobs are dropped as they come up. */
		m->deleted = 1;
		for (int i = 0; i < s->nheap;) {
			struct job *j = s->heap[i];
			if (j->m == m && !j->inflight)
				job_free(s, j);         /* may finish (and free) m */
			else
				i++;
			if (!sched_find(s, qid))
				return;
		}
		if (m->njobs == 0)
			msg_finish(s, m);
		return;
	}
	if (m->env.held != e.held) {
		m->env.held = e.held;
		log_event(e.held ? "held" : "released", "qid", qid, NULL);
		if (!e.held) {
			for (int i = 0; i < s->nheap; i++)
				if (s->heap[i]->m == m)
					s->heap[i]->due = 0;
			for (int i = s->nheap / 2; i >= 0; i--)
				heap_down(s, i);
			arm_retry(s);
			msg_route(s, m);
		}
	}
	queue_env_free(&e);
}

int
sched_init(struct sched *s, struct ev_loop *loop, const struct conf *c, struct dns *dns,
    struct spool *spool)
{
	memset(s, 0, sizeof *s);
	s->loop = loop;
	s->conf = c;
	s->dns = dns;
	s->spool = spool;
	if (htab_init(&s->msgs, 1024) < 0 || htab_init(&s->dests, 64) < 0)
		return -1;
	ev_timer_init(&s->retry, on_retry, 0, 0);
	s->retry.data = s;
	return 0;
}

void
sched_free(struct sched *s)
{
	ev_timer_stop(s->loop, &s->retry);
	htab_free(&s->msgs);
	htab_free(&s->dests);
	free(s->heap);
}
