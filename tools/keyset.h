/*
 * keyset.h - a set of 64-bit hashes (ruletest --jobs: which state records
 * and which questions each shard met), written to and read from a shard's
 * stats file.
 */
#ifndef MXGATE_KEYSET_H
#define MXGATE_KEYSET_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "htab.h"

struct keyset {
	uint64_t *v;            /* open addressing; 0 marks a free slot */
	size_t    n, cap;
};

/* FNV-1a (htab.h) over n bytes, continuing from h (start with KEYSET_SEED), never 0. */
#define KEYSET_SEED FNV1A_INIT
uint64_t keyset_hash(uint64_t h, const void *p, size_t n);

int  keyset_add(struct keyset *s, uint64_t h);          /* 0, or -1: out of memory */
int  keyset_has(const struct keyset *s, uint64_t h);
void keyset_free(struct keyset *s);
/* Its count then its hashes; read back as keyset_read() gives them to each(). */
int  keyset_write(const struct keyset *s, FILE *f);
int  keyset_read(FILE *f, void (*each)(void *arg, uint64_t h), void *arg);

#endif
