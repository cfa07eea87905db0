/*
 * test_state.c - the shared state store: greylisting, Exim's smoothed
 * rate, the callout cache, the operators' view and `mxgate state`, and
 * several processes writing one store at once. Time is injected.
 *
 * Expected rates are literals computed apart from this code, in Python:
 *   rate = (1 - exp(-i/p)) * count / (i/p) + exp(-i/p) * prev, raised to
 *   count when below it; first event = count; over when rate >= limit;
 *   leaky stores the rate only when not over.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <hiredis/hiredis.h>

#include "state.h"
#include "state_cli.h"
#include "unit.h"

#define T0 1000000.0 /* an arbitrary epoch: the store never reads the clock */

static const struct greylist_conf grey = {
	.delay = 60, .tuple_ttl = 48 * 3600, .allow_ttl = 35 * 86400,
	.v4_prefix = 32, .v6_prefix = 128,
};

static char *new_dir(void)
{
	char tmpl[] = "/tmp/mxgate-state.XXXXXX";
	char *d = mkdtemp(tmpl);
	return d ? strdup(d) : NULL;
}

static void drop_dir(char *dir)
{
	char p[512];
	snprintf(p, sizeof p, "%s/data.mdb", dir);
	unlink(p);
	snprintf(p, sizeof p, "%s/lock.mdb", dir);
	unlink(p);
	for (int i = 0; i < 8; i++) {
		snprintf(p, sizeof p, "%s/out.%d", dir, i);
		unlink(p);
	}
	snprintf(p, sizeof p, "%s/cli.out", dir);
	unlink(p);
	snprintf(p, sizeof p, "%s/cli.err", dir);
	unlink(p);
	rmdir(dir);
	free(dir);
}

/*
 * The backend under test: LMDB in dir, or, when the harness sets
 * MXGATE_TEST_REDIS=host:port (spec/run.py starts a redis-server), Redis
 * with a key prefix of this dir's own, so that each test starts empty.
 */
static const char *redis_server;
static const char *memory;      /* MXGATE_TEST_MEMORY: state_mem.c, ruletest's simulation */

static void store_conf(const char *dir, size_t map, struct state_conf *sc)
{
	memset(sc, 0, sizeof *sc);
	snprintf(sc->dir, sizeof sc->dir, "%s", dir);
	sc->map_size = map;
	if (redis_server) {
		const char *base = strrchr(dir, '/');
		snprintf(sc->backend, sizeof sc->backend, "redis");
		snprintf(sc->server, sizeof sc->server, "%s", redis_server);
		snprintf(sc->prefix, sizeof sc->prefix, "t:%s:", base ? base + 1 : dir);
		sc->timeout = 5;
	} else
		snprintf(sc->backend, sizeof sc->backend, "%s", memory ? "memory" : "lmdb");
}

/* A store on a loop of its own (Redis answers on it; the *_wait calls run it). */
static struct state *open_dir(const char *dir, size_t map)
{
	char err[256];
	struct state_conf sc;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	store_conf(dir, map, &sc);
	struct state *st = state_open(&sc, loop, err, sizeof err);
	if (!st) {
		fprintf(stderr, "  %s\n", err);
		ev_loop_destroy(loop);
	}
	return st;
}

static void close_st(struct state *st)
{
	struct ev_loop *loop = st->loop;
	state_close(st);
	ev_loop_destroy(loop);
}

/* A test of what only LMDB has (its map, its files, its fork rule). */
#define LMDB_ONLY() do { if (redis_server || memory) { UNIT_SKIP("lmdb only"); } } while (0)
/* A test of what processes share (the memory store is one process's own). */
#define SHARED_ONLY() do { if (memory) { UNIT_SKIP("a store shared by processes only"); } } while (0)

static enum greylist_verdict gl(struct state *st, const struct greylist_conf *c,
    const char *ip, const char *from, const char *to, double now, double *wait)
{
	struct greylist_result r = { GREY_ERROR, -1 };
	if (state_greylist_wait(st, c, ip, from, to, now, &r) != 0)
		fprintf(stderr, "  greylist: %s\n", state_error(st));
	if (wait)
		*wait = r.wait;
	return r.verdict;
}

static int near(double a, double b)
{
	return fabs(a - b) <= 1e-9 * (fabs(b) > 1 ? fabs(b) : 1);
}

/* ---- greylisting -------------------------------------------------------- */

TEST(greylist_first_attempt_is_deferred_for_the_delay)
{
	char *dir = new_dir();
	struct state *st = open_dir(dir, 0);
	double wait;
	CHECK(st);
	CHECK_INT(gl(st, &grey, "192.0.2.4", "a@example.com", "b@example.net", T0, &wait), GREY_DEFER_NEW);
	CHECK(near(wait, 60));
	close_st(st);
	drop_dir(dir);
}

TEST(greylist_early_retry_is_deferred_with_the_time_left)
{
	char *dir = new_dir();
	struct state *st = open_dir(dir, 0);
	double wait;
	CHECK(st);
	CHECK_INT(gl(st, &grey, "192.0.2.4", "a@example.com", "b@example.net", T0, NULL), GREY_DEFER_NEW);
	CHECK_INT(gl(st, &grey, "192.0.2.4", "a@example.com", "b@example.net", T0 + 45, &wait), GREY_DEFER_EARLY);
	CHECK(near(wait, 15));
	/* an early retry does not restart the clock */
	CHECK_INT(gl(st, &grey, "192.0.2.4", "a@example.com", "b@example.net", T0 + 59.5, &wait), GREY_DEFER_EARLY);
	CHECK(near(wait, 0.5));
	close_st(st);
	drop_dir(dir);
}

