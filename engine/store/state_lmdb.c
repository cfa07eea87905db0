/*
 * state_lmdb.c - the state backend on LMDB (state.h), the embedded default:
 * every call answers at once, through its callback, before it returns.
 *
 * Every worker opens the environment itself, after fork, and keeps it for
 * its life. Each operation is one transaction: LMDB lets one writer in at
 * a time across all processes (its lock file holds a robust mutex), so a
 * read-modify-write done inside one write transaction is what makes racing
 * workers agree on a greylist tuple or a rate.
 *
 * Durability: the environment runs with MDB_NOSYNC and state_sweep() syncs
 * it from its timer. This state is not mail. A killed process (even
 * kill -9 inside a write) loses nothing, because committed pages are in
 * the page cache and an uncommitted transaction is simply never seen. An
 * OS crash or power cut may lose what was written since the last sweep,
 * and on a filesystem that reorders writes may leave the file unreadable:
 * state_open() then fails naming the file, and deleting it costs clients
 * one more greylisting round. The alternative, an fsync per RCPT while
 * every other worker waits on the writer lock, would cap the whole
 * gateway at the disk's fsync rate.
 *
 * Records (value layout, host byte order; the file never leaves the host):
 *   greylist  "NET <sender> <rcpt>"  -> { expires, first_seen, 0 }
 *   allow     "NET"                  -> { expires, since, 0 }
 *   ratelimit "key" (lowercased)     -> { expires, rate, last }
 *   callout   "key" (as given)       -> expires, then the text (no NUL)
 * Every value starts with its expiry; reads treat an expired record as
 * absent and state_sweep() deletes it.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <lmdb.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "state_logic.h"

#define STATE_MAP_DEFAULT  ((size_t)256 << 20) /* a new store, when map_size is 0 */
#define STATE_SWEEP_BATCH  1000  /* records visited per write txn while sweeping */
#define STATE_MAP_GROWTH   8     /* a full map may grow by 1/8 of its opening size */
#define STATE_MAP_STEP     ((size_t)256 << 10) /* ... at least this much at a time */
#define STATE_ERR_MAX      256

struct lmdb {
	struct state base;
	MDB_env *env;
	MDB_dbi  dbi[STATE_NDB];
	pid_t    pid;                 /* the process that opened env */
	size_t   map_cap;             /* grow_map() stops here */
	MDB_txn *rtxn;                /* reused read txn, reset between uses */
	int      readonly;            /* opened MDB_RDONLY: no sync at close */
	char     err[256];            /* the failure being answered */
};

/* greylist, allow and ratelimit values */
struct rec {
	double expires;
	double a;          /* first_seen | since | rate */
	double b;          /* 0 | 0 | last */
};

static int set_err(struct lmdb *st, int rc, const char *what)
{
	snprintf(st->err, sizeof st->err, "%s: %s", what, mdb_strerror(rc));
	return -1;
}

/* Answers a call: rc 0 or 1, or -1 with st->err. */
static void answer(struct lmdb *st, state_cb *cb, void *arg, struct state_reply *r, int rc)
{
	r->rc = rc;
	if (rc < 0)
		r->error = st->err;
	cb(arg, r);
}

/* ---- records ------------------------------------------------------------ */

static double rec_expires(const MDB_val *v)
{
	double e;
	if (v->mv_size < sizeof e)
		return 0; /* not ours: expired, the sweep removes it */
	memcpy(&e, v->mv_data, sizeof e);
	return e;
}

/* 0 and *r filled when the record exists and has not expired. */
static int rec_get(MDB_txn *txn, MDB_dbi dbi, const char *key, double now, struct rec *r)
{
	MDB_val k = { strlen(key), (void *)key }, v;
	int rc = mdb_get(txn, dbi, &k, &v);
	if (rc)
		return rc;
	if (v.mv_size != sizeof *r)
		return MDB_NOTFOUND;
	memcpy(r, v.mv_data, sizeof *r);
	return r->expires > now ? 0 : MDB_NOTFOUND;
}

