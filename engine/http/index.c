/*
 * index.c - the log index's writer (index.h): opens the environment and
 * brings it up to date from its checkpoint, the log then the journal.
 *
 * Rotation: the checkpoint names the file by device and inode and keeps
 * its first bytes. A different inode at the log's path means logrotate
 * moved it: the rest of the old file is read from PATH.1 when that is it,
 * then the new file from 0. The same inode that is shorter than the
 * checkpoint, or begins with other bytes, was truncated (copytruncate) or
 * reused: read from 0. Each transaction commits the records and the
 * checkpoint together, so a crash repeats nothing and loses nothing.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "index.h"
#include "index_db.h"
#include "json.h"
#include "logfmt.h"
#include "timefmt.h"

#define MAP_SIZE     ((size_t)16 << 30)   /* sparse; the bound on the index's size unless given */
#define CHUNK        (1 << 20)            /* bytes read at a time */
#define TXN_RECORDS  20000                /* records per transaction */

static const char *db_names[DB_N] = { "meta", "rec", "time", "agg", "key", "jrn", "jday" };

static int
fail(char *err, size_t errlen, const char *what, int rc)
{
	snprintf(err, errlen, "index: %s: %s", what, rc > 0 ? mdb_strerror(rc) : strerror(errno));
	return -1;
}

int
index_open(struct logindex **out, const char *dir, const char *log, const char *journal_dir,
    int flags, size_t max_size, char *err, size_t errlen)
{
	struct logindex *ix = calloc(1, sizeof *ix);
	MDB_txn *txn = NULL;
	MDB_val k = { 4, "path" }, v;
	int rc;

	*out = NULL;
	if (!ix)
		return fail(err, errlen, "open", ENOMEM);
	snprintf(ix->log, sizeof ix->log, "%s", log);
	ix->flags = flags;
	snprintf(ix->journal, sizeof ix->journal, "%s", journal_dir ? journal_dir : "");
	if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "index: %s: %s", dir, strerror(errno));
		free(ix);
		return -1;
	}
	if ((rc = mdb_env_create(&ix->env)) || (rc = mdb_env_set_maxdbs(ix->env, DB_N)) ||
	    (rc = mdb_env_set_mapsize(ix->env, max_size ? max_size : MAP_SIZE)) ||
	    (rc = mdb_env_open(ix->env, dir, MDB_NOTLS | MDB_NOSYNC | MDB_NOMETASYNC, 0640)))
		goto bad;
	mdb_reader_check(ix->env, NULL);
	if ((rc = mdb_txn_begin(ix->env, NULL, 0, &txn)))
		goto bad;
	for (int i = 0; i < DB_N; i++)
		if ((rc = mdb_dbi_open(txn, db_names[i], MDB_CREATE, &ix->db[i])))
			goto bad;
	rc = mdb_get(txn, ix->db[DB_META], &k, &v);
	if (rc == 0 && (v.mv_size != strlen(log) || memcmp(v.mv_data, log, v.mv_size))) {
		snprintf(err, errlen, "index: %s indexes %.*s, not %s", dir, (int)v.mv_size,
		    (char *)v.mv_data, log);
		mdb_txn_abort(txn);
		index_close(ix);
		return -1;
	}
	if (rc == MDB_NOTFOUND) {
		v.mv_size = strlen(log);
		v.mv_data = (void *)log;
		rc = mdb_put(txn, ix->db[DB_META], &k, &v, 0);
	}
	if (rc || (rc = mdb_txn_commit(txn))) {
		txn = NULL;
		goto bad;
	}
	*out = ix;
	return 0;
bad:
	if (txn)
		mdb_txn_abort(txn);
	fail(err, errlen, dir, rc);
	index_close(ix);
	return -1;
}

void
index_close(struct logindex *ix)
{
	if (!ix)
		return;
	if (ix->env) {
		mdb_env_sync(ix->env, 1);
		mdb_env_close(ix->env);
	}
	free(ix);
}

/* ------------------------------------------------------------------ */
/* one record                                                          */

struct writer {
	struct logindex *ix;
	MDB_txn *txn;
	struct ckpt ck;
	size_t   pending;               /* records in this transaction */
};

