/*
 * dns.c - c-ares on the worker's libev loop, behind a TTL cache and a
 * table of lookups in flight.
 *
 * A lookup is answered from the cache (synchronously), or joins the
 * identical lookup already in flight, or starts one ares_query(). c-ares
 * owns the sockets and names the ones to watch through sock_state_cb; its
 * retransmits and timeouts run from a timer armed only while lookups are
 * pending.
 *
 * User callbacks run inside dns_query() (cache hit, or c-ares failing a
 * query before sending it), inside ares_process_fd() and inside
 * ares_destroy(). A callback may call dns_query() or dns_free(): the
 * busy counter defers the free to the outermost frame, because c-ares is
 * still walking its own lists when our callback returns.
 *
 * dns_free() fails every lookup still in flight with DNS_SERVFAIL (c-ares
 * reports ARES_EDESTRUCTION); lookups made from those callbacks fail at
 * once. Callers find their session again by id, so a late answer is
 * harmless.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ares.h>
#include <ev.h>

#include "dns.h"
#include "htab.h"

#define DNS_NAME_MAX      253   /* RFC 1035 2.3.4, in text form */
#define DNS_LABEL_MAX     63
/*
 * Distinct lookups in flight. c-ares 1.18 draws query ids at random until
 * one is unused, which slows as the 65536 fill up (and never ends when
 * all are taken); past this a flood of random names fails fast with
 * DNS_SERVFAIL instead.
 */
#define DNS_MAX_PENDING   16384
#define DNS_PENDING_HASH  (DNS_MAX_PENDING / 4)

#define RR_CNAME 5
#define RR_SOA   6
#define CLASS_IN 1

struct crr {
	uint32_t    ttl;
	int         pref;
	const char *text;           /* points into the owning entry */
};

/* One allocation: the entry, rr[n], the name, then the texts. */
struct centry {
	struct hnode    h;          /* key: dns_key() bytes, in the entry */
	struct lru_node lru;
	ev_tstamp      stored, expires;
	int            status;
	int            n;
	struct crr     rr[];
};

struct waiter {
	struct waiter *next;
	dns_cb        *cb;
	void          *arg;
};

struct pending {
	struct hnode    h;          /* key: k[] */
	struct dns     *dns;
	struct waiter  *head, **tail;
	int             type;
	unsigned char   k[2 + DNS_NAME_MAX + 1];    /* type, name, NUL */
};

struct dsock {
	ev_io         io;           /* io.data is the struct dns */
	struct dsock *next;
};

struct dns {
	struct ev_loop  *loop;
	ares_channel     ch;
	ev_timer         timer;
	double           timeout;
	struct dsock    *socks;
	struct htab      cache, inflight;
	struct lru       lru;
	size_t           cache_max;
	uint32_t         max_ttl, neg_ttl;
	int              busy;      /* frames that may run user callbacks */
	int              closing;
	struct dns_stats st;
};

static void dns_destroy(struct dns *);

/*
 * The tables' key: the query type (two bytes) then the name as dns_key()
 * gives it. Names come from the peer: htab.h hashes them with SipHash
 * under a per-process random key.
 */
static size_t
table_key(unsigned char *k, int type, const char *name, size_t len)
{
	k[0] = (unsigned char)(type >> 8);
	k[1] = (unsigned char)type;
	memcpy(k + 2, name, len);
	k[2 + len] = '\0';
	return 2 + len;
}

/*
 * The cache key: the name without its final dot, ASCII-lowercased
 * (RFC 4343; never the locale's tolower). The same checks spare c-ares a
 * name it would reject, and keep the key inside its fixed buffer.
 */