static int rec_put(MDB_txn *txn, MDB_dbi dbi, const char *key, const struct rec *r)
{
	MDB_val k = { strlen(key), (void *)key }, v = { sizeof *r, (void *)r };
	return mdb_put(txn, dbi, &k, &v, 0);
}

static int key_del(MDB_txn *txn, MDB_dbi dbi, const char *key)
{
	MDB_val k = { strlen(key), (void *)key };
	return mdb_del(txn, dbi, &k, NULL);
}

/* ---- transactions ------------------------------------------------------- */

static int txn_begin(struct lmdb *st, unsigned flags, MDB_txn **txn)
{
	if (getpid() != st->pid) {
		/* LMDB's locks are per process: a handle inherited across
		 * fork would corrupt the lock table. */
		snprintf(st->err, sizeof st->err, "state store opened before fork (pid %ld)", (long)st->pid);
		return -1;
	}
	int rc = mdb_txn_begin(st->env, NULL, flags, txn);
	if (rc == MDB_MAP_RESIZED) {
		/* another process grew the map: adopt its size */
		if ((rc = mdb_env_set_mapsize(st->env, 0)) == 0)
			rc = mdb_txn_begin(st->env, NULL, flags, txn);
	}
	return rc ? set_err(st, rc, "begin transaction") : 0;
}

/*
 * Reads reuse one txn handle, reset between uses: with MDB_NOTLS a reset
 * txn keeps its reader slot, so a read costs no trip through the reader
 * table's mutex. Never more than one read at a time per process.
 */
static int read_begin(struct lmdb *st, MDB_txn **txn)
{
	if (st->rtxn && getpid() == st->pid) {
		if (mdb_txn_renew(st->rtxn) == 0) {
			*txn = st->rtxn;
			return 0;
		}
		mdb_txn_abort(st->rtxn); /* MDB_MAP_RESIZED and the like: start over */
		st->rtxn = NULL;
	}
	if (txn_begin(st, MDB_RDONLY, txn))
		return -1;
	st->rtxn = *txn;
	return 0;
}

static void read_end(struct lmdb *st)
{
	mdb_txn_reset(st->rtxn);
}

typedef int txn_fn(struct lmdb *st, MDB_txn *txn, void *arg);

static long sweep(struct lmdb *st, double now, int *rcp);

/*
 * Runs fn inside one write transaction and commits. A full map is met by
 * adopting a size another worker has grown to, sweeping expired records
 * and trying once more; after that the caller gets the error (the rule
 * then fails open or closed).
 */
static int write_txn(struct lmdb *st, txn_fn *fn, void *arg, double now)
{
	for (int attempt = 0;; attempt++) {
		MDB_txn *txn;
		if (txn_begin(st, 0, &txn))
			return -1;
		int rc = fn(st, txn, arg);
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
		if (rc == MDB_MAP_FULL && attempt == 0) {
			MDB_envinfo before, after;
			int src;
			mdb_env_info(st->env, &before);
			mdb_env_set_mapsize(st->env, 0);
			long n = sweep(st, now, &src);
			mdb_env_info(st->env, &after);
			if (n > 0 || after.me_mapsize > before.me_mapsize)
				continue;
		}
		return rc ? set_err(st, rc, "write") : 0;
	}
}

/* ---- open, close, sweep ------------------------------------------------- */