static int
put(struct writer *w, int db, const void *k, size_t klen, const void *v, size_t vlen, unsigned fl)
{
	MDB_val key = { klen, (void *)k }, val = { vlen, (void *)v };

	return mdb_put(w->txn, w->ix->db[db], &key, &val, fl);
}

size_t
index_agg_key(unsigned char k[INDEX_AGG_KEY], char level, int64_t ms, const char *dir,
    const char *reason)
{
	size_t dl = strnlen(dir, 15), rl = strnlen(reason, 63), n = 5;

	k[0] = (unsigned char)level;
	be32(k + 1, (uint32_t)(ms / (level == 'h' ? 3600000 : 60000)));
	memcpy(k + n, dir, dl);
	n += dl;
	k[n++] = '\0';
	memcpy(k + n, reason, rl);
	return n + rl;
}

static int
add_count(struct writer *w, char level, int64_t ms, const char *dir, const char *reason)
{
	unsigned char k[INDEX_AGG_KEY];
	MDB_val key = { index_agg_key(k, level, ms, dir, reason), k }, val;
	struct agg a = { 0, 0, 0 };
	int rc;

	rc = mdb_get(w->txn, w->ix->db[DB_AGG], &key, &val);
	if (rc == 0 && val.mv_size == sizeof a)
		memcpy(&a, val.mv_data, sizeof a);
	else if (rc && rc != MDB_NOTFOUND)
		return rc;
	a.count++;
	if (ms >= a.newest_ms) {
		a.newest_ms = ms;
		a.newest = w->ck.seq;
	}
	return put(w, DB_AGG, k, key.mv_size, &a, sizeof a, 0);
}

/* One search key: field, the value lowercased, NUL, the record's number. */
static int
key_of(enum index_field f, const char *v, uint64_t seq,
    int (*fn)(void *, const unsigned char *, size_t), void *arg)
{
	unsigned char k[1 + INDEX_KEY_MAX + 1 + 8];
	size_t n = 1;

	if (!v || !*v)
		return 0;
	k[0] = (unsigned char)f;
	for (; *v && n < 1 + INDEX_KEY_MAX; v++)
		k[n++] = (unsigned char)(*v >= 'A' && *v <= 'Z' ? *v + 32 : *v);
	k[n++] = '\0';
	be64(k + n, seq);
	return fn(arg, k, n + 8);
}

int
index_keys_of(struct kv *kv, int n, uint64_t seq,
    int (*fn)(void *arg, const unsigned char *key, size_t len), void *arg)
{
	static const struct { enum index_field f; const char *name; } keys[] = {
		{ IX_ID, "sid" }, { IX_ID, "qid" }, { IX_CLIENT, "client" }, { IX_SENDER, "from" },
		{ IX_RCPT, "rcpt" },
	};
	const char *rcpt = logfmt_get(kv, n, "rcpt"), *at = rcpt ? strrchr(rcpt, '@') : NULL;
	int rc = 0;

	for (size_t i = 0; !rc && i < sizeof keys / sizeof *keys; i++)
		rc = key_of(keys[i].f, logfmt_get(kv, n, keys[i].name), seq, fn, arg);
	if (!rc && at)
		rc = key_of(IX_DOMAIN, at + 1, seq, fn, arg);
	return rc;
}

int
index_bucket_of(struct kv *kv, int n, const char **dir, const char **reason)
{
	const char *ev = logfmt_get(kv, n, "event");

	if (!ev || !strcmp(ev, "accepted"))
		return 0;
	if (strcmp(ev, "reject") != 0) {
		*dir = "delivery";              /* a delivery event, by its result */
		*reason = ev;
		return 1;
	}
	*dir = logfmt_get(kv, n, "dir");
	*dir = *dir ? *dir : "";
	*reason = logfmt_get(kv, n, "reason");
	*reason = *reason && **reason ? *reason : "unknown";
	return 1;
}

static int
put_key(void *arg, const unsigned char *k, size_t len)
{
	struct writer *w = arg;

	return put(w, DB_KEY, k, len, "", 0, 0);
}

static int
is_indexed(const char *ev)
{
	return !strcmp(ev, "reject") || !strcmp(ev, "accepted") || !strcmp(ev, "delivered") ||
	    !strcmp(ev, "deferred") || !strcmp(ev, "bounced");
}

