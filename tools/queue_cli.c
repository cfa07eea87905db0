/*
 * queue_cli.c - `mxgate queue`: the operators' view of the delivery queue
 * (like mailq / postqueue -p / smtpctl show queue), working while the
 * server runs: it reads the queue and status files, and asks the running
 * delivery process to act through spool/control/ and a SIGUSR1.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "master.h"
#include "queue.h"
#include "queue_cli.h"
#include "routing.h"
#include "version.h"

struct ctx {
	const struct conf *conf;
	const char        *want;        /* show: this qid */
	int                n, shown;
	struct dcount { char key[600]; int n; } *counts;
	int                ncounts;
	int                mode;        /* 0 list, 1 show, 2 counts */
};

static void
usage(int code)
{
	fprintf(code ? stderr : stdout,
	    "usage: mxgate queue [-c FILE] list            every queued message\n"
	    "       mxgate queue [-c FILE] show QID        one message, recipient by recipient\n"
	    "       mxgate queue [-c FILE] counts          pending recipients by destination\n"
	    "       mxgate queue [-c FILE] flush [QID|DOMAIN]  retry now (all, one message, one domain)\n"
	    "       mxgate queue [-c FILE] hold QID | release QID | delete QID\n"
	    "       mxgate queue --help | --version\n");
	exit(code);
}

static const char *
age(time_t t, char *buf, size_t len)
{
	long s = (long)(time(NULL) - t);

	if (s < 0)
		s = 0;
	if (s < 120)
		snprintf(buf, len, "%lds", s);
	else if (s < 7200)
		snprintf(buf, len, "%ldm", s / 60);
	else if (s < 172800)
		snprintf(buf, len, "%ldh", s / 3600);
	else
		snprintf(buf, len, "%ldd", s / 86400);
	return buf;
}

static const char *
next(const struct qenv *e, char *buf, size_t len)
{
	long in;

	if (e->held)
		return "held";
	if (!e->next_due)
		return "now";
	in = (long)(e->next_due - time(NULL));
	if (in <= 0)
		return "now";
	snprintf(buf, len, "in %lds", in);
	return buf;
}

static void
count(struct ctx *x, const char *key)
{
	for (int i = 0; i < x->ncounts; i++)
		if (strcmp(x->counts[i].key, key) == 0) {
			x->counts[i].n++;
			return;
		}
	struct dcount *nc = realloc(x->counts, (size_t)(x->ncounts + 1) * sizeof *nc);
	if (!nc)
		return;
	x->counts = nc;
	snprintf(nc[x->ncounts].key, sizeof nc[0].key, "%s", key);
	nc[x->ncounts++].n = 1;
}

static void
one(void *arg, const char *qid)
{
	struct ctx *x = arg;
	struct qenv e;
	char why[256], a[32], nx[32], key[600], dom[300];
	int pending = 0, tls;

	if (x->want && strcmp(qid, x->want) != 0)
		return;
	if (queue_load(x->conf->spool_dir, qid, &e, why, sizeof why) < 0) {
		if (x->mode != 2)
			printf("%-20s %s\n", qid, why);
		return;
	}
	for (int i = 0; i < e.nrcpt; i++)
		pending += e.rcpt[i].state == R_PENDING;
	x->n++;
	if (x->mode == 0) {
		if (x->n == 1)
			printf("%-20s %5s %9s %-30s %7s %-8s %s\n", "QID", "AGE", "SIZE", "SENDER",
			    "PENDING", "NEXT", "LAST ERROR");
		printf("%-20s %5s %9lld %-30s %3d/%-3d %-8s %s\n", qid, age(e.arrived, a, sizeof a),
		    e.size - e.body_off, e.sender[0] ? e.sender : "<>", pending, e.nrcpt,
		    next(&e, nx, sizeof nx), e.last_error ? e.last_error : "");
	} else if (x->mode == 1) {
		x->shown = 1;
		printf("qid: %s\narrived: %s ago\nsize: %lld\nsender: <%s>\ndirection: %s\n"
		    "held: %s\nattempts: %d\nnext attempt: %s\n", qid, age(e.arrived, a, sizeof a),
		    e.size - e.body_off, e.sender, e.inbound ? "inbound" : "outbound",
		    e.held ? "yes" : "no", e.attempts, next(&e, nx, sizeof nx));
		for (int i = 0; i < e.nrcpt; i++) {
			const struct qrcpt *r = &e.rcpt[i];
			routing_dest(x->conf, r, key, sizeof key, dom, sizeof dom, &tls, why, sizeof why);
			printf("rcpt: <%s> %s via %s%s%s\n", r->addr,
			    r->state == R_DONE ? "delivered" : r->state == R_FAILED ? "failed" : "pending",
			    key, r->reply ? ": " : "", r->reply ? r->reply : "");
		}
	} else {
		for (int i = 0; i < e.nrcpt; i++)
			if (e.rcpt[i].state == R_PENDING &&
			    routing_dest(x->conf, &e.rcpt[i], key, sizeof key, dom, sizeof dom, &tls,
			    why, sizeof why) == 0)
				count(x, key);
	}
	queue_env_free(&e);
}