static struct state *lmdb_open(const struct state_conf *c, struct ev_loop *loop,
    char *err, size_t errlen)
{
	struct lmdb *st = calloc(1, sizeof *st);
	const char *dir = c->dir[0] ? c->dir : "var/state";
	size_t map_size = c->map_size;
	char path[4096];
	struct stat sb;
	MDB_txn *txn = NULL;
	int rc;
	const char *what = "create";

	if (!st) {
		snprintf(err, errlen, "state: out of memory");
		return NULL;
	}
	st->pid = getpid();
	st->readonly = c->readonly;
	if (!c->readonly && mkdir(dir, 0750) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "state: mkdir %s: %s", dir, strerror(errno));
		free(st);
		return NULL;
	}
	if ((rc = mdb_env_create(&st->env)))
		goto fail;
	what = "configure";
	if ((rc = mdb_env_set_maxdbs(st->env, STATE_NDB)))
		goto fail;
	/* map_size 0 adopts an existing store's size (the operators' CLI). */
	snprintf(path, sizeof path, "%s/data.mdb", dir);
	if (map_size == 0 && stat(path, &sb) != 0)
		map_size = STATE_MAP_DEFAULT;
	if (map_size && (rc = mdb_env_set_mapsize(st->env, map_size)))
		goto fail;
	what = "open";
	if ((rc = mdb_env_open(st->env, dir, MDB_NOTLS | MDB_NOSYNC | (c->readonly ? MDB_RDONLY : 0), 0640)))
		goto fail;
	if (mdb_env_get_maxkeysize(st->env) < STATE_KEY_MAX) {
		rc = MDB_BAD_VALSIZE;
		goto fail;
	}
	MDB_envinfo info;
	mdb_env_info(st->env, &info);
	st->map_cap = info.me_mapsize + info.me_mapsize / STATE_MAP_GROWTH;
	/* Reader slots of processes that died inside a read txn pin old
	 * pages until cleared. */
	int dead;
	mdb_reader_check(st->env, &dead);
	what = "open databases";
	if ((rc = mdb_txn_begin(st->env, NULL, c->readonly ? MDB_RDONLY : 0, &txn)))
		goto fail;
	for (int i = 0; i < STATE_NDB; i++)
		if ((rc = mdb_dbi_open(txn, state_db_name(i), c->readonly ? 0 : MDB_CREATE, &st->dbi[i])))
			goto fail;
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc)
		goto fail;
	return &st->base;
fail:
	if (txn)
		mdb_txn_abort(txn);
	if (rc == MDB_CORRUPTED || rc == MDB_INVALID || rc == MDB_PAGE_NOTFOUND)
		snprintf(err, errlen, "state: %s %s: %s (the store holds no mail: "
		    "remove %s/data.mdb to start afresh)", what, dir, mdb_strerror(rc), dir);
	else
		snprintf(err, errlen, "state: %s %s: %s", what, dir, mdb_strerror(rc));
	if (st->env)
		mdb_env_close(st->env);
	free(st);
	return NULL;
}

static void lmdb_close(struct state *base)
{
	struct lmdb *st = (struct lmdb *)base;

	if (getpid() == st->pid) {
		if (st->rtxn)
			mdb_txn_abort(st->rtxn);
		if (!st->readonly)
			mdb_env_sync(st->env, 1);
		mdb_env_close(st->env);
	}
	free(st);
}

/*
 * Deleting needs free pages too (LMDB copies each page it touches), so a
 * map filled to the last page cannot even be swept. Then the map grows a
 * little, never past map_cap (the opening size plus STATE_MAP_GROWTH), to
 * let the sweep run; other workers adopt the new size by MDB_MAP_RESIZED.
 */
static int grow_map(struct lmdb *st)
{
	MDB_envinfo info;
	mdb_env_info(st->env, &info);
	size_t step = info.me_mapsize / 32 > STATE_MAP_STEP ? info.me_mapsize / 32 : STATE_MAP_STEP;
	size_t want = info.me_mapsize + step > st->map_cap ? st->map_cap : info.me_mapsize + step;
	if (want <= info.me_mapsize)
		return MDB_MAP_FULL;
	return mdb_env_set_mapsize(st->env, want);
}

/*
 * Walks each database in batches of STATE_SWEEP_BATCH records, one write
 * txn per batch, so that a large store never holds the writer lock (and
 * every worker's RCPT) for long. Returns how many records it deleted;
 * *rcp is 0 or the error that stopped it.
 */
