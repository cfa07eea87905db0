/*
 * state.c - the shared state store (state.h) on LMDB.
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

#include "state.h"

#define STATE_MAP_DEFAULT  ((size_t)256 << 20) /* a new store, when map_size is 0 */
#define STATE_KEY_MAX      480   /* under LMDB's compiled-in 511, checked at open */
#define STATE_ADDR_MAX     200   /* one address in a greylist key; longer ones are hashed */
#define STATE_IP_MAX       64    /* "ffff:...:ffff/128" and a non-IP client name */
#define STATE_WORK_MAX     1024  /* sender decoding buffer: RFC 5321 paths are 256 */
#define STATE_CACHE_MAX    1024  /* one callout cache value */
#define STATE_TEXT_MAX     (STATE_CACHE_MAX + 64) /* a rendered value */
#define STATE_SWEEP_BATCH  1000  /* records visited per write txn while sweeping */
#define STATE_MAP_GROWTH   8     /* a full map may grow by 1/8 of its opening size */
#define STATE_MAP_STEP     ((size_t)256 << 10) /* ... at least this much at a time */
#define STATE_ERR_MAX      256
#define RL_TTL_PERIODS     10    /* silence after which a rate record is dropped */
#define ALLOW_REFRESH_MAX  300.0 /* seconds an allow entry's expiry may lag */

static const char *const db_names[STATE_NDB] = {
	[STATE_GREYLIST] = "greylist", [STATE_ALLOW] = "allow",
	[STATE_RATELIMIT] = "ratelimit", [STATE_CALLOUT] = "callout",
};

struct state {
	MDB_env *env;
	MDB_dbi  dbi[STATE_NDB];
	pid_t    pid;                 /* the process that opened env */
	size_t   map_cap;             /* grow_map() stops here */
	MDB_txn *rtxn;                /* reused read txn, reset between uses */
	char     err[STATE_ERR_MAX];  /* last failure, for state_error() */
};

/* greylist, allow and ratelimit values */
struct rec {
	double expires;
	double a;          /* first_seen | since | rate */
	double b;          /* 0 | 0 | last */
};

static int set_err(struct state *st, int rc, const char *what)
{
	snprintf(st->err, sizeof st->err, "%s: %s", what, mdb_strerror(rc));
	return -1;
}

const char *state_error(const struct state *st)
{
	return st->err;
}

/* ---- keys --------------------------------------------------------------- */

static int fold(int c, int lower)
{
	return lower ? tolower(c) : c;
}

/*
 * Copies s (lowercased if asked) into out[max + 1]. Text longer than max
 * keeps its head and ends in "#" and a hash of the whole, so that two
 * long keys stay apart without ever exceeding LMDB's key size.
 */
static void bound_copy(char *out, size_t max, const char *s, size_t n, int lower)
{
	size_t keep = n <= max ? n : max - 17;
	for (size_t i = 0; i < keep; i++)
		out[i] = (char)fold((unsigned char)s[i], lower);
	if (keep < n) {
		uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
		for (size_t i = 0; i < n; i++)
			h = (h ^ (unsigned char)fold((unsigned char)s[i], lower)) * 0x100000001b3ULL;
		snprintf(out + keep, 18, "#%016llx", (unsigned long long)h);
		keep += 17;
	}
	out[keep] = '\0';
}

static void bound_lower(char *out, size_t max, const char *s, size_t n)
{
	bound_copy(out, max, s, n, 1);
}

/*
 * "192.0.2.77" -> exact "192.0.2.77" and, keyed by /24, net "192.0.2.0/24".
 * IPv4-mapped IPv6 counts as IPv4. Something that is not an address (a
 * local injection's "unix") keys as its own lowercased text. A prefix out
 * of range (0 included) means the exact address.
 */
