/* index_db.h - the log index's LMDB layout, shared by its writer (index.c) and readers (index_read.c). */
#ifndef MXGATE_INDEX_DB_H
#define MXGATE_INDEX_DB_H

#include <lmdb.h>
#include <stdint.h>

/*
 * Databases:
 *   meta  "ckpt" -> struct ckpt; "j:NAME" -> uint64 offset of a journal file
 *   rec   be64 seq -> int64 ms, then the log line
 *   time  be64 ms, be64 seq -> ""
 *   agg   level ('h' hour, 'm' minute), be32 bucket, dir, NUL, reason -> struct agg
 *   key   field, lowercased value, NUL, be64 seq -> ""
 *   jrn   sid -> journal file name, NUL, be64 offset
 */
enum { DB_META, DB_REC, DB_TIME, DB_AGG, DB_KEY, DB_JRN, DB_N };

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

static inline void
be32(unsigned char *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

#endif