TEST(greylist_retry_after_delay_passes_and_allows_the_client)
{
	char *dir = new_dir();
	struct state *st = open_dir(dir, 0);
	char val[256];
	CHECK(st);
	CHECK_INT(gl(st, &grey, "192.0.2.4", "a@example.com", "b@example.net", T0, NULL), GREY_DEFER_NEW);
	CHECK_INT(state_get_wait(st, STATE_ALLOW, "192.0.2.4", val, sizeof val), 1);
	CHECK_INT(gl(st, &grey, "192.0.2.4", "a@example.com", "b@example.net", T0 + 60, NULL), GREY_PASS_RETRY);
	CHECK_INT(state_get_wait(st, STATE_ALLOW, "192.0.2.4", val, sizeof val), 0);
	CHECK_STR(val, "expires=4024060.000 since=1000060.000");
	/* the tuple has done its job */
	CHECK_INT(state_get_wait(st, STATE_GREYLIST, "192.0.2.4 <a@example.com> <b@example.net>", val, sizeof val), 1);
	/* and another sender to another recipient passes at once */
	CHECK_INT(gl(st, &grey, "192.0.2.4", "c@example.org", "d@example.net", T0 + 61, NULL), GREY_PASS_ALLOWED);
	CHECK_INT(gl(st, &grey, "192.0.2.4", "", "e@example.net", T0 + 62, NULL), GREY_PASS_ALLOWED);
	/* a neighbour is not */
	CHECK_INT(gl(st, &grey, "192.0.2.5", "c@example.org", "d@example.net", T0 + 62, NULL), GREY_DEFER_NEW);
	close_st(st);
	drop_dir(dir);
}

TEST(greylist_allow_entry_lives_while_used_and_expires_unused)
{
	char *dir = new_dir();
	struct state *st = open_dir(dir, 0);
	const double ttl = grey.allow_ttl;
	char val[256];
	CHECK(st);
	gl(st, &grey, "192.0.2.4", "a@example.com", "b@example.net", T0, NULL);
	CHECK_INT(gl(st, &grey, "192.0.2.4", "a@example.com", "b@example.net", T0 + 60, NULL), GREY_PASS_RETRY);
	/* used 30 days later: refreshed to 35 days from then */
	double used = T0 + 60 + 30 * 86400;
	CHECK_INT(gl(st, &grey, "192.0.2.4", "x@example.com", "y@example.net", used, NULL), GREY_PASS_ALLOWED);
	CHECK_INT(state_get_wait(st, STATE_ALLOW, "192.0.2.4", val, sizeof val), 0);
	CHECK_STR(val, "expires=6616060.000 since=1000060.000");
	/* used again a minute later: the expiry may lag by up to 300 s */
	CHECK_INT(gl(st, &grey, "192.0.2.4", "x@example.com", "y@example.net", used + 60, NULL), GREY_PASS_ALLOWED);
	CHECK_INT(state_get_wait(st, STATE_ALLOW, "192.0.2.4", val, sizeof val), 0);
	CHECK_STR(val, "expires=6616060.000 since=1000060.000");
	/* just before expiry still allowed (this use refreshes it) ... */
	CHECK_INT(gl(st, &grey, "192.0.2.4", "x@example.com", "y@example.net", used + ttl - 1, NULL), GREY_PASS_ALLOWED);
	/* ... and allow_ttl unused after that, greylisted again */
	CHECK_INT(gl(st, &grey, "192.0.2.4", "x@example.com", "y@example.net", used + 2 * ttl - 1, NULL), GREY_DEFER_NEW);
	close_st(st);
	drop_dir(dir);
}

TEST(greylist_allow_entry_deleted_by_the_operator_no_longer_admits)
{
	char *dir = new_dir();
	struct state *st = open_dir(dir, 0);
	CHECK(st);
	CHECK_INT(gl(st, &grey, "192.0.2.4", "a@example.com", "b@example.net", T0, NULL), GREY_DEFER_NEW);
	CHECK_INT(gl(st, &grey, "192.0.2.4", "a@example.com", "b@example.net", T0 + 61, NULL), GREY_PASS_RETRY);
	/* answered again and again (Redis: from what this handle read lately) */
	CHECK_INT(gl(st, &grey, "192.0.2.4", "c@example.com", "d@example.net", T0 + 62, NULL), GREY_PASS_ALLOWED);
	CHECK_INT(gl(st, &grey, "192.0.2.4", "c@example.com", "d@example.net", T0 + 63, NULL), GREY_PASS_ALLOWED);
	CHECK_INT(state_del_wait(st, STATE_ALLOW, "192.0.2.4"), 0);
	CHECK_INT(gl(st, &grey, "192.0.2.4", "c@example.com", "d@example.net", T0 + 64, NULL), GREY_DEFER_NEW);
	close_st(st);
	drop_dir(dir);
}

TEST(greylist_tuple_not_retried_within_its_ttl_starts_over)
{
	char *dir = new_dir();
	struct state *st = open_dir(dir, 0);
	double wait;
	CHECK(st);
	CHECK_INT(gl(st, &grey, "192.0.2.4", "a@example.com", "b@example.net", T0, NULL), GREY_DEFER_NEW);
	CHECK_INT(gl(st, &grey, "192.0.2.4", "a@example.com", "b@example.net", T0 + grey.tuple_ttl, &wait), GREY_DEFER_NEW);
	CHECK(near(wait, 60));
	CHECK_INT(gl(st, &grey, "192.0.2.4", "a@example.com", "b@example.net", T0 + grey.tuple_ttl + 60, NULL), GREY_PASS_RETRY);
	close_st(st);
	drop_dir(dir);
}

TEST(greylist_batv_and_srs_senders_key_the_same_tuple)
{
	static const char *const same[] = {
		"User@Example.COM",
		"<user@example.com>",
		"prvs=0123456789=user@example.com",
		"PRVS=1234abcdef=User@example.com",
		"prvs=user/0123456789@example.com",
		"msprvs1=17654abcd=user@example.com",
		"btv1==0ab1cd2ef3a==user@example.com",
		"SRS0=HHH=TT=example.com=user@forwarder.example",
		"srs0+x7Yz=2C=example.com=user@other-forwarder.example",
		"SRS1=HHH=first.example==HHH=TT=example.com=user@second.example",
		"prvs=4567890123=SRS0=HH=TT=example.com=user@forwarder.example",
		"SRS0=HH=TT=example.com=prvs=0123456789=user@forwarder.example",
	};
	char *dir = new_dir();
	struct state *st = open_dir(dir, 0);
	char val[256];
	CHECK(st);
	CHECK_INT(gl(st, &grey, "192.0.2.4", same[0], "rcpt@example.net", T0, NULL), GREY_DEFER_NEW);
	for (size_t i = 1; i < sizeof same / sizeof *same; i++) {
		if (gl(st, &grey, "192.0.2.4", same[i], "RCPT@example.net", T0 + 1, NULL) != GREY_DEFER_EARLY)
			fprintf(stderr, "  sender %s keyed apart\n", same[i]);
		CHECK_INT(gl(st, &grey, "192.0.2.4", same[i], "rcpt@example.net", T0 + 1, NULL), GREY_DEFER_EARLY);
	}
	CHECK_INT(state_get_wait(st, STATE_GREYLIST, "192.0.2.4 <user@example.com> <rcpt@example.net>", val, sizeof val), 0);
	/* a local part that merely contains the markers is left alone */
	CHECK_INT(gl(st, &grey, "192.0.2.4", "prvs@example.com", "rcpt@example.net", T0 + 2, NULL), GREY_DEFER_NEW);
	CHECK_INT(gl(st, &grey, "192.0.2.4", "srs0@example.com", "rcpt@example.net", T0 + 2, NULL), GREY_DEFER_NEW);
	close_st(st);
	drop_dir(dir);
}

