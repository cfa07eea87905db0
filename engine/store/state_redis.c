/*
 * state_redis.c - the state backend on Redis (state.h), shared by a fleet
 * of gateways: hiredis' async API on the worker's libev loop, one round
 * trip per call, never a blocking call on the SMTP path.
 *
 * Keys (PREFIX is state.prefix, "mxgate:" by default; each key has one
 * hash tag, {...}, so that a Cluster proxy can shard them, and a greylist
 * call's tuple and allow entry share the client network's tag):
 *   PREFIX allow:{NET}                  expires since 0
 *   PREFIX grey:{NET}:<sender> <rcpt>   expires first_seen 0
 *   PREFIX rl:{key}                     expires rate last
 *   PREFIX callout:{key}                expires text
 * Numbers are little-endian IEEE doubles, 8 bytes each (LMDB's records,
 * byte order fixed): exact, and no formatting or parsing on either side.
 * Every value starts with its
 * absolute expiry, compared with the caller's clock as LMDB does; Redis
 * drops the key by its TTL (expiry - now, at least REDIS_TTL_MIN s), so
 * nothing needs sweeping. Greylisting and the rate limit are Lua scripts
 * run by EVALSHA (EVAL when the server answers NOSCRIPT): read, decide and
 * write happen atomically on the server, so two hosts incrementing one
 * rate at once never lose a count.
 *
 * Failure: every call answers within state.timeout: with the reply, or
 * rc -1 and why (not connected, refused, timed out); the caller applies
 * its fail mode. A lost connection is retried with a doubling backoff
 * (REDIS_BACKOFF_MIN..MAX) and logged once when lost and once when back.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <ev.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libev.h>
#include <openssl/sha.h>

#include "htab.h"
#include "log.h"
#include "state_text.h"

#define REDIS_TTL_MIN      60     /* seconds an expired record may linger */
#define REDIS_BACKOFF_MIN  0.1
#define REDIS_BACKOFF_MAX  5.0
#define REDIS_SCAN_COUNT   "500"
#define REDIS_ARGS         12
#define REDIS_KEY_MAX      (64 + 16 + STATE_TUPLE_MAX + STATE_KEY_MAX)
#define ALLOW_CACHE_MAX    4096   /* allow entries a worker remembers */
#define REDIS_HUNG_AFTER   3      /* timeouts in a row: the connection is dropped */
#define ALLOW_CACHE_AGE    60.0   /* seconds it trusts one it read */

/* ---- scripts ------------------------------------------------------------ */

/*
 * Numbers cross the wire as little-endian doubles packed with Redis' own
 * struct library, in arguments, stored values and answers: formatting
 * "%.17g" and parsing it back (in mxgate, in the script, and in Redis for
 * a number handed to redis.call) cost more than the rest of a rate-limit
 * call together. Values are LMDB's layout: the expiry, then two doubles
 * (allow, grey, rl) or the text (callout).
 */

/*
 * KEYS: allow(exact), allow(net), tuple. ARGV[1]: now, delay, tuple_ttl,
 * allow_ttl, slack, ttl_min, packed. Answers verdict (enum
 * greylist_verdict), wait, and for a pass which allow key (1, 2) admits
 * and its expiry, packed. The same steps as state_lmdb.c's grey_txn().
 */
static const char grey_lua[] =
"local now, delay, tuple_ttl, allow_ttl, slack, ttl_min = struct.unpack('<dddddd', ARGV[1])\n"
"local function rec(k)\n"
"  local v = redis.call('GET', k)\n"
"  if not v or #v ~= 24 then return nil end\n"
"  local e, a = struct.unpack('<dd', v)\n"
"  if e <= now then return nil end\n"
"  return e, a\n"
"end\n"
"local function put(k, e, a)\n"
"  local ttl = math.ceil(e - now)\n"
"  if ttl < ttl_min then ttl = ttl_min end\n"
"  redis.call('SET', k, struct.pack('<ddd', e, a, 0), 'EX', string.format('%d', ttl))\n"
"end\n"
"local akey = KEYS[1]\n"
"local e, since = rec(akey)\n"
"if not e and KEYS[2] ~= KEYS[1] then akey = KEYS[2]; e, since = rec(akey) end\n"
"if e then\n"
"  if now + allow_ttl - e >= slack then e = now + allow_ttl; put(akey, e, since) end\n"
"  return struct.pack('<dddd', 0, 0, akey == KEYS[1] and 1 or 2, e)\n"
"end\n"
"local te, first = rec(KEYS[3])\n"
"if not te then\n"
"  put(KEYS[3], now + tuple_ttl, now)\n"
"  return struct.pack('<dddd', 2, delay, 0, 0)\n"
"end\n"
"local age = now - first\n"
"if age < delay then\n"
"  return struct.pack('<dddd', 3, age < 0 and delay or delay - age, 0, 0)\n"
"end\n"
"put(KEYS[2], now + allow_ttl, now)\n"
"redis.call('DEL', KEYS[3])\n"
"return struct.pack('<dddd', 1, 0, 2, now + allow_ttl)\n";

/*
 * Exim's smoothed rate, as state_lmdb.c's rl_txn() (see there): KEYS:
 * the record. ARGV[1]: now, limit, period, strict (0|1), count, packed;
 * ARGV[2]: the record's TTL in seconds. Answers over (0|1) and the rate,
 * packed. -expm1(-x) by its series where 1 - exp(-x) would lose digits.
 */
static const char rl_lua[] =
"local now, limit, period, strict, count = struct.unpack('<ddddd', ARGV[1])\n"
"local rate\n"
"local v = redis.call('GET', KEYS[1])\n"
"if v and #v == 24 then\n"
"  local e, r, last = struct.unpack('<ddd', v)\n"
"  if e > now then\n"
"    local i = now - last\n"
"    if i <= 0 then i = 1e-9 end\n"
"    local x = i / period\n"
"    local m\n"
"    if x < 1e-5 then m = x - x * x / 2 + x * x * x / 6 else m = 1 - math.exp(-x) end\n"
"    rate = m * count / x + math.exp(-x) * r\n"
"    if rate < count then rate = count end\n"
"  end\n"
"end\n"
"if not rate then rate = count end\n"
"local over = rate >= limit\n"
"if not over or strict == 1 then\n"
"  redis.call('SET', KEYS[1], struct.pack('<ddd', now + 10 * period, rate, now), 'EX', ARGV[2])\n"
"end\n"
"return struct.pack('<dd', over and 1 or 0, rate)\n";