static void ip_keys(const char *ip, int v4p, int v6p, char *exact, char *net)
{
	unsigned char a[16];
	char buf[STATE_IP_MAX];
	int af = AF_INET, bits = 32, prefix = v4p;
	size_t n = strlen(ip);

	if (n >= sizeof buf) {
		bound_lower(exact, STATE_IP_MAX - 1, ip, n);
		strcpy(net, exact);
		return;
	}
	memcpy(buf, ip, n + 1);
	if (inet_pton(AF_INET, buf, a) != 1) {
		af = AF_INET6, bits = 128, prefix = v6p;
		if (inet_pton(AF_INET6, buf, a) != 1) {
			bound_lower(exact, STATE_IP_MAX - 1, ip, n);
			strcpy(net, exact);
			return;
		}
		static const unsigned char mapped[12] = { [10] = 0xff, [11] = 0xff };
		if (memcmp(a, mapped, 12) == 0) {
			memmove(a, a + 12, 4);
			af = AF_INET, bits = 32, prefix = v4p;
		}
	}
	inet_ntop(af, a, exact, STATE_IP_MAX);
	if (prefix <= 0 || prefix >= bits) {
		strcpy(net, exact);
		return;
	}
	for (int i = 0; i < bits / 8; i++) {
		int keep = prefix - i * 8;
		a[i] &= keep >= 8 ? 0xff : keep <= 0 ? 0 : (unsigned char)(0xff << (8 - keep));
	}
	char text[INET6_ADDRSTRLEN];
	inet_ntop(af, a, text, sizeof text);
	snprintf(net, STATE_IP_MAX, "%s/%d", text, prefix);
}

/*
 * An operator's allow key ("2001:DB8::1", "192.0.2.9/24") in the form
 * state_greylist() writes, so that get/add/del find the same record.
 */
static void allow_key(const char *in, char *out)
{
	char ip[STATE_IP_MAX], exact[STATE_IP_MAX], net[STATE_IP_MAX];
	const char *slash = strchr(in, '/');
	size_t n = slash ? (size_t)(slash - in) : strlen(in);
	int prefix = 0;

	if (n < sizeof ip && slash) {
		char *end;
		long v = strtol(slash + 1, &end, 10);
		if (*end || end == slash + 1 || v < 0 || v > 128)
			n = sizeof ip; /* not ours: keep it as typed */
		prefix = (int)v;
	}
	if (n >= sizeof ip) {
		bound_lower(out, STATE_IP_MAX - 1, in, strlen(in));
		return;
	}
	memcpy(ip, in, n);
	ip[n] = '\0';
	ip_keys(ip, prefix, prefix, exact, net);
	strcpy(out, net);
}

/* ---- sender normalisation ----------------------------------------------- */

/* Replaces w (local@domain) by local@domain built from the given pieces. */
static int rebuild(char *w, const char *local, size_t ln, const char *dom, size_t dn)
{
	char tmp[STATE_WORK_MAX];
	if (ln == 0 || ln + 1 + dn >= sizeof tmp)
		return 0;
	memcpy(tmp, local, ln);
	if (dom) {
		tmp[ln] = '@';
		memcpy(tmp + ln + 1, dom, dn);
		ln += 1 + dn;
	}
	tmp[ln] = '\0';
	memcpy(w, tmp, ln + 1);
	return 1;
}

/*
 * BATV signs the bounce address with a tag that changes every day or
 * message; the tuple must not. Forms seen in the wild:
 *   prvs=KDDDSSSSSS=user@dom     (the draft, Exim and Postfix)
 *   prvs=user/KDDDSSSSSS@dom     (an early Exim form)
 *   msprvs1=TAG=user@dom         (Exchange Online)
 *   btv1==TAG==user@dom          (Barracuda)
 */
static int batv_strip(char *w)
{
	char *at = strrchr(w, '@');
	size_t ln = at ? (size_t)(at - w) : strlen(w);
	const char *dom = at ? at + 1 : NULL;
	size_t dn = at ? strlen(dom) : 0;
	const char *rest = NULL, *p;

	if (strncmp(w, "btv1==", 6) == 0) {
		rest = w + 6;
		for (p = rest; p + 1 < w + ln; p++)
			if (p[0] == '=' && p[1] == '=')
				return rebuild(w, p + 2, (size_t)(w + ln - p - 2), dom, dn);
		return 0;
	}
	if (strncmp(w, "prvs=", 5) == 0)
		rest = w + 5;
	else if (strncmp(w, "msprvs1=", 8) == 0)
		rest = w + 8;
	else
		return 0;

	const char *eq = memchr(rest, '=', (size_t)(w + ln - rest));
	const char *slash = memchr(rest, '/', (size_t)(w + ln - rest));
	if (eq && eq > rest && (!slash || slash > eq))
		return rebuild(w, eq + 1, (size_t)(w + ln - eq - 1), dom, dn);
	if (slash) {
		const char *last = slash;
		for (p = slash; p < w + ln; p++)
			if (*p == '/')
				last = p;
		return rebuild(w, rest, (size_t)(last - rest), dom, dn);
	}
	return 0;
}

