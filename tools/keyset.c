/*
 * keyset.c - a set of 64-bit hashes, open addressing with linear probing
 * (keyset.h). The hashes are FNV-1a (htab.h): the same in every process,
 * where htab_hash's SipHash key is each process's own.
 */
#include <stdlib.h>

#include "keyset.h"

uint64_t
keyset_hash(uint64_t h, const void *p, size_t n)
{
	h = fnv1a(h, p, n);
	return h ? h : 1;               /* 0 marks a free slot */
}

static size_t
slot(const struct keyset *s, uint64_t h)
{
	size_t i = (size_t)(h ^ h >> 29) & (s->cap - 1);

	while (s->v[i] && s->v[i] != h)
		i = (i + 1) & (s->cap - 1);
	return i;
}

int
keyset_add(struct keyset *s, uint64_t h)
{
	if (!h)
		h = 1;
	if ((s->n + 1) * 2 > s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 1024;
		struct keyset t = { calloc(cap, sizeof *t.v), 0, cap };
		if (!t.v)
			return -1;
		for (size_t i = 0; i < s->cap; i++)
			if (s->v[i]) {
				t.v[slot(&t, s->v[i])] = s->v[i];
				t.n++;
			}
		free(s->v);
		*s = t;
	}
	size_t i = slot(s, h);
	if (!s->v[i]) {
		s->v[i] = h;
		s->n++;
	}
	return 0;
}

int
keyset_has(const struct keyset *s, uint64_t h)
{
	if (!h)
		h = 1;
	return s->cap && s->v[slot(s, h)] == h;
}

void
keyset_free(struct keyset *s)
{
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}

int
keyset_write(const struct keyset *s, FILE *f)
{
	if (fwrite(&s->n, sizeof s->n, 1, f) != 1)
		return -1;
	for (size_t i = 0; i < s->cap; i++)
		if (s->v[i] && fwrite(&s->v[i], sizeof s->v[i], 1, f) != 1)
			return -1;
	return 0;
}

int
keyset_read(FILE *f, void (*each)(void *arg, uint64_t h), void *arg)
{
	size_t n;
	uint64_t h;

	if (fread(&n, sizeof n, 1, f) != 1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (fread(&h, sizeof h, 1, f) != 1)
			return -1;
		each(arg, h);
	}
	return 0;
}