TEST(greylist_null_sender_is_a_tuple_of_its_own)
{
	char *dir = new_dir();
	struct state *st = open_dir(dir, 0);
	char val[256];
	CHECK(st);
	CHECK_INT(gl(st, &grey, "192.0.2.4", "", "rcpt@example.net", T0, NULL), GREY_DEFER_NEW);
	CHECK_INT(gl(st, &grey, "192.0.2.4", "<>", "rcpt@example.net", T0 + 1, NULL), GREY_DEFER_EARLY);
	CHECK_INT(gl(st, &grey, "192.0.2.4", "a@example.com", "rcpt@example.net", T0 + 1, NULL), GREY_DEFER_NEW);
	CHECK_INT(state_get_wait(st, STATE_GREYLIST, "192.0.2.4 <> <rcpt@example.net>", val, sizeof val), 0);
	CHECK_STR(val, "expires=1172800.000 first_seen=1000000.000");
	close_st(st);
	drop_dir(dir);
}

TEST(greylist_keys_clients_by_network_prefix)
{
	struct greylist_conf c = grey;
	char *dir = new_dir();
	struct state *st = open_dir(dir, 0);
	char val[256];
	c.v4_prefix = 24;
	c.v6_prefix = 64;
	CHECK(st);
	/* a pool of senders retrying from different addresses of one /24 */
	CHECK_INT(gl(st, &c, "192.0.2.4", "a@example.com", "b@example.net", T0, NULL), GREY_DEFER_NEW);
	CHECK_INT(gl(st, &c, "192.0.2.200", "a@example.com", "b@example.net", T0 + 30, NULL), GREY_DEFER_EARLY);
	CHECK_INT(gl(st, &c, "::ffff:192.0.2.9", "a@example.com", "b@example.net", T0 + 61, NULL), GREY_PASS_RETRY);
	CHECK_INT(state_get_wait(st, STATE_ALLOW, "192.0.2.0/24", val, sizeof val), 0);
	CHECK_INT(gl(st, &c, "192.0.2.77", "z@example.com", "b@example.net", T0 + 62, NULL), GREY_PASS_ALLOWED);
	CHECK_INT(gl(st, &c, "192.0.3.77", "z@example.com", "b@example.net", T0 + 62, NULL), GREY_DEFER_NEW);
	/* an operator may allow one address even when keys are by /24 */
	CHECK_INT(state_put_wait(st, STATE_ALLOW, "192.0.3.78", "expires=2000000", T0), 0);
	CHECK_INT(gl(st, &c, "192.0.3.78", "z@example.com", "b@example.net", T0 + 63, NULL), GREY_PASS_ALLOWED);
	CHECK_INT(gl(st, &c, "192.0.3.79", "z@example.com", "b@example.net", T0 + 63, NULL), GREY_DEFER_EARLY);
	/* IPv6 by /64, whatever the spelling */
	CHECK_INT(gl(st, &c, "2001:DB8:1:2::1", "a@example.com", "b@example.net", T0, NULL), GREY_DEFER_NEW);
	CHECK_INT(gl(st, &c, "2001:db8:1:2:ffff::2", "a@example.com", "b@example.net", T0 + 60, NULL), GREY_PASS_RETRY);
	CHECK_INT(state_get_wait(st, STATE_ALLOW, "2001:db8:1:2::/64", val, sizeof val), 0);
	CHECK_INT(state_get_wait(st, STATE_ALLOW, "2001:0db8:0001:0002:0000:0000:0000:0009/64", val, sizeof val), 0);
	CHECK_INT(gl(st, &c, "2001:db8:1:3::1", "a@example.com", "b@example.net", T0 + 60, NULL), GREY_DEFER_NEW);
	close_st(st);
	drop_dir(dir);
}

/* ---- rate limiting ------------------------------------------------------ */

static struct ratelimit_result rl(struct state *st, const char *key, double limit,
    double period, int mode, double count, double now)
{
	struct ratelimit_result r = { -1, -1 };
	if (state_ratelimit_wait(st, key, limit, period, mode, count, now, &r) != 0)
		fprintf(stderr, "  ratelimit: %s\n", state_error(st));
	return r;
}

#define CHECK_RATE(r, want) do { \
	if (!(fabs((r).rate - (want)) <= 1e-9)) { \
		fprintf(stderr, "  rate %.15g, expected %.15g\n", (r).rate, (double)(want)); \
	} \
	CHECK(fabs((r).rate - (want)) <= 1e-9); \
} while (0)

TEST(ratelimit_follows_exims_smoothed_rate)
{
	static const struct { double t, rate; } seq[] = {
		{ 0, 1 },                        /* first sight: the count */
		{ 60, 1.9751842245245679 },
		{ 120, 2.9342500715616513 },
		{ 600, 3.5041774812085107 },
		{ 3600, 2.2013914054155705 },
		{ 7200, 1.4419671988524538 },
	};
	char *dir = new_dir();
	struct state *st = open_dir(dir, 0);
	CHECK(st);
	for (size_t i = 0; i < sizeof seq / sizeof *seq; i++) {
		struct ratelimit_result r = rl(st, "a@example.com", 100, 3600, RL_STRICT, 1, T0 + seq[i].t);
		CHECK_RATE(r, seq[i].rate);
		CHECK_INT(r.over, 0);
	}
	/* per_rcpt: the count is the number of recipients */
	static const struct { double t, rate; } rcpt[] = {
		{ 0, 3 }, { 10, 5.987515418711821 }, { 20, 8.966743698726296 },
	};
	for (size_t i = 0; i < sizeof rcpt / sizeof *rcpt; i++) {
		struct ratelimit_result r = rl(st, "b@example.com", 100, 3600, RL_STRICT, 3, T0 + rcpt[i].t);
		CHECK_RATE(r, rcpt[i].rate);
	}
	close_st(st);
	drop_dir(dir);
}