/* KEYS: a batch of keys. ARGV: now. Deletes those expired; answers how many. */
static const char sweep_lua[] =
"local now, n = tonumber(ARGV[1]), 0\n"
"for _, k in ipairs(KEYS) do\n"
"  local v = redis.call('GET', k)\n"
"  local e = v and #v >= 8 and struct.unpack('<d', v)\n"
"  if v and (not e or e <= now) then redis.call('DEL', k); n = n + 1 end\n"
"end\n"
"return n\n";

enum { SCRIPT_GREY, SCRIPT_RL, SCRIPT_SWEEP, SCRIPT_N };

static const char *const scripts[SCRIPT_N] = { grey_lua, rl_lua, sweep_lua };

/* ---- the connection ------------------------------------------------------ */

enum op { OP_GREY, OP_RL, OP_CGET, OP_CPUT, OP_GET, OP_PUT, OP_DEL, OP_LIST, OP_SWEEP, OP_SETUP };

struct rreq;

struct redis {
	struct state        base;
	struct state_conf   c;
	struct ev_loop     *loop;
	redisAsyncContext  *ac;
	int                 up;          /* connected (and AUTH sent) */
	int                 down_logged; /* the loss was logged; log the return */
	int                 closing;
	int                 timeouts;    /* in a row, since the last answer */
	double              backoff;
	ev_timer            retry;       /* reconnect */
	ev_timer            conn_timer;  /* a connect that hangs */
	ev_prepare          flush;       /* writes what this loop iteration queued */
	char                sha[SCRIPT_N][41];
	char                why[400];    /* the connection's last error */
	struct rreq        *reqs;        /* in flight, for close */
	struct htab         allow;       /* allow entries read lately (struct aentry) */
	struct lru          allow_lru;
	size_t              nallow;
};

/*
 * Most mail comes from clients on the allow list; their greylist() needs
 * no round trip while the entry this worker read last is younger than
 * ALLOW_CACHE_AGE and needs no refresh yet (the same slack LMDB's read-only
 * path allows). An operator's `del allow` reaches every worker within
 * ALLOW_CACHE_AGE.
 */
struct aentry {
	struct hnode    h;
	struct lru_node lru;
	double          expires;     /* the allow entry's */
	double          seen;        /* when we read it (the caller's clock) */
	char            key[];       /* the Redis key */
};

struct rreq {
	struct rreq   *prev, *next;
	struct redis  *r;
	enum op        op;
	enum state_db  db;
	state_cb      *cb;
	void          *arg;
	state_each_cb *each;
	void          *each_arg;
	double         now;
	ev_timer       timer;
	int            answered;     /* the caller has its answer */
	int            sent;         /* hiredis holds a callback to us */
	int            script;       /* SCRIPT_*, or -1 */
	int            retried;      /* EVAL after NOSCRIPT */
	long           count;        /* sweep */
	char           cursor[32];   /* list, sweep: SCAN's */
	int            scanned;      /* list, sweep: the first SCAN went out */
	char         **batch;        /* list: the keys MGET asked for */
	size_t         nbatch;
	int            argc;
	const char    *argv[REDIS_ARGS];
	size_t         argvlen[REDIS_ARGS];
	char           space[];      /* what argv points into */
};

static void redis_connect(struct redis *r);
static void split_server(const char *server, char *host, size_t hlen, int *port);
static void on_reply(redisAsyncContext *ac, void *reply, void *priv);

static void
set_why(struct redis *r, const char *fmt, const char *what)
{
	snprintf(r->why, sizeof r->why, fmt, r->c.server, what);
}

static void
went_down(struct redis *r, const char *what)
{
	set_why(r, "redis %.120s: %.200s", what);
	r->up = 0;
	if (!r->down_logged) {
		log_event("state_error", "backend", "redis", "error", r->why, NULL);
		r->down_logged = 1;
	}
}

/* Schedules a reconnect, backing off while Redis stays away. */
static void
schedule_retry(struct redis *r)
{
	if (r->closing || ev_is_active(&r->retry))
		return;
	ev_timer_set(&r->retry, r->backoff, 0);
	ev_timer_start(r->loop, &r->retry);
	r->backoff = r->backoff * 2 > REDIS_BACKOFF_MAX ? REDIS_BACKOFF_MAX : r->backoff * 2;
}

static void
on_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
	redis_connect(t->data);
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
	struct redis *r = ac->data;

	if (!r)
		return;
	ev_timer_stop(r->loop, &r->conn_timer);
	if (status != REDIS_OK) {
		r->ac = NULL;               /* hiredis frees it */
		went_down(r, ac->errstr);
		schedule_retry(r);
		return;
	}
	r->backoff = REDIS_BACKOFF_MIN;
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
	struct redis *r = ac->data;

	if (!r)
		return;
	ev_timer_stop(r->loop, &r->conn_timer);
	r->ac = NULL;
	went_down(r, status == REDIS_OK ? "connection closed" : ac->errstr);
	schedule_retry(r);
}

/* A connect that neither succeeds nor fails (a black hole): give up on it. */
static void
on_conn_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct redis *r = t->data;

	if (r->ac && !(r->ac->c.flags & REDIS_CONNECTED)) {
		redisAsyncContext *ac = r->ac;
		r->ac = NULL;
		ac->data = NULL;
		went_down(r, "connect timed out");
		redisAsyncFree(ac);
		schedule_retry(r);
	}
}

/* A reply to AUTH, SELECT or SCRIPT LOAD, sent first on each connection. */
static void
on_setup(redisAsyncContext *ac, void *reply, void *priv)
{
	struct redis *r = ac->data;
	redisReply *rp = reply;

	if (!r || !rp)
		return;
	if (rp->type == REDIS_REPLY_ERROR) {
		/* A wrong password or db: calls fail (the fail mode) until it
		 * is fixed; say so once, plainly. */
		char what[160];
		snprintf(what, sizeof what, "%s: %.120s", (const char *)priv, rp->str);
		went_down(r, what);
		redisAsyncDisconnect(ac);
		return;
	}
	if (strcmp((const char *)priv, "PING") == 0 && r->down_logged) {
		log_event("state_connected", "backend", "redis", "server", r->c.server, NULL);
		r->down_logged = 0;
	}
}

