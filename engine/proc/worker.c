/*
 * worker.c - accept, connection limits, reload and drain for one worker.
 *
 * Out of file descriptors (EMFILE/ENFILE), a listening socket stays
 * readable and a level-triggered watcher would call accept() in a busy
 * loop, logging each failure. Instead the worker sheds the connection at
 * the head of the queue with a 421 (through a descriptor it keeps in
 * reserve for exactly this), pauses its listeners with a back-off, resumes
 * early when a session closes, and logs the condition at most every 10 s.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "conf.h"
#include "connlimit.h"
#include "journal.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "proxy.h"
#include "readiness.h"
#include "smtp_server.h"
#include "spool.h"
#include "tls.h"
#include "worker.h"
#include "world.h"

struct worker {
	int               index;
	struct server     srv;
	struct connlimit *cl;
	/* Our own copy: sessions point at it, and it outlives any reload. */
	struct conf_listener listeners[CONF_MAX_LISTEN];
	ev_io             listen[CONF_MAX_LISTEN];
	int               nlisten;
	ev_signal         sighup, sigterm, sigint;
	ev_timer          grace;
	int               draining;
	struct world      world;       /* resolver, state store, callout client */
	/* Out of descriptors: the listeners wait out a back-off. */
	int               reserve_fd;     /* /dev/null, given up to shed a client */
	ev_timer          resume;
	double            backoff;        /* seconds; doubles up to ACCEPT_BACKOFF_MAX */
	int               paused;
	double            logged_at;      /* last accept_error line */
	unsigned long     shed, failed;   /* since that line */
	char              net_key[1200];   /* the dns/callout settings world has */
	struct conf      *net_conf;        /* held: what world's callout client points into */
};

#define ACCEPT_BACKOFF_MIN 0.05
#define ACCEPT_BACKOFF_MAX 1.0
#define ACCEPT_LOG_EVERY   10.0

static struct worker W;

static void on_resume(struct ev_loop *loop, ev_timer *w, int revents);
/* A connection on a proxy_protocol listener, waiting for its PROXY header;
 * it becomes a session (and counts toward the limits) under the client's
 * real address, once the header is read. */
struct proxied {
	ev_io                       io;
	ev_timer                    timer;
	int                         fd;
	const struct conf_listener *l;
	struct sockaddr_storage     from;       /* the load balancer */
	struct proxied             *next, **pprev;
};

static struct proxied *pending_proxied;

static void start_session(const struct conf_listener *l, int fd, struct sockaddr *sa, socklen_t len);

static void
on_closed(struct server *srv, const struct sockaddr *peer)
{
	connlimit_leave(W.cl, W.index, peer);
	if (W.draining && srv->nsessions == 0)
		ev_break(srv->loop, EVBREAK_ALL);
	/* A descriptor came free: no need to sit out the back-off. */
	if (W.paused && !W.draining) {
		ev_timer_stop(srv->loop, &W.resume);
		on_resume(srv->loop, &W.resume, 0);
	}
}

static void
listeners_start(struct ev_loop *loop)
{
	for (int i = 0; i < W.nlisten; i++)
		ev_io_start(loop, &W.listen[i]);
}

static void
on_resume(struct ev_loop *loop, ev_timer *w, int revents)
{
	W.paused = 0;
	if (!W.draining)
		listeners_start(loop);
}

/* The 421 for a client we cannot serve for want of a descriptor. */
static void
shed_one(int lfd)
{
	const struct conf *c = W.srv.conf;
	char msg[300];
	int fd, n;

	if (W.reserve_fd < 0)
		return;
	close(W.reserve_fd);
	W.reserve_fd = -1;
	if ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		n = snprintf(msg, sizeof msg, "421 4.3.2 %s Error: too busy, try again later\r\n", c->hostname);
		(void)!send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
		close(fd);
		W.shed++;
	}
	W.reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void