/* "HHH=TT=domain=local" (the opaque part of SRS0) -> "local@domain". */
static int srs0_body(char *w, const char *body, const char *end)
{
	const char *f[3];
	const char *p = body;
	for (int i = 0; i < 3; i++) {
		f[i] = memchr(p, '=', (size_t)(end - p));
		if (!f[i])
			return 0;
		p = f[i] + 1;
	}
	/* f[1]+1 .. f[2] is the original domain, after f[2] the local part */
	return rebuild(w, f[2] + 1, (size_t)(end - f[2] - 1), f[1] + 1, (size_t)(f[2] - f[1] - 1));
}

/*
 * SRS rewrites a forwarded sender with a hash and a timestamp that change
 * with every message. We key by the original sender (local@domain), which
 * is stable per original sender; the forwarder is already in the tuple as
 * the client address. Forms (libsrs2; "+" and "-" may stand for the "="
 * after SRS0/SRS1):
 *   SRS0=HHH=TT=domain=local@forwarder
 *   SRS1=HHH=first.hop==HHH=TT=domain=local@forwarder
 */
static int srs_decode(char *w)
{
	char *at = strrchr(w, '@');
	const char *end = at ? at : w + strlen(w);
	int srs1;

	if (strncmp(w, "srs0", 4) == 0)
		srs1 = 0;
	else if (strncmp(w, "srs1", 4) == 0)
		srs1 = 1;
	else
		return 0;
	if (!w[4] || !strchr("=+-", w[4]))
		return 0;
	const char *body = w + 5;
	if (srs1) {
		const char *hash = memchr(body, '=', (size_t)(end - body));
		const char *hop = hash ? memchr(hash + 1, '=', (size_t)(end - hash - 1)) : NULL;
		if (!hop || hop + 1 >= end || !strchr("=+-", hop[1]))
			return 0;
		body = hop + 2;
	}
	return srs0_body(w, body, end);
}

/*
 * The sender as it keys a greylist tuple: without <>, lowercased, BATV
 * and SRS undone (in any nesting: a BATV-signed SRS address, an SRS
 * address of a BATV-signed sender). The null sender stays "".
 */