static void
redis_connect(struct redis *r)
{
	redisAsyncContext *ac;

	if (r->closing || r->ac)
		return;
	if (strncmp(r->c.server, "unix:", 5) == 0)
		ac = redisAsyncConnectUnix(r->c.server + 5);
	else {
		char host[256];
		int port;
		split_server(r->c.server, host, sizeof host, &port);
		ac = redisAsyncConnect(host, port);
	}
	if (!ac || ac->err) {
		went_down(r, ac ? ac->errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac);
		schedule_retry(r);
		return;
	}
	ac->data = r;
	redisLibevAttach(r->loop, ac);
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	r->ac = ac;
	r->up = 1;      /* commands queue until the connect completes */
	/* pipelined ahead of any call: they are answered first */
	if (r->c.password[0]) {
		if (r->c.user[0])
			redisAsyncCommand(ac, on_setup, "AUTH", "AUTH %s %s", r->c.user, r->c.password);
		else
			redisAsyncCommand(ac, on_setup, "AUTH", "AUTH %s", r->c.password);
	}
	if (r->c.db)
		redisAsyncCommand(ac, on_setup, "SELECT", "SELECT %d", r->c.db);
	for (int i = 0; i < SCRIPT_N; i++)
		redisAsyncCommand(ac, on_setup, "SCRIPT LOAD", "SCRIPT LOAD %s", scripts[i]);
	redisAsyncCommand(ac, on_setup, "PING", "PING");
	ev_timer_set(&r->conn_timer, r->c.timeout > 1 ? r->c.timeout : 1, 0);
	ev_timer_start(r->loop, &r->conn_timer);
}

/*
 * Commands queued during one loop iteration go out in one write, just
 * before the loop waits: hiredis would otherwise start its write watcher
 * and stop it again an iteration later (two epoll_ctl calls per batch).
 */
static void
on_flush(struct ev_loop *loop, ev_prepare *p, int revents)
{
	struct redis *r = p->data;

	ev_prepare_stop(loop, p);
	if (r->ac && (r->ac->c.flags & REDIS_CONNECTED))
		redisAsyncHandleWrite(r->ac);
}

static void
want_flush(struct redis *r)
{
	if (!ev_is_active(&r->flush))
		ev_prepare_start(r->loop, &r->flush);
}

/* ---- the allow cache ---------------------------------------------------- */

static struct aentry *
allow_find(struct redis *r, const char *key, size_t len)
{
	struct hnode *h = htab_find(&r->allow, htab_hash(key, len), key, len);

	return h ? container_of(h, struct aentry, h) : NULL;
}

static void
allow_drop(struct redis *r, struct aentry *e)
{
	htab_del(&r->allow, &e->h);
	lru_unlink(&r->allow_lru, &e->lru);
	r->nallow--;
	free(e);
}

static void
allow_clear(struct redis *r)
{
	while (r->allow_lru.tail)
		allow_drop(r, container_of(r->allow_lru.tail, struct aentry, lru));
}

static void
allow_learn(struct redis *r, const char *key, size_t len, double expires, double now)
{
	struct aentry *e = allow_find(r, key, len);

	if (!e) {
		if (r->nallow >= ALLOW_CACHE_MAX)
			allow_drop(r, container_of(r->allow_lru.tail, struct aentry, lru));
		if (!(e = calloc(1, sizeof *e + len + 1)))
			return;
		memcpy(e->key, key, len);
		e->h.key = e->key;
		e->h.keylen = len;
		e->h.hash = htab_hash(key, len);
		if (htab_add(&r->allow, &e->h) < 0) {
			free(e);
			return;
		}
		lru_push(&r->allow_lru, &e->lru);
		r->nallow++;
	} else
		lru_touch(&r->allow_lru, &e->lru);
	e->expires = expires;
	e->seen = now;
}

/* 1 when key's remembered allow entry admits now without a round trip. */
static int
allow_admits(struct redis *r, const char *key, size_t len, const struct greylist_conf *c, double now)
{
	struct aentry *e = allow_find(r, key, len);

	if (!e)
		return 0;
	if (now < e->seen || now - e->seen >= ALLOW_CACHE_AGE || e->expires <= now ||
	    now + c->allow_ttl - e->expires >= state_allow_slack(c)) {
		allow_drop(r, e);
		return 0;
	}
	lru_touch(&r->allow_lru, &e->lru);
	return 1;
}

/* ---- requests ----------------------------------------------------------- */

static void
req_free(struct rreq *q)
{
	for (size_t i = 0; i < q->nbatch; i++)
		free(q->batch[i]);
	free(q->batch);
	if (q->r) {
		if (q->prev)
			q->prev->next = q->next;
		else
			q->r->reqs = q->next;
		if (q->next)
			q->next->prev = q->prev;
		ev_timer_stop(q->r->loop, &q->timer);
	}
	free(q);
}

/* Answers the caller once; the request lives on while hiredis holds it. */
static void
req_answer(struct rreq *q, struct state_reply *rep, int rc, const char *why)
{
	if (q->answered)
		return;
	q->answered = 1;
	if (q->r)
		ev_timer_stop(q->r->loop, &q->timer);
	rep->rc = rc;
	rep->error = rc < 0 ? why : NULL;
	q->cb(q->arg, rep);
	if (!q->sent)
		req_free(q);
}

static void
req_fail(struct rreq *q, const char *why)
{
	struct state_reply rep = { 0 };

	rep.grey.verdict = GREY_ERROR;
	req_answer(q, &rep, -1, why);
}

static void
on_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct rreq *q = t->data;
	char why[300];

	/* hiredis may still hold it: then its reply (or NULL) frees it */
	struct redis *r = q->r;
	snprintf(why, sizeof why, "redis %s: no answer within %.3gs", r->c.server, r->c.timeout);
	req_fail(q, why);
	/* A server that stopped answering (hung, or a dead peer TCP has not
	 * noticed): drop the connection, so that calls waiting on it fail now
	 * instead of piling up, and connect afresh with the backoff. */
	if (++r->timeouts >= REDIS_HUNG_AFTER && r->ac) {
		redisAsyncContext *ac = r->ac;
		r->ac = NULL;
		r->timeouts = 0;
		went_down(r, "no answers; reconnecting");
		ac->data = NULL;
		redisAsyncFree(ac);         /* each request still on it: freed in on_reply */
		schedule_retry(r);
	}
}

