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

#endif
