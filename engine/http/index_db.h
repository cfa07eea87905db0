/* index_db.h - the log index's LMDB layout, shared by its writer (index.c) and readers (index_read.c). */
#ifndef MXGATE_INDEX_DB_H
#define MXGATE_INDEX_DB_H

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "index.h"

/*
 * Databases:
 *   meta  "ckpt" -> struct ckpt; "j:NAME" -> uint64 offset of a journal file
 *   rec   be64 seq -> int64 ms, then the log line
 *   time  be64 ms, be64 seq -> ""
 *   agg   level ('h' hour, 'm' minute), be32 bucket, dir, NUL, reason -> struct agg
 *   key   field, lowercased value, NUL, be64 seq -> ""
 *   jrn   sid -> journal file name, NUL, be64 offset
 *   jday  journal file name, NUL, sid -> ""  (the names start with their
 *         day, YYYY-MM-DD, so this walks jrn's entries oldest day first:
 *         what index_prune() drops)
 */
enum { DB_META, DB_REC, DB_TIME, DB_AGG, DB_KEY, DB_JRN, DB_JDAY, DB_N };

struct ckpt {
	uint64_t dev, ino, off;         /* the log file being read, and how far */
	uint64_t seq;                   /* the next record's number (from 1) */
	uint64_t lines, skipped, journals;
	uint32_t headlen;
	char     head[64];              /* its first bytes: a new file at the same inode differs */
};

struct agg {
	uint64_t count, newest;
	int64_t  newest_ms;
};

struct logindex {
	MDB_env *env;
	MDB_dbi  db[DB_N];
	char     log[512], journal[512];
	int      flags;                 /* INDEX_COUNTS_ONLY */
};

static inline void
be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static inline uint64_t
get_be64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/*
 * What a record files besides its line and time, derived from the line
 * the same way by the writer (index.c) and by index_prune() (which must
 * find it again to delete it). kv: the line split by logfmt_split().
 */
struct kv;
/* The (dir, reason) counter a record counts in: 1, or 0 when it counts
 * in none (event=accepted). */
int index_bucket_of(struct kv *kv, int n, const char **dir, const char **reason);
/* The key of a record's minute ('m') or hour ('h') counter into k; its length. */
#define INDEX_AGG_KEY (1 + 4 + 16 + 1 + 64)
size_t index_agg_key(unsigned char k[INDEX_AGG_KEY], char level, int64_t ms, const char *dir,
    const char *reason);
/* fn(arg, key, len) for each search key of record seq (field, lowercased
 * value, NUL, be64 seq); the first nonzero return stops and is returned. */
int index_keys_of(struct kv *kv, int n, uint64_t seq,
    int (*fn)(void *arg, const unsigned char *key, size_t len), void *arg);

/* A record's line (rec's value after its time) into line, NUL-terminated: its length. */
static inline size_t
rec_line(const MDB_val *v, char line[INDEX_LINE_MAX + 1])
{
	size_t len = v->mv_size < 8 ? 0 : v->mv_size - 8;

	len = len > INDEX_LINE_MAX ? INDEX_LINE_MAX : len;
	memcpy(line, (const char *)v->mv_data + 8, len);
	line[len] = '\0';
	return len;
}

static inline void
be32(unsigned char *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

#endif
