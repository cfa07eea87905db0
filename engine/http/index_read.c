/*
 * index_read.c - the log index's queries (index.h): counts over a time
 * window from hour and minute buckets, records by time, by number, by
 * search key, and the session's journal line. Each query is one read
 * transaction, so it sees one consistent state of the index.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index.h"
#include "index_db.h"
#include "logfmt.h"

#define MS_OPEN_END  ((int64_t)1 << 52)    /* "until" left open */

static int
rd_begin(struct logindex *ix, MDB_txn **txn)
{
	return mdb_txn_begin(ix->env, NULL, MDB_RDONLY, txn) ? -1 : 0;
}

static void
window(double since, double until, int64_t *lo, int64_t *hi)
{
	*lo = since > 0 ? (int64_t)ceil(since * 1000 - 0.5) : 0;
	*hi = until > 0 ? (int64_t)ceil(until * 1000 - 0.5) : MS_OPEN_END;
}

/* Records of [lo, hi) in time order: fn(seq, ms) for each. */
static int
time_walk(struct logindex *ix, MDB_txn *txn, int64_t lo, int64_t hi,
    int (*fn)(void *, MDB_txn *, uint64_t, int64_t), void *arg)
{
	unsigned char k[16];
	MDB_cursor *c;
	MDB_val key = { 16, k }, val;
	int rc;

	if (lo >= hi)
		return 0;
	be64(k, (uint64_t)lo);
	memset(k + 8, 0, 8);
	if (mdb_cursor_open(txn, ix->db[DB_TIME], &c))
		return -1;
	for (rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		int64_t ms;
		if (key.mv_size != 16)
			continue;
		ms = (int64_t)get_be64(key.mv_data);
		if (ms >= hi)
			break;
		if (fn(arg, txn, get_be64((unsigned char *)key.mv_data + 8), ms))
			break;
	}
	mdb_cursor_close(c);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* counts                                                              */

struct counting {
	struct logindex *ix;
	index_count_fn fn;
	void *arg;
	int err;
};

/* A record of an edge of the window: counted from its own line. */
static int
count_one(void *arg, MDB_txn *txn, uint64_t seq, int64_t ms)
{
	struct counting *ct = arg;
	struct logindex *ix = ct->ix;
	unsigned char k[8];
	MDB_val key = { 8, k }, val;
	char line[INDEX_LINE_MAX + 1];
	struct kv kv[LOGFMT_FIELDS];
	const char *dir, *reason;
	int n;

	be64(k, seq);
	if (mdb_get(txn, ix->db[DB_REC], &key, &val) || val.mv_size < 8)
		return 0;
	rec_line(&val, line);
	/* As the writer files it. */
	if ((n = logfmt_split(line, kv, LOGFMT_FIELDS)) < 0 || !index_bucket_of(kv, n, &dir, &reason))
		return 0;
	ct->fn(ct->arg, dir, reason, 1, seq, ms);
	return 0;
}

/* Buckets of one level whose whole span is inside [lo, hi). */
static int
bucket_sum(struct counting *ct, MDB_txn *txn, char level, int64_t lo, int64_t hi, int64_t span)
{
	unsigned char k[5];
	MDB_cursor *c;
	MDB_val key = { 5, k }, val;
	int rc;

	k[0] = (unsigned char)level;
	be32(k + 1, (uint32_t)(lo / span));
	if (mdb_cursor_open(txn, ct->ix->db[DB_AGG], &c))
		return -1;
	for (rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		const unsigned char *p = key.mv_data;
		const char *dir, *reason;
		struct agg a;
		uint32_t b;
		char d[17], r[65];
		size_t dl;
		if (key.mv_size < 6 || p[0] != (unsigned char)level)
			break;
		b = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
		if ((int64_t)b * span >= hi)
			break;
		if (val.mv_size != sizeof a)
			continue;
		memcpy(&a, val.mv_data, sizeof a);
		dir = (const char *)p + 5;
		dl = strnlen(dir, key.mv_size - 5);
		if (dl >= key.mv_size - 5 || dl > 16 || key.mv_size - 6 - dl > 64)
			continue;
		memcpy(d, dir, dl);
		d[dl] = '\0';
		reason = dir + dl + 1;
		memcpy(r, reason, key.mv_size - 6 - dl);
		r[key.mv_size - 6 - dl] = '\0';
		ct->fn(ct->arg, d, r, a.count, a.newest, a.newest_ms);
	}
	mdb_cursor_close(c);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : -1;
}

/* [lo, hi): whole hours from the hour buckets, whole minutes of the rest
 * from the minute buckets, the leftover milliseconds record by record. */
static int
count_range(struct counting *ct, MDB_txn *txn, int64_t lo, int64_t hi, int level)
{
	static const int64_t spans[] = { 3600000, 60000 };
	static const char names[] = { 'h', 'm' };
	int64_t span, a, b;

	if (lo >= hi)
		return 0;
	if (level == 2)
		return time_walk(ct->ix, txn, lo, hi, count_one, ct);
	span = spans[level];
	a = (lo + span - 1) / span * span;
	b = hi / span * span;
	if (a >= b)
		return count_range(ct, txn, lo, hi, level + 1);
	if (count_range(ct, txn, lo, a, level + 1) < 0 ||
	    bucket_sum(ct, txn, names[level], a, b, span) < 0)
		return -1;
	return count_range(ct, txn, b, hi, level + 1);
}

/* body(txn, lo, hi, arg) in one read transaction over the window in ms. */
static int
in_window_txn(struct logindex *ix, double since, double until,
    int (*body)(MDB_txn *, int64_t, int64_t, void *), void *arg)
{
	MDB_txn *txn;
	int64_t lo, hi;
	int rc;

	window(since, until, &lo, &hi);
	if (rd_begin(ix, &txn))
		return -1;
	rc = body(txn, lo, hi, arg);
	mdb_txn_abort(txn);
	return rc;
}

static int
counts_body(MDB_txn *txn, int64_t lo, int64_t hi, void *arg)
{
	return count_range(arg, txn, lo, hi, 0);
}

int
index_counts(struct logindex *ix, double since, double until, index_count_fn fn, void *arg)
{
	struct counting ct = { ix, fn, arg, 0 };

	return in_window_txn(ix, since, until, counts_body, &ct);
}

/* ------------------------------------------------------------------ */
/* records                                                             */

struct walking {
	struct logindex *ix;
	index_rec_fn fn;
	void *arg;
};

static int
deliver(struct logindex *ix, MDB_txn *txn, uint64_t seq, index_rec_fn fn, void *arg, int *found)
{
	unsigned char k[8];
	MDB_val key = { 8, k }, val;
	int64_t ms;

	be64(k, seq);
	*found = 0;
	if (mdb_get(txn, ix->db[DB_REC], &key, &val) || val.mv_size < 8)
		return 0;
	*found = 1;
	memcpy(&ms, val.mv_data, 8);
	return fn(arg, seq, ms, (const char *)val.mv_data + 8, val.mv_size - 8);
}

static int
walk_one(void *arg, MDB_txn *txn, uint64_t seq, int64_t ms)
{
	struct walking *wk = arg;
	int found;

	return deliver(wk->ix, txn, seq, wk->fn, wk->arg, &found);
}

static int
scan_body(MDB_txn *txn, int64_t lo, int64_t hi, void *arg)
{
	struct walking *wk = arg;

	return time_walk(wk->ix, txn, lo, hi, walk_one, wk);
}

int
index_scan(struct logindex *ix, double since, double until, index_rec_fn fn, void *arg)
{
	struct walking wk = { ix, fn, arg };

	return in_window_txn(ix, since, until, scan_body, &wk);
}

int
index_get(struct logindex *ix, uint64_t seq, index_rec_fn fn, void *arg)
{
	MDB_txn *txn;
	int found;

	if (rd_begin(ix, &txn))
		return -1;
	deliver(ix, txn, seq, fn, arg, &found);
	mdb_txn_abort(txn);
	return found ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* search                                                              */

struct matching {
	index_rec_fn fn;
	void *arg;
	int64_t lo, hi;
	int in;                         /* the record was inside the window */
	int old;                        /* it was before the window */
};

static int
in_window(void *arg, uint64_t seq, int64_t ms, const char *line, size_t len)
{
	struct matching *m = arg;

	m->in = ms >= m->lo && ms < m->hi;
	m->old = ms < m->lo;
	return m->in ? m->fn(m->arg, seq, ms, line, len) : 0;
}

int
index_search(struct logindex *ix, enum index_field f, const char *value, double since,
    double until, uint64_t before, size_t limit, index_rec_fn fn, void *arg, uint64_t *next)
{
	struct matching m = { fn, arg, 0, 0, 0, 0 };
	unsigned char k[1 + INDEX_KEY_MAX + 1 + 8];
	size_t n = 1, given = 0;
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val key, val;
	int rc;

	*next = 0;
	window(since, until, &m.lo, &m.hi);
	k[0] = (unsigned char)f;
	for (; *value && n < 1 + INDEX_KEY_MAX; value++)
		k[n++] = (unsigned char)(*value >= 'A' && *value <= 'Z' ? *value + 32 : *value);
	k[n++] = '\0';
	be64(k + n, before ? before : UINT64_MAX);
	key.mv_size = n + 8;
	key.mv_data = k;
	if (rd_begin(ix, &txn))
		return -1;
	if (mdb_cursor_open(txn, ix->db[DB_KEY], &c)) {
		mdb_txn_abort(txn);
		return -1;
	}
	/* The first key at or after (value, before), then backwards: the
	 * value's records older than `before`, newest first. */
	rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE);
	rc = rc == MDB_NOTFOUND ? mdb_cursor_get(c, &key, &val, MDB_LAST) :
	    rc ? rc : mdb_cursor_get(c, &key, &val, MDB_PREV);
	for (; rc == 0; rc = mdb_cursor_get(c, &key, &val, MDB_PREV)) {
		uint64_t seq;
		int found;
		if (key.mv_size != n + 8 || memcmp(key.mv_data, k, n))
			break;
		seq = get_be64((unsigned char *)key.mv_data + n);
		if (before && seq >= before)
			continue;
		if (given == limit) {
			*next = seq + 1;
			break;
		}
		m.in = m.old = 0;
		if (deliver(ix, txn, seq, in_window, &m, &found))
			break;
		if (m.in)
			given++;
		else if (m.old)
			break;          /* older than the window: so is all that follows */
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* journal                                                             */

int
index_journal(struct logindex *ix, const char *sid, struct buf *out)
{
	MDB_txn *txn;
	MDB_val key = { strlen(sid), (void *)sid }, val;
	char path[1024], name[256], chunk[8192];
	uint64_t off;
	size_t nl;
	int fd, rc = 0;

	if (!ix->journal[0] || !*sid)
		return 0;
	if (rd_begin(ix, &txn))
		return -1;
	if (mdb_get(txn, ix->db[DB_JRN], &key, &val) || val.mv_size < 10 ||
	    (nl = strnlen(val.mv_data, val.mv_size)) + 9 != val.mv_size || nl >= sizeof name) {
		mdb_txn_abort(txn);
		return 0;
	}
	memcpy(name, val.mv_data, nl);
	name[nl] = '\0';
	off = get_be64((unsigned char *)val.mv_data + nl + 1);
	mdb_txn_abort(txn);
	if (strchr(name, '/'))
		return 0;
	snprintf(path, sizeof path, "%s/%s", ix->journal, name);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	for (;;) {
		ssize_t got = pread(fd, chunk, sizeof chunk, (off_t)off);
		char *end;
		if (got <= 0)
			break;
		end = memchr(chunk, '\n', (size_t)got);
		if (buf_add(out, chunk, end ? (size_t)(end - chunk) : (size_t)got) < 0) {
			rc = -1;
			break;
		}
		if (end) {
			rc = 1;
			break;
		}
		off += (uint64_t)got;
	}
	close(fd);
	return rc;
}