static long sweep(struct lmdb *st, double now, int *rcp)
{
	long n = 0;
	int grown = 0;

	*rcp = 0;
	for (int db = 0; db < STATE_NDB; db++) {
		char resume[512]; /* LMDB keys are at most 511 bytes */
		size_t rlen = 0;
		int rc, more = 1, first = 1;

		while (more) {
			MDB_txn *txn;
			MDB_cursor *cur;
			MDB_val k, v;
			long deleted = 0;

			if (txn_begin(st, 0, &txn)) {
				*rcp = EINVAL;
				return n;
			}
			if ((rc = mdb_cursor_open(txn, st->dbi[db], &cur))) {
				mdb_txn_abort(txn);
				goto fail;
			}
			k.mv_size = rlen, k.mv_data = resume;
			rc = mdb_cursor_get(cur, &k, &v, first ? MDB_FIRST : MDB_SET_RANGE);
			for (int seen = 0; rc == 0 && seen < STATE_SWEEP_BATCH; seen++) {
				if (rec_expires(&v) <= now) {
					if ((rc = mdb_cursor_del(cur, 0)))
						break;
					deleted++;
				}
				/* after a delete, NEXT yields the record that followed */
				rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
			}
			int last = rc == MDB_NOTFOUND;
			if (rc == 0) {
				memcpy(resume, k.mv_data, k.mv_size);
				rlen = k.mv_size;
			}
			mdb_cursor_close(cur);
			if (rc == 0 || last)
				rc = mdb_txn_commit(txn);
			else
				mdb_txn_abort(txn);
			if (rc == MDB_MAP_FULL && !grown) {
				grown = 1;
				if ((rc = grow_map(st)) == 0)
					continue; /* this batch again, with room */
			}
			if (rc)
				goto fail;
			first = 0;
			more = !last;
			n += deleted;
		}
		continue;
fail:
		*rcp = rc;
		set_err(st, rc, "sweep");
		return n;
	}
	return n;
}

static void lmdb_sweep(struct state *base, double now, state_cb *cb, void *arg)
{
	struct lmdb *st = (struct lmdb *)base;
	struct state_reply r = { 0 };
	int rc, dead;

	r.count = sweep(st, now, &rc);
	if (rc) {
		answer(st, cb, arg, &r, -1);
		return;
	}
	/* The timer that sweeps is also where MDB_NOSYNC's writes reach the
	 * disk and dead readers' slots are cleared. */
	mdb_env_sync(st->env, 1);
	mdb_reader_check(st->env, &dead);
	answer(st, cb, arg, &r, 0);
}

/* ---- greylisting and rate limiting: state_logic.c over this txn -------- */

struct txn_io {
	struct lmdb *st;
	MDB_txn     *txn;
};

static int io_get(void *ctx, enum state_db db, const char *key, double now, struct state_vals *v)
{
	struct txn_io *io = ctx;
	struct rec r;
	int rc = rec_get(io->txn, io->st->dbi[db], key, now, &r);

	if (rc == MDB_NOTFOUND)
		return STATE_ABSENT;
	if (rc == 0)
		*v = (struct state_vals){ r.expires, r.a, r.b };
	return rc;
}

static int io_put(void *ctx, enum state_db db, const char *key, const struct state_vals *v)
{
	struct txn_io *io = ctx;
	struct rec r = { v->expires, v->a, v->b };

	return rec_put(io->txn, io->st->dbi[db], key, &r);
}

static int io_del(void *ctx, enum state_db db, const char *key)
{
	struct txn_io *io = ctx;
	int rc = key_del(io->txn, io->st->dbi[db], key);

	return rc == MDB_NOTFOUND ? 0 : rc;
}

#define TXN_RECS(io) { &(io), io_get, io_put, io_del }

struct grey_op {
	const struct greylist_conf *c;
	const struct grey_keys *k;
	double now;
	struct greylist_result *out;
};

static int grey_txn(struct lmdb *st, MDB_txn *txn, void *arg)
{
	struct grey_op *op = arg;
	struct txn_io io = { st, txn };
	struct state_recs recs = TXN_RECS(io);

	return state_grey_step(&recs, op->c, op->k, op->now, op->out);
}