/* One complete log line (without its LF). */
static int
add_line(struct writer *w, const char *line, size_t len)
{
	char copy[INDEX_LINE_MAX + 1];
	struct kv kv[LOGFMT_FIELDS];
	const char *ts, *ev, *dir, *reason;
	unsigned char tk[16], sk[8];
	unsigned char *rec;
	double t;
	int64_t ms;
	int n, rc;

	w->ck.lines++;
	memcpy(copy, line, len);
	copy[len] = '\0';
	if (memchr(line, '\0', len) || (n = logfmt_split(copy, kv, LOGFMT_FIELDS)) < 0 ||
	    !(ts = logfmt_get(kv, n, "ts")) || !(ev = logfmt_get(kv, n, "event")) ||
	    time_parse(ts, 0, &t) < 0 || t < 0) {
		w->ck.skipped++;
		return 0;
	}
	if (!is_indexed(ev))
		return 0;
	ms = (int64_t)(t * 1000 + 0.5);
	if (!(rec = malloc(8 + len)))
		return ENOMEM;
	memcpy(rec, &ms, 8);
	memcpy(rec + 8, line, len);
	be64(sk, w->ck.seq);
	rc = put(w, DB_REC, sk, 8, rec, 8 + len, MDB_APPEND);
	free(rec);
	be64(tk, (uint64_t)ms);
	be64(tk + 8, w->ck.seq);
	if (!rc)
		rc = put(w, DB_TIME, tk, 16, "", 0, 0);
	if (!rc && index_bucket_of(kv, n, &dir, &reason) && !(rc = add_count(w, 'h', ms, dir, reason)))
		rc = add_count(w, 'm', ms, dir, reason);
	if (!rc && !(w->ix->flags & INDEX_COUNTS_ONLY))
		rc = index_keys_of(kv, n, w->ck.seq, put_key, w);
	w->ck.seq++;
	w->pending++;
	return rc;
}

/* ------------------------------------------------------------------ */
/* transactions and the checkpoint                                     */

static int
begin(struct writer *w)
{
	MDB_val k = { 4, "ckpt" }, v;
	int rc;

	if ((rc = mdb_txn_begin(w->ix->env, NULL, 0, &w->txn)))
		return rc;
	rc = mdb_get(w->txn, w->ix->db[DB_META], &k, &v);
	if (rc == 0 && v.mv_size == sizeof w->ck)
		memcpy(&w->ck, v.mv_data, sizeof w->ck);
	else if (rc == MDB_NOTFOUND || rc == 0) {
		memset(&w->ck, 0, sizeof w->ck);
		w->ck.seq = 1;
	} else {
		mdb_txn_abort(w->txn);
		w->txn = NULL;
		return rc;
	}
	w->pending = 0;
	return 0;
}

static int
commit(struct writer *w)
{
	int rc = put(w, DB_META, "ckpt", 4, &w->ck, sizeof w->ck, 0);

	if (rc) {
		mdb_txn_abort(w->txn);
		w->txn = NULL;
		return rc;
	}
	rc = mdb_txn_commit(w->txn);
	w->txn = NULL;
	return rc;
}

/* ------------------------------------------------------------------ */
/* the log file                                                        */

/*
 * Lines of fd from w->ck.off on, up to *budget bytes: 0 at the end (a torn
 * last line waits), 1 when the budget ran out first, or an LMDB error.
 */