/* The operators' text, the C side's record and the server's script agree
 * on one record layout (Redis: packed little-endian doubles). */
TEST(ratelimit_continues_from_a_record_the_operator_put)
{
	char *dir = new_dir();
	struct state *st = open_dir(dir, 0);
	char val[256];
	CHECK(st);
	CHECK_INT(state_put_wait(st, STATE_RATELIMIT, "a@example.com",
	    "expires=1036000 rate=2 last=1000000", T0), 0);
	struct ratelimit_result r = rl(st, "a@example.com", 100, 3600, RL_STRICT, 1, T0 + 60);
	CHECK_RATE(r, 2.9586556783461857);    /* x = 1/60: (1 - e^-x)/x + e^-x * 2 */
	CHECK_INT(state_get_wait(st, STATE_RATELIMIT, "a@example.com", val, sizeof val), 0);
	CHECK_STR(val, "expires=1036060.000 rate=2.958656 last=1000060.000");
	close_st(st);
	drop_dir(dir);
}

/* An operator's SCRIPT FLUSH (or a server that lost its scripts): the
 * call is sent again whole with EVAL and answers as before. Redis only. */
TEST(calls_answer_after_redis_lost_its_scripts)
{
	if (!redis_server) {
		UNIT_SKIP("redis only");
	}
	char *dir = new_dir(), host[128];
	struct state *st = open_dir(dir, 0);
	const char *colon = strrchr(redis_server, ':');
	CHECK(st && colon);
	snprintf(host, sizeof host, "%.*s", (int)(colon - redis_server), redis_server);
	struct ratelimit_result r = rl(st, "a@example.com", 100, 3600, RL_STRICT, 1, T0);
	CHECK_RATE(r, 1);
	redisContext *rc = redisConnect(host, atoi(colon + 1));
	CHECK(rc && !rc->err);
	redisReply *rp = redisCommand(rc, "SCRIPT FLUSH");
	CHECK(rp && rp->type == REDIS_REPLY_STATUS);
	freeReplyObject(rp);
	redisFree(rc);
	r = rl(st, "a@example.com", 100, 3600, RL_STRICT, 1, T0 + 60);
	CHECK_RATE(r, 1.9751842245245679);
	CHECK_INT(gl(st, &grey, "192.0.2.4", "a@example.com", "b@example.net", T0, NULL), GREY_DEFER_NEW);
	close_st(st);
	drop_dir(dir);
}

TEST(ratelimit_flags_the_message_that_reaches_the_limit)
{
	/* 10 per hour, one message every 30 s: the 11th is the first over */
	static const double rate[] = {
		1, 1.9875461759737603, 2.9668969952275175, 3.9381204686284104,
		4.901284042641295, 5.856454604012552, 6.803698484415029,
		7.74308146505443, 8.674668781237484, 9.5985251269022,
		10.514714659110526,
		/* leaky: the stored rate stays that of the 10th, so each retry
		 * is measured against it and decays */
		10.43158823180078, 10.34914021598742, 10.267365029160718,
		10.186257134902426,
	};
	char *dir = new_dir();
	struct state *st = open_dir(dir, 0);
	CHECK(st);
	for (int n = 0; n < 15; n++) {
		struct ratelimit_result r = rl(st, "sender@example.com", 10, 3600, RL_LEAKY, 1, T0 + 30 * n);
		CHECK_RATE(r, rate[n]);
		CHECK_INT(r.over, n >= 10);
	}
	close_st(st);
	drop_dir(dir);
}

TEST(ratelimit_burst_at_one_instant_passes_exactly_the_limit)
{
	char *dir = new_dir();
	struct state *st = open_dir(dir, 0);
	CHECK(st);
	for (int n = 1; n <= 6; n++) {
		struct ratelimit_result r = rl(st, "burst@example.com", 5, 3600, RL_LEAKY, 1, T0);
		CHECK(fabs(r.rate - n) < 1e-6);
		CHECK_INT(r.over, n == 6);
	}
	/* Exim: a client at the limit is over it */
	struct ratelimit_result r = rl(st, "one@example.com", 1, 3600, RL_LEAKY, 1, T0);
	CHECK_INT(r.over, 1);
	close_st(st);
	drop_dir(dir);
}

TEST(ratelimit_leaky_recovers_sooner_than_strict)
{
	char *dir = new_dir();
	struct state *st = open_dir(dir, 0);
	struct ratelimit_result l, s;
	CHECK(st);
	/* 30 messages one second apart against 10 per 10 minutes */
	for (int n = 0; n < 30; n++) {
		l = rl(st, "leaky@example.com", 10, 600, RL_LEAKY, 1, T0 + n);
		s = rl(st, "strict@example.com", 10, 600, RL_STRICT, 1, T0 + n);
		CHECK_INT(l.over, n >= 10);
		CHECK_INT(s.over, n >= 10);
	}
	CHECK_RATE(s, 29.26313887207686);
	/* 40 s after the burst leaky is under again, strict far over */
	l = rl(st, "leaky@example.com", 10, 600, RL_LEAKY, 1, T0 + 29 + 40);
	s = rl(st, "strict@example.com", 10, 600, RL_STRICT, 1, T0 + 29 + 40);
	CHECK_RATE(l, 9.925756441024001);
	CHECK_RATE(s, 28.343266043303892);
	CHECK_INT(l.over, 0);
	CHECK_INT(s.over, 1);
	close_st(st);
	drop_dir(dir);
}

TEST(ratelimit_strict_waits_ln_peak_over_limit_periods)
{
	char *dir = new_dir();
	struct state *st = open_dir(dir, 0);
	struct ratelimit_result s;
	CHECK(st);
	for (int n = 0; n < 30; n++)
		rl(st, "strict@example.com", 10, 600, RL_STRICT, 1, T0 + n);
	/* silent until the rate has decayed: 690 s after the burst, not 680 */
	char val[256];
	CHECK_INT(state_get_wait(st, STATE_RATELIMIT, "strict@example.com", val, sizeof val), 0);
	s = rl(st, "strict@example.com", 10, 600, RL_STRICT, 1, T0 + 29 + 690);
	CHECK_RATE(s, 9.860014650537137);
	CHECK_INT(s.over, 0);
	CHECK_INT(state_put_wait(st, STATE_RATELIMIT, "strict@example.com", val, T0), 0);
	s = rl(st, "strict@example.com", 10, 600, RL_STRICT, 1, T0 + 29 + 680);
	CHECK_INT(s.over, 1);
	close_st(st);
	drop_dir(dir);
}

