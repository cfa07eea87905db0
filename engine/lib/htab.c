/*
 * htab.c - the one hash table and LRU list (htab.h).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "htab.h"

#define HTAB_MAX_BUCKETS ((size_t)1 << 24)

static uint64_t key0, key1;
static int      keyed;

static void
draw_key(void)
{
	uint64_t k[2];

	if (getrandom(k, sizeof k, GRND_NONBLOCK) != (ssize_t)sizeof k) {
		/* Early boot: weaker, still unknown to a remote sender. */
		k[0] = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
		k[1] = (uint64_t)(uintptr_t)&k ^ (uint64_t)clock();
	}
	key0 = k[0];
	key1 = k[1];
	keyed = 1;
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND do {                                                   \
	v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);       \
	v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                          \
	v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                          \
	v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);       \
} while (0)

uint64_t
fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 0x100000001b3ULL;
	return h;
}

uint64_t
htab_hash(const void *key, size_t len)
{
	const unsigned char *in = key;
	uint64_t v0, v1, v2, v3, m, b = (uint64_t)len << 56;
	size_t i, j, end = len - len % 8;

	if (!keyed)
		draw_key();
	v0 = 0x736f6d6570736575ULL ^ key0;
	v1 = 0x646f72616e646f6dULL ^ key1;
	v2 = 0x6c7967656e657261ULL ^ key0;
	v3 = 0x7465646279746573ULL ^ key1;
	for (i = 0; i < end; i += 8) {
		for (m = 0, j = 0; j < 8; j++)
			m |= (uint64_t)in[i + j] << (8 * j);
		v3 ^= m;
		SIPROUND;
		v0 ^= m;
	}
	for (j = 0; j < len % 8; j++)
		b |= (uint64_t)in[end + j] << (8 * j);
	v3 ^= b;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

static int
resize(struct htab *t, size_t size)
{
	struct hnode **b = calloc(size, sizeof *b), *x, *next;

	if (!b)
		return -1;
	for (size_t i = 0; t->b && i <= t->mask; i++)
		for (x = t->b[i]; x; x = next) {
			next = x->next;
			x->next = b[x->hash & (size - 1)];
			b[x->hash & (size - 1)] = x;
		}
	free(t->b);
	t->b = b;
	t->mask = size - 1;
	return 0;
}

int
htab_init(struct htab *t, size_t want)
{
	size_t n = 16;

	memset(t, 0, sizeof *t);
	while (n < want && n < HTAB_MAX_BUCKETS)
		n <<= 1;
	return resize(t, n);
}

void
htab_free(struct htab *t)
{
	free(t->b);
	memset(t, 0, sizeof *t);
}

struct hnode *
htab_find(const struct htab *t, uint64_t hash, const void *key, size_t len)
{
	struct hnode *n;

	if (!t->b)
		return NULL;
	for (n = t->b[hash & t->mask]; n; n = n->next)
		if (n->hash == hash && n->keylen == len && memcmp(n->key, key, len) == 0)
			return n;
	return NULL;
}

int
htab_add(struct htab *t, struct hnode *n)
{
	/* One entry a bucket on average; past the cap chains just grow longer. */
	if (!t->b || (t->n > t->mask && t->mask + 1 < HTAB_MAX_BUCKETS))
		if (resize(t, t->b ? 2 * (t->mask + 1) : 16) < 0 && !t->b)
			return -1;
	n->next = t->b[n->hash & t->mask];
	t->b[n->hash & t->mask] = n;
	t->n++;
	return 0;
}

void
htab_del(struct htab *t, struct hnode *n)
{
	struct hnode **p;

	for (p = &t->b[n->hash & t->mask]; *p; p = &(*p)->next)
		if (*p == n) {
			*p = n->next;
			t->n--;
			return;
		}
}

void
lru_push(struct lru *l, struct lru_node *n)
{
	n->prev = NULL;
	n->next = l->head;
	if (l->head)
		l->head->prev = n;
	else
		l->tail = n;
	l->head = n;
}

void
lru_unlink(struct lru *l, struct lru_node *n)
{
	if (n->prev)
		n->prev->next = n->next;
	else
		l->head = n->next;
	if (n->next)
		n->next->prev = n->prev;
	else
		l->tail = n->prev;
	n->prev = n->next = NULL;
}

void
lru_touch(struct lru *l, struct lru_node *n)
{
	if (l->head != n) {
		lru_unlink(l, n);
		lru_push(l, n);
	}
}