static void sender_key(const char *sender, char *out)
{
	char w[STATE_WORK_MAX];
	size_t n = strlen(sender);

	if (n >= 2 && sender[0] == '<' && sender[n - 1] == '>')
		sender++, n -= 2;
	if (n >= sizeof w) {
		bound_lower(out, STATE_ADDR_MAX, sender, n);
		return;
	}
	for (size_t i = 0; i < n; i++)
		w[i] = (char)tolower((unsigned char)sender[i]);
	w[n] = '\0';
	for (int round = 0; round < 4; round++)
		if (!batv_strip(w) && !srs_decode(w))
			break;
	bound_lower(out, STATE_ADDR_MAX, w, strlen(w));
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

static int txn_begin(struct state *st, unsigned flags, MDB_txn **txn)
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
static int read_begin(struct state *st, MDB_txn **txn)
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

static void read_end(struct state *st)
{
	mdb_txn_reset(st->rtxn);
}

typedef int txn_fn(struct state *st, MDB_txn *txn, void *arg);

static long sweep(struct state *st, double now, int *rcp);

/*
 * Runs fn inside one write transaction and commits. A full map is met by
 * adopting a size another worker has grown to, sweeping expired records
 * and trying once more; after that the caller gets the error (the rule
 * then fails open or closed).
 */
static int write_txn(struct state *st, txn_fn *fn, void *arg, double now)
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

struct state *state_open(const char *dir, size_t map_size, char *err, size_t errlen)
{
	struct state *st = calloc(1, sizeof *st);
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
	if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
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
	if ((rc = mdb_env_open(st->env, dir, MDB_NOTLS | MDB_NOSYNC, 0640)))
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
	if ((rc = mdb_txn_begin(st->env, NULL, 0, &txn)))
		goto fail;
	for (int i = 0; i < STATE_NDB; i++)
		if ((rc = mdb_dbi_open(txn, db_names[i], MDB_CREATE, &st->dbi[i])))
			goto fail;
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc)
		goto fail;
	return st;
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

void state_close(struct state *st)
{
	if (!st)
		return;
	if (getpid() == st->pid) {
		if (st->rtxn)
			mdb_txn_abort(st->rtxn);
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
static int grow_map(struct state *st)
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
static long sweep(struct state *st, double now, int *rcp)
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

long state_sweep(struct state *st, double now)
{
	int rc, dead;
	long n = sweep(st, now, &rc);
	if (rc)
		return -1;
	/* The timer that sweeps is also where MDB_NOSYNC's writes reach the
	 * disk and dead readers' slots are cleared. */
	mdb_env_sync(st->env, 1);
	mdb_reader_check(st->env, &dead);
	return n;
}

/* ---- greylisting -------------------------------------------------------- */

struct grey_op {
	const struct greylist_conf *c;
	const char *exact, *net, *tuple;
	double now;
	struct greylist_result *out;
};

/* The allow entry (exact address first, then its network) that admits. */
static int allowed(MDB_txn *txn, struct state *st, const struct grey_op *op,
    const char **key, struct rec *r)
{
	int rc = rec_get(txn, st->dbi[STATE_ALLOW], op->exact, op->now, r);
	*key = op->exact;
	if (rc == MDB_NOTFOUND && strcmp(op->exact, op->net) != 0) {
		rc = rec_get(txn, st->dbi[STATE_ALLOW], op->net, op->now, r);
		*key = op->net;
	}
	return rc;
}

/* Rewriting the allow entry on every RCPT would take the writer lock for
 * each; an expiry that lags by a little is as good. */
static double allow_slack(const struct greylist_conf *c)
{
	return c->allow_ttl / 10 < ALLOW_REFRESH_MAX ? c->allow_ttl / 10 : ALLOW_REFRESH_MAX;
}

static int grey_txn(struct state *st, MDB_txn *txn, void *arg)
{
	struct grey_op *op = arg;
	const struct greylist_conf *c = op->c;
	const char *akey;
	struct rec r;
	int rc;

	op->out->wait = 0;
	if ((rc = allowed(txn, st, op, &akey, &r)) == 0) {
		op->out->verdict = GREY_PASS_ALLOWED;
		if (op->now + c->allow_ttl - r.expires < allow_slack(c))
			return 0;
		r.expires = op->now + c->allow_ttl;
		return rec_put(txn, st->dbi[STATE_ALLOW], akey, &r);
	}
	if (rc != MDB_NOTFOUND)
		return rc;

	rc = rec_get(txn, st->dbi[STATE_GREYLIST], op->tuple, op->now, &r);
	if (rc == MDB_NOTFOUND) {
		struct rec n = { op->now + c->tuple_ttl, op->now, 0 };
		op->out->verdict = GREY_DEFER_NEW;
		op->out->wait = c->delay;
		return rec_put(txn, st->dbi[STATE_GREYLIST], op->tuple, &n);
	}
	if (rc)
		return rc;
	double age = op->now - r.a;
	if (age < c->delay) {
		op->out->verdict = GREY_DEFER_EARLY;
		/* a clock stepped back must not promise more than one delay */
		op->out->wait = age < 0 ? c->delay : c->delay - age;
		return 0;
	}
	/* The allow entry now speaks for this client; the tuple has done its
	 * job and would only wait for the sweep. */
	struct rec a = { op->now + c->allow_ttl, op->now, 0 };
	op->out->verdict = GREY_PASS_RETRY;
	if ((rc = rec_put(txn, st->dbi[STATE_ALLOW], op->net, &a)))
		return rc;
	return key_del(txn, st->dbi[STATE_GREYLIST], op->tuple);
}

int state_greylist(struct state *st, const struct greylist_conf *c,
    const char *ip, const char *sender, const char *rcpt, double now,
    struct greylist_result *out)
{
	char exact[STATE_IP_MAX], net[STATE_IP_MAX];
	char snd[STATE_ADDR_MAX + 1], rcp[STATE_ADDR_MAX + 1];
	char tuple[STATE_IP_MAX + 2 * STATE_ADDR_MAX + 8];
	struct grey_op op = { c, exact, net, tuple, now, out };
	MDB_txn *txn;
	const char *akey;
	struct rec r;

	out->verdict = GREY_ERROR;
	out->wait = 0;
	ip_keys(ip ? ip : "", c->v4_prefix, c->v6_prefix, exact, net);
	sender_key(sender ? sender : "", snd);
	size_t rn = rcpt ? strlen(rcpt) : 0;
	if (rn >= 2 && rcpt[0] == '<' && rcpt[rn - 1] == '>')
		rcpt++, rn -= 2;
	bound_lower(rcp, STATE_ADDR_MAX, rcpt ? rcpt : "", rn);
	snprintf(tuple, sizeof tuple, "%s <%s> <%s>", net, snd, rcp);

	/* Most mail comes from allowed clients: answer those from a read
	 * txn, without the writer lock, unless the entry needs refreshing. */
	if (read_begin(st, &txn))
		return -1;
	int rc = allowed(txn, st, &op, &akey, &r);
	read_end(st);
	if (rc == 0 && now + c->allow_ttl - r.expires < allow_slack(c)) {
		out->verdict = GREY_PASS_ALLOWED;
		return 0;
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		return set_err(st, rc, "greylist");
	if (write_txn(st, grey_txn, &op, now)) {
		out->verdict = GREY_ERROR;
		out->wait = 0;
		return -1;
	}
	return 0;
}

/* ---- rate limiting ------------------------------------------------------ */

struct rl_op {
	const char *key;
	double limit, period, count, now;
	int mode;
	struct ratelimit_result *out;
};

/*
 * Exim's acl_ratelimit(), which this follows point by point:
 *  - a key seen for the first time starts at rate = count;
 *  - an interval <= 0 (same instant, clock stepped back) counts as 1e-9 s;
 *  - rate = (1 - a) * count / (i/p) + a * rate, a = exp(-i/p), with 1 - a
 *    taken as -expm1(-i/p): at i/p ~ 1e-13 plain 1 - exp() keeps only a few
 *    digits and a burst's count would drift off by up to 1e-3 each step;
 *  - a rate below count is raised to count, so that the first message
 *    after a long silence counts as a full message per period;
 *  - a client at the limit is over it (rate >= limit), as in Exim;
 *  - leaky stores the new rate only when not over, so a client that keeps
 *    retrying while over still decays and gets through; strict always
 *    stores it.
 */
static int rl_txn(struct state *st, MDB_txn *txn, void *arg)
{
	struct rl_op *op = arg;
	struct rec r;
	double rate;
	int rc = rec_get(txn, st->dbi[STATE_RATELIMIT], op->key, op->now, &r);

	if (rc == MDB_NOTFOUND) {
		rate = op->count;
	} else if (rc) {
		return rc;
	} else {
		double i = op->now - r.b;
		if (i <= 0)
			i = 1e-9;
		double x = i / op->period;
		rate = -expm1(-x) * op->count / x + exp(-x) * r.a;
		if (rate < op->count)
			rate = op->count;
	}
	op->out->rate = rate;
	op->out->over = rate >= op->limit;
	if (op->out->over && op->mode != RL_STRICT)
		return 0;
	/* After RL_TTL_PERIODS of silence the old rate weighs e^-10 of itself:
	 * dropping the record changes nothing a client could notice. */
	struct rec n = { op->now + RL_TTL_PERIODS * op->period, rate, op->now };
	return rec_put(txn, st->dbi[STATE_RATELIMIT], op->key, &n);
}

int state_ratelimit(struct state *st, const char *key, double limit,
    double period, int mode, double count, double now,
    struct ratelimit_result *out)
{
	char k[STATE_KEY_MAX + 1];
	struct rl_op op = { k, limit, period, count, now, mode, out };

	out->over = 0;
	out->rate = 0;
	if (!(period > 0) || !(count >= 0)) {
		snprintf(st->err, sizeof st->err, "ratelimit: period must be > 0 and count >= 0");
		return -1;
	}
	bound_lower(k, STATE_KEY_MAX, key, strlen(key));
	return write_txn(st, rl_txn, &op, now);
}

/* ---- callout cache ------------------------------------------------------ */

int state_cache_get(struct state *st, const char *key, double now, char *val, size_t vlen)
{
	char k[STATE_KEY_MAX + 1];
	MDB_txn *txn;
	MDB_val mk, mv;
	int rc;

	bound_copy(k, STATE_KEY_MAX, key, strlen(key), 0);
	mk.mv_size = strlen(k), mk.mv_data = k;
	if (read_begin(st, &txn))
		return -1;
	rc = mdb_get(txn, st->dbi[STATE_CALLOUT], &mk, &mv);
	if (rc == 0 && rec_expires(&mv) <= now)
		rc = MDB_NOTFOUND;
	if (rc == 0) {
		size_t n = mv.mv_size - sizeof(double);
		if (n >= vlen) {
			read_end(st);
			snprintf(st->err, sizeof st->err, "callout cache: value of %zu bytes exceeds buffer", n);
			return -1;
		}
		memcpy(val, (char *)mv.mv_data + sizeof(double), n);
		val[n] = '\0';
	}
	read_end(st);
	if (rc == MDB_NOTFOUND)
		return 1;
	return rc ? set_err(st, rc, "callout cache") : 0;
}

struct put_op {
	enum state_db db;
	const char *key;
	const void *val;
	size_t len;
};

static int put_txn(struct state *st, MDB_txn *txn, void *arg)
{
	struct put_op *op = arg;
	MDB_val k = { strlen(op->key), (void *)op->key }, v = { op->len, (void *)op->val };
	return mdb_put(txn, st->dbi[op->db], &k, &v, 0);
}

int state_cache_put(struct state *st, const char *key, const char *val, double expires)
{
	char k[STATE_KEY_MAX + 1];
	char buf[sizeof(double) + STATE_CACHE_MAX];
	size_t n = strlen(val);
	struct put_op op = { STATE_CALLOUT, k, buf, sizeof(double) + n };

	if (n > STATE_CACHE_MAX) {
		snprintf(st->err, sizeof st->err, "callout cache: value longer than %d bytes", STATE_CACHE_MAX);
		return -1;
	}
	bound_copy(k, STATE_KEY_MAX, key, strlen(key), 0);
	memcpy(buf, &expires, sizeof expires);
	memcpy(buf + sizeof expires, val, n);
	return write_txn(st, put_txn, &op, (double)time(NULL));
}

/* ---- operators' view ---------------------------------------------------- */

/* The key as stored: allow keys canonical, callout keys as given, the
 * rest lowercased. */
static void op_key(enum state_db db, const char *in, char *out)
{
	if (db == STATE_ALLOW)
		allow_key(in, out);
	else
		bound_copy(out, STATE_KEY_MAX, in, strlen(in), db != STATE_CALLOUT);
}

/* Returns the length written, or -1 when out is too small. */
static int render(enum state_db db, const MDB_val *v, char *out, size_t outlen)
{
	struct rec r;
	int n;

	if (db == STATE_CALLOUT && v->mv_size >= sizeof(double)) {
		size_t len = v->mv_size - sizeof(double);
		n = snprintf(out, outlen, "expires=%.3f value=%.*s", rec_expires(v),
		    (int)(len > STATE_CACHE_MAX ? STATE_CACHE_MAX : len),
		    (const char *)v->mv_data + sizeof(double));
	} else if (db != STATE_CALLOUT && v->mv_size == sizeof r) {
		memcpy(&r, v->mv_data, sizeof r);
		if (db == STATE_GREYLIST)
			n = snprintf(out, outlen, "expires=%.3f first_seen=%.3f", r.expires, r.a);
		else if (db == STATE_ALLOW)
			n = snprintf(out, outlen, "expires=%.3f since=%.3f", r.expires, r.a);
		else
			n = snprintf(out, outlen, "expires=%.3f rate=%.6f last=%.3f", r.expires, r.a, r.b);
	} else {
		n = snprintf(out, outlen, "invalid record (%zu bytes)", v->mv_size);
	}
	return n < 0 || (size_t)n >= outlen ? -1 : n;
}

static int bad_db(struct state *st, enum state_db db)
{
	if ((unsigned)db < STATE_NDB)
		return 0;
	snprintf(st->err, sizeof st->err, "no such database %d", (int)db);
	return 1;
}

int state_list(struct state *st, enum state_db db, state_each_cb *cb, void *arg)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	char key[512], text[STATE_TEXT_MAX];
	int rc;

	if (bad_db(st, db) || read_begin(st, &txn))
		return -1;
	if ((rc = mdb_cursor_open(txn, st->dbi[db], &cur))) {
		read_end(st);
		return set_err(st, rc, "list");
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		size_t n = k.mv_size < sizeof key ? k.mv_size : sizeof key - 1;
		memcpy(key, k.mv_data, n);
		key[n] = '\0';
		if (render(db, &v, text, sizeof text) < 0)
			snprintf(text, sizeof text, "invalid record (%zu bytes)", v.mv_size);
		cb(arg, key, text);
	}
	mdb_cursor_close(cur);
	read_end(st);
	return rc == MDB_NOTFOUND ? 0 : set_err(st, rc, "list");
}

int state_get(struct state *st, enum state_db db, const char *key, char *val, size_t vlen)
{
	char k[STATE_KEY_MAX + 1];
	MDB_txn *txn;
	MDB_val mk, mv;
	int rc;

	if (bad_db(st, db))
		return -1;
	op_key(db, key, k);
	mk.mv_size = strlen(k), mk.mv_data = k;
	if (read_begin(st, &txn))
		return -1;
	rc = mdb_get(txn, st->dbi[db], &mk, &mv);
	if (rc == 0 && render(db, &mv, val, vlen) < 0) {
		read_end(st);
		snprintf(st->err, sizeof st->err, "get: value exceeds buffer of %zu bytes", vlen);
		return -1;
	}
	read_end(st);
	if (rc == MDB_NOTFOUND)
		return 1;
	return rc ? set_err(st, rc, "get") : 0;
}

/* "1700000000.5", or "+90", "+45m", "+48h", "+35d" from the wall clock. */
static int parse_time(const char *s, double *t)
{
	char *end;
	int rel = *s == '+';
	double v = strtod(s + rel, &end);

	if (end == s + rel || !(v >= 0) || isinf(v))
		return -1;
	if (rel) {
		switch (*end) {
		case 'd': v *= 86400; end++; break;
		case 'h': v *= 3600; end++; break;
		case 'm': v *= 60; end++; break;
		case 's': end++; break;
		default: break;
		}
		v += (double)time(NULL);
	}
	if (*end)
		return -1;
	*t = v;
	return 0;
}

/*
 * Parses what render() prints: "expires=T" and the database's own fields
 * in any order ("value=" takes the rest of the line). Fields left out
 * default to now (times) or 0 (rate); expires is required.
 */
static int parse_value(struct state *st, enum state_db db, const char *in,
    char *buf, size_t *len)
{
	struct rec r = { -1, (double)time(NULL), 0 };
	const char *p = in, *value = "";
	size_t vn = 0;

	if (db == STATE_RATELIMIT)
		r.a = 0, r.b = (double)time(NULL);
	while (*p) {
		char name[16], num[64];
		const char *eq, *sp;
		double *field = NULL;

		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		if (!(eq = strchr(p, '=')) || (size_t)(eq - p) >= sizeof name)
			goto bad;
		memcpy(name, p, (size_t)(eq - p));
		name[eq - p] = '\0';
		if (db == STATE_CALLOUT && strcmp(name, "value") == 0) {
			value = eq + 1, vn = strlen(value);
			break;
		}
		for (sp = eq + 1; *sp && *sp != ' ' && *sp != '\t'; sp++)
			;
		if ((size_t)(sp - eq - 1) >= sizeof num)
			goto bad;
		memcpy(num, eq + 1, (size_t)(sp - eq - 1));
		num[sp - eq - 1] = '\0';
		if (strcmp(name, "expires") == 0)
			field = &r.expires;
		else if ((db == STATE_GREYLIST && strcmp(name, "first_seen") == 0) ||
		    (db == STATE_ALLOW && strcmp(name, "since") == 0) ||
		    (db == STATE_RATELIMIT && strcmp(name, "rate") == 0))
			field = &r.a;
		else if (db == STATE_RATELIMIT && strcmp(name, "last") == 0)
			field = &r.b;
		if (!field) {
			snprintf(st->err, sizeof st->err, "unknown field \"%s\" for %s", name, db_names[db]);
			return -1;
		}
		if (field == &r.a && db == STATE_RATELIMIT) {
			char *end;
			r.a = strtod(num, &end);
			if (*end || end == num || !(r.a >= 0))
				goto bad;
		} else if (parse_time(num, field)) {
			goto bad;
		}
		p = sp;
	}
	if (r.expires < 0) {
		snprintf(st->err, sizeof st->err, "value needs expires=EPOCH or expires=+DURATION");
		return -1;
	}
	if (db == STATE_CALLOUT) {
		if (vn > STATE_CACHE_MAX) {
			snprintf(st->err, sizeof st->err, "value longer than %d bytes", STATE_CACHE_MAX);
			return -1;
		}
		memcpy(buf, &r.expires, sizeof r.expires);
		memcpy(buf + sizeof r.expires, value, vn);
		*len = sizeof r.expires + vn;
	} else {
		memcpy(buf, &r, sizeof r);
		*len = sizeof r;
	}
	return 0;
bad:
	snprintf(st->err, sizeof st->err, "cannot parse \"%s\": expected e.g. \"expires=1700000000 %s\"",
	    in, db == STATE_GREYLIST ? "first_seen=1699990000" : db == STATE_ALLOW ? "since=1699990000" :
	    db == STATE_RATELIMIT ? "rate=12.5 last=1699990000" : "value=550 5.1.1 unknown");
	return -1;
}

int state_put(struct state *st, enum state_db db, const char *key, const char *val)
{
	char k[STATE_KEY_MAX + 1];
	char buf[sizeof(double) + STATE_CACHE_MAX];
	struct put_op op = { db, k, buf, 0 };

	if (bad_db(st, db) || parse_value(st, db, val, buf, &op.len))
		return -1;
	op_key(db, key, k);
	if (!*k) {
		snprintf(st->err, sizeof st->err, "empty key");
		return -1;
	}
	return write_txn(st, put_txn, &op, (double)time(NULL));
}

struct del_op {
	enum state_db db;
	const char *key;
	int found;
};

static int del_txn(struct state *st, MDB_txn *txn, void *arg)
{
	struct del_op *op = arg;
	int rc = key_del(txn, st->dbi[op->db], op->key);
	op->found = rc == 0;
	return rc == MDB_NOTFOUND ? 0 : rc;
}

int state_del(struct state *st, enum state_db db, const char *key)
{
	char k[STATE_KEY_MAX + 1];
	struct del_op op = { db, k, 0 };

	if (bad_db(st, db))
		return -1;
	op_key(db, key, k);
	if (write_txn(st, del_txn, &op, (double)time(NULL)))
		return -1;
	return op.found ? 0 : 1;
}

const char *state_db_name(enum state_db db)
{
	return (unsigned)db < STATE_NDB ? db_names[db] : NULL;
}

int state_db_lookup(const char *name)
{
	for (int i = 0; i < STATE_NDB; i++)
		if (strcmp(name, db_names[i]) == 0)
			return i;
	return -1;
}