TEST(ratelimit_decays_with_silence_and_forgets_after_ten_periods)
{
	static const struct { double after, rate; } d[] = {
		{ 600, 17.8507441484686 }, { 3600, 7.989709382257404 }, { 7200, 3.139038023113948 },
	};
	char *dir = new_dir();
	struct state *st = open_dir(dir, 0);
	char val[256];
	CHECK(st);
	for (size_t i = 0; i < sizeof d / sizeof *d; i++) {
		CHECK_INT(state_put_wait(st, STATE_RATELIMIT, "Decay@Example.com",
		    "expires=1036000 rate=20 last=1000000", T0), 0);
		struct ratelimit_result r = rl(st, "decay@example.com", 100, 3600, RL_STRICT, 1, T0 + d[i].after);
		CHECK_RATE(r, d[i].rate);
	}
	CHECK_INT(state_get_wait(st, STATE_RATELIMIT, "decay@example.com", val, sizeof val), 0);
	CHECK_STR(val, "expires=1043200.000 rate=3.139038 last=1007200.000");
	/* ten periods of silence: the record is gone, the next message counts 1 */
	CHECK_INT(state_sweep_wait(st, T0 + 7200 + 36000), 1);
	struct ratelimit_result r = rl(st, "decay@example.com", 100, 3600, RL_STRICT, 1, T0 + 7200 + 36000);
	CHECK_RATE(r, 1);
	close_st(st);
	drop_dir(dir);
}

/* ---- cache, sweep, operators' view -------------------------------------- */

TEST(callout_cache_answers_until_expiry)
{
	char *dir = new_dir();
	struct state *st = open_dir(dir, 0);
	char val[64], big[2048];
	CHECK(st);
	CHECK_INT(state_cache_get_wait(st, "rcpt:B@example.net", T0, val, sizeof val), 1);
	CHECK_INT(state_cache_put_wait(st, "rcpt:B@example.net", "550 5.1.1 no such user", T0 + 600, T0), 0);
	CHECK_INT(state_cache_get_wait(st, "rcpt:B@example.net", T0 + 599, val, sizeof val), 0);
	CHECK_STR(val, "550 5.1.1 no such user");
	CHECK_INT(state_cache_get_wait(st, "rcpt:b@example.net", T0, val, sizeof val), 1);
	CHECK_INT(state_cache_get_wait(st, "rcpt:B@example.net", T0 + 600, val, sizeof val), 1);
	CHECK_INT(state_cache_get_wait(st, "rcpt:B@example.net", T0, val, 8), -1);
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	CHECK_INT(state_cache_put_wait(st, "k", big, T0 + 1, T0), -1);
	close_st(st);
	drop_dir(dir);
}

static void count_cb(void *arg, const char *key, const char *value)
{
	(*(int *)arg)++;
}

TEST(sweep_removes_expired_records_only)
{
	char *dir = new_dir();
	struct state *st = open_dir(dir, 0);
	char key[64];
	int n = 0;
	CHECK(st);
	/* 2500 tuples, a third of them old: more than one sweep batch */
	for (int i = 0; i < 2500; i++) {
		snprintf(key, sizeof key, "rcpt%d@example.net", i);
		CHECK_INT(gl(st, &grey, "192.0.2.4", "a@example.com", key, i % 3 ? T0 : T0 - 3 * 86400, NULL), GREY_DEFER_NEW);
	}
	CHECK_INT(state_put_wait(st, STATE_ALLOW, "192.0.2.1", "expires=999999", T0), 0);
	CHECK_INT(state_put_wait(st, STATE_ALLOW, "192.0.2.2", "expires=1000001", T0), 0);
	CHECK_INT(state_put_wait(st, STATE_CALLOUT, "old", "expires=999000 value=250 ok", T0), 0);
	CHECK_INT(state_put_wait(st, STATE_RATELIMIT, "x", "expires=1000000 rate=1", T0), 0);
	CHECK_INT(state_sweep_wait(st, T0), 834 + 1 + 1 + 1);
	CHECK_INT(state_list_wait(st, STATE_GREYLIST, count_cb, &n), 0);
	CHECK_INT(n, 1666);
	n = 0;
	CHECK_INT(state_list_wait(st, STATE_ALLOW, count_cb, &n), 0);
	CHECK_INT(n, 1);
	CHECK_INT(state_sweep_wait(st, T0), 0);
	close_st(st);
	drop_dir(dir);
}

struct listing { char text[4096]; size_t len; };

static void listing_cb(void *arg, const char *key, const char *value)
{
	struct listing *l = arg;
	int n = snprintf(l->text + l->len, sizeof l->text - l->len, "%s = %s\n", key, value);
	if (n > 0 && (size_t)n < sizeof l->text - l->len)
		l->len += (size_t)n;
}

