/*
 * portal_bench.c - the portal page's and search's latency over a big log:
 * the time to build the index from nothing, then p50/p99 of each page as
 * portal_handle() renders it (the HTTP transport is not in the numbers).
 *
 *     build/bench/portal_bench CONF ROUNDS DOMAIN RCPT CLIENT QID
 *
 * CONF names the log (log_file) and state_dir (the index goes to
 * state_dir/index, which should not exist yet). bench/portal.py runs it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf.h"
#include "index.h"
#include "portal.h"

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

struct args {
	const char *k[4], *v[4];
};

static const char *
arg(void *ctx, const char *name)
{
	struct args *a = ctx;

	for (int i = 0; i < 4 && a->k[i]; i++)
		if (!strcmp(a->k[i], name))
			return a->v[i];
	return NULL;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void
measure(struct portal *p, int rounds, const char *label, const char *path, struct args *a)
{
	double *t = calloc((size_t)rounds, sizeof *t);
	size_t bytes = 0;
	int status = 0;

	for (int i = 0; i < rounds; i++) {
		struct portal_reply r = { 0, NULL, BUF_INIT(16u << 20) };
		double t0 = now();
		portal_handle(p, path, arg, a, &r);
		t[i] = now() - t0;
		status = r.status;
		bytes = r.body.len;
		buf_free(&r.body);
	}
	qsort(t, (size_t)rounds, sizeof *t, cmp);
	printf("{\"page\": \"%s\", \"status\": %d, \"bytes\": %zu, \"p50_ms\": %.3f, \"p99_ms\": %.3f}\n",
	    label, status, bytes, t[rounds / 2] * 1e3, t[(rounds * 99) / 100] * 1e3);
	free(t);
}

int
main(int argc, char **argv)
{
	struct conf c;
	struct logindex *ix;
	struct index_stats st;
	struct portal *p;
	char err[1024], dir[600];
	int rounds;
	double t0;

	if (argc != 7) {
		fprintf(stderr, "usage: portal_bench CONF ROUNDS DOMAIN RCPT CLIENT QID\n");
		return 2;
	}
	rounds = atoi(argv[2]);
	if (rounds < 1 || conf_load(&c, argv[1], err, sizeof err) < 0) {
		fprintf(stderr, "portal_bench: %s\n", rounds < 1 ? "ROUNDS" : err);
		return 2;
	}
	snprintf(dir, sizeof dir, "%.500s/index", c.state_dir);
	t0 = now();
	if (index_open(&ix, dir, c.log_file, c.journal.dir, 0, c.http.index_max_size, err, sizeof err) < 0 ||
	    index_update(ix, 0, err, sizeof err) < 0) {
		fprintf(stderr, "portal_bench: %s\n", err);
		return 1;
	}
	index_stats(ix, &st);
	printf("{\"build_s\": %.3f, \"lines\": %llu, \"records\": %llu, \"skipped\": %llu}\n", now() - t0,
	    (unsigned long long)st.lines, (unsigned long long)st.records, (unsigned long long)st.skipped);
	index_close(ix);
	if (!(p = portal_open(&c, err, sizeof err))) {
		fprintf(stderr, "portal_bench: %s\n", err);
		return 1;
	}
	{
		struct args day = { { "window" }, { "day" } }, all = { { "window" }, { "all" } };
		struct args custom = { { "window", "since", "until" }, { "custom", "3d", "1d" } };
		struct args dom = { { "field", "q", "window" }, { "domain", argv[3], "all" } };
		struct args rc = { { "field", "q", "window" }, { "rcpt", argv[4], "all" } };
		struct args cl = { { "field", "q", "window" }, { "client", argv[5], "all" } };
		struct args qid = { { "id" }, { argv[6] } };
		measure(p, rounds, "/ window=day", "/", &day);
		measure(p, rounds, "/ window=all", "/", &all);
		measure(p, rounds, "/ custom 3d..1d", "/", &custom);
		measure(p, rounds, "/search domain", "/search", &dom);
		measure(p, rounds, "/search rcpt", "/search", &rc);
		measure(p, rounds, "/search client", "/search", &cl);
		measure(p, rounds, "/trace qid", "/trace", &qid);
	}
	portal_close(p);
	conf_free(&c);
	return 0;
}
