/*
 * world.c - a worker's world (world.h): resolver, state store, callout
 * client, opened after fork on the worker's loop, and the timer that
 * sweeps a store whose records do not expire by themselves (LMDB).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ev.h>

#include "callout.h"
#include "conf.h"
#include "dns.h"
#include "log.h"
#include "smtp_server.h"
#include "state.h"
#include "worker.h"
#include "world.h"

static ev_timer sweep_timer;

void
world_state_conf(const struct conf *c, struct state_conf *sc)
{
	memset(sc, 0, sizeof *sc);
	snprintf(sc->backend, sizeof sc->backend, "%s", c->state.backend);
	snprintf(sc->dir, sizeof sc->dir, "%.500s/state", c->state_dir);
	snprintf(sc->server, sizeof sc->server, "%s", c->state.server);
	sc->db = c->state.db;
	snprintf(sc->user, sizeof sc->user, "%s", c->state.user);
	snprintf(sc->password, sizeof sc->password, "%s", c->state.password);
	snprintf(sc->prefix, sizeof sc->prefix, "%s", c->state.prefix);
	sc->timeout = c->state.timeout;
}

static void
on_swept(void *arg, const struct state_reply *r)
{
	if (r->rc < 0)
		log_event("state_error", "op", "sweep", "error", r->error, NULL);
}

static void
on_sweep(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct state *st = t->data;
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	st->ops->sweep(st, (double)ts.tv_sec, on_swept, NULL);
}

int
world_open(struct world *w, const struct conf *c, struct ev_loop *loop, char *err, size_t errlen)
{
	struct state_conf sc;

	memset(w, 0, sizeof *w);
	w->loop = loop;
	if (!c->rules[0])
		return 0;                       /* the built-in policy asks nothing */
	/* One store handle per process, opened after fork. */
	world_state_conf(c, &sc);
	if (!(w->state = state_open(&sc, loop, err, errlen)))
		return -1;
	if (world_net_open(w, c, err, errlen) < 0) {
		world_close(w);
		return -1;
	}
	if (!w->state->ops->ttl_expiry) {
		ev_timer_init(&sweep_timer, on_sweep, 60, 60);
		sweep_timer.data = w->state;
		ev_timer_start(loop, &sweep_timer);
		ev_unref(loop);                 /* housekeeping keeps no loop alive */
	}
	return 0;
}

void
world_close(struct world *w)
{
	if (w->callout)
		callout_free(w->callout);
	if (w->state) {
		if (ev_is_active(&sweep_timer)) {
			ev_ref(w->loop);
			ev_timer_stop(w->loop, &sweep_timer);
		}
		state_close(w->state);
	}
	if (w->dns)
		dns_free(w->dns);
	memset(w, 0, sizeof *w);
}

const char *
world_net_key(const struct conf *c, char *buf, size_t n)
{
	snprintf(buf, n, "%s|%g|%d|%d|%d|%g|%g|%d|%g|%g|%d|%s|%s", c->dns.servers, c->dns.timeout, c->dns.tries,
	    c->dns.cache, c->callout.port, c->callout.connect_timeout, c->callout.command_timeout,
	    c->callout.starttls, c->callout.positive_ttl, c->callout.negative_ttl, c->callout.max_per_host,
	    c->callout.mail_from, c->hostname);
	return buf;
}

int
world_net_open(struct world *w, const struct conf *c, char *err, size_t errlen)
{
	struct dns_conf dc = {
		.servers = c->dns.servers[0] ? c->dns.servers : NULL,
		.timeout = c->dns.timeout, .tries = c->dns.tries,
		.cache_entries = (size_t)c->dns.cache,
	};
	struct callout_conf cc = {
		.port = c->callout.port, .connect_timeout = c->callout.connect_timeout,
		.command_timeout = c->callout.command_timeout, .starttls = c->callout.starttls,
		.positive_ttl = c->callout.positive_ttl, .negative_ttl = c->callout.negative_ttl,
		.max_per_host = c->callout.max_per_host,
		.allow_nets = c->callout.allow_nets, .nallow_nets = c->callout.nallow_nets,
		.listen = c->listen, .nlisten = c->nlisten,
	};
	char why[512];

	if (!(w->dns = dns_new(w->loop, &dc, why, sizeof why))) {
		snprintf(err, errlen, "%s: dns: %s", c->path ? c->path : "config", why);
		return -1;
	}
	snprintf(cc.helo, sizeof cc.helo, "%s", c->hostname);
	snprintf(cc.mail_from, sizeof cc.mail_from, "%s", c->callout.mail_from);
	if (!(w->callout = callout_new(w->loop, w->dns, w->state, &cc, why, sizeof why))) {
		snprintf(err, errlen, "%s: callout: %s", c->path ? c->path : "config", why);
		dns_free(w->dns);
		w->dns = NULL;
		return -1;
	}
	return 0;
}

/* A replaced pair, kept until the lookups and callouts sessions started on
 * it have answered (a rule waits at most timeouts.rule). */
struct retired_net {
	ev_timer        timer;
	struct dns     *dns;
	struct callout *callout;
	struct conf    *conf;           /* the callout client points into it */
};

static void
on_retired(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct retired_net *r = t->data;

	callout_free(r->callout);
	dns_free(r->dns);
	if (r->conf)
		conf_release(r->conf);
	free(r);
}

void
world_net_retire(struct world *w, double after, struct conf *held)
{
	struct retired_net *r = calloc(1, sizeof *r);

	if (!r) {                       /* no memory for a grace period: now */
		callout_free(w->callout);
		dns_free(w->dns);
		if (held)
			conf_release(held);
	} else {
		r->dns = w->dns;
		r->callout = w->callout;
		r->conf = held;
		ev_timer_init(&r->timer, on_retired, after, 0);
		r->timer.data = r;
		ev_timer_start(w->loop, &r->timer);
	}
	w->dns = NULL;
	w->callout = NULL;
}
