/*
 * callout - drives engine/net/callout.c against real SMTP servers, for spec/e2e.
 *
 *   callout [options] ROUTE|- ADDRESS [ADDRESS ...]
 *
 * ROUTE is a fixed route ("127.0.0.1:2525", "[::1]:2525", "mx:domain") or
 * "-" for the MX of each address's domain; an argument "route:ROUTE" sets
 * the route for the addresses after it (':' cannot start an address).
 * Every address is verified at once (identical ones coalesce); one line
 * per answer, in callback order:
 *
 *   ADDRESS RESULT code=N stage=S cached=0|1 host=H text=TEXT
 *
 * RESULT is OK, REJECTED, RCPT_REJECTED, RCPT_DEFERRED or UNREACHABLE.
 * The tool then waits (a few seconds at most) for its connections to
 * finish their QUIT, and exits 0.
 *
 * Options: --port N (MX and A routes), --dns SERVER ("127.0.0.1:5353"; default
 * resolv.conf), --dns-timeout S (per try, 2 tries), --timeout-connect S, --timeout-cmd S, --max-per-host N,
 * --from ADDR (MAIL FROM; default <>), --helo NAME, --starttls,
 * --state DIR (the LMDB callout cache), --no-cache (TTLs < 0),
 * --allow NET (repeatable: a network MX callouts may reach although it is
 * loopback or private; without one, "-" refuses every loopback MX),
 * --twice (repeat the batch once it is answered: cache hits),
 * --stats (counters at exit), --abandon (callout_free with the batch in
 * flight: nothing may print), --free-in-callback (callout_free from the
 * first answer: nothing else may print).
 */
#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "callout.h"
#include "conf.h"
#include "dns.h"
#include "state.h"

#define MAX_BATCH 256
#define DRAIN_MAX 10.0

static struct ev_loop *loop;
static struct callout *co;
static struct dns     *dns;
static struct state   *st;
static struct state_conf sc = { .backend = "lmdb" };
struct req {
	const char *route;                /* NULL: MX */
	const char *addr;
};

static const char     *from;          /* NULL: the conf's */
static struct req      reqs[MAX_BATCH];
static int             naddrs, outstanding, rounds;
static int             opt_twice, opt_stats, opt_abandon, opt_free_in_cb;
static ev_idle         next_w;
static ev_timer        drain_w;
static double          drain_until;

static void
print_stats(void)
{
	struct callout_stats s;

	if (!co)
		return;
	callout_get_stats(co, &s);
	printf("stats requests=%llu cache_hits=%llu coalesced=%llu connections=%llu "
	    "queued=%llu inflight=%zu open=%zu\n",
	    (unsigned long long)s.requests, (unsigned long long)s.cache_hits,
	    (unsigned long long)s.coalesced, (unsigned long long)s.connections,
	    (unsigned long long)s.queued, s.inflight, s.open);
}

/* Addresses come from argv and may hold line breaks (the tests try). */
static void
print_safe(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f || *s == ' ')
			printf("\\x%02x", (unsigned char)*s);
		else
			putchar(*s);
}

static void
answer_cb(void *arg, const struct callout_answer *a)
{
	const struct req *r = arg;
	const char *addr = r->addr;
	char res[32];
	size_t i;

	snprintf(res, sizeof res, "%s", callout_result_str(a->result));
	for (i = 0; res[i]; i++)
		res[i] = (char)toupper((unsigned char)res[i]);
	print_safe(addr);
	printf(" %s code=%d stage=%s cached=%d host=%s text=%s\n", res, a->code,
	    a->stage, a->cached, a->host[0] ? a->host : "-", a->text);
	fflush(stdout);
	if (opt_free_in_cb && co) {
		/* Deferred by callout.c: we are inside its callback. */
		callout_free(co);
		co = NULL;
		ev_idle_start(loop, &next_w);
		return;
	}
	if (--outstanding == 0)
		ev_idle_start(loop, &next_w);
}

static void
run_batch(void)
{
	int i;

	outstanding += naddrs;
	for (i = 0; i < naddrs && co; i++)
		callout_verify(co, reqs[i].route, from, reqs[i].addr, answer_cb, &reqs[i]);
	if (opt_abandon && co) {
		callout_free(co);
		co = NULL;
		ev_idle_start(loop, &next_w);
	}
}

/* Waits for the connections' QUITs, so servers see clean sessions. */
static void
drain_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	struct callout_stats s;

	if (co)
		callout_get_stats(co, &s);
	if (!co || s.open == 0 || ev_now(l) >= drain_until) {
		ev_timer_stop(l, w);
		ev_break(l, EVBREAK_ALL);
	}
}

