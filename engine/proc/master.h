/*
 * master.h - the master process: binds, drops privileges, supervises.
 */
#ifndef MXGATE_MASTER_H
#define MXGATE_MASTER_H

struct conf;

/* Runs the server until SIGTERM; returns the exit code. */
int master_main(struct conf *conf);

#endif
