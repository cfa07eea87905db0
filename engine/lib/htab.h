/*
 * htab.h - the one hash table (intrusive, chained, keyed SipHash-1-3) and
 * the one LRU list, for the caches and in-flight tables of dns.c and
 * callout.c.
 *
 * Keys come from the peer (names in HELO and MAIL FROM, recipients), so
 * they are hashed with SipHash under a per-process random key: with a
 * plain hash a sender could choose keys that all land in one chain (the
 * 2011 hash-flooding attacks, oCERT-2011-003).
 *
 * The caller owns the nodes: it embeds a struct hnode (and a struct
 * lru_node) in its entry, sets key, keylen and hash, and finds the entry
 * again with container_of(). The table only links them.
 */
#ifndef MXGATE_HTAB_H
#define MXGATE_HTAB_H

#include <stddef.h>
#include <stdint.h>

#define container_of(p, type, member) ((type *)(void *)((char *)(p) - offsetof(type, member)))

struct hnode {
	struct hnode *next;
	uint64_t      hash;
	const void   *key;          /* points into the owner */
	size_t        keylen;
};

struct htab {
	struct hnode **b;
	size_t         mask, n;
};

/* SipHash-1-3 of the bytes under the process's random key. */
uint64_t htab_hash(const void *key, size_t len);
/* FNV-1a, 64 bits, continuing from h (FNV1A_INIT to start): the same in
 * every process, for hashes that leave it (spool sums, ruletest's shards). */
#define FNV1A_INIT 0xcbf29ce484222325ULL
uint64_t fnv1a(uint64_t h, const void *p, size_t n);
/* Buckets for about `want` entries (it grows past that by doubling). */
int      htab_init(struct htab *t, size_t want);
void     htab_free(struct htab *t);             /* the buckets; nodes are the caller's */
struct hnode *htab_find(const struct htab *t, uint64_t hash, const void *key, size_t len);
int      htab_add(struct htab *t, struct hnode *n);    /* 0, or -1: out of memory */
void     htab_del(struct htab *t, struct hnode *n);

/* Least recently used order: most recent at head, the next to evict at tail. */
struct lru_node {
	struct lru_node *prev, *next;
};

struct lru {
	struct lru_node *head, *tail;
};

void lru_push(struct lru *l, struct lru_node *n);      /* as the most recent */
void lru_unlink(struct lru *l, struct lru_node *n);
void lru_touch(struct lru *l, struct lru_node *n);     /* used now: to the head */

#endif