TEST(operators_get_put_del_list_as_text)
{
	char *dir = new_dir();
	struct state *st = open_dir(dir, 0);
	struct listing l = { "", 0 };
	char val[256];
	CHECK(st);
	CHECK_INT(state_put_wait(st, STATE_ALLOW, "2001:DB8::1", "expires=2000000 since=1000000", T0), 0);
	CHECK_INT(state_put_wait(st, STATE_ALLOW, "192.0.2.77/24", "expires=2000000.5 since=1000000", T0), 0);
	CHECK_INT(state_put_wait(st, STATE_GREYLIST, "192.0.2.4 <a@example.com> <b@example.net>",
	    "first_seen=1000000 expires=1172800", T0), 0);
	CHECK_INT(state_put_wait(st, STATE_CALLOUT, "route:example.net", "expires=1000600 value=250 2.1.5 ok, fine", T0), 0);
	CHECK_INT(state_list_wait(st, STATE_ALLOW, listing_cb, &l), 0);
	/* in key order (LMDB) or in any order (Redis's SCAN): both records, once */
	const char *a = "192.0.2.0/24 = expires=2000000.500 since=1000000.000\n";
	const char *b = "2001:db8::1 = expires=2000000.000 since=1000000.000\n";
	CHECK_INT(l.len, strlen(a) + strlen(b));
	CHECK(strstr(l.text, a) && strstr(l.text, b));
	CHECK(redis_server || strncmp(l.text, a, strlen(a)) == 0);
	CHECK_INT(state_get_wait(st, STATE_CALLOUT, "route:example.net", val, sizeof val), 0);
	CHECK_STR(val, "expires=1000600.000 value=250 2.1.5 ok, fine");
	CHECK_INT(state_cache_get_wait(st, "route:example.net", T0, val, sizeof val), 0);
	CHECK_STR(val, "250 2.1.5 ok, fine");
	CHECK_INT(gl(st, &grey, "192.0.2.4", "a@example.com", "b@example.net", T0 + 60, NULL), GREY_PASS_RETRY);
	/* bad input is refused with a reason */
	CHECK_INT(state_put_wait(st, STATE_ALLOW, "192.0.2.9", "since=5", T0), -1);
	CHECK(strstr(state_error(st), "expires"));
	CHECK_INT(state_put_wait(st, STATE_ALLOW, "192.0.2.9", "expires=soon", T0), -1);
	CHECK_INT(state_put_wait(st, STATE_ALLOW, "192.0.2.9", "expires=5 rate=3", T0), -1);
	CHECK(strstr(state_error(st), "unknown field"));
	CHECK_INT(state_get_wait(st, STATE_ALLOW, "2001:db8::1", val, 10), -1);
	/* relative expiry, from the wall clock */
	CHECK_INT(state_put_wait(st, STATE_ALLOW, "192.0.2.10", "expires=+1d", T0), 0);
	CHECK_INT(state_get_wait(st, STATE_ALLOW, "192.0.2.10", val, sizeof val), 0);
	double e = strtod(val + 8, NULL), now = (double)time(NULL);
	CHECK(e > now + 86300 && e <= now + 86400);
	CHECK_INT(state_del_wait(st, STATE_ALLOW, "2001:db8:0::1"), 0);
	CHECK_INT(state_del_wait(st, STATE_ALLOW, "2001:db8::1"), 1);
	close_st(st);
	drop_dir(dir);
}

TEST(map_full_is_met_by_sweeping_then_reported)
{
	LMDB_ONLY();
	char *dir = new_dir();
	struct state *st = open_dir(dir, 1 << 20);
	struct greylist_conf c = grey;
	char rcpt[64];
	int i;
	c.tuple_ttl = 10;
	CHECK(st);
	for (i = 0; i < 100000; i++) {
		snprintf(rcpt, sizeof rcpt, "recipient-number-%06d@example.net", i);
		if (gl(st, &c, "192.0.2.4", "a@example.com", rcpt, T0, NULL) != GREY_DEFER_NEW)
			break;
	}
	CHECK(i > 1000 && i < 100000);
	CHECK(strstr(state_error(st), "MDB_MAP_FULL"));
	/* once they have expired, writing sweeps them and goes on */
	for (int j = 0; j < i; j++) {
		snprintf(rcpt, sizeof rcpt, "fresh-recipient-%06d@example.net", j);
		CHECK_INT(gl(st, &c, "192.0.2.4", "a@example.com", rcpt, T0 + 11, NULL), GREY_DEFER_NEW);
	}
	close_st(st);
	drop_dir(dir);
}

/* ---- several processes -------------------------------------------------- */

#define WORKERS 4
#define INCREMENTS 2000

static int write_all(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return -1;
	ssize_t w = write(fd, p, n);
	close(fd);
	return w == (ssize_t)n ? 0 : -1;
}

/* Children block on the pipe until the parent closes it: all start at once. */
static void barrier_wait(int fds[2])
{
	char b;
	close(fds[1]);
	if (read(fds[0], &b, 1) != 0)
		_exit(98);
	close(fds[0]);
}

static int wait_all(pid_t *pid, int n)
{
	int bad = 0;
	for (int i = 0; i < n; i++) {
		int status;
		if (waitpid(pid[i], &status, 0) != pid[i] || !WIFEXITED(status) || WEXITSTATUS(status))
			bad = 1;
	}
	return bad;
}

TEST(ratelimit_updates_from_racing_workers_are_serialised)
{
	SHARED_ONLY();
	char *dir = new_dir();
	pid_t pid[WORKERS];
	static int seen[WORKERS * INCREMENTS + 1];
	int go[2];
	CHECK(dir);
	CHECK(pipe(go) == 0);
	memset(seen, 0, sizeof seen);
	for (int w = 0; w < WORKERS; w++) {
		if ((pid[w] = fork()) == 0) {
			static int got[INCREMENTS];
			char path[512];
			struct state *st = open_dir(dir, 0); /* after fork */
			if (!st)
				_exit(1);
			barrier_wait(go);
			for (int i = 0; i < INCREMENTS; i++) {
				struct ratelimit_result r;
				/* one instant, a long period: each increment adds 1 */
				if (state_ratelimit_wait(st, "shared", 1e9, 1e6, RL_STRICT, 1, T0, &r))
					_exit(2);
				got[i] = (int)lround(r.rate);
			}
			close_st(st);
			snprintf(path, sizeof path, "%s/out.%d", dir, w);
			_exit(write_all(path, got, sizeof got) ? 3 : 0);
		}
	}
	close(go[0]);
	close(go[1]);
	CHECK_INT(wait_all(pid, WORKERS), 0);
	/* every worker saw a different value: no update was lost or doubled */
	for (int w = 0; w < WORKERS; w++) {
		char path[512];
		int got[INCREMENTS];
		snprintf(path, sizeof path, "%s/out.%d", dir, w);
		int fd = open(path, O_RDONLY);
		CHECK(fd >= 0);
		CHECK(read(fd, got, sizeof got) == (ssize_t)sizeof got);
		close(fd);
		for (int i = 0; i < INCREMENTS; i++) {
			CHECK(got[i] >= 1 && got[i] <= WORKERS * INCREMENTS);
			CHECK(i == 0 || got[i] > got[i - 1]);
			seen[got[i]]++;
		}
	}
	for (int v = 1; v <= WORKERS * INCREMENTS; v++)
		CHECK_INT(seen[v], 1);
	struct state *st = open_dir(dir, 0);
	struct ratelimit_result r;
	CHECK(st);
	CHECK_INT(state_ratelimit_wait(st, "shared", 1e9, 1e6, RL_STRICT, 0, T0, &r), 0);
	CHECK(fabs(r.rate - WORKERS * INCREMENTS) < 1e-3);
	close_st(st);
	drop_dir(dir);
}

#define TUPLES 2000

