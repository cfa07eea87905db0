/* test_index.c - the log index: incremental reads, rotation, torn and garbage lines, counts, search, journal,
 * retention (what pruning leaves is what an index of the kept lines holds, and freed pages are reused). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "index.h"
#include "index_db.h"
#include "unit.h"

static char dir[64], logp[128], ixdir[128], jdir[128];

static void
fresh(void)
{
	char cmd[256];

	if (dir[0]) {
		snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
		(void)!system(cmd);
	}
	snprintf(dir, sizeof dir, "/tmp/mxgate-index-XXXXXX");
	if (!mkdtemp(dir))
		abort();
	snprintf(logp, sizeof logp, "%s/mxgate.log", dir);
	snprintf(ixdir, sizeof ixdir, "%s/index", dir);
	snprintf(jdir, sizeof jdir, "%s/journal", dir);
	mkdir(jdir, 0700);
}

static void
append(const char *path, const char *text)
{
	FILE *f = fopen(path, "a");

	fputs(text, f);
	fclose(f);
}

/* A reject line at 2026-12-01 10:MM:SS. */
static void
reject(char *b, size_t n, int min, int sec, const char *reason, const char *client, const char *rcpt)
{
	snprintf(b, n, "ts=2026-12-01T10:%02d:%02d.000Z pid=1 event=reject sid=s%02d%02d dir=inbound "
	    "client=%s stage=rcpt code=550 enhanced=5.7.1 reason=%s rule=rules.d/50-dnsbl.lua:12 "
	    "text=\"%s: listed\" from=a@x.example rcpt=%s\n", min, sec, min, sec, client, reason,
	    reason, rcpt);
}

static void
add_reject(int min, int sec, const char *reason, const char *client, const char *rcpt)
{
	char b[512];

	reject(b, sizeof b, min, sec, reason, client, rcpt);
	append(logp, b);
}

struct tally {
	long n;
	char reason[64];
	long by[4];
};

static void
tally(void *arg, const char *dir, const char *reason, uint64_t count, uint64_t newest, int64_t ms)
{
	struct tally *t = arg;

	if (!strcmp(reason, "xbl"))
		t->by[0] += (long)count;
	else if (!strcmp(reason, "pbl"))
		t->by[1] += (long)count;
	else if (!strcmp(dir, "delivery"))
		t->by[2] += (long)count;
	t->n += (long)count;
}

static long
count_all(struct logindex *ix, double since, double until, long *xbl)
{
	struct tally t = { 0 };

	if (index_counts(ix, since, until, tally, &t) < 0)
		return -1;
	if (xbl)
		*xbl = t.by[0];
	return t.n;
}

static struct logindex *
open_ix(void)
{
	struct logindex *ix;
	char err[256];

	if (index_open(&ix, ixdir, logp, jdir, 0, 0, err, sizeof err) < 0) {
		fprintf(stderr, "  %s\n", err);
		return NULL;
	}
	return ix;
}

static int
update(struct logindex *ix)
{
	char err[256];
	int rc = index_update(ix, 0, err, sizeof err);

	if (rc < 0)
		fprintf(stderr, "  %s\n", err);
	return rc;
}

TEST(reads_only_what_the_log_gained_and_survives_reopening)
{
	struct logindex *ix;
	struct index_stats st;

	fresh();
	add_reject(1, 0, "xbl", "192.0.2.1", "b@h.example");
	CHECK((ix = open_ix()));
	CHECK_INT(update(ix), 0);
	CHECK_INT(count_all(ix, 0, 0, NULL), 1);
	add_reject(1, 5, "pbl", "192.0.2.2", "c@h.example");
	CHECK_INT(update(ix), 0);
	CHECK_INT(count_all(ix, 0, 0, NULL), 2);
	index_close(ix);
	CHECK((ix = open_ix()));
	CHECK_INT(update(ix), 0);
	index_stats(ix, &st);
	CHECK_INT(st.records, 2);
	CHECK_INT(st.lines, 2);
	CHECK_INT(count_all(ix, 0, 0, NULL), 2);
	index_close(ix);
}

