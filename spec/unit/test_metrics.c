/*
 * test_metrics.c - the shared-memory counters: processes incrementing
 * their own slices and interning reason keys at once, the bounded table,
 * a dead process's gauges, and the text /metrics makes of them.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "conf.h"
#include "metrics.h"
#include "prom.h"
#include "unit.h"

static uint64_t
replies(const struct metrics *m, int stage, int cls, const char *reason)
{
	uint64_t v = 0;

	for (int r = 0; r < METRICS_REASONS; r++) {
		if (m->reason_state[r] != 2 || strcmp(m->reason[r], reason) != 0)
			continue;
		for (int i = 0; i < m->nslots; i++)
			v += m->slice[i].replies[stage][cls][r];
	}
	return v;
}

static int
reason_slots(const struct metrics *m, const char *reason)
{
	int n = 0;

	for (int r = 0; r < METRICS_REASONS; r++)
		n += m->reason_state[r] == 2 && strcmp(m->reason[r], reason) == 0;
	return n;
}

TEST(four_processes_intern_the_same_keys_once_and_lose_no_count)
{
	const struct metrics *m;
	char key[32];

	CHECK_INT(metrics_new(4), 0);
	m = metrics_shared();
	for (int w = 0; w < 4; w++) {
		if (fork() == 0) {
			metrics_slot(w);
			for (int j = 0; j < 20000; j++) {
				snprintf(key, sizeof key, "key%d", (j + w * 7) % 40);
				metrics_reply(STAGE_RCPT, 550, key);
				metrics_count(MC_RULE_ERROR, 1);
			}
			_exit(0);
		}
	}
	for (int w = 0; w < 4; w++)
		wait(NULL);
	for (int k = 0; k < 40; k++) {
		snprintf(key, sizeof key, "key%d", k);
		CHECK_INT(reason_slots(m, key), 1);
		CHECK_INT(replies(m, STAGE_RCPT, 3, key), 4 * 20000 / 40);
	}
	CHECK_INT(m->slice[0].counter[MC_RULE_ERROR] + m->slice[1].counter[MC_RULE_ERROR] +
	    m->slice[2].counter[MC_RULE_ERROR] + m->slice[3].counter[MC_RULE_ERROR], 80000);
}

TEST(keys_past_the_table_count_as_other)
{
	const struct metrics *m;
	char key[32];
	uint64_t named = 0;

	CHECK_INT(metrics_new(1), 0);
	m = metrics_shared();
	metrics_slot(0);
	for (int k = 0; k < 300; k++) {
		snprintf(key, sizeof key, "k%d", k);
		metrics_reply(STAGE_MAIL, 451, key);
	}
	metrics_reply(STAGE_MAIL, 451, "a key longer than the table's slots can hold, so other");
	for (int k = 0; k < 300; k++) {
		snprintf(key, sizeof key, "k%d", k);
		named += replies(m, STAGE_MAIL, 2, key);
	}
	CHECK_INT(named, METRICS_REASONS - 2);
	CHECK_INT(replies(m, STAGE_MAIL, 2, "other"), 300 - (METRICS_REASONS - 2) + 1);
	metrics_reply(STAGE_MAIL, 199, "x");        /* no such class: ignored */
	metrics_reply(STAGE_MAX, 250, "x");
	CHECK_INT(reason_slots(m, "x"), 0);
}

TEST(a_rule_reason_named_other_counts_in_the_overflow_slot)
{
	const struct metrics *m;

	CHECK_INT(metrics_new(1), 0);
	m = metrics_shared();
	metrics_slot(0);
	metrics_reply(STAGE_RCPT, 550, "other");
	metrics_reply(STAGE_RCPT, 550, "other");    /* the second from the process's cache */
	metrics_reply(STAGE_RCPT, 550, "a key longer than the table's slots can hold, so other");
	CHECK_INT(reason_slots(m, "other"), 1);
	CHECK_INT(m->slice[0].replies[STAGE_RCPT][3][METRICS_REASONS - 1], 3);
}

TEST(a_dead_process_loses_its_gauges_not_its_counters)
{
	const struct metrics *m;

	CHECK_INT(metrics_new(2), 0);
	m = metrics_shared();
	metrics_slot(1);
	metrics_session(0, 1);
	metrics_session(0, 1);
	metrics_session(0, 0);
	metrics_gauge_add(MG_GENERATIONS, 2);
	metrics_set(MG_QUEUE_OLDEST, 12345);
	metrics_forget(1);
	CHECK_INT(m->slice[1].sessions[0], 2);
	CHECK_INT(m->slice[1].sessions_open[0], 0);
	CHECK_INT(m->slice[1].gauge[MG_GENERATIONS], 0);
	CHECK_INT(m->slice[1].gauge[MG_QUEUE_OLDEST], 12345);   /* the queue's age keeps growing */
}