static int
read_lines(struct writer *w, int fd, size_t *budget)
{
	char *b = malloc(CHUNK);
	int rc = 0;

	if (!b)
		return ENOMEM;
	for (;;) {
		ssize_t got;
		size_t used = 0;
		if (*budget == 0) {
			rc = 1;
			break;
		}
		got = pread(fd, b, CHUNK, (off_t)w->ck.off);
		if (got <= 0) {
			rc = got < 0 ? errno : 0;
			break;
		}
		for (;;) {
			char *nl = memchr(b + used, '\n', (size_t)got - used);
			size_t len;
			if (!nl) {
				/* No end in sight: a torn last line waits, but a
				 * "line" longer than any read is skipped. */
				if (used == 0 && got == CHUNK) {
					w->ck.lines++;
					w->ck.skipped++;
					w->ck.off += (uint64_t)got;
					used = (size_t)got;
				}
				break;
			}
			len = (size_t)(nl - (b + used));
			if (len > INDEX_LINE_MAX) {
				w->ck.lines++;
				w->ck.skipped++;
			} else if ((rc = add_line(w, b + used, len > 0 && b[used + len - 1] == '\r' ?
			    len - 1 : len)))
				goto out;
			used += len + 1;
			w->ck.off += len + 1;
			if (w->pending >= TXN_RECORDS) {
				if ((rc = commit(w)) || (rc = begin(w)))
					goto out;
			}
		}
		if (w->ck.headlen < sizeof w->ck.head && w->ck.off >= sizeof w->ck.head) {
			w->ck.headlen = sizeof w->ck.head;
			if (pread(fd, w->ck.head, sizeof w->ck.head, 0) != (ssize_t)sizeof w->ck.head)
				w->ck.headlen = 0;
		}
		*budget = *budget > (size_t)got ? *budget - (size_t)got : 0;
		if (used == 0)
			break;                       /* only a torn line is left */
	}
out:
	free(b);
	return rc;
}

/* Is fd, whose status is st, the file the checkpoint reads? */
static int
same_file(const struct ckpt *ck, int fd, const struct stat *st)
{
	char head[sizeof ck->head];

	if ((uint64_t)st->st_ino != ck->ino || (uint64_t)st->st_dev != ck->dev ||
	    (uint64_t)st->st_size < ck->off)
		return 0;
	return ck->headlen == 0 ||
	    (pread(fd, head, ck->headlen, 0) == (ssize_t)ck->headlen &&
	     !memcmp(head, ck->head, ck->headlen));
}

static void
start_file(struct ckpt *ck, const struct stat *st)
{
	ck->dev = (uint64_t)st->st_dev;
	ck->ino = (uint64_t)st->st_ino;
	ck->off = 0;
	ck->headlen = 0;
}