/*
 * A request with room for n arguments of total size len; argv is filled
 * by add_arg(). It answers within the timeout whatever Redis does.
 */
static struct rreq *
req_new(struct redis *r, enum op op, size_t len, state_cb *cb, void *arg)
{
	struct rreq *q = calloc(1, sizeof *q + len);

	if (!q)
		return NULL;
	q->r = r;
	q->op = op;
	q->cb = cb;
	q->arg = arg;
	q->script = -1;
	q->next = r->reqs;
	if (r->reqs)
		r->reqs->prev = q;
	r->reqs = q;
	ev_timer_init(&q->timer, on_timeout, r->c.timeout, 0);
	q->timer.data = q;
	return q;
}

/* Appends one argument (a copy) to q's command. */
static void
add_arg(struct rreq *q, size_t *used, const char *s, size_t n)
{
	char *p = q->space + *used;

	memcpy(p, s, n);
	p[n] = '\0';
	q->argv[q->argc] = p;
	q->argvlen[q->argc++] = n;
	*used += n + 1;
}

/* v as 8 little-endian bytes at p, and back (the scripts' struct '<d'). */
static void
put_double(unsigned char *p, double v)
{
	uint64_t u;

	memcpy(&u, &v, sizeof u);
	for (int i = 0; i < 8; i++, u >>= 8)
		p[i] = (unsigned char)u;
}

static double
get_double(const unsigned char *p)
{
	uint64_t u = 0;
	double v;

	for (int i = 7; i >= 0; i--)
		u = u << 8 | p[i];
	memcpy(&v, &u, sizeof v);
	return v;
}

/* n numbers as one packed argument. */
static void
add_packed(struct rreq *q, size_t *used, const double *v, int n)
{
	unsigned char b[8 * REDIS_ARGS];

	for (int i = 0; i < n; i++)
		put_double(b + 8 * i, v[i]);
	add_arg(q, used, (const char *)b, 8 * (size_t)n);
}

/* A whole number of seconds (a TTL) as text. */
static void
add_secs(struct rreq *q, size_t *used, double v)
{
	char b[24];

	if (!(v < 1e15))        /* 31 million years; and no overflow below */
		v = 1e15;
	add_arg(q, used, b, (size_t)snprintf(b, sizeof b, "%lld", (long long)v));
}

/* Sends q's command (EVALSHA for a script); a failure answers at once. */
static void
req_send(struct rreq *q)
{
	struct redis *r = q->r;

	if (!r->ac || !r->up) {
		req_fail(q, r->why[0] ? r->why : "redis: not connected");
		return;
	}
	if (redisAsyncCommandArgv(r->ac, on_reply, q, q->argc, q->argv, q->argvlen) != REDIS_OK) {
		req_fail(q, r->ac->errstr[0] ? r->ac->errstr : "redis: cannot send");
		return;
	}
	q->sent = 1;
	want_flush(r);
	if (!ev_is_active(&q->timer))
		ev_timer_start(r->loop, &q->timer);
}

/* "EVALSHA sha nkeys" as the first three arguments of a script call. */
static void
add_script(struct rreq *q, size_t *used, int script, int nkeys)
{
	char n[16];

	q->script = script;
	add_arg(q, used, "EVALSHA", 7);
	add_arg(q, used, q->r->sha[script], 40);
	add_arg(q, used, n, (size_t)snprintf(n, sizeof n, "%d", nkeys));
}

/* ---- keys ---------------------------------------------------------------- */

static const char *const db_tag[STATE_NDB] = {
	[STATE_GREYLIST] = "grey", [STATE_ALLOW] = "allow",
	[STATE_RATELIMIT] = "rl", [STATE_CALLOUT] = "callout",
};

/* The Redis key of a stored key ("NET <s> <r>" for greylist). */
static size_t
rkey(const struct redis *r, enum state_db db, const char *k, char *out)
{
	int n;

	if (db == STATE_GREYLIST) {
		const char *sp = strchr(k, ' ');
		size_t nl = sp ? (size_t)(sp - k) : strlen(k);
		n = snprintf(out, REDIS_KEY_MAX, "%s%s:{%.*s}:%s", r->c.prefix, db_tag[db],
		    (int)nl, k, sp ? sp + 1 : "");
	} else
		n = snprintf(out, REDIS_KEY_MAX, "%s%s:{%s}", r->c.prefix, db_tag[db], k);
	return n < 0 ? 0 : (size_t)n >= REDIS_KEY_MAX ? REDIS_KEY_MAX - 1 : (size_t)n;
}

/* The stored key of a Redis key (for list): 0, or -1 when not one of ours. */
static int
unrkey(const struct redis *r, enum state_db db, const char *rk, size_t len, char *out, size_t outlen)
{
	size_t pl = strlen(r->c.prefix), tl = strlen(db_tag[db]);
	const char *p = rk + pl + tl + 2, *end = rk + len;

	if (len < pl + tl + 3 || memcmp(rk, r->c.prefix, pl) || memcmp(rk + pl, db_tag[db], tl) ||
	    rk[pl + tl] != ':' || rk[pl + tl + 1] != '{')
		return -1;
	if (db == STATE_GREYLIST) {
		const char *close = NULL;
		for (const char *s = p; s + 1 < end; s++)
			if (s[0] == '}' && s[1] == ':') {
				close = s;
				break;
			}
		if (!close)
			return -1;
		snprintf(out, outlen, "%.*s %.*s", (int)(close - p), p, (int)(end - close - 2), close + 2);
		return 0;
	}
	if (end[-1] != '}')
		return -1;
	snprintf(out, outlen, "%.*s", (int)(end - 1 - p), p);
	return 0;
}