TEST(health_is_ready_once_every_worker_loaded_the_masters_generation)
{
	struct metrics_health h;
	const struct metrics *m;

	CHECK_INT(metrics_new(2), 0);
	m = metrics_shared();
	metrics_slot(METRICS_MASTER(m));
	metrics_set(MG_GENERATION, 3);
	metrics_slot(0);
	metrics_loaded();
	metrics_health(m, m->started + 5, &h);
	CHECK_INT(h.ready, 0);
	metrics_slot(1);
	metrics_loaded();
	metrics_health(m, m->started + 5, &h);
	CHECK_INT(h.ready, 1);
	CHECK_INT(h.generation, 3);
	CHECK(h.uptime == 5);
}

TEST(the_text_format_escapes_labels_and_cumulates_buckets)
{
	struct conf c;
	struct buf b = BUF_INIT(0);
	const struct metrics *m;

	memset(&c, 0, sizeof c);
	c.nlisten = 1;
	strcpy(c.listen[0].address, "::1");
	c.listen[0].port = 25;
	CHECK_INT(metrics_new(1), 0);
	m = metrics_shared();
	metrics_slot(0);
	metrics_reply(STAGE_RCPT, 550, "we\"ird\\key\nx");
	metrics_observe(MH_DNS, 0.0001);
	metrics_observe(MH_DNS, 0.003);
	metrics_observe(MH_DNS, 99);
	metrics_session(0, 1);
	metrics_format(m, &c, m->started + 1, &b);
	CHECK(strstr(buf_str(&b), "reason=\"we\\\"ird\\\\key\\nx\"} 1\n"));
	CHECK(strstr(buf_str(&b), "mxgate_dns_lookup_duration_seconds_bucket{le=\"0.0005\"} 1\n"));
	CHECK(strstr(buf_str(&b), "mxgate_dns_lookup_duration_seconds_bucket{le=\"0.005\"} 2\n"));
	CHECK(strstr(buf_str(&b), "mxgate_dns_lookup_duration_seconds_bucket{le=\"10\"} 2\n"));
	CHECK(strstr(buf_str(&b), "mxgate_dns_lookup_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
	CHECK(strstr(buf_str(&b), "mxgate_dns_lookup_duration_seconds_count 3\n"));
	CHECK(strstr(buf_str(&b), "mxgate_sessions_total{direction=\"inbound\",listener=\"[::1]:25\"} 1\n"));
	buf_free(&b);
}

static int
occurrences(const char *s, const char *needle)
{
	int n = 0;

	for (; (s = strstr(s, needle)) != NULL; s += strlen(needle))
		n++;
	return n;
}

TEST(two_slots_holding_one_key_are_one_series_with_their_sum)
{
	struct conf c;
	struct buf b = BUF_INIT(0);
	struct metrics *m;

	memset(&c, 0, sizeof c);
	CHECK_INT(metrics_new(2), 0);
	m = (struct metrics *)metrics_shared();
	/* Process A has claimed slot 1 for "rbl" and not yet published it;
	 * process B gives up waiting and writes "rbl" into slot 2 ... */
	m->reason_state[1] = 1;
	metrics_slot(1);
	metrics_reply(STAGE_RCPT, 550, "rbl");
	CHECK_STR(m->reason[2], "rbl");
	/* ... then A finishes: two ready slots with one key. */
	strcpy(m->reason[1], "rbl");
	m->reason_state[1] = 2;
	m->slice[0].replies[STAGE_RCPT][3][1] = 2;
	metrics_slot(0);
	metrics_reply(STAGE_RCPT, 550, "spam");
	metrics_format(m, &c, m->started + 1, &b);
	CHECK_INT(occurrences(buf_str(&b), "reason=\"rbl\"}"), 1);
	CHECK(strstr(buf_str(&b), "mxgate_replies_total{stage=\"rcpt\",class=\"5xx\",reason=\"rbl\"} 3\n"));
	CHECK(strstr(buf_str(&b), "mxgate_replies_total{stage=\"rcpt\",class=\"5xx\",reason=\"spam\"} 1\n"));
	buf_free(&b);
}

UNIT_MAIN()