/* Tells the running delivery process; says so when none runs. */
static int
tell(const struct conf *c, const char *req)
{
	int rc = queue_control(c->spool_dir, req);

	if (rc < 0) {
		fprintf(stderr, "mxgate queue: %s/control: %s\n", c->spool_dir, strerror(errno));
		return 1;
	}
	if (rc == 0)
		printf("no delivery process is running: done at its next start\n");
	return 0;
}

static int
exists(const struct conf *c, const char *qid)
{
	char p[1200];

	if (strchr(qid, '/') || qid[0] == '.' || !qid[0])
		return 0;
	snprintf(p, sizeof p, "%s/queue/%s", c->spool_dir, qid);
	return access(p, F_OK) == 0;
}

int
queue_cli_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = "etc/mxgate.lua", *cmd;
	struct conf c;
	struct ctx x;
	char err[1024], req[400];
	int opt, rc = 0;

	while ((opt = getopt_long(argc, argv, "+c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case 'h': usage(0); break;
		case 'V': printf("mxgate queue %s\n", MXGATE_VERSION); return 0;
		default: usage(2);
		}
	}
	if (optind >= argc)
		usage(2);
	cmd = argv[optind++];
	if (conf_load(&c, path, err, sizeof err) < 0) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	/* The spool is the user's: root would leave files it cannot use. */
	if (master_run_as(&c, err, sizeof err) < 0) {
		fprintf(stderr, "mxgate queue: %s\n", err);
		return 2;
	}
	memset(&x, 0, sizeof x);
	x.conf = &c;
	if (strcmp(cmd, "list") == 0 && optind == argc) {
		queue_scan(c.spool_dir, one, &x);
		if (x.n == 0)
			printf("the queue is empty\n");
	} else if (strcmp(cmd, "counts") == 0 && optind == argc) {
		x.mode = 2;
		queue_scan(c.spool_dir, one, &x);
		for (int i = 0; i < x.ncounts; i++)
			printf("%6d %s\n", x.counts[i].n, x.counts[i].key);
		free(x.counts);
	} else if (strcmp(cmd, "show") == 0 && optind + 1 == argc) {
		x.mode = 1;
		x.want = argv[optind];
		if (exists(&c, x.want))
			one(&x, x.want);
		if (!x.shown) {
			fprintf(stderr, "mxgate queue: %s: no such message\n", x.want);
			rc = 1;
		}
	} else if (strcmp(cmd, "flush") == 0 && optind + 1 >= argc) {
		snprintf(req, sizeof req, "flush%s%.300s", optind < argc ? " " : "",
		    optind < argc ? argv[optind] : "");
		rc = tell(&c, req);
	} else if ((strcmp(cmd, "hold") == 0 || strcmp(cmd, "release") == 0 ||
	    strcmp(cmd, "delete") == 0) && optind + 1 == argc) {
		const char *qid = argv[optind];

		if (!exists(&c, qid)) {
			fprintf(stderr, "mxgate queue: %s: no such message\n", qid);
			rc = 1;
		} else {
			if (cmd[0] == 'd')
				queue_remove(c.spool_dir, qid);
			else if (queue_note(c.spool_dir, qid, 1, "%s", cmd[0] == 'h' ? "H" : "R") < 0) {
				fprintf(stderr, "mxgate queue: %s: %s\n", qid, strerror(errno));
				rc = 1;
			}
			snprintf(req, sizeof req, "refresh %.300s", qid);
			if (rc == 0)
				rc = tell(&c, req);
		}
	} else {
		fprintf(stderr, "mxgate queue: unknown command: %s\n", cmd);
		usage(2);
	}
	conf_free(&c);
	return rc;
}