/* A stored value as a record: 0, or -1 when it is not one of ours. */
static int
to_rec(enum state_db db, const char *v, size_t len, struct state_rec *out)
{
	const unsigned char *u = (const unsigned char *)v;

	memset(out, 0, offsetof(struct state_rec, value));
	out->value[0] = '\0';
	if (len < 8 || (db != STATE_CALLOUT && len != 24))
		return -1;
	out->expires = get_double(u);
	if (db == STATE_CALLOUT) {
		out->vlen = len - 8 > STATE_CACHE_MAX ? STATE_CACHE_MAX : len - 8;
		memcpy(out->value, v + 8, out->vlen);
		out->value[out->vlen] = '\0';
		return 0;
	}
	out->a = get_double(u + 8);
	out->b = get_double(u + 16);
	return 0;
}

/* A record as a stored value, into out (STATE_TEXT_MAX); its length. */
static size_t
from_rec(enum state_db db, const struct state_rec *r, char *out)
{
	unsigned char *u = (unsigned char *)out;

	put_double(u, r->expires);
	if (db == STATE_CALLOUT) {
		size_t n = r->vlen > STATE_TEXT_MAX - 8 ? STATE_TEXT_MAX - 8 : r->vlen;
		memcpy(out + 8, r->value, n);
		return 8 + n;
	}
	put_double(u + 8, r->a);
	put_double(u + 16, r->b);
	return 24;
}

static double
ttl_for(double expires, double now)
{
	double t = ceil(expires - now);
	return t < REDIS_TTL_MIN ? REDIS_TTL_MIN : t;
}

/* ---- replies ------------------------------------------------------------- */

static const char *
reply_error(struct redis *r, const redisReply *rp, char *buf, size_t len)
{
	snprintf(buf, len, "redis %.80s: %.200s", r->c.server, rp->str);
	return buf;
}

/* A script's packed answer: n numbers into v; 0, or -1 when it is not one. */
static int
answer_nums(const redisReply *rp, double *v, int n)
{
	if (rp->type != REDIS_REPLY_STRING || rp->len != 8 * (size_t)n)
		return -1;
	for (int i = 0; i < n; i++)
		v[i] = get_double((const unsigned char *)rp->str + 8 * i);
	return 0;
}

static void
on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct rreq *q = priv;
	redisReply *rp = reply;
	struct redis *r = q->r;
	struct state_reply rep = { 0 };
	char why[300];

	q->sent = 0;
	if (rp && r)
		r->timeouts = 0;
	if (q->answered || !r) {
		req_free(q);             /* timed out, or the store closed */
		return;
	}
	if (!rp) {
		req_fail(q, r->why[0] ? r->why : "redis: connection lost");
		return;
	}
	if (rp->type == REDIS_REPLY_ERROR) {
		if (q->script >= 0 && !q->retried && strncmp(rp->str, "NOSCRIPT", 8) == 0) {
			/* the server lost its scripts (restart, SCRIPT FLUSH): once more, whole */
			q->retried = 1;
			q->argv[0] = "EVAL";
			q->argvlen[0] = 4;
			q->argv[1] = scripts[q->script];
			q->argvlen[1] = strlen(scripts[q->script]);
			req_send(q);
			return;
		}
		req_fail(q, reply_error(r, rp, why, sizeof why));
		return;
	}
	switch (q->op) {
	case OP_GREY: {
		double a[4];    /* verdict, wait, which allow key admits (1, 2), its expiry */
		if (answer_nums(rp, a, 4) < 0 || !(a[0] >= 0 && a[0] <= GREY_DEFER_EARLY)) {
			req_fail(q, "redis: unexpected greylist answer");
			return;
		}
		rep.grey.verdict = (enum greylist_verdict)(int)a[0];
		rep.grey.wait = a[1];
		if (a[2] == 1 || a[2] == 2) {
			int i = a[2] == 1 ? 3 : 4;      /* argv: EVALSHA sha 3 exact net tuple */
			allow_learn(r, q->argv[i], q->argvlen[i], a[3], q->now);
		}
		req_answer(q, &rep, 0, NULL);
		return;
	}
	case OP_RL: {
		double a[2];    /* over, rate */
		if (answer_nums(rp, a, 2) < 0) {
			req_fail(q, "redis: unexpected ratelimit answer");
			return;
		}
		rep.rl.over = a[0] != 0;
		rep.rl.rate = a[1];
		req_answer(q, &rep, 0, NULL);
		return;
	}
	case OP_CGET:
	case OP_GET: {
		struct state_rec rec;
		char text[STATE_TEXT_MAX];
		if (rp->type != REDIS_REPLY_STRING) {
			req_answer(q, &rep, 1, NULL);
			return;
		}
		if (to_rec(q->db, rp->str, rp->len, &rec) < 0) {
			if (q->op == OP_CGET) {
				req_answer(q, &rep, 1, NULL);
				return;
			}
			snprintf(text, sizeof text, "invalid record (%zu bytes)", rp->len);
		} else if (q->op == OP_GET && state_render(q->db, &rec, text, sizeof text) < 0)
			snprintf(text, sizeof text, "invalid record (%zu bytes)", rp->len);
		if (q->op == OP_CGET) {
			if (rec.expires <= q->now) {
				req_answer(q, &rep, 1, NULL);
				return;
			}
			rep.text = rec.value;
		} else
			rep.text = text;
		req_answer(q, &rep, 0, NULL);
		return;
	}
	case OP_CPUT:
	case OP_PUT:
		req_answer(q, &rep, 0, NULL);
		return;
	case OP_DEL:
		req_answer(q, &rep, rp->type == REDIS_REPLY_INTEGER && rp->integer > 0 ? 0 : 1, NULL);
		return;
	default:
		req_fail(q, "redis: unexpected answer");
		return;
	}
}

/* ---- list and sweep (the operators' CLI): SCAN, then a batch, again ----- */

static void scan_next(struct rreq *q);
static void on_step(redisAsyncContext *ac, void *reply, void *priv);

/* Sends one step of a list or sweep; each step gets the whole timeout. */
static int
step_send(struct rreq *q, int argc, const char **argv, const size_t *argvlen)
{
	struct redis *r = q->r;

	if (!r->ac || redisAsyncCommandArgv(r->ac, on_step, q, argc, argv, argvlen) != REDIS_OK) {
		req_fail(q, "redis: cannot send");
		return -1;
	}
	q->sent = 1;
	q->timer.repeat = r->c.timeout;
	ev_timer_again(r->loop, &q->timer);
	return 0;
}

