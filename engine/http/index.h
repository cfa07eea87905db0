/*
 * index.h - the log index: an LMDB environment that holds, for the log
 * lines the portal shows (event=reject, accepted, delivered, deferred,
 * bounced), the line itself, its time, counts per (direction, reason) per
 * minute and per hour, and search keys (recipient domain, recipient,
 * sender, client IP, session or queue id), plus where each session's
 * journal record is. It is brought up to date incrementally from a
 * checkpoint (inode, offset, the file's first bytes), so a query never
 * scans the log; a log line it cannot read is counted and skipped.
 *
 * One writer at a time (index_update; LMDB serialises them), any number of
 * readers, from any thread (MDB_NOTLS).
 */
#ifndef MXGATE_INDEX_H
#define MXGATE_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define INDEX_LINE_MAX  65536      /* longer is not a line of ours (log.c writes 4 KiB) */
#define INDEX_KEY_MAX   200        /* bytes of a search value kept in a key */

struct logindex;

/* Search keys: what a support person types. IX_ID is a session id or a
 * queue id (both are in the same key space). */
enum index_field { IX_DOMAIN = 'd', IX_RCPT = 'r', IX_SENDER = 's', IX_CLIENT = 'c', IX_ID = 'q' };

struct index_stats {
	uint64_t records;              /* lines indexed */
	uint64_t lines;                /* log lines read (indexed or not) */
	uint64_t skipped;              /* lines that were not log records */
	uint64_t offset, size;         /* how far into the current log file; its size */
	uint64_t journals;             /* journal records indexed */
	uint64_t pages, page_size;     /* the environment's pages in use (freed ones are reused) */
};

/* dir: the environment (made if missing); log: the log file it follows;
 * journal_dir: the session journal's files ("" or NULL: none). An index
 * made for another log file is refused. flags: INDEX_COUNTS_ONLY keeps no
 * search keys (a throwaway index for one report: a third of the writes).
 * max_size: the bound on its size in bytes (0: 16 GiB; http.index_max_size). */
#define INDEX_COUNTS_ONLY 1
int  index_open(struct logindex **ix, const char *dir, const char *log, const char *journal_dir,
    int flags, size_t max_size, char *err, size_t errlen);
void index_close(struct logindex *ix);

/* Reads what the log (and the journal) gained since the checkpoint, at
 * most max_bytes of log (0: no limit). 0: up to date, 1: more to read,
 * -1: error (err). A torn last line waits for its end. */
int  index_update(struct logindex *ix, size_t max_bytes, char *err, size_t errlen);
int  index_stats(struct logindex *ix, struct index_stats *st);

/*
 * Retention: removes the records older than cutoff (epoch seconds) with
 * all that was filed for them (time key, search keys, one count fewer in
 * their minute and hour counters, a counter at zero removed), oldest
 * first, and the journal entries of days wholly before it; at most max of
 * them in one write transaction, so a writer waiting (a page's update)
 * waits for one batch only. Counts and search agree after every batch.
 * LMDB reuses the freed pages for what is written next. 0: nothing older
 * is left, 1: call again, -1: error (err).
 */
int  index_prune(struct logindex *ix, double cutoff, size_t max, char *err, size_t errlen);

/* Counts per (direction, reason) of the records in [since, until) (epoch
 * seconds, 0: open), exact to the millisecond: whole hours and minutes
 * from their buckets, the rest from the time index. fn may be called more
 * than once for one pair (add them up); dir is "inbound", "outbound" or
 * "" for rejections, "delivery" for delivery events (reason: the event).
 * newest: the sequence number of the pair's newest record. */
typedef void (*index_count_fn)(void *arg, const char *dir, const char *reason, uint64_t count,
    uint64_t newest, int64_t newest_ms);
int  index_counts(struct logindex *ix, double since, double until, index_count_fn fn, void *arg);

/* One record: its sequence number, time (ms) and line (not NUL-terminated).
 * A nonzero return stops the walk. */
typedef int (*index_rec_fn)(void *arg, uint64_t seq, int64_t ms, const char *line, size_t len);
/* Every record of [since, until), oldest first. */
int  index_scan(struct logindex *ix, double since, double until, index_rec_fn fn, void *arg);
/* One record by sequence number: 0, or -1 when there is none. */
int  index_get(struct logindex *ix, uint64_t seq, index_rec_fn fn, void *arg);
/*
 * The records whose field equals value (case-insensitive), newest first,
 * older than before (0: from the newest) and inside [since, until), at
 * most limit of them. *next: the `before` of the next page, 0 when this
 * was the last.
 */
int  index_search(struct logindex *ix, enum index_field f, const char *value, double since,
    double until, uint64_t before, size_t limit, index_rec_fn fn, void *arg, uint64_t *next);
/* The session's journal line into out: 1, 0 when not journalled (or the
 * file is gone), -1 on error. */
int  index_journal(struct logindex *ix, const char *sid, struct buf *out);

#endif
