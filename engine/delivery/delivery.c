/*
 * delivery.c - the delivery process: its loop, the queue directory watch
 * and the signals.
 *
 * The first attempt starts as soon as a message is in spool/queue: the
 * workers' committer renames each file into queue/ (spool.c), and inotify
 * (IN_MOVED_TO) tells us at once; no polling. The watch is set before the
 * start-up scan, so a file that lands during the scan is seen by one or
 * the other (sched_add() ignores a message it already has).
 *
 * The committer renames before its syncfs(), so a message can be picked up
 * a fraction of a millisecond before it is durable. That is safe: if the
 * flush fails, the worker answers 451 and the client sends it again (a
 * duplicate, never a loss), and a file torn by a crash is refused by its
 * length check (queue.c).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <ev.h>

#include "conf.h"
#include "delivery.h"
#include "dns.h"
#include "log.h"
#include "qstats.h"
#include "queue.h"
#include "reaper.h"
#include "scheduler.h"
#include "session.h"
#include "spool.h"
#include "tls.h"

static struct {
	struct sched  s;
	ev_timer      qstats;
	int           ifd;
	ev_io         watch;
	ev_signal     sigterm, sigint, sighup, sigusr1;
	int           owned;            /* D.s.conf is ours (after a reload) */
	char        **names;            /* the start-up scan: queue files still to load */
	long          nnames, next;
	ev_idle       scan;
} D;

#define SCAN_BATCH 256                  /* files loaded per loop iteration at start */

static void
add_name(void *arg, const char *qid)
{
	char **nn;

	if (D.nnames % 1024 == 0 &&
	    !(nn = realloc(D.names, (size_t)(D.nnames + 1024) * sizeof *D.names)))
		return;
	else if (D.nnames % 1024 == 0)
		D.names = nn;
	if ((D.names[D.nnames] = strdup(qid)) != NULL)
		D.nnames++;
}

/*
 * The start-up scan loads the queue a batch per loop iteration, so mail
 * that arrives meanwhile (inotify) goes out at once instead of waiting
 * behind 100,000 old files.
 */
static void
on_scan(struct ev_loop *loop, ev_idle *w, int revents)
{
	char n[32];

	for (int i = 0; i < SCAN_BATCH && D.next < D.nnames; i++, D.next++) {
		sched_add(&D.s, D.names[D.next]);
		free(D.names[D.next]);
	}
	if (D.next < D.nnames)
		return;
	ev_idle_stop(loop, w);
	free(D.names);
	D.names = NULL;
	snprintf(n, sizeof n, "%ld", D.nnames);
	log_event("delivery_scanned", "queued", n, NULL);
}

static void
add_one(void *arg, const char *qid)
{
	sched_add(arg, qid);
}

static void
on_watch(struct ev_loop *loop, ev_io *w, int revents)
{
	char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;
	int rescan = 0;

	/* Bounded per wake-up: a flood of arrivals cannot starve deliveries. */
	for (int round = 0; round < 16; round++) {
		if ((n = read(D.ifd, buf, sizeof buf)) <= 0)
			break;
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;

			if (ev->mask & IN_Q_OVERFLOW)
				rescan = 1;
			else if (ev->len && ev->name[0] != '.')
				sched_add(&D.s, ev->name);
			p += sizeof *ev + ev->len;
		}
	}
	if (rescan) {
		log_event("queue_rescan", "why", "inotify overflow", NULL);
		queue_scan(D.s.conf->spool_dir, add_one, &D.s);
	}
}

static void
on_stop(struct ev_loop *loop, ev_signal *w, int revents)
{
	ev_break(loop, EVBREAK_ALL);
}

/* One request of `mxgate queue`: "flush", "flush QID|DOMAIN", "refresh QID". */
static void
on_request(void *arg, const char *req)
{
	char verb[16], what[300] = "";

	if (sscanf(req, "%15s %299s", verb, what) < 1)
		return;
	log_event("queue_request", "request", req, NULL);
	if (strcmp(verb, "flush") == 0)
		sched_flush(&D.s, what[0] ? what : NULL);
	else if (strcmp(verb, "refresh") == 0 && what[0])
		sched_refresh(&D.s, what);
}

static void
on_control(struct ev_loop *loop, ev_signal *w, int revents)
{
	queue_requests(D.s.conf->spool_dir, on_request, NULL);
	/* Anything that landed unseen (an inotify overflow) is picked up too. */
	queue_scan(D.s.conf->spool_dir, add_one, &D.s);
}

