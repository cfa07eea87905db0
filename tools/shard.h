/*
 * shard.h - ruletest --jobs: journals split into contiguous runs of whole lines, one child process each.
 */
#ifndef MXGATE_SHARD_H
#define MXGATE_SHARD_H

#include <stdio.h>
#include <sys/types.h>

/* Bytes [from, to) of one file, starting at a line's first byte. */
struct shard_piece {
	const char *path;
	off_t       from, to;
	int         shard;
};

/*
 * Cuts the files, taken as one stream in order, into jobs runs of about
 * equal size, each cut moved forward to the next line start. *pieces
 * (malloc'd) lists each shard's parts in order; returns their number, or
 * -1 with errno (a file that cannot be read).
 */
int shard_plan(char *const *paths, int n, int jobs, struct shard_piece **pieces);

/*
 * Runs child(arg, k, stats) in jobs processes forked from this one (the
 * loaded rules come along), each with its stdout and stderr going to its
 * own temporary file. Once all have exited, gather(arg, k, stats) reads
 * what child k wrote to stats, in shard order; then, when keep(arg) says
 * so, each one's stdout and stderr are copied out in shard order (so the
 * output reads as one process's would). 0; 1 when keep() threw the
 * outputs away; -1 when a child failed (its status on stderr).
 */
int shard_run(int jobs, int (*child)(void *arg, int k, FILE *stats),
    void (*gather)(void *arg, int k, FILE *stats), int (*keep)(void *arg), void *arg);

#endif
