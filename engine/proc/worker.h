/*
 * worker.h - one worker process: a libev loop serving sessions on the
 * listening sockets the master bound.
 */
#ifndef MXGATE_WORKER_H
#define MXGATE_WORKER_H

#include <openssl/ssl.h>

struct conf;
struct connlimit;

/* Runs until SIGTERM has drained every session; returns the exit code. */
int worker_main(int index, struct conf *conf, const int *listen_fds,
    struct connlimit *cl, SSL_CTX *tls);

/*
 * world.c: the worker's world (world.h), opened after fork on its loop:
 * resolver, state store, callout client, and the sweep timer of a store
 * whose records do not expire by themselves. 0, or -1 with why. Rules off
 * (rules = false): an empty world, the built-in policy asks nothing.
 */
struct world;
struct ev_loop;
struct state_conf;
int  world_open(struct world *w, const struct conf *c, struct ev_loop *loop,
    char *err, size_t errlen);
void world_close(struct world *w);

/* The store the config names (state = { backend = ... }) as a state_conf. */
void world_state_conf(const struct conf *c, struct state_conf *sc);

#endif