static void lmdb_greylist(struct state *base, const struct greylist_conf *c, const char *ip,
    const char *sender, const char *rcpt, double now, state_cb *cb, void *arg)
{
	struct lmdb *st = (struct lmdb *)base;
	struct grey_keys k;
	struct state_reply rep = { 0 };
	struct grey_op op = { c, &k, now, &rep.grey };
	MDB_txn *txn;
	const char *akey;
	struct state_vals r;

	rep.grey.verdict = GREY_ERROR;
	state_grey_keys(c, ip, sender, rcpt, &k);

	/* Most mail comes from allowed clients: answer those from a read
	 * txn, without the writer lock, unless the entry needs refreshing. */
	if (read_begin(st, &txn)) {
		answer(st, cb, arg, &rep, -1);
		return;
	}
	struct txn_io io = { st, txn };
	struct state_recs recs = TXN_RECS(io);
	int rc = state_grey_allowed(&recs, &k, now, &akey, &r);
	read_end(st);
	if (rc == 0 && now + c->allow_ttl - r.expires < state_allow_slack(c)) {
		rep.grey.verdict = GREY_PASS_ALLOWED;
		answer(st, cb, arg, &rep, 0);
		return;
	}
	if (rc != 0 && rc != STATE_ABSENT) {
		answer(st, cb, arg, &rep, set_err(st, rc, "greylist"));
		return;
	}
	if (write_txn(st, grey_txn, &op, now)) {
		rep.grey.verdict = GREY_ERROR;
		rep.grey.wait = 0;
		answer(st, cb, arg, &rep, -1);
		return;
	}
	answer(st, cb, arg, &rep, 0);
}

/* ---- rate limiting ------------------------------------------------------ */

struct rl_op {
	const char *key;
	double limit, period, count, now;
	int mode;
	struct ratelimit_result *out;
};

static int rl_txn(struct lmdb *st, MDB_txn *txn, void *arg)
{
	struct rl_op *op = arg;
	struct txn_io io = { st, txn };
	struct state_recs recs = TXN_RECS(io);

	return state_rl_step(&recs, op->key, op->limit, op->period, op->mode, op->count, op->now, op->out);
}

static void lmdb_ratelimit(struct state *base, const char *key, double limit, double period,
    int mode, double count, double now, state_cb *cb, void *arg)
{
	struct lmdb *st = (struct lmdb *)base;
	char k[STATE_KEY_MAX + 1];
	struct state_reply rep = { 0 };
	struct rl_op op = { k, limit, period, count, now, mode, &rep.rl };

	if (!(period > 0) || !(count >= 0)) {
		snprintf(st->err, sizeof st->err, "ratelimit: period must be > 0 and count >= 0");
		answer(st, cb, arg, &rep, -1);
		return;
	}
	state_key(STATE_RATELIMIT, key, k);
	answer(st, cb, arg, &rep, write_txn(st, rl_txn, &op, now));
}

/* ---- callout cache and the operators' view ----------------------------- */

/* A stored value as a record: 0, or -1 when it is not one of ours. */
static int to_rec(enum state_db db, const MDB_val *v, struct state_rec *out)
{
	struct rec r;

	out->a = out->b = 0;
	out->vlen = 0;
	out->value[0] = '\0';
	if (db == STATE_CALLOUT && v->mv_size >= sizeof(double)) {
		size_t len = v->mv_size - sizeof(double);
		out->expires = rec_expires(v);
		out->vlen = len > STATE_CACHE_MAX ? STATE_CACHE_MAX : len;
		memcpy(out->value, (const char *)v->mv_data + sizeof(double), out->vlen);
		out->value[out->vlen] = '\0';
		return 0;
	}
	if (db != STATE_CALLOUT && v->mv_size == sizeof r) {
		memcpy(&r, v->mv_data, sizeof r);
		out->expires = r.expires, out->a = r.a, out->b = r.b;
		return 0;
	}
	return -1;
}