TEST(a_torn_last_line_waits_for_its_end)
{
	struct logindex *ix;
	char b[512];
	size_t half;

	fresh();
	reject(b, sizeof b, 2, 0, "xbl", "192.0.2.1", "b@h.example");
	half = strlen(b) / 2;
	add_reject(1, 0, "xbl", "192.0.2.9", "b@h.example");
	b[half] = '\0';
	append(logp, b);                      /* a worker's write, half on disk */
	CHECK((ix = open_ix()));
	CHECK_INT(update(ix), 0);
	CHECK_INT(count_all(ix, 0, 0, NULL), 1);
	reject(b, sizeof b, 2, 0, "xbl", "192.0.2.1", "b@h.example");
	append(logp, b + half);
	CHECK_INT(update(ix), 0);
	CHECK_INT(count_all(ix, 0, 0, NULL), 2);
	index_close(ix);
}

TEST(garbage_lines_are_counted_and_skipped)
{
	struct logindex *ix;
	struct index_stats st;
	char *huge = malloc(200000);

	fresh();
	append(logp, "this is not a log line\n");
	append(logp, "ts=2026-13-45T99:00:00Z event=reject reason=xbl\n");
	append(logp, "ts=2026-12-01T10:00:00Z event=reject text=\"never closed\n");
	append(logp, "\x01\x02\xff binary\n");
	memset(huge, 'k', 199998);
	huge[199998] = '\n';
	huge[199999] = '\0';
	append(logp, huge);                   /* longer than any line of ours */
	free(huge);
	add_reject(3, 0, "xbl", "192.0.2.1", "b@h.example");
	append(logp, "ts=2026-12-01T10:03:01.000Z pid=1 event=connect sid=z client=192.0.2.1\n");
	CHECK((ix = open_ix()));
	CHECK_INT(update(ix), 0);
	index_stats(ix, &st);
	CHECK_INT(st.skipped, 5);
	CHECK_INT(st.records, 1);            /* connect lines are read, not kept */
	CHECK_INT(st.lines, 7);
	CHECK_INT(count_all(ix, 0, 0, NULL), 1);
	index_close(ix);
}

TEST(rotation_by_rename_reads_the_rest_of_the_old_file_then_the_new)
{
	struct logindex *ix;
	char old[160];

	fresh();
	add_reject(1, 0, "xbl", "192.0.2.1", "b@h.example");
	CHECK((ix = open_ix()));
	CHECK_INT(update(ix), 0);
	add_reject(1, 1, "xbl", "192.0.2.1", "b@h.example");   /* written before the move */
	snprintf(old, sizeof old, "%s.1", logp);
	CHECK(rename(logp, old) == 0);
	add_reject(1, 2, "pbl", "192.0.2.1", "b@h.example");   /* the new file */
	CHECK_INT(update(ix), 0);
	CHECK_INT(count_all(ix, 0, 0, NULL), 3);
	add_reject(1, 3, "pbl", "192.0.2.1", "b@h.example");
	CHECK_INT(update(ix), 0);
	CHECK_INT(count_all(ix, 0, 0, NULL), 4);
	index_close(ix);
}

TEST(rotation_by_truncation_starts_again_from_the_top)
{
	struct logindex *ix;

	fresh();
	add_reject(1, 0, "xbl", "192.0.2.1", "b@h.example");
	add_reject(1, 1, "xbl", "192.0.2.1", "b@h.example");
	CHECK((ix = open_ix()));
	CHECK_INT(update(ix), 0);
	CHECK(truncate(logp, 0) == 0);       /* copytruncate */
	add_reject(1, 2, "pbl", "192.0.2.1", "b@h.example");
	CHECK_INT(update(ix), 0);
	CHECK_INT(count_all(ix, 0, 0, NULL), 3);
	/* Truncated and written past the old offset before we looked: the
	 * first bytes tell. */
	CHECK(truncate(logp, 0) == 0);
	for (int i = 0; i < 4; i++)
		add_reject(2, i, "rbl", "192.0.2.1", "b@h.example");
	CHECK_INT(update(ix), 0);
	CHECK_INT(count_all(ix, 0, 0, NULL), 7);
	index_close(ix);
}

