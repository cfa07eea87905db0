/*
 * test_htab.c - the one hash table and LRU list (engine/lib/htab.h) that
 * the DNS and callout caches share.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "htab.h"
#include "unit.h"

struct item {
	struct hnode    h;
	struct lru_node lru;
	char            key[32];
};

static struct item *
item(int i)
{
	struct item *it = calloc(1, sizeof *it);

	snprintf(it->key, sizeof it->key, "key-%d", i);
	it->h.key = it->key;
	it->h.keylen = strlen(it->key);
	it->h.hash = htab_hash(it->key, it->h.keylen);
	return it;
}

static struct item *
find(struct htab *t, const char *k)
{
	struct hnode *n = htab_find(t, htab_hash(k, strlen(k)), k, strlen(k));

	return n ? container_of(n, struct item, h) : NULL;
}

TEST(the_keyed_hash_is_stable_within_a_process_and_sees_every_byte)
{
	CHECK(htab_hash("abc", 3) == htab_hash("abc", 3));
	CHECK(htab_hash("abc", 3) != htab_hash("abd", 3));
	CHECK(htab_hash("abc", 3) != htab_hash("abc", 2));
	CHECK(htab_hash("\0\0\0\0\0\0\0\0\0", 9) != htab_hash("\0\0\0\0\0\0\0\0", 8));
}

TEST(entries_are_found_by_bytes_and_the_table_grows_past_its_hint)
{
	struct htab t;
	struct item *its[1000];

	CHECK(htab_init(&t, 4) == 0);
	for (int i = 0; i < 1000; i++)
		CHECK(htab_add(&t, &(its[i] = item(i))->h) == 0);
	CHECK(t.n == 1000);
	CHECK(t.mask + 1 >= 1000);
	for (int i = 0; i < 1000; i++)
		CHECK(find(&t, its[i]->key) == its[i]);
	CHECK(find(&t, "key-1000") == NULL);
	CHECK(find(&t, "key-1") != NULL && find(&t, "key-1")->key[4] == '1');
	for (int i = 0; i < 1000; i += 2)
		htab_del(&t, &its[i]->h);
	CHECK(t.n == 500);
	CHECK(find(&t, "key-10") == NULL && find(&t, "key-11") == its[11]);
	for (int i = 0; i < 1000; i++)
		free(its[i]);
	htab_free(&t);
}

TEST(the_lru_evicts_the_least_recently_used_first)
{
	struct lru l = { 0 };
	struct item *a = item(1), *b = item(2), *c = item(3);

	lru_push(&l, &a->lru);
	lru_push(&l, &b->lru);
	lru_push(&l, &c->lru);                   /* c b a */
	CHECK(container_of(l.tail, struct item, lru) == a);
	lru_touch(&l, &a->lru);                  /* a c b */
	CHECK(container_of(l.head, struct item, lru) == a);
	CHECK(container_of(l.tail, struct item, lru) == b);
	lru_unlink(&l, &b->lru);                 /* a c */
	CHECK(container_of(l.tail, struct item, lru) == c);
	lru_unlink(&l, &c->lru);
	lru_unlink(&l, &a->lru);
	CHECK(l.head == NULL && l.tail == NULL);
	free(a);
	free(b);
	free(c);
}

UNIT_MAIN()
