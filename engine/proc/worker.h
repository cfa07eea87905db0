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

/*
 * SIGHUP and the resolver/callout settings (dns, callout): world_net_key()
 * names them, to see whether they changed; world_net_open() builds a new
 * resolver and callout client into w (on w's loop and store);
 * world_net_retire() frees w's pair `after` seconds from now, once the
 * lookups started on it have answered, and clears it from w; then it
 * releases `held` (the conf the pair was built from: the callout client
 * points into it), if not NULL.
 */
const char *world_net_key(const struct conf *c, char *buf, size_t n);
int  world_net_open(struct world *w, const struct conf *c, char *err, size_t errlen);
void world_net_retire(struct world *w, double after, struct conf *held);

/* The store the config names (state = { backend = ... }) as a state_conf. */
void world_state_conf(const struct conf *c, struct state_conf *sc);

#endif