static void
on_step(redisAsyncContext *ac, void *reply, void *priv)
{
	struct rreq *q = priv;
	redisReply *rp = reply;
	struct redis *r = q->r;
	char why[300];

	q->sent = 0;
	if (q->answered || !r) {
		req_free(q);
		return;
	}
	if (!rp) {
		req_fail(q, r->why[0] ? r->why : "redis: connection lost");
		return;
	}
	if (rp->type == REDIS_REPLY_ERROR) {
		req_fail(q, reply_error(r, rp, why, sizeof why));
		return;
	}
	if (q->batch) {
		/* a batch's answer: MGET's values, or how many the sweep deleted */
		if (q->op == OP_SWEEP) {
			q->count += rp->type == REDIS_REPLY_INTEGER ? (long)rp->integer : 0;
		} else if (rp->type == REDIS_REPLY_ARRAY) {
			for (size_t i = 0; i < rp->elements && i < q->nbatch; i++) {
				redisReply *v = rp->element[i];
				char key[STATE_TUPLE_MAX + STATE_KEY_MAX], text[STATE_TEXT_MAX];
				struct state_rec rec;
				if (v->type != REDIS_REPLY_STRING ||
				    unrkey(r, q->db, q->batch[i], strlen(q->batch[i]), key, sizeof key) < 0)
					continue;       /* gone meanwhile, or not ours */
				if (to_rec(q->db, v->str, v->len, &rec) < 0 ||
				    state_render(q->db, &rec, text, sizeof text) < 0)
					snprintf(text, sizeof text, "invalid record (%zu bytes)", v->len);
				q->each(q->each_arg, key, text);
			}
		}
		for (size_t i = 0; i < q->nbatch; i++)
			free(q->batch[i]);
		free(q->batch);
		q->batch = NULL;
		q->nbatch = 0;
		scan_next(q);
		return;
	}
	if (rp->type != REDIS_REPLY_ARRAY || rp->elements != 2 ||
	    rp->element[0]->type != REDIS_REPLY_STRING || rp->element[1]->type != REDIS_REPLY_ARRAY) {
		req_fail(q, "redis: unexpected SCAN answer");
		return;
	}
	redisReply *keys = rp->element[1];
	snprintf(q->cursor, sizeof q->cursor, "%s", rp->element[0]->str);
	if (keys->elements == 0) {
		scan_next(q);
		return;
	}
	size_t n = keys->elements, argc = 0;
	const char **argv = calloc(n + 4, sizeof *argv);
	size_t *argvlen = calloc(n + 4, sizeof *argvlen);
	char num[40], now[40];
	if (!argv || !argvlen || !(q->batch = calloc(n, sizeof *q->batch))) {
		free(argv);
		free(argvlen);
		req_fail(q, "out of memory");
		return;
	}
	if (q->op == OP_LIST) {
		argv[argc] = "MGET", argvlen[argc++] = 4;
	} else {
		argv[argc] = "EVAL", argvlen[argc++] = 4;
		argv[argc] = sweep_lua, argvlen[argc++] = strlen(sweep_lua);
		snprintf(num, sizeof num, "%zu", n);
		argv[argc] = num, argvlen[argc++] = strlen(num);
	}
	for (size_t i = 0; i < n; i++) {
		q->batch[i] = strndup(keys->element[i]->str, keys->element[i]->len);
		if (!q->batch[i])
			break;
		q->nbatch++;
		argv[argc] = q->batch[i], argvlen[argc++] = keys->element[i]->len;
	}
	if (q->op == OP_SWEEP) {
		snprintf(now, sizeof now, "%.17g", q->now);
		argv[argc] = now, argvlen[argc++] = strlen(now);
	}
	if (q->nbatch < n)
		req_fail(q, "out of memory");
	else
		step_send(q, (int)argc, argv, argvlen);
	free(argv);
	free(argvlen);
}

static void
scan_next(struct rreq *q)
{
	struct redis *r = q->r;
	struct state_reply rep = { 0 };
	char pattern[200];
	size_t pl = 0;

	if (q->scanned && strcmp(q->cursor, "0") == 0) {
		rep.count = q->count;
		req_answer(q, &rep, 0, NULL);
		return;
	}
	if (!r->ac || !r->up) {
		req_fail(q, r->why[0] ? r->why : "redis: not connected");
		return;
	}
	if (!q->scanned)
		strcpy(q->cursor, "0");
	q->scanned = 1;
	/* the prefix with its glob characters escaped, then the database's tag */
	for (const char *s = r->c.prefix; *s && pl + 3 < sizeof pattern; s++) {
		if (strchr("*?[]\\", *s))
			pattern[pl++] = '\\';
		pattern[pl++] = *s;
	}
	if (q->op == OP_LIST)
		snprintf(pattern + pl, sizeof pattern - pl, "%s:*", db_tag[q->db]);
	else
		snprintf(pattern + pl, sizeof pattern - pl, "*");
	const char *argv[] = { "SCAN", q->cursor, "MATCH", pattern, "COUNT", REDIS_SCAN_COUNT };
	size_t argvlen[6];
	for (int i = 0; i < 6; i++)
		argvlen[i] = strlen(argv[i]);
	step_send(q, 6, argv, argvlen);
}

/* ---- the ops ------------------------------------------------------------ */

static void
fail_now(state_cb *cb, void *arg, const char *why)
{
	struct state_reply rep = { 0 };

	rep.rc = -1;
	rep.error = why;
	rep.grey.verdict = GREY_ERROR;
	cb(arg, &rep);
}

static void
redis_greylist(struct state *base, const struct greylist_conf *c, const char *ip,
    const char *sender, const char *rcpt, double now, state_cb *cb, void *arg)
{
	struct redis *r = (struct redis *)base;
	struct grey_keys k;
	char a1[REDIS_KEY_MAX], a2[REDIS_KEY_MAX], t[REDIS_KEY_MAX];
	struct rreq *q;
	size_t used = 0;

	state_grey_keys(c, ip, sender, rcpt, &k);
	size_t n1 = rkey(r, STATE_ALLOW, k.exact, a1), n2 = rkey(r, STATE_ALLOW, k.net, a2);
	if (allow_admits(r, a1, n1, c, now) || (strcmp(a1, a2) != 0 && allow_admits(r, a2, n2, c, now))) {
		struct state_reply rep = { 0 };
		rep.grey.verdict = GREY_PASS_ALLOWED;
		cb(arg, &rep);
		return;
	}
	size_t n3 = rkey(r, STATE_GREYLIST, k.tuple, t);
	if (!(q = req_new(r, OP_GREY, n1 + n2 + n3 + 128 + 6 * 8, cb, arg))) {
		fail_now(cb, arg, "out of memory");
		return;
	}
	q->now = now;
	add_script(q, &used, SCRIPT_GREY, 3);
	add_arg(q, &used, a1, n1);
	add_arg(q, &used, a2, n2);
	add_arg(q, &used, t, n3);
	double args[] = { now, c->delay, c->tuple_ttl, c->allow_ttl, state_allow_slack(c),
	                  REDIS_TTL_MIN };
	add_packed(q, &used, args, 6);
	req_send(q);
}

