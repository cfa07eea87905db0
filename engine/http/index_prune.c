/*
 * index_prune.c - the log index's retention (index.h index_prune): the
 * records older than a cutoff go, oldest first, with everything filed for
 * them, in bounded write transactions.
 *
 * Why this shape: the index grows by about 365 MiB per million log lines
 * and nothing else removes a record. A record is found again by the time
 * key (ms, seq), which is in time order, so the oldest are the first keys;
 * its search keys and counters are derived from its line exactly as the
 * writer derived them (index_keys_of, index_bucket_of), so nothing filed
 * for it is left behind. Counters go down by one per record instead of
 * whole buckets being dropped: a bucket that straddles the cutoff stays
 * exact, and the table and the search agree after every batch.
 *
 * LMDB puts the pages a transaction frees on its free list and the next
 * writes take them from there, as long as no reader still sees the older
 * snapshot: readers here are single queries, and mdb_reader_check() clears
 * the slots of readers that died (a killed `mxgate report`), which would
 * otherwise pin every freed page and let the file grow. Small batches keep
 * the free list's own records small too.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "index.h"
#include "index_db.h"
#include "logfmt.h"

struct pruner {
	struct logindex *ix;
	MDB_txn *txn;
};

static int
del_key(void *arg, const unsigned char *k, size_t len)
{
	struct pruner *p = arg;
	MDB_val key = { len, (void *)k };
	int rc = mdb_del(p->txn, p->ix->db[DB_KEY], &key, NULL);

	return rc == MDB_NOTFOUND ? 0 : rc;     /* an index without keys (INDEX_COUNTS_ONLY) */
}

/* One count fewer in a counter; at zero it goes. Its newest record is not
 * the one going unless it is the last: records go oldest first. */
static int
uncount(struct pruner *p, char level, int64_t ms, const char *dir, const char *reason)
{
	unsigned char k[INDEX_AGG_KEY];
	MDB_val key = { index_agg_key(k, level, ms, dir, reason), k }, val;
	struct agg a;
	int rc = mdb_get(p->txn, p->ix->db[DB_AGG], &key, &val);

	if (rc)
		return rc == MDB_NOTFOUND ? 0 : rc;
	if (val.mv_size != sizeof a)
		return 0;
	memcpy(&a, val.mv_data, sizeof a);
	if (a.count <= 1)
		return mdb_del(p->txn, p->ix->db[DB_AGG], &key, NULL);
	a.count--;
	val.mv_size = sizeof a;
	val.mv_data = &a;
	return mdb_put(p->txn, p->ix->db[DB_AGG], &key, &val, 0);
}