/* A record as stored: its length in buf. */
static size_t from_rec(enum state_db db, const struct state_rec *in, char *buf)
{
	if (db == STATE_CALLOUT) {
		memcpy(buf, &in->expires, sizeof in->expires);
		memcpy(buf + sizeof in->expires, in->value, in->vlen);
		return sizeof in->expires + in->vlen;
	}
	struct rec r = { in->expires, in->a, in->b };
	memcpy(buf, &r, sizeof r);
	return sizeof r;
}

static void lmdb_cache_get(struct state *base, const char *key, double now, state_cb *cb, void *arg)
{
	struct lmdb *st = (struct lmdb *)base;
	char k[STATE_KEY_MAX + 1];
	struct state_reply rep = { 0 };
	struct state_rec r;
	MDB_txn *txn;
	MDB_val mk, mv;
	int rc;

	state_key(STATE_CALLOUT, key, k);
	mk.mv_size = strlen(k), mk.mv_data = k;
	if (read_begin(st, &txn)) {
		answer(st, cb, arg, &rep, -1);
		return;
	}
	rc = mdb_get(txn, st->dbi[STATE_CALLOUT], &mk, &mv);
	if (rc == 0 && (rec_expires(&mv) <= now || to_rec(STATE_CALLOUT, &mv, &r) < 0))
		rc = MDB_NOTFOUND;
	read_end(st);
	if (rc == MDB_NOTFOUND) {
		answer(st, cb, arg, &rep, 1);
		return;
	}
	if (rc) {
		answer(st, cb, arg, &rep, set_err(st, rc, "callout cache"));
		return;
	}
	rep.text = r.value;
	answer(st, cb, arg, &rep, 0);
}

struct put_op {
	enum state_db db;
	const char *key;
	const void *val;
	size_t len;
};

static int put_txn(struct lmdb *st, MDB_txn *txn, void *arg)
{
	struct put_op *op = arg;
	MDB_val k = { strlen(op->key), (void *)op->key }, v = { op->len, (void *)op->val };
	return mdb_put(txn, st->dbi[op->db], &k, &v, 0);
}

static void lmdb_cache_put(struct state *base, const char *key, const char *val, double expires,
    double now, state_cb *cb, void *arg)
{
	struct lmdb *st = (struct lmdb *)base;
	char k[STATE_KEY_MAX + 1];
	char buf[sizeof(double) + STATE_CACHE_MAX];
	struct state_reply rep = { 0 };
	size_t n = strlen(val);
	struct put_op op = { STATE_CALLOUT, k, buf, sizeof(double) + n };

	if (n > STATE_CACHE_MAX) {
		snprintf(st->err, sizeof st->err, "callout cache: value longer than %d bytes", STATE_CACHE_MAX);
		answer(st, cb, arg, &rep, -1);
		return;
	}
	state_key(STATE_CALLOUT, key, k);
	memcpy(buf, &expires, sizeof expires);
	memcpy(buf + sizeof expires, val, n);
	answer(st, cb, arg, &rep, write_txn(st, put_txn, &op, now));
}

static int bad_db(struct lmdb *st, enum state_db db)
{
	if ((unsigned)db < STATE_NDB)
		return 0;
	snprintf(st->err, sizeof st->err, "no such database %d", (int)db);
	return 1;
}

static void lmdb_list(struct state *base, enum state_db db, state_each_cb *each, void *each_arg,
    state_cb *cb, void *arg)
{
	struct lmdb *st = (struct lmdb *)base;
	struct state_reply rep = { 0 };
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	char key[512], text[STATE_TEXT_MAX];
	struct state_rec r;
	int rc;

	if (bad_db(st, db) || read_begin(st, &txn)) {
		answer(st, cb, arg, &rep, -1);
		return;
	}
	if ((rc = mdb_cursor_open(txn, st->dbi[db], &cur))) {
		read_end(st);
		answer(st, cb, arg, &rep, set_err(st, rc, "list"));
		return;
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		size_t n = k.mv_size < sizeof key ? k.mv_size : sizeof key - 1;
		memcpy(key, k.mv_data, n);
		key[n] = '\0';
		if (to_rec(db, &v, &r) < 0 || state_render(db, &r, text, sizeof text) < 0)
			snprintf(text, sizeof text, "invalid record (%zu bytes)", v.mv_size);
		each(each_arg, key, text);
	}
	mdb_cursor_close(cur);
	read_end(st);
	answer(st, cb, arg, &rep, rc == MDB_NOTFOUND ? 0 : set_err(st, rc, "list"));
}

