/* borrow.c - the dns(), callout() and verify_sender() answers of sessions replayed so far, by question, lent to later sessions that did not ask (borrow.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "htab.h"
#include "borrow.h"
#include "strcopy.h"

#define DNS_LEND_DEFAULT 300.0   /* a dns() answer recorded without its TTL */
#define SWEEP_EVERY      4096     /* answers added between two drops of the expired */

/* The latest answer to one question: a newer one replaces it. */
struct lent {
	double t, until;
	char   sid[64];
	char  *res;                 /* canonical JSON array of the results */
};

/* One question: name '\0' canonical args. */
struct question {
	struct hnode h;
	struct lent  v;
	size_t       klen;
	char         key[];
};

struct borrow {
	struct htab       t;
	struct question **all;
	size_t            nall, capall;
	double            pos_ttl, neg_ttl;
	double            latest;     /* the newest session added */
	long              adds;
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
		free(b->all[i]->v.res);
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

/* Drops the answers no later session may borrow any more. */
static void
sweep(struct borrow *b)
{
	size_t keep = 0;

	for (size_t i = 0; i < b->nall; i++) {
		struct question *q = b->all[i];
		if (q->v.until >= b->latest) {
			b->all[keep++] = q;
			continue;
		}
		htab_del(&b->t, &q->h);
		free(q->v.res);
		free(q);
	}
	b->nall = keep;
}

int
borrow_add(struct borrow *b, const struct record *r)
{
	if (r->time > b->latest)
		b->latest = r->time;
	if (++b->adds % SWEEP_EVERY == 0)
		sweep(b);
	for (int i = 0; i < r->ncalls; i++) {
		const struct replay_call *c = &r->calls[i];
		double life;
		size_t klen, len;

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
		buf_reset(&b->enc);
		jsonw_canonical(&b->enc, c->res);
		char *res = buf_take(&b->enc, &len);
		if (!res)
			return -1;
		free(q->v.res);
		q->v.t = r->time;
		q->v.until = r->time + life;
		str_copy(q->v.sid, sizeof q->v.sid, r->sid);
		q->v.res = res;
	}
	return 0;
}

const json_t *
borrow_find(struct borrow *b, const char *name, const char *args, size_t alen, double t, const char **sid)
{
	char *key = malloc(strlen(name) + 1 + alen);
	struct question *q;
	size_t klen;

	if (!key)
		return NULL;
	q = find(b, name, args, alen, key, &klen);
	free(key);
	if (!q || !q->v.res || q->v.t > t || t > q->v.until)
		return NULL;
	if (b->last)
		json_decref(b->last);
	b->last = jsonr_parse(q->v.res, strlen(q->v.res), JSON_MAX_DEPTH + 2, NULL);
	*sid = q->v.sid;
	return b->last;
}