TEST(counts_are_exact_at_any_window_edge)
{
	struct logindex *ix;
	double t0 = 1796119200;               /* 2026-12-01T10:00:00Z */
	long xbl;

	fresh();
	/* 10:00:00 .. 10:59:59, one every 30 s, and two in the next hour. */
	for (int m = 0; m < 60; m++) {
		add_reject(m, 0, "xbl", "192.0.2.1", "b@h.example");
		add_reject(m, 30, "pbl", "192.0.2.2", "b@h.example");
	}
	append(logp, "ts=2026-12-01T11:00:00.000Z pid=1 event=delivered qid=Q1 rcpt=b@h.example "
	    "from=a@x.example relay=127.0.0.1:25 reply=\"250 ok\" delay=1 attempts=1 tls=none\n");
	append(logp, "ts=2026-12-01T11:00:00.500Z pid=1 event=bounced qid=Q1 rcpt=c@h.example "
	    "from=a@x.example relay=127.0.0.1:25 reply=\"550 no\" delay=1 attempts=1 tls=none\n");
	CHECK((ix = open_ix()));
	CHECK_INT(update(ix), 0);
	CHECK_INT(count_all(ix, 0, 0, &xbl), 122);
	CHECK_INT(xbl, 60);
	CHECK_INT(count_all(ix, t0, t0 + 3600, &xbl), 120);                   /* one hour bucket */
	CHECK_INT(count_all(ix, t0 + 15, t0 + 3600 + 0.2, &xbl), 120);        /* edges by record */
	CHECK_INT(xbl, 59);
	CHECK_INT(count_all(ix, t0 + 30, t0 + 30.001, NULL), 1);              /* one millisecond */
	CHECK_INT(count_all(ix, t0 + 30.001, t0 + 60, NULL), 0);
	CHECK_INT(count_all(ix, t0 + 600, t0 + 1200, &xbl), 20);              /* whole minutes */
	CHECK_INT(xbl, 10);
	CHECK_INT(count_all(ix, t0 + 3600, 0, NULL), 2);                      /* the deliveries */
	index_close(ix);
}

struct hits {
	int n;
	uint64_t seqs[16];
	char last[600];
};

static int
hit(void *arg, uint64_t seq, int64_t ms, const char *line, size_t len)
{
	struct hits *h = arg;

	if (h->n < 16)
		h->seqs[h->n] = seq;
	h->n++;
	snprintf(h->last, sizeof h->last, "%.*s", (int)len, line);
	return 0;
}