/* A batch is answered: outside any callout.c frame, decide what is next. */
static void
next_cb(struct ev_loop *l, ev_idle *w, int revents)
{
	ev_idle_stop(l, w);
	if (co && outstanding > 0)
		return;
	rounds++;
	if (opt_twice && rounds == 1 && co) {
		run_batch();
		return;
	}
	drain_until = ev_now(l) + DRAIN_MAX;
	ev_timer_init(&drain_w, drain_cb, 0., 0.01);
	ev_timer_start(l, &drain_w);
}

static void
usage(void)
{
	fprintf(stderr, "usage: callout [--port N] [--dns SERVER] [--timeout-connect S] "
	    "[--dns-timeout S] [--timeout-cmd S] [--max-per-host N] [--from ADDR] [--helo NAME] [--starttls] "
	    "[--state DIR] [--no-cache] [--allow NET] [--twice] [--stats] [--abandon] [--free-in-callback] "
	    "ROUTE|- ADDRESS|route:ROUTE [ADDRESS...]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct callout_conf conf;
	struct dns_conf dconf = { .timeout = 1.0, .tries = 2, .cache_entries = 1000 };
	const char *route;
	char err[256];
	struct conf_net allow[8];
	int i;

	memset(&conf, 0, sizeof conf);
	signal(SIGPIPE, SIG_IGN);
	for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(o, "--twice") == 0)
			opt_twice = 1;
		else if (strcmp(o, "--stats") == 0)
			opt_stats = 1;
		else if (strcmp(o, "--abandon") == 0)
			opt_abandon = 1;
		else if (strcmp(o, "--free-in-callback") == 0)
			opt_free_in_cb = 1;
		else if (strcmp(o, "--starttls") == 0)
			conf.starttls = 1;
		else if (strcmp(o, "--no-cache") == 0)
			conf.positive_ttl = conf.negative_ttl = -1;
		else if (v == NULL)
			usage();
		else if (strcmp(o, "--port") == 0)
			conf.port = atoi(argv[++i]);
		else if (strcmp(o, "--dns") == 0)
			dconf.servers = argv[++i];
		else if (strcmp(o, "--dns-timeout") == 0)
			dconf.timeout = atof(argv[++i]);
		else if (strcmp(o, "--timeout-connect") == 0)
			conf.connect_timeout = atof(argv[++i]);
		else if (strcmp(o, "--timeout-cmd") == 0)
			conf.command_timeout = atof(argv[++i]);
		else if (strcmp(o, "--max-per-host") == 0)
			conf.max_per_host = atoi(argv[++i]);
		else if (strcmp(o, "--from") == 0)
			from = argv[++i];
		else if (strcmp(o, "--allow") == 0) {
			if (conf.nallow_nets == 8 || conf_parse_net(argv[++i], &allow[conf.nallow_nets]) < 0)
				usage();
			conf.allow_nets = allow;
			conf.nallow_nets++;
		} else if (strcmp(o, "--helo") == 0)
			snprintf(conf.helo, sizeof conf.helo, "%s", argv[++i]);
		else if (strcmp(o, "--state") == 0)
			snprintf(sc.dir, sizeof sc.dir, "%s", argv[++i]);
		else
			usage();
	}
	if (argc - i < 2)
		usage();
	route = strcmp(argv[i], "-") == 0 ? NULL : argv[i];
	for (i++; i < argc; i++) {
		if (strncmp(argv[i], "route:", 6) == 0) {
			route = strcmp(argv[i] + 6, "-") == 0 ? NULL : argv[i] + 6;
			continue;
		}
		if (naddrs == MAX_BATCH)
			usage();
		reqs[naddrs].route = route;
		reqs[naddrs++].addr = argv[i];
	}
	if (naddrs == 0)
		usage();

	loop = ev_loop_new(EVFLAG_AUTO);
	if (sc.dir[0] && !(st = state_open(&sc, loop, err, sizeof err))) {
		fprintf(stderr, "callout: %s\n", err);
		return 1;
	}
	if (!(dns = dns_new(loop, &dconf, err, sizeof err))) {
		fprintf(stderr, "callout: dns: %s\n", err);
		return 1;
	}
	if (!(co = callout_new(loop, dns, st, &conf, err, sizeof err))) {
		fprintf(stderr, "callout: %s\n", err);
		return 1;
	}
	ev_idle_init(&next_w, next_cb);
	run_batch();
	ev_run(loop, 0);

	if (opt_stats)
		print_stats();
	callout_free(co);           /* before the dns it uses */
	dns_free(dns);
	if (st)
		state_close(st);
	ev_idle_stop(loop, &next_w);
	ev_timer_stop(loop, &drain_w);
	ev_loop_destroy(loop);
	return 0;
}
