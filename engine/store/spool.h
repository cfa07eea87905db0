/*
 * spool.h - accepted mail on disk, durable before the 250.
 *
 * A message is written while DATA streams in, into a recycled file (the
 * next slot of the process's ring, queue/.free.PID/N) or a new tmp/PID.QID;
 * then spool_commit() hands it to the worker's committer thread, which makes
 * a whole batch durable at once (group commit: one flush for every session
 * that finished DATA meanwhile), renames each file into queue/QID, syncs and
 * only then calls back on the loop thread. Names starting with "." in queue/
 * are not messages; they and tmp/ are cleaned when their writer is gone.
 *
 * File format: one JSON line with the envelope, then the message (CRLF).
 * The envelope's first member is "length": the file's whole size, fixed
 * width, filled in at commit. A file whose size differs was torn by a
 * crash before it was acknowledged: readers must skip it.
 */
#ifndef MXGATE_SPOOL_H
#define MXGATE_SPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "htab.h"

struct ev_loop;
struct spool;
struct spool_msg;

#define QID_LEN 24

/* Creates tmp/ and queue/ under dir. 0 or -1 (errno). Master, before fork. */
int  spool_prepare(const char *dir, uid_t uid, gid_t gid);
/*
 * Removes the tmp/ files and the ring (queue/.free.PID/) of process pid, once
 * it is reaped (0: every process's, at start). A ring exists only while its
 * writer may use it: spool_recycle() fills only rings that exist.
 */
void spool_clean_tmp(const char *dir, pid_t pid);

struct spool *spool_open(struct ev_loop *loop, const char *dir, char *err, size_t errlen);
void          spool_close(struct spool *sp);   /* waits for pending commits */

void qid_new(char out[QID_LEN]);

/* Opens the envelope object: the caller writes the rest of its members. */
struct spool_msg *spool_create(struct spool *sp, const char *qid);
int   spool_write(struct spool_msg *m, const void *buf, size_t n);  /* 0 or -1 */
void  spool_abort(struct spool_msg *m);       /* unlinks and frees */

/* ok=1: durable in queue/. The message is freed before cb runs. */
typedef void spool_done_cb(void *arg, int ok);
void  spool_commit(struct spool_msg *m, spool_done_cb *cb, void *arg);

/*
 * The envelope's second member, "sum", is 16 hex digits of spool_sum()
 * over everything after the fixed-width header (SPOOL_HEADER_LEN bytes),
 * filled in at commit: a recycled file that a crash left partly rewritten
 * fails it. Files without it (older ones) are checked by length only.
 */
#define SPOOL_HEADER_LEN 58
#define SPOOL_SUM_INIT   FNV1A_INIT
uint64_t spool_sum(uint64_t h, const void *buf, size_t n);

/* The delivery process is done with queue/QID: a free slot in its writer's ring, or unlinked. */
void spool_recycle(const char *dir, const char *qid);
/* The ring part alone: 0 when it went into a slot; -1 and queue/QID is left
 * where it is (no ring, or no room) for the caller to remove. */
int  spool_recycle_ring(const char *dir, const char *qid);

#endif