TEST(search_by_each_key_newest_first_and_paged)
{
	struct logindex *ix;
	struct hits h = { 0 };
	uint64_t next, before = 0;
	int pages = 0, total = 0;

	fresh();
	for (int i = 0; i < 25; i++)
		add_reject(i, 0, "xbl", i % 5 ? "192.0.2.1" : "192.0.2.5",
		    i % 2 ? "Bob@Customer.Example" : "carol@other.example");
	CHECK((ix = open_ix()));
	CHECK_INT(update(ix), 0);
	CHECK_INT(index_search(ix, IX_DOMAIN, "customer.example", 0, 0, 0, 100, hit, &h, &next), 0);
	CHECK_INT(h.n, 12);
	CHECK_INT(next, 0);
	CHECK(h.seqs[0] > h.seqs[1]);                 /* newest first */
	CHECK(strstr(h.last, "rcpt=Bob@Customer.Example"));
	memset(&h, 0, sizeof h);
	CHECK_INT(index_search(ix, IX_RCPT, "BOB@customer.example", 0, 0, 0, 100, hit, &h, &next), 0);
	CHECK_INT(h.n, 12);
	memset(&h, 0, sizeof h);
	CHECK_INT(index_search(ix, IX_CLIENT, "192.0.2.5", 0, 0, 0, 100, hit, &h, &next), 0);
	CHECK_INT(h.n, 5);
	memset(&h, 0, sizeof h);
	CHECK_INT(index_search(ix, IX_SENDER, "a@x.example", 0, 0, 0, 100, hit, &h, &next), 0);
	CHECK_INT(h.n, 25);
	memset(&h, 0, sizeof h);
	CHECK_INT(index_search(ix, IX_ID, "s0700", 0, 0, 0, 100, hit, &h, &next), 0);
	CHECK_INT(h.n, 1);
	memset(&h, 0, sizeof h);
	CHECK_INT(index_search(ix, IX_RCPT, "b@customer.example", 0, 0, 0, 100, hit, &h, &next), 0);
	CHECK_INT(h.n, 0);                            /* a value, not a prefix or suffix */
	/* 25 records, 10 a page: 10, 10, 5. */
	do {
		memset(&h, 0, sizeof h);
		CHECK_INT(index_search(ix, IX_SENDER, "a@x.example", 0, 0, before, 10, hit, &h, &next), 0);
		total += h.n;
		pages++;
		before = next;
	} while (next && pages < 10);
	CHECK_INT(pages, 3);
	CHECK_INT(total, 25);
	/* A window: 10:05 .. 10:10. */
	memset(&h, 0, sizeof h);
	CHECK_INT(index_search(ix, IX_SENDER, "a@x.example", 1796119500, 1796119800, 0, 100, hit, &h,
	    &next), 0);
	CHECK_INT(h.n, 5);
	index_close(ix);
}

TEST(the_journal_record_of_a_session_is_found_by_its_id)
{
	struct logindex *ix;
	struct buf b = BUF_INIT(1 << 20);
	char jf[200];

	fresh();
	snprintf(jf, sizeof jf, "%s/2026-12-01.jsonl", jdir);
	append(jf, "{\"v\":1,\"sid\":\"s0100\",\"events\":[{\"e\":\"cmd\",\"line\":\"EHLO x\"}]}\n");
	append(jf, "not json\n");
	append(jf, "{\"v\":1,\"sid\":\"s0200\",\"events\":[]}\n");
	append(jf, "{\"v\":1,\"sid\":\"s0300\",\"ev");     /* torn */
	add_reject(1, 0, "xbl", "192.0.2.1", "b@h.example");
	CHECK((ix = open_ix()));
	CHECK_INT(update(ix), 0);
	CHECK_INT(index_journal(ix, "s0100", &b), 1);
	CHECK(strstr(buf_str(&b), "EHLO x"));
	buf_reset(&b);
	CHECK_INT(index_journal(ix, "s0200", &b), 1);
	CHECK_STR(buf_str(&b), "{\"v\":1,\"sid\":\"s0200\",\"events\":[]}");
	buf_reset(&b);
	CHECK_INT(index_journal(ix, "s0300", &b), 0);
	append(jf, "ents\":[]}\n");
	CHECK_INT(update(ix), 0);
	CHECK_INT(index_journal(ix, "s0300", &b), 1);
	buf_reset(&b);
	CHECK_INT(index_journal(ix, "nope", &b), 0);
	buf_free(&b);
	index_close(ix);
}

/* Entries of each database: what pruning must leave equal to an index built from the kept lines alone. */
static void
entries(struct logindex *ix, size_t out[DB_N])
{
	MDB_txn *txn;
	MDB_stat st;

	memset(out, 0, DB_N * sizeof *out);
	if (mdb_txn_begin(ix->env, NULL, MDB_RDONLY, &txn))
		return;
	for (int i = 0; i < DB_N; i++)
		if (mdb_stat(txn, ix->db[i], &st) == 0)
			out[i] = st.ms_entries;
	mdb_txn_abort(txn);
}