out_of_fds(struct ev_loop *loop, int lfd, int err)
{
	double t = ev_now(loop);

	W.failed++;
	shed_one(lfd);
	if (W.logged_at == 0 || t - W.logged_at >= ACCEPT_LOG_EVERY) {
		char shed[24], failed[24], pause[24];
		snprintf(shed, sizeof shed, "%lu", W.shed);
		snprintf(failed, sizeof failed, "%lu", W.failed);
		snprintf(pause, sizeof pause, "%.2f", W.backoff ? W.backoff : ACCEPT_BACKOFF_MIN);
		log_event("accept_error", "error", strerror(err), "failed", failed, "shed", shed,
		    "pause", pause, NULL);
		W.logged_at = t;
		W.shed = W.failed = 0;
	}
	W.backoff = W.backoff ? W.backoff * 2 : ACCEPT_BACKOFF_MIN;
	if (W.backoff > ACCEPT_BACKOFF_MAX)
		W.backoff = ACCEPT_BACKOFF_MAX;
	for (int i = 0; i < W.nlisten; i++)
		ev_io_stop(loop, &W.listen[i]);
	W.paused = 1;
	ev_timer_stop(loop, &W.resume);
	ev_timer_set(&W.resume, W.backoff, 0);
	ev_timer_start(loop, &W.resume);
}

static const char *
addr_str(const struct sockaddr_storage *ss, char *buf, size_t n)
{
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)ss;
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			return inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], buf, (socklen_t)n);
		return inet_ntop(AF_INET6, &in6->sin6_addr, buf, (socklen_t)n);
	}
	return inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, buf, (socklen_t)n);
}

static void
proxy_done(struct proxied *p, int close_fd)
{
	ev_io_stop(W.srv.loop, &p->io);
	ev_timer_stop(W.srv.loop, &p->timer);
	if (close_fd)
		close(p->fd);
	if ((*p->pprev = p->next) != NULL)
		p->next->pprev = p->pprev;
	free(p);
}

/* No session, no reply: the client behind a broken or untrusted proxy is
 * not ours to talk to; the log says why. */
static void
proxy_refuse(struct proxied *p, const char *why)
{
	char from[INET6_ADDRSTRLEN];

	log_event("proxy_refused", "from", addr_str(&p->from, from, sizeof from), "listener", p->l->address,
	    "error", why, NULL);
	proxy_done(p, 1);
}

static void
on_proxy_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct proxied *p = w->data;
	unsigned char buf[PROXY_MAX];
	struct proxy_hdr h;
	const char *why;
	ssize_t n = recv(p->fd, buf, sizeof buf, MSG_PEEK);
	int rc;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		proxy_refuse(p, n == 0 ? "closed before the PROXY header" : strerror(errno));
		return;
	}
	if ((rc = proxy_parse(buf, (size_t)n, &h, &why)) == PROXY_MORE)
		return;                 /* the timer ends a header that never completes */
	if (rc == PROXY_BAD) {
		proxy_refuse(p, why);
		return;
	}
	/* Take the header, and not one byte of the client's SMTP. */
	if (recv(p->fd, buf, h.len, 0) != (ssize_t)h.len) {
		proxy_refuse(p, "short read of the PROXY header");
		return;
	}
	{
		const struct conf_listener *l = p->l;
		int fd = p->fd;
		struct sockaddr_storage sa = h.local ? p->from : h.src;
		socklen_t len = h.local ? sizeof p->from : h.srclen;
		char from[INET6_ADDRSTRLEN], client[INET6_ADDRSTRLEN];

		log_event("proxy", "from", addr_str(&p->from, from, sizeof from),
		    "client", addr_str(&sa, client, sizeof client), "version", h.version == 2 ? "2" : "1",
		    "listener", l->address, NULL);
		proxy_done(p, 0);
		start_session(l, fd, (struct sockaddr *)&sa, len);
	}
}

static void
on_proxy_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	proxy_refuse(w->data, "no complete PROXY header in time");
}