static void
redis_ratelimit(struct state *base, const char *key, double limit, double period,
    int mode, double count, double now, state_cb *cb, void *arg)
{
	struct redis *r = (struct redis *)base;
	char k[STATE_KEY_MAX + 1], rk[REDIS_KEY_MAX];
	struct rreq *q;
	size_t used = 0;

	if (!(period > 0) || !(count >= 0)) {
		fail_now(cb, arg, "ratelimit: period must be > 0 and count >= 0");
		return;
	}
	state_key(STATE_RATELIMIT, key, k);
	size_t n = rkey(r, STATE_RATELIMIT, k, rk);
	if (!(q = req_new(r, OP_RL, n + 128 + 5 * 8 + 24, cb, arg))) {
		fail_now(cb, arg, "out of memory");
		return;
	}
	add_script(q, &used, SCRIPT_RL, 1);
	add_arg(q, &used, rk, n);
	double args[] = { now, limit, period, mode == RL_STRICT, count };
	add_packed(q, &used, args, 5);
	add_secs(q, &used, ttl_for(now + RL_TTL_PERIODS * period, now));
	req_send(q);
}

/* GET or DEL of one record. */
static void
one_key(struct redis *r, enum op op, const char *verb, enum state_db db, const char *key,
    double now, state_cb *cb, void *arg)
{
	char k[STATE_KEY_MAX + 1], rk[REDIS_KEY_MAX];
	struct rreq *q;
	size_t used = 0;

	if ((unsigned)db >= STATE_NDB) {
		fail_now(cb, arg, "no such database");
		return;
	}
	state_key(db, key, k);
	size_t n = rkey(r, db, k, rk);
	if (!(q = req_new(r, op, n + 16, cb, arg))) {
		fail_now(cb, arg, "out of memory");
		return;
	}
	q->db = db;
	q->now = now;
	add_arg(q, &used, verb, strlen(verb));
	add_arg(q, &used, rk, n);
	req_send(q);
}

/* SET of one record with its TTL. */
static void
set_rec(struct redis *r, enum op op, enum state_db db, const char *key, const struct state_rec *rec,
    double now, state_cb *cb, void *arg)
{
	char k[STATE_KEY_MAX + 1], rk[REDIS_KEY_MAX], v[STATE_TEXT_MAX];
	struct rreq *q;
	size_t used = 0;

	state_key(db, key, k);
	if (!*k) {
		fail_now(cb, arg, "empty key");
		return;
	}
	size_t n = rkey(r, db, k, rk), vn = from_rec(db, rec, v);
	if (!(q = req_new(r, op, n + vn + 64, cb, arg))) {
		fail_now(cb, arg, "out of memory");
		return;
	}
	add_arg(q, &used, "SET", 3);
	add_arg(q, &used, rk, n);
	add_arg(q, &used, v, vn);
	add_arg(q, &used, "EX", 2);
	add_secs(q, &used, ttl_for(rec->expires, now));
	req_send(q);
}

static void
redis_cache_get(struct state *base, const char *key, double now, state_cb *cb, void *arg)
{
	one_key((struct redis *)base, OP_CGET, "GET", STATE_CALLOUT, key, now, cb, arg);
}

static void
redis_cache_put(struct state *base, const char *key, const char *val, double expires,
    double now, state_cb *cb, void *arg)
{
	struct state_rec rec = { .expires = expires };
	size_t n = strlen(val);

	if (n > STATE_CACHE_MAX) {
		fail_now(cb, arg, "callout cache: value longer than 1024 bytes");
		return;
	}
	memcpy(rec.value, val, n + 1);
	rec.vlen = n;
	set_rec((struct redis *)base, OP_CPUT, STATE_CALLOUT, key, &rec, now, cb, arg);
}

static void
redis_get(struct state *base, enum state_db db, const char *key, state_cb *cb, void *arg)
{
	one_key((struct redis *)base, OP_GET, "GET", db, key, 0, cb, arg);
}

static void
redis_del(struct state *base, enum state_db db, const char *key, state_cb *cb, void *arg)
{
	if (db == STATE_ALLOW)
		allow_clear((struct redis *)base);
	one_key((struct redis *)base, OP_DEL, "DEL", db, key, 0, cb, arg);
}

static void
redis_put(struct state *base, enum state_db db, const char *key, const char *val,
    double now, state_cb *cb, void *arg)
{
	struct state_rec rec;
	char err[256];

	if ((unsigned)db >= STATE_NDB) {
		fail_now(cb, arg, "no such database");
		return;
	}
	if (state_parse(db, val, &rec, err, sizeof err) < 0) {
		fail_now(cb, arg, err);
		return;
	}
	if (db == STATE_ALLOW)
		allow_clear((struct redis *)base);
	set_rec((struct redis *)base, OP_PUT, db, key, &rec, now, cb, arg);
}

static void
scan_start(struct redis *r, enum op op, enum state_db db, state_each_cb *each, void *each_arg,
    double now, state_cb *cb, void *arg)
{
	struct rreq *q;

	if (op == OP_LIST && (unsigned)db >= STATE_NDB) {
		fail_now(cb, arg, "no such database");
		return;
	}
	if (!(q = req_new(r, op, 0, cb, arg))) {
		fail_now(cb, arg, "out of memory");
		return;
	}
	q->db = db;
	q->each = each;
	q->each_arg = each_arg;
	q->now = now;
	scan_next(q);
}

static void
redis_list(struct state *base, enum state_db db, state_each_cb *each, void *each_arg,
    state_cb *cb, void *arg)
{
	scan_start((struct redis *)base, OP_LIST, db, each, each_arg, 0, cb, arg);
}