static int
prune_all(struct logindex *ix, double cutoff, size_t batch, int *calls)
{
	char err[256];
	int rc;

	*calls = 0;
	while ((rc = index_prune(ix, cutoff, batch, err, sizeof err)) == 1)
		(*calls)++;
	if (rc < 0)
		fprintf(stderr, "  %s\n", err);
	return rc;
}

/* The hour 10:00-10:59 of the counts test (a reject every 30 s) and two deliveries at 11:00. */
static void
an_hour_of_lines(int from_minute, int from_sec)
{
	for (int m = 0; m < 60; m++) {
		if (m > from_minute || (m == from_minute && from_sec <= 0))
			add_reject(m, 0, "xbl", "192.0.2.1", "b@h.example");
		if (m > from_minute || (m == from_minute && from_sec <= 30))
			add_reject(m, 30, "pbl", "192.0.2.2", "b@h.example");
	}
	append(logp, "ts=2026-12-01T11:00:00.000Z pid=1 event=delivered qid=Q1 rcpt=b@h.example "
	    "from=a@x.example relay=127.0.0.1:25 reply=\"250 ok\" delay=1 attempts=1 tls=none\n");
	append(logp, "ts=2026-12-01T11:00:00.500Z pid=1 event=bounced qid=Q1 rcpt=c@h.example "
	    "from=a@x.example relay=127.0.0.1:25 reply=\"550 no\" delay=1 attempts=1 tls=none\n");
}

TEST(retention_removes_old_records_with_their_keys_counts_and_journal_entries)
{
	struct logindex *ix;
	struct hits h = { 0 };
	double t0 = 1796119200;               /* 2026-12-01T10:00:00Z */
	double cutoff = t0 + 1815;            /* 10:30:15: inside a minute and an hour counter */
	size_t got[DB_N], want[DB_N];
	uint64_t next;
	long xbl;
	int calls;
	char jold[200], jnew[200];

	fresh();
	snprintf(jold, sizeof jold, "%s/2026-11-20.jsonl", jdir);
	snprintf(jnew, sizeof jnew, "%s/2026-12-01.jsonl", jdir);
	append(jold, "{\"v\":1,\"sid\":\"s0100\",\"events\":[]}\n");
	append(jnew, "{\"v\":1,\"sid\":\"s3100\",\"events\":[]}\n");
	an_hour_of_lines(0, 0);
	CHECK((ix = open_ix()));
	CHECK_INT(update(ix), 0);
	CHECK_INT(count_all(ix, 0, 0, NULL), 122);
	/* 61 records are older (10:00:00 .. 10:30:00), 7 a batch: several transactions. */
	CHECK_INT(prune_all(ix, cutoff, 7, &calls), 0);
	CHECK(calls >= 8);
	CHECK_INT(count_all(ix, 0, 0, &xbl), 61);
	CHECK_INT(xbl, 29);
	CHECK_INT(count_all(ix, t0, t0 + 3600, NULL), 59);              /* the hour counter went down */
	CHECK_INT(count_all(ix, t0 + 1800, t0 + 1860, NULL), 1);        /* so did 10:30's minute */
	CHECK_INT(count_all(ix, t0 + 1800, t0 + 1860.0 + 3600, NULL), 61);
	CHECK_INT(index_search(ix, IX_ID, "s0000", 0, 0, 0, 100, hit, &h, &next), 0);
	CHECK_INT(h.n, 0);
	CHECK_INT(index_search(ix, IX_ID, "s3030", 0, 0, 0, 100, hit, &h, &next), 0);
	CHECK_INT(h.n, 1);
	memset(&h, 0, sizeof h);
	CHECK_INT(index_search(ix, IX_SENDER, "a@x.example", 0, 0, 0, 100, hit, &h, &next), 0);
	CHECK_INT(h.n, 61);
	CHECK_INT(count_all(ix, 0, 0, NULL), 61);
	{
		struct buf b = BUF_INIT(1 << 20);
		CHECK_INT(index_journal(ix, "s0100", &b), 0);       /* its day is long before the cutoff */
		CHECK_INT(index_journal(ix, "s3100", &b), 1);
		buf_free(&b);
	}
	/* Nothing is left behind: every database holds what an index of the kept lines holds. */
	entries(ix, got);
	CHECK_INT(prune_all(ix, cutoff, 7, &calls), 0);
	CHECK_INT(calls, 0);                                            /* nothing more to do */
	index_close(ix);
	fresh();
	snprintf(jnew, sizeof jnew, "%s/2026-12-01.jsonl", jdir);
	append(jnew, "{\"v\":1,\"sid\":\"s3100\",\"events\":[]}\n");
	an_hour_of_lines(30, 30);
	CHECK((ix = open_ix()));
	CHECK_INT(update(ix), 0);
	entries(ix, want);
	CHECK_INT(count_all(ix, 0, 0, NULL), 61);
	index_close(ix);
	for (int i = DB_REC; i < DB_N; i++)
		CHECK_INT(got[i], want[i]);
}