static void
proxy_wait(const struct conf_listener *l, int fd, const struct sockaddr_storage *from)
{
	struct proxied *p;
	char addr[INET6_ADDRSTRLEN];

	if (!conf_net_match(l->proxy_from, l->nproxy_from, (const struct sockaddr *)from)) {
		log_event("proxy_refused", "from", addr_str(from, addr, sizeof addr), "listener", l->address,
		    "error", "source not in proxy_from", NULL);
		close(fd);
		return;
	}
	if (!(p = calloc(1, sizeof *p))) {
		close(fd);
		return;
	}
	p->fd = fd;
	p->l = l;
	p->from = *from;
	ev_io_init(&p->io, on_proxy_read, fd, EV_READ);
	p->io.data = p;
	ev_timer_init(&p->timer, on_proxy_timeout, W.srv.conf->timeouts.command, 0);
	p->timer.data = p;
	if ((p->next = pending_proxied) != NULL)
		p->next->pprev = &p->next;
	p->pprev = &pending_proxied;
	pending_proxied = p;
	ev_io_start(W.srv.loop, &p->io);
	ev_timer_start(W.srv.loop, &p->timer);
}

static void
on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	const struct conf_listener *l = w->data;

	/* A bounded batch per wake-up: the other workers get their share. */
	for (int i = 0; i < 32; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof ss;
		int one = 1, fd = accept4(w->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				out_of_fds(loop, w->fd, errno);
			return;
		}
		W.backoff = 0;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if (l->proxy_protocol)
			proxy_wait(l, fd, &ss);
		else
			start_session(l, fd, (struct sockaddr *)&ss, len);
	}
}

static void
start_session(const struct conf_listener *l, int fd, struct sockaddr *sa, socklen_t len)
{
	const struct conf *c = W.srv.conf;
	const char *which;

	if (connlimit_enter(W.cl, W.index, sa, c->limits.max_connections, c->limits.max_per_ip, &which) < 0) {
		char msg[300];
		int n = snprintf(msg, sizeof msg, "421 4.7.0 %s Error: %s, try again later\r\n",
		    c->hostname, which);
		(void)!send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
		metrics_reply(STAGE_CONNECT, 421, "connection_limit");
		log_event("reject", "stage", "connect", "code", "421", "enhanced", "4.7.0",
		    "reason", "connection_limit", "text", which, "dir", direction_str(l->direction), NULL);
		close(fd);
		return;
	}
	smtp_session_start(&W.srv, fd, l, sa, len);
}

static void
reload(void)
{
	struct conf *c = calloc(1, sizeof *c);
	struct world net;
	SSL_CTX *tls;
	char err[1024], key[sizeof W.net_key];

	log_reopen();
	if (!c)
		return;
	if (conf_load(c, W.srv.conf->path, err, sizeof err) < 0) {
		log_event("reload_failed", "error", err, NULL);
		metrics_count(MC_RELOAD_FAILED, 1);
		conf_free(c);
		free(c);
		return;
	}
	/* All or nothing: the certificate, then the rules; the first that
	 * fails leaves everything as it was. */
	if (!(tls = tls_reload_ctx(c->tls_cert, c->tls_key, c->hostname, err, sizeof err)) && err[0]) {
		log_event("reload_failed", "error", err, NULL);
		metrics_count(MC_RELOAD_FAILED, 1);
		conf_free(c);
		free(c);
		return;
	}
	/* Changed resolver or callout settings: a new pair beside the old. */
	net.loop = NULL;
	if (W.world.dns && strcmp(world_net_key(c, key, sizeof key), W.net_key) != 0) {
		net = W.world;
		if (world_net_open(&net, c, err, sizeof err) < 0) {
			log_event("reload_failed", "error", err, NULL);
			metrics_count(MC_RELOAD_FAILED, 1);
			SSL_CTX_free(tls);
			conf_free(c);
			free(c);
			return;
		}
	}
	if (W.srv.policy.ops->reload(W.srv.policy.self, c, err, sizeof err) < 0) {
		log_event("reload_failed", "error", err, NULL);
		metrics_count(MC_RELOAD_FAILED, 1);
		if (net.loop) {
			world_net_retire(&net, 0, NULL);        /* nobody used it */
		}
		SSL_CTX_free(tls);
		conf_free(c);
		free(c);
		return;
	}
	if (net.loop) {
		world_net_retire(&W.world, c->timeouts.rule + 5, W.net_conf);
		W.net_conf = conf_hold(c);
		W.world.dns = net.dns;
		W.world.callout = net.callout;
		policy_world_changed(&W.srv.policy, &W.world);
		snprintf(W.net_key, sizeof W.net_key, "%s", key);
	}
	if (tls) {
		/* Sessions already in TLS hold a reference to the old context. */
		SSL_CTX_free(W.srv.tls);
		W.srv.tls = tls;
	}
	conf_release(W.srv.conf);
	W.srv.conf = conf_hold(c);
	metrics_count(MC_RELOAD_OK, 1);
	metrics_loaded();
	log_event("reloaded", "worker", W.index == 0 ? "0" : NULL, NULL);
}