/* Record seq (its line, its keys, its counts); the caller removes its time key. */
static int
prune_record(struct pruner *p, uint64_t seq, int64_t ms)
{
	unsigned char sk[8];
	MDB_val key = { 8, sk }, val;
	char line[INDEX_LINE_MAX + 1];
	struct kv kv[LOGFMT_FIELDS];
	const char *dir, *reason;
	int n, rc;

	be64(sk, seq);
	if ((rc = mdb_get(p->txn, p->ix->db[DB_REC], &key, &val)))
		return rc == MDB_NOTFOUND ? 0 : rc;
	rec_line(&val, line);           /* a copy: val is gone after the first write */
	if ((n = logfmt_split(line, kv, LOGFMT_FIELDS)) >= 0) {
		if (index_bucket_of(kv, n, &dir, &reason) &&
		    ((rc = uncount(p, 'h', ms, dir, reason)) || (rc = uncount(p, 'm', ms, dir, reason))))
			return rc;
		if ((rc = index_keys_of(kv, n, seq, del_key, p)))
			return rc;
	}
	rc = mdb_del(p->txn, p->ix->db[DB_REC], &key, NULL);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Up to *budget records older than cutoff_ms; *more when the budget ran
 * out before they did. 0 or an LMDB error. */
static int
prune_records(struct pruner *p, int64_t cutoff_ms, size_t *budget, int *more)
{
	MDB_cursor *c;
	MDB_val key, val;
	int rc;

	if ((rc = mdb_cursor_open(p->txn, p->ix->db[DB_TIME], &c)))
		return rc;
	for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		int64_t ms;
		uint64_t seq;
		if (key.mv_size != 16 || (ms = (int64_t)get_be64(key.mv_data)) >= cutoff_ms)
			break;
		if (*budget == 0) {
			*more = 1;
			break;
		}
		seq = get_be64((unsigned char *)key.mv_data + 8);
		if ((rc = mdb_cursor_del(c, 0)) || (rc = prune_record(p, seq, ms)))
			break;
		(*budget)--;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/*
 * The journal entries (session id -> file, offset) of files named for a
 * day before `day` (YYYY-MM-DD). The journal names its files by the local
 * day a session ended, so a file of a day before the cutoff's day minus
 * one holds only sessions that ended before the cutoff, whatever the
 * time zone of the process that wrote it. The file's own offset ("j:NAME")
 * stays: without it the file, if still there, would be read again.
 */
static int
prune_journal(struct pruner *p, const char *day, size_t *budget, int *more)
{
	MDB_cursor *c;
	MDB_val key, val;
	int rc;

	if ((rc = mdb_cursor_open(p->txn, p->ix->db[DB_JDAY], &c)))
		return rc;
	for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		const char *k = key.mv_data;
		size_t nl = strnlen(k, key.mv_size);
		MDB_val sid, loc;
		int dated = nl >= 10 && nl < key.mv_size;
		for (int i = 0; dated && i < 10; i++)
			dated = i == 4 || i == 7 ? k[i] == '-' : isdigit((unsigned char)k[i]);
		if (dated && memcmp(k, day, 10) >= 0)
			break;                          /* this day and all after it stay */
		if (*budget == 0) {
			*more = 1;
			break;
		}
		(*budget)--;
		if (!dated)
			continue;                       /* not a name the journal writes */
		sid.mv_size = key.mv_size - nl - 1;
		sid.mv_data = (char *)k + nl + 1;
		/* Only when it still points into this file. */
		rc = mdb_get(p->txn, p->ix->db[DB_JRN], &sid, &loc);
		if (rc == 0 && loc.mv_size == nl + 9 && !memcmp(loc.mv_data, k, nl))
			rc = mdb_del(p->txn, p->ix->db[DB_JRN], &sid, NULL);
		if ((rc && rc != MDB_NOTFOUND) || (rc = mdb_cursor_del(c, 0)))
			break;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

int
index_prune(struct logindex *ix, double cutoff, size_t max, char *err, size_t errlen)
{
	struct pruner p = { ix, NULL };
	time_t day_t = (time_t)cutoff - 86400;
	char day[16];
	struct tm tm;
	size_t budget = max = max ? max : 1;
	int rc, more = 0;

	localtime_r(&day_t, &tm);
	strftime(day, sizeof day, "%Y-%m-%d", &tm);
	mdb_reader_check(ix->env, NULL);
	if ((rc = mdb_txn_begin(ix->env, NULL, 0, &p.txn))) {
		snprintf(err, errlen, "index: prune: %s", mdb_strerror(rc));
		return -1;
	}
	rc = prune_records(&p, (int64_t)(cutoff * 1000), &budget, &more);
	if (!rc && !more)
		rc = prune_journal(&p, day, &budget, &more);
	if (rc) {
		mdb_txn_abort(p.txn);
		snprintf(err, errlen, "index: prune: %s", mdb_strerror(rc));
		return -1;
	}
	if (budget == max && !more) {
		mdb_txn_abort(p.txn);           /* nothing was old: no commit */
		return 0;
	}
	if ((rc = mdb_txn_commit(p.txn))) {
		snprintf(err, errlen, "index: prune: %s", mdb_strerror(rc));
		return -1;
	}
	return more;
}