TEST(greylist_racing_workers_record_each_tuple_once)
{
	SHARED_ONLY();
	char *dir = new_dir();
	pid_t pid[WORKERS];
	int go[2];
	CHECK(dir);
	CHECK(pipe(go) == 0);
	for (int w = 0; w < WORKERS; w++) {
		if ((pid[w] = fork()) == 0) {
			int count[2] = { 0, 0 };
			char rcpt[64], path[512];
			struct state *st = open_dir(dir, 0);
			if (!st)
				_exit(1);
			barrier_wait(go);
			for (int i = 0; i < TUPLES; i++) {
				snprintf(rcpt, sizeof rcpt, "rcpt%d@example.net", i);
				enum greylist_verdict v = gl(st, &grey, "192.0.2.4", "a@example.com", rcpt, T0 + 1, NULL);
				if (v == GREY_DEFER_NEW)
					count[0]++;
				else if (v == GREY_DEFER_EARLY)
					count[1]++;
				else
					_exit(2);
			}
			close_st(st);
			snprintf(path, sizeof path, "%s/out.%d", dir, w);
			_exit(write_all(path, count, sizeof count) ? 3 : 0);
		}
	}
	close(go[0]);
	close(go[1]);
	CHECK_INT(wait_all(pid, WORKERS), 0);
	int total[2] = { 0, 0 };
	for (int w = 0; w < WORKERS; w++) {
		char path[512];
		int count[2];
		snprintf(path, sizeof path, "%s/out.%d", dir, w);
		int fd = open(path, O_RDONLY);
		CHECK(fd >= 0);
		CHECK(read(fd, count, sizeof count) == (ssize_t)sizeof count);
		close(fd);
		total[0] += count[0], total[1] += count[1];
	}
	CHECK_INT(total[0], TUPLES);
	CHECK_INT(total[1], (WORKERS - 1) * TUPLES);
	drop_dir(dir);
}

TEST(store_survives_kill_9_in_the_middle_of_writes)
{
	LMDB_ONLY();
	char *dir = new_dir();
	CHECK(dir);
	for (int round = 0; round < 5; round++) {
		int fds[2];
		char b[4];
		CHECK(pipe(fds) == 0);
		pid_t pid = fork();
		if (pid == 0) {
			char rcpt[64];
			struct state *st = open_dir(dir, 0);
			close(fds[0]);
			if (!st)
				_exit(1);
			for (long i = 0;; i++) {
				struct ratelimit_result r;
				snprintf(rcpt, sizeof rcpt, "r%d-%ld@example.net", round, i);
				gl(st, &grey, "192.0.2.4", "a@example.com", rcpt, T0, NULL);
				state_ratelimit_wait(st, "victim", 1e9, 3600, RL_STRICT, 1, T0 + i, &r);
				if (i % 64 == 0 && write(fds[1], "x", 1) != 1)
					_exit(2);
			}
		}
		close(fds[1]);
		/* let it get well into its writes, then kill it mid-flight */
		for (int i = 0; i < 4; i++)
			CHECK(read(fds[0], b, 1) == 1);
		kill(pid, SIGKILL);
		int status;
		CHECK(waitpid(pid, &status, 0) == pid);
		CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
		close(fds[0]);
	}
	struct state *st = open_dir(dir, 0);
	char val[256];
	int n = 0;
	CHECK(st);
	CHECK_INT(state_list_wait(st, STATE_GREYLIST, count_cb, &n), 0);
	CHECK(n >= 5 * (3 * 64 + 1)); /* a byte per 64 writes, 4 bytes read */
	CHECK_INT(state_get_wait(st, STATE_RATELIMIT, "victim", val, sizeof val), 0);
	/* and the writer lock a dead process held is usable again */
	CHECK_INT(gl(st, &grey, "192.0.2.4", "after@example.com", "b@example.net", T0, NULL), GREY_DEFER_NEW);
	CHECK_INT(state_sweep_wait(st, T0 + 30 * 86400), n + 2);
	close_st(st);
	drop_dir(dir);
}

TEST(handle_opened_before_fork_is_refused_in_the_child)
{
	LMDB_ONLY();
	char *dir = new_dir();
	struct state *st = open_dir(dir, 0);
	CHECK(st);
	pid_t pid = fork();
	if (pid == 0) {
		struct greylist_result r;
		int rc = state_greylist_wait(st, &grey, "192.0.2.4", "a@example.com", "b@example.net", T0, &r);
		_exit(rc == -1 && r.verdict == GREY_ERROR && strstr(state_error(st), "fork") ? 0 : 1);
	}
	int status;
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close_st(st);
	drop_dir(dir);
}

/* ---- mxgate state ------------------------------------------------------- */

struct cli { int rc; char out[4096], err[1024]; };

static void slurp(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, len - 1) : 0;
	buf[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
}

/* Runs `mxgate state -d DIR args...` in a child, as the server's main would. */
static struct cli cli(const char *dir, const char *a1, const char *a2, const char *a3, const char *a4)
{
	struct cli c = { -1, "", "" };
	char out[512], err[512];
	snprintf(out, sizeof out, "%s/cli.out", dir);
	snprintf(err, sizeof err, "%s/cli.err", dir);
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid == 0) {
		char *argv[8] = { "state", "-d", (char *)dir };
		int argc = 3;
		struct state_conf sc;
		store_conf(dir, 0, &sc);
		if (redis_server)
			argc = 1;       /* the store of a config, as `mxgate state -c FILE` */
		const char *a[] = { a1, a2, a3, a4 };
		for (int i = 0; i < 4 && a[i]; i++)
			argv[argc++] = (char *)a[i];
		argv[argc] = NULL;
		if (!freopen(out, "w", stdout) || !freopen(err, "w", stderr))
			_exit(99);
		int rc = redis_server ? state_cli_main(argc, argv, &sc) : state_cli_main(argc, argv, NULL);
		fflush(stdout);
		fflush(stderr);
		_exit(rc);
	}
	int status;
	if (waitpid(pid, &status, 0) == pid && WIFEXITED(status))
		c.rc = WEXITSTATUS(status);
	slurp(out, c.out, sizeof c.out);
	slurp(err, c.err, sizeof c.err);
	return c;
}

