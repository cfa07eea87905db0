/*
 * reaper.h - removes finished queue files off the delivery loop.
 *
 * The loop renames queue/QID into spool/trash/ (a rename frees no blocks,
 * so it never waits for the disk); a thread unlinks what is in trash/, and
 * for trash/QID then status/QID. Names in trash/ are never read as mail, so
 * a rescan of queue/ cannot bring a delivered message back, and what a
 * crash leaves in trash/ is removed at the next start.
 */
#ifndef MXGATE_DELIVERY_REAPER_H
#define MXGATE_DELIVERY_REAPER_H

struct reaper;

/* Starts the thread; its first pass empties trash/. NULL on error (errno). */
struct reaper *reaper_start(const char *spool_dir);
/* Stops and joins the thread; what is left in trash/ waits for the next start. */
void reaper_stop(struct reaper *r);

/* queue/QID is done with: into its writer's ring (spool_recycle_ring) and
 * its status record into trash/, else the file into trash/. Like
 * queue_remove() without the unlinks on the caller's thread. */
void reaper_remove(struct reaper *r, const char *qid);

#endif
