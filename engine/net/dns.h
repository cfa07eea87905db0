/*
 * dns.h - asynchronous DNS on a worker's libev loop (c-ares 1.18).
 *
 * One struct dns per worker. Answers are cached (TTL-honouring, bounded)
 * and identical queries in flight are coalesced. A query whose answer is
 * in the cache completes synchronously, inside dns_query(), before it
 * returns: callers must be ready for that (the Lua bridge checks whether
 * it got its answer before yielding).
 *
 * There is no cancel: a caller that goes away keeps its callback armed
 * and must make it a no-op (look the session up again by id).
 */
#ifndef MXGATE_DNS_H
#define MXGATE_DNS_H

#include <stddef.h>
#include <stdint.h>

struct ev_loop;
struct dns;

enum dns_type { DNS_A = 1, DNS_PTR = 12, DNS_MX = 15, DNS_TXT = 16, DNS_AAAA = 28 };

enum dns_status {
	DNS_OK = 0,     /* at least one record of the type asked */
	DNS_NXDOMAIN,   /* name does not exist */
	DNS_NODATA,     /* name exists, no record of that type */
	DNS_TIMEOUT,    /* no server answered within timeout x tries */
	DNS_SERVFAIL,   /* any other failure: SERVFAIL, REFUSED, malformed */
};

#define DNS_MAX_RR   16
#define DNS_RR_TEXT  256

struct dns_rr {
	uint32_t ttl;
	int      pref;              /* MX preference, else 0 */
	char     text[DNS_RR_TEXT]; /* A/AAAA: address text; MX/PTR: host name;
	                               TXT: the strings concatenated. Cut at
	                               DNS_RR_TEXT-1 bytes; control bytes are
	                               '?' so text is safe to log or reply. */
};

struct dns_answer {
	enum dns_status status;
	int             n;          /* records in rr[], MX sorted by pref */
	struct dns_rr   rr[DNS_MAX_RR];
};

/* A zero field takes its default, except cache_entries. */
struct dns_conf {
	const char *servers;        /* "127.0.0.1:5353,[::1]:53" or NULL: resolv.conf */
	double      timeout;        /* seconds per try (default 2) */
	int         tries;          /* default 2 */
	size_t      cache_entries;  /* default 10000; 0 disables the cache */
	uint32_t    max_ttl;        /* clamp cached TTLs (default 86400) */
	uint32_t    neg_ttl;        /* TTL for NXDOMAIN/NODATA when SOA gives none (default 300) */
};

/* The answer is valid only during the callback. */
typedef void dns_cb(void *arg, const struct dns_answer *answer);

struct dns *dns_new(struct ev_loop *loop, const struct dns_conf *conf,
    char *err, size_t errlen);
/* Lookups in flight get DNS_SERVFAIL; from a callback, the free waits
   until dns.c has unwound. */
void        dns_free(struct dns *dns);

/* Starts (or joins) a lookup; cb fires exactly once, maybe before this returns. */
void        dns_query(struct dns *dns, const char *name, enum dns_type type,
    dns_cb *cb, void *arg);

/* "1.2.3.4" -> "4.3.2.1", "2001:db8::1" -> nibbles; 0 on success. */
int         dns_reverse_name(const char *ip, char *out, size_t outlen);

const char *dns_status_str(enum dns_status st);

/* Counters since dns_new(), for logs and tests. */
struct dns_stats {
	uint64_t queries;           /* dns_query() calls */
	uint64_t cache_hits;        /* answered from the cache */
	uint64_t coalesced;         /* joined an identical lookup in flight */
	uint64_t upstream;          /* lookups handed to c-ares */
	uint64_t timeouts;
	uint64_t failures;          /* SERVFAIL, bad names, overload */
	uint64_t evictions;         /* live entries pushed out by a full cache */
	size_t   cached;            /* entries in the cache now */
	size_t   inflight;          /* distinct lookups in flight now */
};

void        dns_get_stats(const struct dns *dns, struct dns_stats *st);

#endif