static void lmdb_get(struct state *base, enum state_db db, const char *key, state_cb *cb, void *arg)
{
	struct lmdb *st = (struct lmdb *)base;
	struct state_reply rep = { 0 };
	char k[STATE_KEY_MAX + 1], text[STATE_TEXT_MAX];
	struct state_rec r;
	MDB_txn *txn;
	MDB_val mk, mv;
	int rc;

	if (bad_db(st, db) || read_begin(st, &txn)) {
		answer(st, cb, arg, &rep, -1);
		return;
	}
	state_key(db, key, k);
	mk.mv_size = strlen(k), mk.mv_data = k;
	rc = mdb_get(txn, st->dbi[db], &mk, &mv);
	if (rc == 0 && (to_rec(db, &mv, &r) < 0 || state_render(db, &r, text, sizeof text) < 0))
		snprintf(text, sizeof text, "invalid record (%zu bytes)", mv.mv_size);
	read_end(st);
	if (rc == MDB_NOTFOUND) {
		answer(st, cb, arg, &rep, 1);
		return;
	}
	if (rc) {
		answer(st, cb, arg, &rep, set_err(st, rc, "get"));
		return;
	}
	rep.text = text;
	answer(st, cb, arg, &rep, 0);
}

static void lmdb_put(struct state *base, enum state_db db, const char *key, const char *val,
    double now, state_cb *cb, void *arg)
{
	struct lmdb *st = (struct lmdb *)base;
	struct state_reply rep = { 0 };
	char k[STATE_KEY_MAX + 1];
	char buf[sizeof(double) + STATE_CACHE_MAX];
	struct state_rec r;
	struct put_op op = { db, k, buf, 0 };

	if (bad_db(st, db) || state_parse(db, val, &r, st->err, sizeof st->err)) {
		answer(st, cb, arg, &rep, -1);
		return;
	}
	state_key(db, key, k);
	if (!*k) {
		snprintf(st->err, sizeof st->err, "empty key");
		answer(st, cb, arg, &rep, -1);
		return;
	}
	op.len = from_rec(db, &r, buf);
	answer(st, cb, arg, &rep, write_txn(st, put_txn, &op, now));
}

struct del_op {
	enum state_db db;
	const char *key;
	int found;
};

static int del_txn(struct lmdb *st, MDB_txn *txn, void *arg)
{
	struct del_op *op = arg;
	int rc = key_del(txn, st->dbi[op->db], op->key);
	op->found = rc == 0;
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static void lmdb_del(struct state *base, enum state_db db, const char *key, state_cb *cb, void *arg)
{
	struct lmdb *st = (struct lmdb *)base;
	struct state_reply rep = { 0 };
	char k[STATE_KEY_MAX + 1];
	struct del_op op = { db, k, 0 };

	if (bad_db(st, db)) {
		answer(st, cb, arg, &rep, -1);
		return;
	}
	state_key(db, key, k);
	if (write_txn(st, del_txn, &op, (double)time(NULL))) {
		answer(st, cb, arg, &rep, -1);
		return;
	}
	answer(st, cb, arg, &rep, op.found ? 0 : 1);
}

const struct state_ops state_lmdb_ops = {
	.name = "lmdb", .open = lmdb_open, .close = lmdb_close,
	.greylist = lmdb_greylist, .ratelimit = lmdb_ratelimit,
	.cache_get = lmdb_cache_get, .cache_put = lmdb_cache_put,
	.list = lmdb_list, .get = lmdb_get, .put = lmdb_put, .del = lmdb_del,
	.sweep = lmdb_sweep,
};