TEST(cli_lists_adds_gets_and_deletes_records)
{
	SHARED_ONLY();
	char *dir = new_dir();
	struct state *st = open_dir(dir, 0);
	struct cli c;
	CHECK(st);
	gl(st, &grey, "192.0.2.4", "prvs=0123456789=a@example.com", "b@example.net", T0, NULL);
	state_put_wait(st, STATE_ALLOW, "192.0.2.99", "expires=1000 since=500", T0);
	close_st(st);

	c = cli(dir, "list", "greylist", NULL, NULL);
	CHECK_INT(c.rc, 0);
	CHECK_STR(c.out, "192.0.2.4 <a@example.com> <b@example.net>\texpires=1172800.000 first_seen=1000000.000\t(expired)\n");

	c = cli(dir, "get", "allow", "192.0.2.4", NULL);
	CHECK_INT(c.rc, 1);
	CHECK_STR(c.err, "mxgate state: no such record: allow 192.0.2.4\n");
	c = cli(dir, "add", "allow", "192.0.2.4", NULL);
	CHECK_INT(c.rc, 0);
	c = cli(dir, "get", "allow", "192.0.2.4", NULL);
	CHECK_INT(c.rc, 0);
	CHECK(strncmp(c.out, "expires=", 8) == 0 && strstr(c.out, " since="));
	c = cli(dir, "get", "allow", "192.0.2.99", NULL);
	CHECK_INT(c.rc, 1);
	CHECK_STR(c.out, "expires=1000.000 since=500.000\t(expired)\n");
	c = cli(dir, "del", "allow", "192.0.2.4", NULL);
	CHECK_INT(c.rc, 0);
	c = cli(dir, "del", "allow", "192.0.2.4", NULL);
	CHECK_INT(c.rc, 1);
	CHECK_STR(c.err, "mxgate state: no such record: allow 192.0.2.4\n");

	c = cli(dir, "add", "callout", "k", "expires=+1h value=550 5.1.1 gone");
	CHECK_INT(c.rc, 0);
	c = cli(dir, "add", "greylist", "k", NULL);
	CHECK_INT(c.rc, 2);
	c = cli(dir, "add", "allow", "192.0.2.5", "expires=later");
	CHECK_INT(c.rc, 2);
	CHECK(strstr(c.err, "cannot parse"));
	c = cli(dir, "list", "nosuchdb", NULL, NULL);
	CHECK_INT(c.rc, 2);
	CHECK(strstr(c.err, "no such database: nosuchdb"));
	c = cli(dir, "frob", NULL, NULL, NULL);
	CHECK_INT(c.rc, 2);
	c = cli(dir, "sweep", NULL, NULL, NULL);
	CHECK_INT(c.rc, 0);
	CHECK_STR(c.out, "swept 2 expired records\n");
	drop_dir(dir);
}

TEST(cli_del_ratelimit_releases_a_stuck_sender)
{
	SHARED_ONLY();
	char *dir = new_dir();
	struct state *st = open_dir(dir, 0);
	struct cli c;
	struct ratelimit_result r;
	double now = (double)time(NULL);
	CHECK(st);
	for (int i = 0; i < 20; i++) {
		state_ratelimit_wait(st, "sender@example.com", 10, 3600, RL_STRICT, 1, now, &r);
		state_ratelimit_wait(st, "sender@example.com/per_rcpt", 10, 3600, RL_STRICT, 5, now, &r);
	}
	state_ratelimit_wait(st, "sender@example.community", 10, 3600, RL_STRICT, 1, now, &r);
	CHECK_INT(r.over, 0);
	state_ratelimit_wait(st, "sender@example.com", 10, 3600, RL_STRICT, 1, now, &r);
	CHECK_INT(r.over, 1);
	close_st(st);

	c = cli(dir, "del", "ratelimit", "Sender@Example.com", NULL);
	CHECK_INT(c.rc, 0);
	c = cli(dir, "list", "ratelimit", NULL, NULL);
	CHECK(strncmp(c.out, "sender@example.community\t", 25) == 0 && !strchr(c.out + 25, '\n')[1]);
	c = cli(dir, "del", "ratelimit", "sender@example.com", NULL);
	CHECK_INT(c.rc, 1);
	CHECK_STR(c.err, "mxgate state: no such record: ratelimit sender@example.com\n");

	st = open_dir(dir, 0);
	CHECK(st);
	state_ratelimit_wait(st, "sender@example.com", 10, 3600, RL_STRICT, 1, now, &r);
	CHECK_INT(r.over, 0);
	close_st(st);
	drop_dir(dir);
}

TEST(cli_refuses_a_missing_store)
{
	LMDB_ONLY();
	char *dir = new_dir();
	struct cli c = cli(dir, "list", "allow", NULL, NULL);
	CHECK_INT(c.rc, 2);
	CHECK(strstr(c.err, "no state store in"));
	drop_dir(dir);
}

/* ruletest --state: a read-only LMDB snapshot copied into the memory store
 * goes on from where the real store stood, and the store is not written. */
TEST(readonly_snapshot_copied_into_memory_goes_on_from_the_real_state)
{
	LMDB_ONLY();
	char *dir = new_dir(), err[256];
	struct state *st = open_dir(dir, 0);
	struct ratelimit_result rl;
	CHECK(st);
	CHECK_INT(gl(st, &grey, "192.0.2.4", "a@example.com", "b@example.net", T0, NULL), GREY_DEFER_NEW);
	CHECK_INT(state_ratelimit_wait(st, "sender:x@example.com", 5, 3600, RL_LEAKY, 1, T0, &rl), 0);
	close_st(st);

	struct state_conf ro = { .backend = "lmdb", .readonly = 1 }, mc = { .backend = "memory" };
	snprintf(ro.dir, sizeof ro.dir, "%s", dir);
	struct state *snap = state_open(&ro, NULL, err, sizeof err);
	struct state *mem = state_open(&mc, NULL, err, sizeof err);
	CHECK(snap && mem);
	CHECK_INT(state_copy_wait(snap, mem), 2);
	state_close(snap);
	CHECK_INT(gl(mem, &grey, "192.0.2.4", "a@example.com", "b@example.net", T0 + 61, NULL), GREY_PASS_RETRY);
	CHECK_INT(state_ratelimit_wait(mem, "sender:x@example.com", 5, 3600, RL_LEAKY, 1, T0, &rl), 0);
	CHECK(rl.rate > 1.5);
	state_close(mem);

	/* the snapshot was only read: in the real store the tuple is still waiting */
	st = open_dir(dir, 0);
	CHECK_INT(gl(st, &grey, "192.0.2.4", "a@example.com", "b@example.net", T0 + 30, NULL), GREY_DEFER_EARLY);
	close_st(st);
	drop_dir(dir);
}

UNIT_MAIN_INIT(redis_server = getenv("MXGATE_TEST_REDIS"); memory = getenv("MXGATE_TEST_MEMORY"))