/* The CAs tls = "verify" trusts. Unreadable: logged, and every verified
 * route fails closed (deferred) rather than the process restarting. */
static void
trust(SSL_CTX *tls, const struct conf *c)
{
	char err[600];

	if (tls_client_trust(tls, c->delivery.ca_file, err, sizeof err) < 0)
		log_event("delivery_tls_error", "error", err, NULL);
}

/*
 * SIGHUP (the master checked the file first): the new routes, TLS policy
 * and limits apply to every message routed from now on (new mail, and at
 * the next start every queued message); jobs already routed keep their
 * destination. Nothing keeps a pointer into the old config: it goes.
 */
static void
on_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct conf *n = calloc(1, sizeof *n), *old = (struct conf *)D.s.conf;
	char err[1024];

	log_reopen();
	if (!n || conf_load(n, old->path, err, sizeof err) < 0) {
		log_event("delivery_reload_failed", "error", n ? err : "out of memory", NULL);
		free(n);
		return;
	}
	if (strcmp(n->delivery.ca_file, old->delivery.ca_file) != 0) {
		/* Sessions in progress keep the context they hold a reference to. */
		SSL_CTX *tls = tls_client_ctx(err, sizeof err);

		if (tls) {
			trust(tls, n);
			SSL_CTX_free(D.s.tls);
			D.s.tls = tls;
		}
	}
	D.s.conf = n;
	log_event("delivery_reloaded", NULL);
	if (D.owned) {
		conf_free(old);
		free(old);
	}
	D.owned = 1;
}

int
delivery_main(struct conf *c)
{
	struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
	struct dns_conf dc = {
		.servers = c->dns.servers[0] ? c->dns.servers : NULL,
		.timeout = c->dns.timeout, .tries = c->dns.tries,
		.cache_entries = (size_t)c->dns.cache,
	};
	struct spool *sp;
	struct dns *dns;
	SSL_CTX *tls;
	char err[1024], qdir[1024], n[32];

	signal(SIGPIPE, SIG_IGN);
	if (queue_dirs(c->spool_dir) < 0) {
		log_event("fatal", "process", "delivery", "error", strerror(errno), NULL);
		return 1;
	}
	if (!(sp = spool_open(loop, c->spool_dir, err, sizeof err)) ||
	    !(dns = dns_new(loop, &dc, err, sizeof err)) || !(tls = tls_client_ctx(err, sizeof err))) {
		log_event("fatal", "process", "delivery", "error", err, NULL);
		return 1;
	}
	if (sched_init(&D.s, loop, c, dns, sp) < 0) {
		log_event("fatal", "process", "delivery", "error", "out of memory", NULL);
		return 1;
	}
	D.s.tls = tls;
	trust(tls, c);
	/* Without it the loop unlinks itself (slow, still correct). */
	if (!(D.s.reaper = reaper_start(c->spool_dir)))
		log_event("delivery_reaper_error", "error", strerror(errno), NULL);
	snprintf(qdir, sizeof qdir, "%s/queue", c->spool_dir);
	if ((D.ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0 ||
	    inotify_add_watch(D.ifd, qdir, IN_MOVED_TO | IN_Q_OVERFLOW) < 0) {
		log_event("fatal", "process", "delivery", "error", strerror(errno), NULL);
		return 1;
	}
	ev_io_init(&D.watch, on_watch, D.ifd, EV_READ);
	ev_io_start(loop, &D.watch);
	ev_signal_init(&D.sigterm, on_stop, SIGTERM);
	ev_signal_start(loop, &D.sigterm);
	ev_signal_init(&D.sigint, on_stop, SIGINT);
	ev_signal_start(loop, &D.sigint);
	ev_signal_init(&D.sighup, on_hup, SIGHUP);
	ev_signal_start(loop, &D.sighup);
	ev_signal_init(&D.sigusr1, on_control, SIGUSR1);
	ev_signal_start(loop, &D.sigusr1);

	queue_pidfile(c->spool_dir);
	queue_requests(c->spool_dir, on_request, NULL);   /* stale: a fresh start does all */
	queue_scan(c->spool_dir, add_name, NULL);
	ev_idle_init(&D.scan, on_scan);
	ev_idle_start(loop, &D.scan);
	snprintf(n, sizeof n, "%ld", D.nnames);
	log_event("delivery_start", "queued", n, NULL);
	qstats_start(&D.s, &D.qstats);

	ev_run(loop, 0);

	session_abort_all(&D.s);
	reaper_stop(D.s.reaper);
	spool_close(sp);
	log_event("delivery_stop", NULL);
	return 0;
}
