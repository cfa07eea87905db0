/*
 * hook_bench.c - the cost of one policy decision, without the network.
 *
 *   build/bench/hook_bench [-n CALLS] [-r REPEATS] CONFIG
 *
 * Loads CONFIG (an mxgate config file) and opens its policy exactly as a
 * worker does (world_open() and policy_open() on a libev loop: Lua generation, resolver,
 * LMDB state store, callout client; or the built-in C policy when
 * rules = false). One hand-built inbound session (127.0.0.1, HELO
 * client.test, MAIL sender@client.test, RCPT user@bench.test) is started
 * with ops->start; then, for each stage, ops->decide(stage) is called
 * CALLS times in a row and timed with CLOCK_THREAD_CPUTIME_ID (CPU time of
 * this thread: the time other processes of a shared machine take from us
 * is not counted). REPEATS such timings per stage give a median and a
 * minimum. Output: one JSON object
 * per line, {"stage": ..., "ns_median": ..., "ns_min": ..., "action": ...}.
 *
 * What one call covers: lua_resume of the session's coroutine into the
 * stdlib's hook runner, every rule of the stage's chain, the verdict
 * copied back to C. It does not cover the SMTP engine around it (parsing,
 * reply, journal): that is what the throughput variants of bench.py show.
 * A decision that waits (POLICY_PENDING: a rule doing I/O) is driven to
 * its resume on the loop and counted; the rulesets the bench uses never
 * wait.
 *
 * Built by bench/Makefile against build/libmxgate.a (the code the server
 * runs); run by bench/bench.py (variant "hookcost").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "conf.h"
#include "log.h"
#include "policy.h"
#include "session.h"
#include "worker.h"
#include "world.h"

static int resumed, pending;

static void
on_resume(struct session_info *s, const struct verdict *v)
{
	resumed++;
}

static double
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void
mkdirs(const char *path)
{
	char buf[600];

	snprintf(buf, sizeof buf, "%s", path);
	for (char *p = buf + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			mkdir(buf, 0755);
			*p = '/';
		}
	mkdir(buf, 0755);
}

static enum action
decide(struct policy *p, struct ev_loop *loop, struct session_info *s, enum stage st)
{
	struct verdict v;

	memset(&v, 0, sizeof v);        /* as the engine's decide() does */
	if (p->ops->decide(p->self, s, st, &v) == POLICY_PENDING) {
		int before = resumed;
		pending++;
		while (resumed == before)
			ev_run(loop, EVRUN_ONCE);
		return V_NONE;
	}
	return v.action;
}

int
main(int argc, char **argv)
{
	static const enum stage stages[] = {
		STAGE_CONNECT, STAGE_HELO, STAGE_MAIL, STAGE_RCPT,
		STAGE_PREDATA, STAGE_DATA, STAGE_QUIT,
	};
	static const char headers[] =
	    "Received: from client.test (localhost [127.0.0.1])\r\n"
	    "From: <sender@client.test>\r\nTo: <user@bench.test>\r\n"
	    "Subject: bench\r\nMessage-Id: <1@client.test>\r\n\r\n";
	struct conf c;
	struct policy p;
	struct session_info s;
	char err[512], dir[600];
	long calls = 20000;
	int reps = 7, opt;

	while ((opt = getopt(argc, argv, "n:r:")) != -1) {
		if (opt == 'n')
			calls = atol(optarg);
		else if (opt == 'r')
			reps = atoi(optarg);
		else
			goto usage;
	}
	if (optind != argc - 1 || calls < 1 || reps < 1 || reps > 99)
		goto usage;
	memset(&c, 0, sizeof c);
	if (conf_load(&c, argv[optind], err, sizeof err) < 0) {
		fprintf(stderr, "hook_bench: %s\n", err);
		return 1;
	}
	log_open(c.log_file);
	snprintf(dir, sizeof dir, "%s/state", c.state_dir);
	mkdirs(dir);
	struct ev_loop *loop = ev_default_loop(0);
	struct world w;
	if (world_open(&w, &c, loop, err, sizeof err) < 0 ||
	    policy_open(&p, &c, &w, err, sizeof err) < 0) {
		fprintf(stderr, "hook_bench: policy: %s\n", err);
		return 1;
	}

	memset(&s, 0, sizeof s);
	s.id = 1;
	snprintf(s.sid, sizeof s.sid, "hookbench1");
	s.direction = DIR_INBOUND;
	snprintf(s.client_ip, sizeof s.client_ip, "127.0.0.1");
	s.client_port = 40000;
	snprintf(s.local_ip, sizeof s.local_ip, "127.0.0.1");
	s.local_port = 2525;
	snprintf(s.helo, sizeof s.helo, "client.test");
	snprintf(s.mail.addr, sizeof s.mail.addr, "sender@client.test");
	s.mail.domain = strchr(s.mail.addr, '@') + 1;
	s.mail.size = -1;
	s.has_mail = 1;
	snprintf(s.rcpt.addr, sizeof s.rcpt.addr, "user@bench.test");
	s.rcpt.domain = strchr(s.rcpt.addr, '@') + 1;
	s.rcpt.size = -1;
	s.size = 2300;
	s.headers = headers;
	s.headers_len = sizeof headers - 1;
	snprintf(s.qid, sizeof s.qid, "1K19RSTEAFBFVX00000");
	s.start = (double)time(NULL);
	s.conf = &c;
	s.resume = on_resume;
	if (p.ops->start(p.self, &s) < 0) {
		fprintf(stderr, "hook_bench: start failed\n");
		return 1;
	}

	for (size_t k = 0; k < sizeof stages / sizeof stages[0]; k++) {
		enum stage st = stages[k];
		double t[99];
		enum action a = V_NONE;

		for (long i = 0; i < calls / 10 + 100; i++)    /* warm: JIT-free, but caches */
			a = decide(&p, loop, &s, st);
		for (int r = 0; r < reps; r++) {
			double t0 = now_ns();
			for (long i = 0; i < calls; i++)
				decide(&p, loop, &s, st);
			t[r] = (now_ns() - t0) / calls;
		}
		qsort(t, (size_t)reps, sizeof t[0], cmp_double);
		printf("{\"policy\": \"%s\", \"stage\": \"%s\", \"calls\": %ld, \"repeats\": %d, "
		    "\"ns_median\": %.1f, \"ns_min\": %.1f, \"action\": \"%s\", \"pending\": %d}\n",
		    p.ops->name, stage_name(st), calls, reps, t[reps / 2], t[0],
		    action_name(a), pending);
		fflush(stdout);
	}
	p.ops->end(p.self, &s);
	p.ops->free(p.self);
	return 0;
usage:
	fprintf(stderr, "usage: hook_bench [-n CALLS] [-r REPEATS] CONFIG\n");
	return 2;
}