static int
update_log(struct writer *w, size_t budget)
{
	struct stat st, old;
	char rotated[sizeof w->ix->log + 4];
	int fd, rc;

	if ((fd = open(w->ix->log, O_RDONLY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? 0 : errno;
	if (fstat(fd, &st) < 0) {
		rc = errno;
		close(fd);
		return rc;
	}
	if (w->ck.ino && !same_file(&w->ck, fd, &st)) {
		/* The rest of the file logrotate moved aside, when it is there. */
		int ofd;
		snprintf(rotated, sizeof rotated, "%s.1", w->ix->log);
		if ((uint64_t)st.st_ino != w->ck.ino &&
		    (ofd = open(rotated, O_RDONLY | O_CLOEXEC)) >= 0) {
			size_t all = (size_t)-1;
			if (fstat(ofd, &old) == 0 && same_file(&w->ck, ofd, &old) &&
			    (rc = read_lines(w, ofd, &all)) != 0 && rc != 1) {
				close(ofd);
				close(fd);
				return rc;
			}
			close(ofd);
		}
		start_file(&w->ck, &st);
	} else if (!w->ck.ino)
		start_file(&w->ck, &st);
	rc = read_lines(w, fd, &budget);
	close(fd);
	return rc;
}

/* ------------------------------------------------------------------ */
/* the journal                                                         */

static int
journal_line(struct writer *w, const char *name, const char *line, size_t len, uint64_t off)
{
	unsigned char v[256 + 1 + 8], d[256 + 1 + 64];
	size_t nl = strlen(name);
	json_t *rec = jsonr_parse(line, len, JSON_MAX_DEPTH, NULL);
	json_t *sid = rec ? json_object_get(rec, "sid") : NULL;
	int rc = 0;

	if (sid && json_is_string(sid) && json_string_length(sid) > 0 &&
	    json_string_length(sid) < 64 && nl < 256) {
		memcpy(v, name, nl);
		v[nl] = '\0';
		be64(v + nl + 1, off);
		rc = put(w, DB_JRN, json_string_value(sid), json_string_length(sid), v, nl + 9, 0);
		memcpy(d, v, nl + 1);
		memcpy(d + nl + 1, json_string_value(sid), json_string_length(sid));
		if (!rc)
			rc = put(w, DB_JDAY, d, nl + 1 + json_string_length(sid), "", 0, 0);
		w->ck.journals++;
	}
	json_decref(rec);
	return rc;
}

static int
journal_file(struct writer *w, const char *name)
{
	char path[1024], key[300];
	MDB_val k, v;
	uint64_t off = 0;
	struct stat st;
	char *b;
	int fd, rc = 0;

	snprintf(key, sizeof key, "j:%s", name);
	k.mv_size = strlen(key);
	k.mv_data = key;
	if (mdb_get(w->txn, w->ix->db[DB_META], &k, &v) == 0 && v.mv_size == 8)
		memcpy(&off, v.mv_data, 8);
	snprintf(path, sizeof path, "%s/%s", w->ix->journal, name);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size <= off || !(b = malloc(CHUNK))) {
		close(fd);
		return 0;
	}
	for (;;) {
		ssize_t got = pread(fd, b, CHUNK, (off_t)off);
		size_t used = 0;
		char *nl;
		if (got <= 0)
			break;
		while ((nl = memchr(b + used, '\n', (size_t)got - used))) {
			size_t len = (size_t)(nl - (b + used));
			if ((rc = journal_line(w, name, b + used, len, off)))
				goto out;
			used += len + 1;
			off += len + 1;
		}
		if (used == 0) {
			if (got == CHUNK)
				off += (uint64_t)got;   /* longer than any record: past it */
			else
				break;                  /* torn: wait for its end */
		}
	}
out:
	free(b);
	close(fd);
	if (!rc)
		rc = put(w, DB_META, key, strlen(key), &off, 8, 0);
	return rc;
}

static int
journal_name_ok(const char *n)
{
	size_t l = strlen(n);

	return n[0] != '.' && l > 6 && l < 200 && !strcmp(n + l - 6, ".jsonl");
}

static int
update_journal(struct writer *w)
{
	DIR *d;
	struct dirent *e;
	int rc = 0;

	if (!w->ix->journal[0] || !(d = opendir(w->ix->journal)))
		return 0;
	while (!rc && (e = readdir(d)))
		if (journal_name_ok(e->d_name))
			rc = journal_file(w, e->d_name);
	closedir(d);
	return rc;
}

int
index_update(struct logindex *ix, size_t max_bytes, char *err, size_t errlen)
{
	struct writer w = { .ix = ix };
	int rc, more;

	if ((rc = begin(&w)))
		return fail(err, errlen, "update", rc);
	rc = update_log(&w, max_bytes ? max_bytes : (size_t)-1);
	more = rc == 1;
	if (more)
		rc = 0;
	if (!rc)
		rc = update_journal(&w);
	if (rc) {
		if (w.txn)
			mdb_txn_abort(w.txn);
		return fail(err, errlen, ix->log, rc);
	}
	if ((rc = commit(&w)))
		return fail(err, errlen, "commit", rc);
	return more;
}

int
index_stats(struct logindex *ix, struct index_stats *st)
{
	MDB_txn *txn;
	MDB_val k = { 4, "ckpt" }, v;
	struct ckpt ck;
	struct stat fs;
	MDB_envinfo info;
	MDB_stat es;

	memset(st, 0, sizeof *st);
	if (mdb_txn_begin(ix->env, NULL, MDB_RDONLY, &txn))
		return -1;
	if (mdb_get(txn, ix->db[DB_META], &k, &v) == 0 && v.mv_size == sizeof ck) {
		memcpy(&ck, v.mv_data, sizeof ck);
		st->records = ck.seq - 1;
		st->lines = ck.lines;
		st->skipped = ck.skipped;
		st->offset = ck.off;
		st->journals = ck.journals;
	}
	mdb_txn_abort(txn);
	if (mdb_env_info(ix->env, &info) == 0 && mdb_env_stat(ix->env, &es) == 0) {
		st->pages = (uint64_t)info.me_last_pgno + 1;
		st->page_size = es.ms_psize;
	}
	if (stat(ix->log, &fs) == 0)
		st->size = (uint64_t)fs.st_size;
	return 0;
}
