/*
 * master.h - the master process: binds, drops privileges, supervises.
 */
#ifndef MXGATE_MASTER_H
#define MXGATE_MASTER_H

struct conf;

/* Runs the server until SIGTERM; returns the exit code. */
int master_main(struct conf *conf);
/* Started as root: become conf->user now (operators' commands that open
 * the user's files, e.g. `mxgate state`). 0 or -1 with why in err. */
int master_run_as(const struct conf *conf, char *err, size_t errlen);

#endif
