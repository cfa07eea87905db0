/*
 * state_redis.c - the state backend on Redis (placeholder until it lands).
 */
#include <stdio.h>

#include "state_text.h"

static struct state *redis_open(const struct state_conf *c, struct ev_loop *loop, char *err, size_t errlen)
{
	snprintf(err, errlen, "state: the redis backend is not built yet");
	return NULL;
}

const struct state_ops state_redis_ops = { .name = "redis", .ttl_expiry = 1, .open = redis_open };