/* Redis expires records by their TTLs; this drops those whose stored
 * expiry has passed at now before their TTL ran out (the CLI's sweep). */
static void
redis_sweep(struct state *base, double now, state_cb *cb, void *arg)
{
	scan_start((struct redis *)base, OP_SWEEP, 0, NULL, NULL, now, cb, arg);
}

static void
sha1_hex(const char *s, char *out)
{
	unsigned char md[SHA_DIGEST_LENGTH];

	SHA1((const unsigned char *)s, strlen(s), md);
	for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
}

static struct state *
redis_open(const struct state_conf *c, struct ev_loop *loop, char *err, size_t errlen)
{
	struct redis *r;

	if (!loop) {
		snprintf(err, errlen, "state: redis needs an event loop");
		return NULL;
	}
	if (!(r = calloc(1, sizeof *r))) {
		snprintf(err, errlen, "state: out of memory");
		return NULL;
	}
	r->c = *c;
	if (!r->c.server[0])
		snprintf(r->c.server, sizeof r->c.server, "127.0.0.1:6379");
	if (!(r->c.timeout > 0))
		r->c.timeout = 0.5;
	r->loop = loop;
	r->backoff = REDIS_BACKOFF_MIN;
	for (int i = 0; i < SCRIPT_N; i++)
		sha1_hex(scripts[i], r->sha[i]);
	ev_timer_init(&r->retry, on_retry, 0, 0);
	r->retry.data = r;
	ev_timer_init(&r->conn_timer, on_conn_timer, 0, 0);
	r->conn_timer.data = r;
	ev_prepare_init(&r->flush, on_flush);
	r->flush.data = r;
	if (htab_init(&r->allow, 64) < 0) {
		free(r);
		snprintf(err, errlen, "state: out of memory");
		return NULL;
	}
	redis_connect(r);
	return &r->base;
}

static void
redis_close(struct state *base)
{
	struct redis *r = (struct redis *)base;

	r->closing = 1;
	ev_timer_stop(r->loop, &r->retry);
	ev_timer_stop(r->loop, &r->conn_timer);
	ev_prepare_stop(r->loop, &r->flush);
	/* no callback reaches a caller after close */
	for (struct rreq *q = r->reqs, *next; q; q = next) {
		next = q->next;
		ev_timer_stop(r->loop, &q->timer);
		q->answered = 1;
		q->r = NULL;
		q->prev = q->next = NULL;
		if (!q->sent)
			req_free(q);
	}
	r->reqs = NULL;
	if (r->ac) {
		r->ac->data = NULL;
		redisAsyncFree(r->ac);  /* calls each request back with NULL: freed there */
	}
	allow_clear(r);
	htab_free(&r->allow);
	free(r);
}

/* "host:port", "[v6]:port" or "unix:/path" -> host/port or path. */
static void
split_server(const char *server, char *host, size_t hlen, int *port)
{
	const char *s = server, *colon = strrchr(s, ':');
	size_t n = colon ? (size_t)(colon - s) : strlen(s);

	*port = 6379;
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		n = end ? (size_t)(end - s - 1) : 0;
		s++;
		colon = end && end[1] == ':' ? end + 1 : NULL;
	}
	snprintf(host, hlen, "%.*s", (int)n, s);
	if (colon)
		*port = atoi(colon + 1);
}

/*
 * Before the server starts (and in `mxgate -t`): connect, AUTH, SELECT,
 * PING, synchronously. 0 fine; 1 unreachable (the server starts and
 * applies its fail modes until Redis comes); -1 refused (a wrong password
 * or db: the config is wrong).
 */
static int
redis_probe(const struct state_conf *c, char *err, size_t errlen)
{
	double t = c->timeout > 1 ? c->timeout : 1;
	struct timeval tv = { (time_t)t, (suseconds_t)((t - (time_t)t) * 1e6) };
	redisContext *rc;
	redisReply *rp = NULL;
	const char *step = "connect";
	int result = 0;

	if (strncmp(c->server, "unix:", 5) == 0)
		rc = redisConnectUnixWithTimeout(c->server + 5, tv);
	else {
		char host[256];
		int port;
		split_server(c->server, host, sizeof host, &port);
		rc = redisConnectWithTimeout(host, port, tv);
	}
	if (!rc || rc->err) {
		snprintf(err, errlen, "state: redis %s: %s", c->server, rc ? rc->errstr : "out of memory");
		if (rc)
			redisFree(rc);
		return 1;
	}
	redisSetTimeout(rc, tv);
	if (c->password[0]) {
		step = "AUTH";
		rp = c->user[0] ? redisCommand(rc, "AUTH %s %s", c->user, c->password)
		                : redisCommand(rc, "AUTH %s", c->password);
	}
	if (!rp || rp->type != REDIS_REPLY_ERROR) {
		if (c->db && (!c->password[0] || rp)) {
			if (rp)
				freeReplyObject(rp);
			step = "SELECT";
			rp = redisCommand(rc, "SELECT %d", c->db);
		}
		if ((!c->password[0] && !c->db) || (rp && rp->type != REDIS_REPLY_ERROR)) {
			if (rp)
				freeReplyObject(rp);
			step = "PING";
			rp = redisCommand(rc, "PING");
		}
	}
	if (!rp) {
		snprintf(err, errlen, "state: redis %s: %s: %s", c->server, step, rc->errstr);
		result = 1;
	} else if (rp->type == REDIS_REPLY_ERROR) {
		snprintf(err, errlen, "state: redis %s: %s refused: %s%s", c->server, step, rp->str,
		    strstr(rp->str, "NOAUTH") ? " (set state.password, and state.user for an ACL user)" : "");
		result = -1;
	}
	if (rp)
		freeReplyObject(rp);
	redisFree(rc);
	return result;
}

const struct state_ops state_redis_ops = {
	.name = "redis", .ttl_expiry = 1, .probe = redis_probe,
	.open = redis_open, .close = redis_close,
	.greylist = redis_greylist, .ratelimit = redis_ratelimit,
	.cache_get = redis_cache_get, .cache_put = redis_cache_put,
	.list = redis_list, .get = redis_get, .put = redis_put, .del = redis_del,
	.sweep = redis_sweep,
};