TEST(the_pages_pruning_frees_are_written_again)
{
	struct logindex *ix;
	struct index_stats st;
	uint64_t pages[5];
	char b[512];
	int calls;

	fresh();
	CHECK((ix = open_ix()));
	/* A day of 6,000 records (in 6 updates), then each next day with the
	 * day before it pruned: a retention of one day, five times. */
	for (int day = 0; day < 5; day++) {
		for (int u = 0; u < 6; u++) {
			FILE *f = fopen(logp, "a");
			for (int i = 0; i < 1000; i++) {
				int n = u * 1000 + i;
				snprintf(b, sizeof b, "ts=2026-12-0%dT%02d:%02d:%02d.000Z pid=1 event=reject "
				    "sid=s%d-%d dir=inbound client=192.0.2.%d stage=rcpt code=550 enhanced=5.7.1 "
				    "reason=xbl text=\"xbl: listed\" from=a%d@x.example rcpt=r%d@h%d.example\n",
				    day + 1, n / 3600 % 24, n / 60 % 60, n % 60, day, n, n % 250, n, n, n % 50);
				fputs(b, f);
			}
			fclose(f);
			CHECK_INT(update(ix), 0);
		}
		if (day > 0)
			CHECK_INT(prune_all(ix, 1796083200 + 86400.0 * day /* 2026-12-01 + day */, 1000,
			    &calls), 0);
		CHECK_INT(count_all(ix, 0, 0, NULL), 6000);
		index_stats(ix, &st);
		pages[day] = st.pages;
	}
	fprintf(stderr, "  pages after each day: %llu %llu %llu %llu %llu\n", (unsigned long long)pages[0],
	    (unsigned long long)pages[1], (unsigned long long)pages[2], (unsigned long long)pages[3],
	    (unsigned long long)pages[4]);
	/* Without reuse each day would take as many new pages again. */
	CHECK(pages[4] < pages[1] + pages[0] / 10);
	index_close(ix);
}

TEST(an_index_of_another_log_is_refused)
{
	struct logindex *ix;
	char err[512], other[160];

	fresh();
	CHECK((ix = open_ix()));
	index_close(ix);
	snprintf(other, sizeof other, "%s/other.log", dir);
	CHECK(index_open(&ix, ixdir, other, NULL, 0, 0, err, sizeof err) < 0);
	CHECK(strstr(err, "not "));
}

TEST(cleanup)
{
	char cmd[256];

	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
}

UNIT_MAIN()