static void
on_sighup(struct ev_loop *loop, ev_signal *w, int revents)
{
	reload();
	ready_tell_master(W.index);     /* done, whether it took or not */
}

static void
on_grace(struct ev_loop *loop, ev_timer *w, int revents)
{
	smtp_close_all(&W.srv, "shutdown");
}

static void
on_sigterm(struct ev_loop *loop, ev_signal *w, int revents)
{
	if (W.draining)
		return;
	W.draining = 1;
	while (pending_proxied)         /* not yet sessions: nothing to finish */
		proxy_done(pending_proxied, 1);
	/* Closed here and in the master: new clients are refused at once and
	 * try another MX, instead of waiting in a backlog nobody accepts. */
	ev_timer_stop(loop, &W.resume);
	for (int i = 0; i < W.nlisten; i++) {
		ev_io_stop(loop, &W.listen[i]);
		close(W.listen[i].fd);
	}
	if (W.srv.nsessions == 0) {
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	ev_timer_init(&W.grace, on_grace, W.srv.conf->timeouts.shutdown, 0);
	ev_timer_start(loop, &W.grace);
}

int
worker_main(int index, struct conf *conf, const int *listen_fds, struct connlimit *cl, SSL_CTX *tls)
{
	struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
	char err[1024];

	W.index = index;
	W.cl = cl;
	W.srv.loop = loop;
	W.srv.conf = conf_hold(conf);
	W.srv.tls = tls;
	W.srv.closed = on_closed;
	signal(SIGPIPE, SIG_IGN);
	W.reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ev_init(&W.resume, on_resume);
	if (!(W.srv.spool = spool_open(loop, conf->spool_dir, err, sizeof err))) {
		log_event("fatal", "error", err, NULL);
		return 1;
	}
	if (conf->journal.sample > 0) {
		struct journal_conf jc = {
			.dir = conf->journal.dir, .sample = conf->journal.sample,
			.max_record = (size_t)conf->journal.max_record,
			.max_file = (size_t)conf->journal.max_file,
			.max_headers = (size_t)conf->journal.max_headers,
		};
		if (!(W.srv.journal = journal_writer_open(&jc, err, sizeof err)))
			log_event("journal_error", "error", err, NULL);
	}
	if (world_open(&W.world, conf, loop, err, sizeof err) < 0 ||
	    policy_open(&W.srv.policy, conf, &W.world, err, sizeof err) < 0) {
		log_event("fatal", "error", err, NULL);
		return 1;
	}
	world_net_key(conf, W.net_key, sizeof W.net_key);
	W.net_conf = conf_hold(conf);
	for (int i = 0; i < conf->nlisten; i++) {
		ev_io_init(&W.listen[i], on_accept, listen_fds[i], EV_READ);
		W.listeners[i] = conf->listen[i];
		W.listen[i].data = &W.listeners[i];
		ev_io_start(loop, &W.listen[i]);
	}
	W.nlisten = conf->nlisten;
	ev_signal_init(&W.sighup, on_sighup, SIGHUP);
	ev_signal_start(loop, &W.sighup);
	ev_signal_init(&W.sigterm, on_sigterm, SIGTERM);
	ev_signal_start(loop, &W.sigterm);
	ev_signal_init(&W.sigint, on_sigterm, SIGINT);
	ev_signal_start(loop, &W.sigint);
	log_event("worker_start", "policy", W.srv.policy.ops->name, NULL);
	metrics_loaded();
	ready_tell_master(index);       /* first generation loaded, accepting */

	ev_run(loop, 0);

	spool_close(W.srv.spool);
	journal_writer_close(W.srv.journal);
	W.srv.policy.ops->free(W.srv.policy.self);
	world_close(&W.world);
	log_event("worker_stop", NULL);
	return 0;
}
