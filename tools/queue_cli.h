/*
 * queue_cli.h - `mxgate queue`: list, show, counts, flush, hold, release, delete.
 */
#ifndef MXGATE_QUEUE_CLI_H
#define MXGATE_QUEUE_CLI_H

int queue_cli_main(int argc, char **argv);

#endif
