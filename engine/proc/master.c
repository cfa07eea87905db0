/*
 * master.c - bind the listeners, prepare the spool and certificate, drop
 * root, start one worker per core and keep them running.
 *
 * The master runs no event loop: it waits for signals (sigwaitinfo) and
 * nothing else, so it has no code path a client can reach.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "clock.h"
#include "connlimit.h"
#include "delivery.h"
#include "http.h"
#include "log.h"
#include "master.h"
#include "metrics.h"
#include "readiness.h"
#include "safepath.h"
#include "spool.h"
#include "tls.h"
#include "worker.h"

#define MAX_WORKERS 256

struct child {
	pid_t  pid;
	double started;
};

/*
 * One socket per listener and worker, all bound to the same address with
 * SO_REUSEPORT: the kernel spreads new connections over the workers by a
 * hash of the 4-tuple. With one shared socket, the worker that happened to
 * be awake took every connection of a burst and left the other core idle
 * (20 reused sessions all landed on one worker). The master keeps every
 * socket, so connections hashed to a worker that died wait in its queue for
 * the replacement instead of being refused.
 */
static int
bind_listener(const struct conf_listener *l, int reuseport, char *err, size_t errlen)
{
	int one = 1, fd = socket(l->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
		goto fail;
	if (l->sa.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	if (bind(fd, (const struct sockaddr *)&l->sa, l->salen) < 0 || listen(fd, 1024) < 0)
		goto fail;
	return fd;
fail:
	snprintf(err, errlen, "listen %s:%d: %s", l->address, l->port, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

/*
 * Another root process listening with SO_REUSEPORT on the same address
 * (a second mxgate) would silently share our connections: a socket bound
 * without it first proves the address is free, as a plain bind would.
 */
static int
bind_listeners(const struct conf *c, int n, int *fds, char *err, size_t errlen)
{
	for (int i = 0; i < c->nlisten; i++) {
		int probe = bind_listener(&c->listen[i], 0, err, errlen);

		if (probe < 0)
			return -1;
		close(probe);
	}
	for (int i = 0; i < n * c->nlisten; i++)
		if ((fds[i] = bind_listener(&c->listen[i % c->nlisten], 1, err, errlen)) < 0)
			return -1;
	return 0;
}

/* In a child: close the listening sockets that are not worker `keep`'s (-1: all). */
static void
close_listeners(const struct conf *c, const int *fds, int n, int keep)
{
	for (int w = 0; w < n; w++)
		if (w != keep)
			for (int i = 0; i < c->nlisten; i++)
				close(fds[w * c->nlisten + i]);
}

/* Root binds and prepares; the rest runs as conf->user. */
static int
drop_privileges(const struct conf *c, uid_t *uid, gid_t *gid, char *err, size_t errlen)
{
	struct passwd *pw;

	*uid = (uid_t)-1;
	*gid = (gid_t)-1;
	if (geteuid() != 0)
		return 0;
	if (!(pw = getpwnam(c->user))) {
		snprintf(err, errlen, "user \"%s\" does not exist: create it (adduser --system --group "
		    "--no-create-home %s) or set `user`", c->user, c->user);
		return -1;
	}
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	return 0;
}

static int
become(uid_t uid, gid_t gid, char *err, size_t errlen)
{
	if (uid == (uid_t)-1)
		return 0;
	if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
		snprintf(err, errlen, "dropping privileges: %s", strerror(errno));
		return -1;
	}
	if (setuid(0) == 0) {
		snprintf(err, errlen, "dropping privileges: still able to become root");
		return -1;
	}
	return 0;
}

int
master_run_as(const struct conf *c, char *err, size_t errlen)
{
	uid_t uid;
	gid_t gid;

	if (drop_privileges(c, &uid, &gid, err, errlen) < 0)
		return -1;
	return become(uid, gid, err, errlen);
}

/* In a new child: die with the master, take signals again. 0 in the child. */
static pid_t
fork_child(void)
{
	pid_t master = getpid(), pid = fork();

	if (pid == 0) {
		sigset_t none;
		/* A master that dies takes its children along (gracefully): a new
		 * master could not bind beside orphans, and nobody would restart them. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != master)
			_exit(1);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
	}
	return pid;
}

/* The HTTP listener's socket, -1 without `http`: only its process keeps it. */
static int http_fd = -1;

/* Worker `index` of n, on its own row of fds (n rows of c->nlisten sockets). */
static pid_t
spawn(int index, int n, struct conf *c, const int *fds, struct connlimit *cl, SSL_CTX *tls)
{
	pid_t pid = fork_child();

	if (pid == 0) {
		close_listeners(c, fds, n, index);
		if (http_fd >= 0)
			close(http_fd);
		metrics_slot(index);
		_exit(worker_main(index, c, fds + index * c->nlisten, cl, tls));
	}
	return pid;
}

/* The delivery process: same supervision as a worker, no listener. */
static pid_t
spawn_delivery(struct conf *c, const int *fds, int n)
{
	pid_t pid = fork_child();

	if (pid == 0) {
		close_listeners(c, fds, n, -1);
		if (http_fd >= 0)
			close(http_fd);
		if (metrics_shared())
			metrics_slot(METRICS_DELIVERY(metrics_shared()));
		_exit(delivery_main(c));
	}
	return pid;
}

/* The HTTP process (/metrics, /healthz, the portal): no SMTP socket, its
 * own loop; it only reads the shared counters. */
static pid_t
spawn_http(struct conf *c, const int *fds, int n)
{
	pid_t pid = fork_child();

	if (pid == 0) {
		close_listeners(c, fds, n, -1);
		metrics_slot(-1);
		_exit(http_main(c, http_fd));
	}
	return pid;
}

static void
log_death(const char *event, const char *key, pid_t pid, int status)
{
	char p[16], st[32];

	snprintf(p, sizeof p, "%d", (int)pid);
	snprintf(st, sizeof st, "%s %d", WIFSIGNALED(status) ? "signal" : "exit",
	    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	log_event(event, key, p, "status", st, NULL);
}

static void
raise_nofile(int want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)want) {
		rl.rlim_cur = rl.rlim_max < (rlim_t)want ? rl.rlim_max : (rlim_t)want;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int
master_main(struct conf *c)
{
	int fds[CONF_MAX_LISTEN * MAX_WORKERS], n = c->workers, running = 1, alive, sfd;
	struct child kids[MAX_WORKERS], dl = { 0, 0 }, hp = { 0, 0 };
	struct connlimit *cl;
	SSL_CTX *tls;
	char err[1024], tlsdir[1024];
	uid_t uid;
	gid_t gid;
	sigset_t set;
	double deadline = 0;

	if (n <= 0)
		n = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (n <= 0)
		n = 1;
	if (n > MAX_WORKERS)
		n = MAX_WORKERS;
	raise_nofile(c->limits.max_connections + 256);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, READY_SIGNAL);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (drop_privileges(c, &uid, &gid, err, sizeof err) < 0)
		goto fatal;
	/* Everything under state_dir is the user's to change: root reaches it
	 * through descriptors that refuse planted links (safepath.h). */
	if ((sfd = safe_mkdir(c->state_dir, 0750)) < 0 || safe_own(sfd, uid, gid, 0) < 0) {
		snprintf(err, sizeof err, "%s: %s", c->state_dir, strerror(errno));
		if (sfd >= 0)
			close(sfd);
		goto fatal;
	}
	close(sfd);
	if (spool_prepare(c->spool_dir, uid, gid) < 0) {
		snprintf(err, sizeof err, "%s: %s", c->spool_dir, strerror(errno));
		goto fatal;
	}
	snprintf(tlsdir, sizeof tlsdir, "%s/tls", c->state_dir);
	if (!(tls = tls_server_ctx(c->tls_cert, c->tls_key, tlsdir, c->hostname, err, sizeof err)))
		goto fatal;
	if (bind_listeners(c, n, fds, err, sizeof err) < 0)
		goto fatal;
	if (c->http.enabled) {
		struct conf_listener hl = { .port = c->http.port, .sa = c->http.sa, .salen = c->http.salen };
		snprintf(hl.address, sizeof hl.address, "%s", c->http.address);
		if ((http_fd = bind_listener(&hl, 0, err, sizeof err)) < 0)
			goto fatal;
	}
	if (uid != (uid_t)-1 && log_chown(uid, gid) < 0) {
		snprintf(err, sizeof err, "chown %s: %s", c->log_file, strerror(errno));
		goto fatal;
	}
	if (become(uid, gid, err, sizeof err) < 0)
		goto fatal;
	/* As the user: what a dead run left in tmp/ is that user's to remove. */
	spool_clean_tmp(c->spool_dir, 0);
	/* Workers load the rules as this user: say so now, not in a restart loop. */
	if (c->rules[0]) {
		char lib[600];
		snprintf(lib, sizeof lib, "%s/mxgate.lua", c->stdlib);
		if (access(c->rules, R_OK | X_OK) < 0 || access(lib, R_OK) < 0) {
			snprintf(err, sizeof err, "user \"%.60s\" cannot read %.300s or %.300s (%s): set `user`, "
			    "or keep the rules where that user can read them", c->user, c->rules, lib,
			    strerror(errno));
			goto fatal;
		}
	}
	if (!(cl = connlimit_new(n))) {
		snprintf(err, sizeof err, "shared memory: %s", strerror(errno));
		goto fatal;
	}
	/* Counters live as long as the master: a restarted child adds to them. */
	if (c->http.enabled) {
		if (metrics_new(n) < 0) {
			snprintf(err, sizeof err, "shared memory for metrics: %s", strerror(errno));
			goto fatal;
		}
		metrics_slot(METRICS_MASTER(metrics_shared()));
		metrics_set(MG_GENERATION, 1);
	}
	for (int i = 0; i < n; i++) {
		ready_expect(i);
		kids[i].pid = spawn(i, n, c, fds, cl, tls);
		kids[i].started = clock_mono();
	}
	if (c->delivery.enabled) {
		dl.pid = spawn_delivery(c, fds, n);
		dl.started = clock_mono();
	}
	if (c->http.enabled) {
		hp.pid = spawn_http(c, fds, n);
		hp.started = clock_mono();
	}
	{
		char nw[16];
		snprintf(nw, sizeof nw, "%d", n);
		log_event("started", "workers", nw, "hostname", c->hostname, NULL);
	}

	for (;;) {
		siginfo_t si;
		struct timespec ts = { 1, 0 };
		int sig = sigtimedwait(&set, &si, &ts);
		pid_t pid;
		int status;

		/* Reap everything that exited, restart what should run. */
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			if (pid == dl.pid) {
				dl.pid = 0;
				spool_clean_tmp(c->spool_dir, pid);     /* its bounces being written, its ring */
				if (running)
					log_death("delivery_died", "pid", pid, status);
			}
			if (pid == hp.pid) {
				hp.pid = 0;
				if (running)
					log_death("http_died", "pid", pid, status);
			}
			for (int i = 0; i < n; i++) {
				if (kids[i].pid != pid)
					continue;
				kids[i].pid = 0;
				connlimit_reset(cl, i);
				metrics_forget(i);
				spool_clean_tmp(c->spool_dir, pid);
				if (running)
					log_death("worker_died", "worker_pid", pid, status);
			}
		}
		if (sig == SIGHUP) {
			struct conf test;
			SSL_CTX *ntls;
			log_reopen();
			if (conf_load(&test, c->path, err, sizeof err) < 0) {
				log_event("reload_failed", "error", err, NULL);
				metrics_count(MC_RELOAD_FAILED, 1);
				ready_reload_failed(err);
			} else if (!(ntls = tls_reload_ctx(test.tls_cert, test.tls_key, test.hostname, err,
			    sizeof err)) && err[0]) {
				/* A broken certificate changes nothing anywhere. */
				log_event("reload_failed", "error", err, NULL);
				metrics_count(MC_RELOAD_FAILED, 1);
				ready_reload_failed(err);
			} else {
				int alive_now[MAX_WORKERS];
				if (ntls) {             /* what workers started from now on get */
					SSL_CTX_free(tls);
					tls = ntls;
				}
				metrics_gauge_add(MG_GENERATION, 1);   /* before the workers read it */
				for (int i = 0; i < n; i++)
					alive_now[i] = kids[i].pid > 0;
				ready_reloading(alive_now, n);
				for (int i = 0; i < n; i++)
					if (kids[i].pid > 0)
						kill(kids[i].pid, SIGHUP);
				if (dl.pid > 0)
					kill(dl.pid, SIGHUP);
				if (hp.pid > 0)
					kill(hp.pid, SIGHUP);
			}
			conf_free(&test);
		} else if (sig == READY_SIGNAL) {
			ready_ack(si.si_value.sival_int);
		} else if ((sig == SIGTERM || sig == SIGINT) && running) {
			running = 0;
			ready_stopping();
			deadline = clock_mono() + c->timeouts.shutdown + 5;
			log_event("stopping", NULL);
			for (int i = 0; i < n; i++)
				if (kids[i].pid > 0)
					kill(kids[i].pid, SIGTERM);
			if (dl.pid > 0)
				kill(dl.pid, SIGTERM);
			if (hp.pid > 0)
				kill(hp.pid, SIGTERM);
			if (http_fd >= 0)
				close(http_fd);
			for (int i = 0; i < n * c->nlisten; i++)
				close(fds[i]);          /* the workers close theirs */
		}
		alive = 0;
		for (int i = 0; i < n; i++) {
			if (kids[i].pid > 0) {
				alive++;
				continue;
			}
			/* A worker that dies at once waits a second: no fork storm. */
			if (running && clock_mono() - kids[i].started >= 1.0) {
				ready_expect(i);
				kids[i].pid = spawn(i, n, c, fds, cl, tls);
				kids[i].started = clock_mono();
				alive++;
			} else if (running)
				alive++;
		}
		if (dl.pid > 0)
			alive++;
		else if (running && c->delivery.enabled && clock_mono() - dl.started >= 1.0) {
			dl.pid = spawn_delivery(c, fds, n);
			dl.started = clock_mono();
		}
		if (hp.pid > 0)
			alive++;
		else if (running && c->http.enabled && clock_mono() - hp.started >= 1.0) {
			hp.pid = spawn_http(c, fds, n);
			hp.started = clock_mono();
		}
		if (!running && alive == 0)
			break;
		if (!running && clock_mono() > deadline) {
			for (int i = 0; i < n; i++)
				if (kids[i].pid > 0)
					kill(kids[i].pid, SIGKILL);
			if (dl.pid > 0)
				kill(dl.pid, SIGKILL);
			if (hp.pid > 0)
				kill(hp.pid, SIGKILL);
		}
	}
	log_event("stopped", NULL);
	return 0;
fatal:
	log_event("fatal", "error", err, NULL);
	fprintf(stderr, "mxgate: %s\n", err);
	return 1;
}
