/* borrow.c - the journal's dns(), callout() and verify_sender() answers by question, lent to sessions that did not ask (borrow.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "htab.h"
#include "borrow.h"

#define DNS_LEND_DEFAULT 300.0   /* a dns() answer recorded without its TTL */

struct lent {
	double t, life;
	int    sess;
	char  *res;                 /* canonical JSON array of the results */
};

/* One question: name '\0' canonical args. */
struct question {
	struct hnode h;
	struct lent *v;
	size_t       n, cap;
	size_t       klen;
	char         key[];
};

struct borrow {
	struct htab       t;
	struct question **all;
	size_t            nall, capall;
	double            pos_ttl, neg_ttl;
	json_t           *last;       /* what borrow_find returned last */
	struct buf        enc;
};

struct borrow *
borrow_new(double positive_ttl, double negative_ttl)
{
	struct borrow *b = calloc(1, sizeof *b);

	if (!b || htab_init(&b->t, 4096) < 0) {
		free(b);
		return NULL;
	}
	b->pos_ttl = positive_ttl;
	b->neg_ttl = negative_ttl;
	b->enc = (struct buf)BUF_INIT(0);
	return b;
}

void
borrow_free(struct borrow *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->nall; i++) {
		for (size_t j = 0; j < b->all[i]->n; j++)
			free(b->all[i]->v[j].res);
		free(b->all[i]->v);
		free(b->all[i]);
	}
	free(b->all);
	htab_free(&b->t);
	if (b->last)
		json_decref(b->last);
	buf_free(&b->enc);
	free(b);
}

/* How long this answer holds; 0: it is not lent. */
static double
lifetime(const struct borrow *b, const char *name, const json_t *res)
{
	if (!strcmp(name, "dns")) {
		const json_t *ttl = json_array_get(res, 2);
		return json_is_number(ttl) ? json_number_value(ttl) : DNS_LEND_DEFAULT;
	}
	/* callout(), verify_sender(): { result = ..., code = ... } */
	const json_t *r = json_array_get(res, 0);
	const char *result = json_string_value(json_object_get(r, "result"));
	json_int_t code = json_integer_value(json_object_get(r, "code"));
	if (!result)
		return 0;
	if (!strcmp(result, "ok"))
		return b->pos_ttl > 0 ? b->pos_ttl : 0;
	if ((!strcmp(result, "rcpt_rejected") || !strcmp(result, "rejected")) && code >= 500)
		return b->neg_ttl > 0 ? b->neg_ttl : 0;
	return 0;
}

static int
lendable(const char *name)
{
	return !strcmp(name, "dns") || !strcmp(name, "callout") || !strcmp(name, "verify_sender");
}

static struct question *
find(struct borrow *b, const char *name, const char *args, size_t alen, char *key, size_t *klen)
{
	size_t nl = strlen(name);

	memcpy(key, name, nl + 1);
	memcpy(key + nl + 1, args, alen);
	*klen = nl + 1 + alen;
	struct hnode *h = htab_find(&b->t, htab_hash(key, *klen), key, *klen);
	return h ? container_of(h, struct question, h) : NULL;
}

static struct question *
add_question(struct borrow *b, const char *key, size_t klen)
{
	struct question *q = calloc(1, sizeof *q + klen);

	if (!q)
		return NULL;
	memcpy(q->key, key, klen);
	q->klen = klen;
	q->h.key = q->key;
	q->h.keylen = klen;
	q->h.hash = htab_hash(key, klen);
	if (array_reserve(&b->all, &b->capall, b->nall + 1, sizeof *b->all) < 0 ||
	    htab_add(&b->t, &q->h) < 0) {
		free(q);
		return NULL;
	}
	b->all[b->nall++] = q;
	return q;
}

int
borrow_add(struct borrow *b, const struct record *r, int sess)
{
	for (int i = 0; i < r->ncalls; i++) {
		const struct replay_call *c = &r->calls[i];
		double life;
		size_t klen;

		if (!c->args || !json_is_array(c->res) || !lendable(c->name) ||
		    (life = lifetime(b, c->name, c->res)) <= 0)
			continue;
		char *key = malloc(strlen(c->name) + 1 + c->args_len);
		if (!key)
			return -1;
		struct question *q = find(b, c->name, c->args, c->args_len, key, &klen);
		if (!q && !(q = add_question(b, key, klen))) {
			free(key);
			return -1;
		}
		free(key);
		if (array_reserve(&q->v, &q->cap, q->n + 1, sizeof *q->v) < 0)
			return -1;
		buf_reset(&b->enc);
		jsonw_canonical(&b->enc, c->res);
		size_t len;
		char *res = buf_take(&b->enc, &len);
		if (!res)
			return -1;
		q->v[q->n++] = (struct lent){ r->time, life, sess, res };
	}
	return 0;
}

const json_t *
borrow_find(struct borrow *b, const char *name, const char *args, size_t alen, double t, int self,
    int *sess)
{
	char *key = malloc(strlen(name) + 1 + alen);
	struct question *q;
	struct lent *best = NULL;
	size_t klen;

	if (!key)
		return NULL;
	q = find(b, name, args, alen, key, &klen);
	free(key);
	for (size_t i = 0; q && i < q->n; i++) {
		struct lent *l = &q->v[i];
		double d = fabs(l->t - t);
		if (l->sess != self && d <= l->life && (!best || d < fabs(best->t - t)))
			best = l;
	}
	if (!best)
		return NULL;
	if (b->last)
		json_decref(b->last);
	b->last = jsonr_parse(best->res, strlen(best->res), JSON_MAX_DEPTH + 2, NULL);
	*sess = best->sess;
	return b->last;
}