static int
dns_key(const char *name, char *key, size_t *keylen)
{
	size_t len, i, label = 0;
	char   c;

	len = strnlen(name, DNS_NAME_MAX + 2);
	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > DNS_NAME_MAX)
		return -1;
	for (i = 0; i < len; i++) {
		c = name[i];
		if (c == '.') {
			if (label == 0)
				return -1;
			label = 0;
		} else if (++label > DNS_LABEL_MAX)
			return -1;
		key[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	key[len] = '\0';
	*keylen = len;
	return 0;
}

static uint32_t
ttl_min(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

/*
 * c-ares 1.18 reports TTLs only for A and AAAA, so the raw answer is
 * walked once more, bounded by alen at every step: the smallest TTL among
 * the RRs of the type asked and the CNAMEs leading to them (a cached
 * answer must not outlive any link of the chain), and the negative TTL of
 * RFC 2308 section 5, min(SOA TTL, SOA MINIMUM).
 */
struct ttls {
	uint32_t pos;
	int      npos;
	uint32_t neg;
	int      soa;
};

static size_t
skip_name(const unsigned char *m, size_t len, size_t off)
{
	while (off < len) {
		if (m[off] == 0)
			return off + 1;
		if ((m[off] & 0xc0) == 0xc0)
			return off + 2 <= len ? off + 2 : 0;
		if (m[off] & 0xc0)
			return 0;   /* 0x40, 0x80: extended labels, never valid now */
		off += 1 + m[off];
	}
	return 0;
}

static uint32_t
get32(const unsigned char *p)
{
	uint32_t v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];

	/* RFC 2181 section 8: a TTL with the top bit set means zero. */
	return (v & 0x80000000U) ? 0 : v;
}

static int
dns_walk(const unsigned char *m, size_t len, int qtype, struct ttls *t)
{
	size_t   off = 12, rd, rdlen, i, count[3];
	int      sec, type, class;
	uint32_t ttl;

	memset(t, 0, sizeof(*t));
	if (m == NULL || len < 12)
		return -1;
	count[0] = (size_t)m[4] << 8 | m[5];    /* QDCOUNT */
	count[1] = (size_t)m[6] << 8 | m[7];    /* ANCOUNT */
	count[2] = (size_t)m[8] << 8 | m[9];    /* NSCOUNT */
	for (i = 0; i < count[0]; i++) {
		if ((off = skip_name(m, len, off)) == 0 || off + 4 > len)
			return -1;
		off += 4;
	}
	for (sec = 1; sec <= 2; sec++) {
		for (i = 0; i < count[sec]; i++) {
			if ((off = skip_name(m, len, off)) == 0 || off + 10 > len)
				return -1;
			type = m[off] << 8 | m[off + 1];
			class = m[off + 2] << 8 | m[off + 3];
			ttl = get32(m + off + 4);
			rdlen = (size_t)m[off + 8] << 8 | m[off + 9];
			rd = off + 10;
			if (rd + rdlen > len)
				return -1;
			off = rd + rdlen;
			if (class != CLASS_IN)
				continue;
			if (sec == 1 && (type == qtype || type == RR_CNAME)) {
				t->pos = t->npos++ ? ttl_min(t->pos, ttl) : ttl;
			} else if (sec == 2 && type == RR_SOA && !t->soa) {
				/* MNAME, RNAME, then five 32-bit fields. */
				if ((rd = skip_name(m, off, rd)) == 0 ||
				    (rd = skip_name(m, off, rd)) == 0 ||
				    rd + 20 > off)
					return -1;
				t->neg = ttl_min(ttl, get32(m + rd + 16));
				t->soa = 1;
			}
		}
	}
	return 0;
}

static uint32_t
dns_negttl(const struct dns *dns, const unsigned char *abuf, int alen)
{
	struct ttls t;
	uint32_t    ttl = dns->neg_ttl;

	if (abuf != NULL && alen > 0 &&
	    dns_walk(abuf, (size_t)alen, 0, &t) == 0 && t.soa)
		ttl = t.neg;
	return ttl_min(ttl, dns->max_ttl);
}

/*
 * Appends to a record's text, cut at the buffer. Control bytes become '?':
 * TXT comes from whoever runs the zone and ends up in logs and in SMTP
 * replies, where a CR LF would forge a reply line.
 */
static void
rr_append(struct dns_rr *rr, size_t *used, const void *src, size_t n)
{
	const unsigned char *s = src;
	size_t               i;

	for (i = 0; i < n && *used < sizeof(rr->text) - 1; i++)
		rr->text[(*used)++] = (s[i] < 0x20 || s[i] == 0x7f) ?
		    '?' : (char)s[i];
	rr->text[*used] = '\0';
}

static struct dns_rr *
rr_new(struct dns_answer *ans, uint32_t ttl, int pref)
{
	struct dns_rr *rr = &ans->rr[ans->n++];

	rr->ttl = ttl;
	rr->pref = pref;
	rr->text[0] = '\0';
	return rr;
}

static int
parse_addr(const struct dns *dns, int type, const unsigned char *abuf,
    int alen, struct dns_answer *ans)
{
	struct ares_addrttl  a4[DNS_MAX_RR];
	struct ares_addr6ttl a6[DNS_MAX_RR];
	struct dns_rr       *rr;
	int                  i, n = DNS_MAX_RR, rc, ttl;

	if (type == DNS_A)
		rc = ares_parse_a_reply(abuf, alen, NULL, a4, &n);
	else
		rc = ares_parse_aaaa_reply(abuf, alen, NULL, a6, &n);
	if (rc != ARES_SUCCESS)
		return rc;
	for (i = 0; i < n && i < DNS_MAX_RR; i++) {
		ttl = type == DNS_A ? a4[i].ttl : a6[i].ttl;
		rr = rr_new(ans, ttl_min(ttl < 0 ? 0 : (uint32_t)ttl,
		    dns->max_ttl), 0);
		if (type == DNS_A)
			inet_ntop(AF_INET, &a4[i].ipaddr, rr->text,
			    sizeof(rr->text));
		else
			inet_ntop(AF_INET6, &a6[i].ip6addr, rr->text,
			    sizeof(rr->text));
	}
	return n > 0 ? ARES_SUCCESS : ARES_ENODATA;
}

/* Keeps the DNS_MAX_RR best preferences, in answer order among equals. */
static int
parse_mx(const unsigned char *abuf, int alen, uint32_t ttl,
    struct dns_answer *ans)
{
	struct ares_mx_reply *mx, *m;
	struct dns_rr         tmp;
	size_t                used;
	int                   i, rc;

	if ((rc = ares_parse_mx_reply(abuf, alen, &mx)) != ARES_SUCCESS)
		return rc;
	for (m = mx; m != NULL; m = m->next) {
		for (i = ans->n; i > 0 && ans->rr[i - 1].pref > m->priority; i--)
			;
		if (i >= DNS_MAX_RR)
			continue;
		tmp.ttl = ttl;
		tmp.pref = m->priority;
		used = 0;
		rr_append(&tmp, &used, m->host, strlen(m->host));
		if (ans->n == DNS_MAX_RR)
			ans->n--;
		memmove(&ans->rr[i + 1], &ans->rr[i],
		    (size_t)(ans->n - i) * sizeof(ans->rr[0]));
		ans->rr[i] = tmp;
		ans->n++;
	}
	ares_free_data(mx);
	return ans->n > 0 ? ARES_SUCCESS : ARES_ENODATA;
}

static int
parse_txt(const unsigned char *abuf, int alen, uint32_t ttl,
    struct dns_answer *ans)
{
	struct ares_txt_ext *txt, *t;
	struct dns_rr       *rr = NULL;
	size_t               used = 0;
	int                  rc;

	if ((rc = ares_parse_txt_reply_ext(abuf, alen, &txt)) != ARES_SUCCESS)
		return rc;
	for (t = txt; t != NULL; t = t->next) {
		if (t->record_start || rr == NULL) {
			if (ans->n == DNS_MAX_RR)
				break;
			rr = rr_new(ans, ttl, 0);
			used = 0;
		}
		rr_append(rr, &used, t->txt, t->length);
	}
	ares_free_data(txt);
	return ans->n > 0 ? ARES_SUCCESS : ARES_ENODATA;
}

static int
parse_ptr(const unsigned char *abuf, int alen, uint32_t ttl,
    struct dns_answer *ans)
{
	struct hostent *he;
	struct dns_rr  *rr;
	size_t          used;
	int             i, rc;

	/* No address to pass: 1.18 copies one only when given. */
	if ((rc = ares_parse_ptr_reply(abuf, alen, NULL, 0, AF_INET, &he)) !=
	    ARES_SUCCESS)
		return rc;
	/* h_aliases holds every PTR in answer order; h_name is the last. */
	for (i = 0; he->h_aliases[i] != NULL && ans->n < DNS_MAX_RR; i++) {
		rr = rr_new(ans, ttl, 0);
		used = 0;
		rr_append(rr, &used, he->h_aliases[i], strlen(he->h_aliases[i]));
	}
	ares_free_hostent(he);
	return ans->n > 0 ? ARES_SUCCESS : ARES_ENODATA;
}

/*
 * Fills ans from what c-ares returned; the result is how long the answer
 * may be cached, 0 for never. Failures are never cached: a resolver that
 * timed out or failed now may answer on the next try.
 */
static uint32_t
dns_build(const struct dns *dns, int type, int status,
    const unsigned char *abuf, int alen, struct dns_answer *ans)
{
	struct ttls t;
	uint32_t    ttl = 0;
	int         rc, i;

	ans->n = 0;
	switch (status) {
	case ARES_SUCCESS:
		break;
	case ARES_ENODATA:
		ans->status = DNS_NODATA;
		return dns_negttl(dns, abuf, alen);
	case ARES_ENOTFOUND:
		ans->status = DNS_NXDOMAIN;
		return dns_negttl(dns, abuf, alen);
	case ARES_ETIMEOUT:
		ans->status = DNS_TIMEOUT;
		return 0;
	default:
		ans->status = DNS_SERVFAIL;
		return 0;
	}

	if (type != DNS_A && type != DNS_AAAA) {
		if (dns_walk(abuf, (size_t)alen, type, &t) == -1) {
			ans->status = DNS_SERVFAIL;
			return 0;
		}
		ttl = ttl_min(t.pos, dns->max_ttl);
	}
	switch (type) {
	case DNS_A:
	case DNS_AAAA:
		rc = parse_addr(dns, type, abuf, alen, ans);
		break;
	case DNS_MX:
		rc = parse_mx(abuf, alen, ttl, ans);
		break;
	case DNS_TXT:
		rc = parse_txt(abuf, alen, ttl, ans);
		break;
	default:
		rc = parse_ptr(abuf, alen, ttl, ans);
		break;
	}
	if (rc == ARES_ENODATA) {
		/* A CNAME to a name without the type: the name exists. */
		ans->n = 0;
		ans->status = DNS_NODATA;
		return dns_negttl(dns, abuf, alen);
	}
	if (rc != ARES_SUCCESS) {
		ans->n = 0;
		ans->status = DNS_SERVFAIL;
		return 0;
	}
	ans->status = DNS_OK;
	for (ttl = ans->rr[0].ttl, i = 1; i < ans->n; i++)
		ttl = ttl_min(ttl, ans->rr[i].ttl);
	return ttl;
}

static void
cache_drop(struct dns *dns, struct centry *e)
{
	htab_del(&dns->cache, &e->h);
	lru_unlink(&dns->lru, &e->lru);
	dns->st.cached--;
	free(e);
}

static struct centry *
cache_get(struct dns *dns, uint64_t hash, const unsigned char *k, size_t klen, ev_tstamp now)
{
	struct hnode *h;
	struct centry *e;

	if (dns->cache_max == 0 || (h = htab_find(&dns->cache, hash, k, klen)) == NULL)
		return NULL;
	e = container_of(h, struct centry, h);
	/* ev_now() is wall-clock time: a clock set back must not extend TTLs. */
	if (now >= e->expires || now < e->stored) {
		cache_drop(dns, e);
		return NULL;
	}
	lru_touch(&dns->lru, &e->lru);
	return e;
}

static void
cache_put(struct dns *dns, const struct hnode *k, const struct dns_answer *ans,
    uint32_t ttl, ev_tstamp now)
{
	struct centry *e;
	struct hnode  *old;
	size_t         size, tlen[DNS_MAX_RR];
	char          *p;
	int            i;

	if (dns->cache_max == 0 || ttl == 0)
		return;
	if ((old = htab_find(&dns->cache, k->hash, k->key, k->keylen)) != NULL)
		cache_drop(dns, container_of(old, struct centry, h));
	/* Least recently used first; one already expired is no eviction. */
	while (dns->st.cached >= dns->cache_max) {
		struct centry *last = container_of(dns->lru.tail, struct centry, lru);
		if (last->expires > now)
			dns->st.evictions++;
		cache_drop(dns, last);
	}

	size = sizeof(*e) + (size_t)ans->n * sizeof(e->rr[0]) + k->keylen + 1;
	for (i = 0; i < ans->n; i++) {
		tlen[i] = strnlen(ans->rr[i].text, DNS_RR_TEXT - 1);
		size += tlen[i] + 1;
	}
	if ((e = malloc(size)) == NULL)
		return;
	p = (char *)&e->rr[ans->n];
	memcpy(p, k->key, k->keylen);
	p[k->keylen] = '\0';
	e->h.key = p;
	e->h.keylen = k->keylen;
	e->h.hash = k->hash;
	p += k->keylen + 1;
	for (i = 0; i < ans->n; i++) {
		memcpy(p, ans->rr[i].text, tlen[i]);
		p[tlen[i]] = '\0';
		e->rr[i].text = p;
		e->rr[i].ttl = ans->rr[i].ttl;
		e->rr[i].pref = ans->rr[i].pref;
		p += tlen[i] + 1;
	}
	e->status = ans->status;
	e->n = ans->n;
	e->stored = now;
	e->expires = now + ttl;
	if (htab_add(&dns->cache, &e->h) < 0) {
		free(e);
		return;
	}
	lru_push(&dns->lru, &e->lru);
	dns->st.cached++;
}

/* TTLs count down from when the answer was stored. */
static void
cache_answer(const struct centry *e, ev_tstamp now, struct dns_answer *ans)
{
	uint32_t age = (uint32_t)(now - e->stored);
	int      i;

	ans->status = e->status;
	ans->n = e->n;
	for (i = 0; i < e->n; i++) {
		ans->rr[i].ttl = e->rr[i].ttl > age ? e->rr[i].ttl - age : 0;
		ans->rr[i].pref = e->rr[i].pref;
		memcpy(ans->rr[i].text, e->rr[i].text,
		    strlen(e->rr[i].text) + 1);
	}
}

static void
dns_leave(struct dns *dns)
{
	if (--dns->busy == 0 && dns->closing)
		dns_destroy(dns);
}

static void
dns_fail(struct dns *dns, dns_cb *cb, void *arg, enum dns_status status)
{
	struct dns_answer ans;

	ans.status = status;
	ans.n = 0;
	dns->st.failures++;
	dns->busy++;
	cb(arg, &ans);
	dns_leave(dns);
}

/* Runs inside a busy frame: dns_query, ares_process_fd or ares_destroy. */
static void
dns_ares_cb(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	struct pending   *p = arg;
	struct dns       *dns = p->dns;
	struct waiter    *w, *next;
	struct dns_answer ans;
	uint32_t          ttl;

	/* Out of the table first, so a waiter asking again starts afresh. */
	htab_del(&dns->inflight, &p->h);
	dns->st.inflight--;

	ttl = dns_build(dns, p->type, status, abuf, alen, &ans);
	if (!dns->closing)
		cache_put(dns, &p->h, &ans, ttl, ev_now(dns->loop));
	if (ans.status == DNS_TIMEOUT)
		dns->st.timeouts++;
	else if (ans.status == DNS_SERVFAIL)
		dns->st.failures++;

	for (w = p->head; w != NULL; w = next) {
		next = w->next;
		w->cb(w->arg, &ans);
		free(w);
	}
	free(p);
}

/*
 * Arms the timer for the earliest c-ares deadline. ares_timeout() walks
 * every query, so this runs when the timer fires, not on every packet.
 */
static void
dns_timer_arm(struct dns *dns)
{
	struct timeval tv;
	double         after;

	if (dns->closing || dns->st.inflight == 0 ||
	    ares_timeout(dns->ch, NULL, &tv) == NULL) {
		ev_timer_stop(dns->loop, &dns->timer);
		return;
	}
	after = (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
	dns->timer.repeat = after < 0.001 ? 0.001 : after;
	ev_timer_again(dns->loop, &dns->timer);
}

static void
dns_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dns *dns = w->data;

	dns->busy++;
	ares_process_fd(dns->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_timer_arm(dns);
	dns_leave(dns);
}

static void
dns_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct dns   *dns = w->data;
	ares_socket_t fd = w->fd;

	/* c-ares may close this socket inside, freeing w: use only fd now. */
	dns->busy++;
	ares_process_fd(dns->ch, (revents & EV_READ) ? fd : ARES_SOCKET_BAD,
	    (revents & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	if (dns->st.inflight == 0)
		ev_timer_stop(dns->loop, &dns->timer);
	dns_leave(dns);
}

static void
dns_sock_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns    *dns = data;
	struct dsock **sp, *s;

	for (sp = &dns->socks; (s = *sp) != NULL; sp = &s->next)
		if (s->io.fd == fd)
			break;
	if (!readable && !writable) {
		/* c-ares calls this before it closes the fd. */
		if (s != NULL) {
			ev_io_stop(dns->loop, &s->io);
			*sp = s->next;
			free(s);
		}
		return;
	}
	if (s == NULL) {
		/* Without a watcher the query still ends, by timeout. */
		if ((s = calloc(1, sizeof(*s))) == NULL)
			return;
		ev_init(&s->io, dns_io_cb);
		s->io.data = dns;
		s->next = dns->socks;
		dns->socks = s;
	}
	ev_io_stop(dns->loop, &s->io);
	ev_io_set(&s->io, fd, (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
	ev_io_start(dns->loop, &s->io);
}

void
dns_query(struct dns *dns, const char *name, enum dns_type type, dns_cb *cb,
    void *arg)
{
	char              key[DNS_NAME_MAX + 1];
	unsigned char     k[2 + DNS_NAME_MAX + 1];
	size_t            len, klen;
	uint64_t          hash;
	struct hnode     *h;
	struct centry    *e;
	struct pending   *p;
	struct waiter    *w;
	struct dns_answer ans;
	ev_tstamp         now;

	dns->st.queries++;
	if (dns->closing || name == NULL || dns_key(name, key, &len) == -1 ||
	    (type != DNS_A && type != DNS_AAAA && type != DNS_MX &&
	    type != DNS_TXT && type != DNS_PTR)) {
		dns_fail(dns, cb, arg, DNS_SERVFAIL);
		return;
	}
	klen = table_key(k, type, key, len);
	hash = htab_hash(k, klen);
	now = ev_now(dns->loop);

	if ((e = cache_get(dns, hash, k, klen, now)) != NULL) {
		dns->st.cache_hits++;
		cache_answer(e, now, &ans);
		dns->busy++;
		cb(arg, &ans);
		dns_leave(dns);
		return;
	}

	if ((w = malloc(sizeof(*w))) == NULL) {
		dns_fail(dns, cb, arg, DNS_SERVFAIL);
		return;
	}
	w->next = NULL;
	w->cb = cb;
	w->arg = arg;

	if ((h = htab_find(&dns->inflight, hash, k, klen)) != NULL) {
		p = container_of(h, struct pending, h);
		dns->st.coalesced++;
		*p->tail = w;
		p->tail = &w->next;
		return;
	}

	if (dns->st.inflight >= DNS_MAX_PENDING ||
	    (p = malloc(sizeof(*p))) == NULL) {
		free(w);
		dns_fail(dns, cb, arg, DNS_SERVFAIL);
		return;
	}
	memcpy(p->k, k, klen + 1);
	p->h.key = p->k;
	p->h.keylen = klen;
	p->h.hash = hash;
	p->type = type;
	p->dns = dns;
	p->head = w;
	p->tail = &w->next;
	if (htab_add(&dns->inflight, &p->h) < 0) {
		free(p);
		free(w);
		dns_fail(dns, cb, arg, DNS_SERVFAIL);
		return;
	}
	dns->st.inflight++;
	dns->st.upstream++;

	/* The answer may come before ares_query() returns: p is gone then. */
	dns->busy++;
	ares_query(dns->ch, (const char *)p->k + 2, CLASS_IN, type, dns_ares_cb, p);
	if (!ev_is_active(&dns->timer))
		dns_timer_arm(dns);
	else if (ev_timer_remaining(dns->loop, &dns->timer) > dns->timeout) {
		/* An older query backing off must not delay this one. */
		dns->timer.repeat = dns->timeout;
		ev_timer_again(dns->loop, &dns->timer);
	}
	dns_leave(dns);
}

struct dns *
dns_new(struct ev_loop *loop, const struct dns_conf *conf, char *err,
    size_t errlen)
{
	static const struct dns_conf defaults = {
		.servers = NULL, .timeout = 2.0, .tries = 2,
		.cache_entries = 10000, .max_ttl = 86400, .neg_ttl = 300,
	};
	struct ares_options o;
	struct dns         *dns;
	int                 rc, tries, libinit = 0;
	const char         *why = "out of memory";

	if (conf == NULL)
		conf = &defaults;
	if ((dns = calloc(1, sizeof(*dns))) == NULL)
		goto err;
	dns->loop = loop;
	/* Zero means the default, except cache_entries where 0 is "off". */
	dns->timeout = conf->timeout > 0 ? conf->timeout : defaults.timeout;
	if (dns->timeout < 0.001)
		dns->timeout = 0.001;
	if (dns->timeout > 3600)
		dns->timeout = 3600;
	tries = conf->tries > 0 ? conf->tries : defaults.tries;
	if (tries > 100)
		tries = 100;
	dns->cache_max = conf->cache_entries;
	dns->max_ttl = conf->max_ttl > 0 ? conf->max_ttl : defaults.max_ttl;
	dns->neg_ttl = conf->neg_ttl > 0 ? conf->neg_ttl : defaults.neg_ttl;

	if (htab_init(&dns->cache, dns->cache_max) == -1 ||
	    htab_init(&dns->inflight, DNS_PENDING_HASH) == -1)
		goto err;

	if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		why = ares_strerror(rc);
		goto err;
	}
	libinit = 1;
	memset(&o, 0, sizeof(o));
	o.sock_state_cb = dns_sock_cb;
	o.sock_state_cb_data = dns;
	o.timeout = (int)(dns->timeout * 1000);
	o.tries = tries;
	rc = ares_init_options(&dns->ch, &o,
	    ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
	if (rc != ARES_SUCCESS) {
		why = ares_strerror(rc);
		goto err;
	}
	if (conf->servers != NULL && conf->servers[0] != '\0' &&
	    (rc = ares_set_servers_ports_csv(dns->ch, conf->servers)) !=
	    ARES_SUCCESS) {
		ares_destroy(dns->ch);
		why = rc == ARES_EBADSTR ? "bad server list" : ares_strerror(rc);
		goto err;
	}
	ev_init(&dns->timer, dns_timer_cb);
	dns->timer.data = dns;
	return dns;

err:
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "dns: %s", why);
	if (libinit)
		ares_library_cleanup();
	if (dns != NULL) {
		htab_free(&dns->cache);
		htab_free(&dns->inflight);
		free(dns);
	}
	return NULL;
}

static void
dns_destroy(struct dns *dns)
{
	struct dsock     *s;
	struct hnode     *n;
	struct pending   *p;
	struct waiter    *w;
	struct dns_answer ans;
	size_t            i;

	dns->closing = 1;
	dns->busy++;        /* dns_free() from the callbacks below: no-op */
	ares_destroy(dns->ch);

	/* c-ares fired every query; this is only in case it did not. */
	for (i = 0; i <= dns->inflight.mask; i++)
		while ((n = dns->inflight.b[i]) != NULL) {
			p = container_of(n, struct pending, h);
			dns->inflight.b[i] = n->next;
			while ((w = p->head) != NULL) {
				ans.status = DNS_SERVFAIL;
				ans.n = 0;
				p->head = w->next;
				w->cb(w->arg, &ans);
				free(w);
			}
			free(p);
		}
	while ((s = dns->socks) != NULL) {
		ev_io_stop(dns->loop, &s->io);
		dns->socks = s->next;
		free(s);
	}
	ev_timer_stop(dns->loop, &dns->timer);
	while (dns->lru.head != NULL)
		cache_drop(dns, container_of(dns->lru.head, struct centry, lru));
	htab_free(&dns->cache);
	htab_free(&dns->inflight);
	ares_library_cleanup();
	free(dns);
}

void
dns_free(struct dns *dns)
{
	if (dns == NULL)
		return;
	if (dns->busy > 0) {
		dns->closing = 1;
		return;
	}
	dns_destroy(dns);
}

int
dns_reverse_name(const char *ip, char *out, size_t outlen)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char     a[16];
	char             *p;
	int               i, n;

	if (out == NULL || outlen == 0)
		return -1;
	out[0] = '\0';
	if (ip == NULL)
		return -1;
	if (inet_pton(AF_INET, ip, a) == 1) {
		char tmp[16];           /* "255.255.255.255" */
		/* By hand: every DNSBL lookup of every session comes here. */
		for (p = tmp, i = 3; i >= 0; i--) {
			if (a[i] >= 100)
				*p++ = (char)('0' + a[i] / 100);
			if (a[i] >= 10)
				*p++ = (char)('0' + a[i] / 10 % 10);
			*p++ = (char)('0' + a[i] % 10);
			*p++ = i ? '.' : '\0';
		}
		n = (int)(p - tmp);     /* with the NUL */
		if ((size_t)n > outlen)
			return -1;
		memcpy(out, tmp, (size_t)n);
		return 0;
	}
	if (inet_pton(AF_INET6, ip, a) == 1) {
		if (outlen < 64)    /* 32 nibbles, 31 dots, NUL */
			return -1;
		for (p = out, i = 15; i >= 0; i--) {
			*p++ = hex[a[i] & 0x0f];
			*p++ = '.';
			*p++ = hex[a[i] >> 4];
			*p++ = '.';
		}
		p[-1] = '\0';
		return 0;
	}
	return -1;
}

const char *
dns_status_str(enum dns_status st)
{
	switch (st) {
	case DNS_OK:
		return "OK";
	case DNS_NXDOMAIN:
		return "NXDOMAIN";
	case DNS_NODATA:
		return "NODATA";
	case DNS_TIMEOUT:
		return "TIMEOUT";
	case DNS_SERVFAIL:
		return "SERVFAIL";
	}
	return "UNKNOWN";
}

void
dns_get_stats(const struct dns *dns, struct dns_stats *st)
{
	*st = dns->st;
}
