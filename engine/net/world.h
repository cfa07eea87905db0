/*
 * world.h - what a policy may ask of the world: the worker's loop,
 * resolver, state store and callout client. The worker builds it
 * (engine/proc/world.c) and hands it to policy_open(); `mxgate -t` and
 * ruletest's replay have none of them (all NULL): nothing runs.
 */
#ifndef MXGATE_WORLD_H
#define MXGATE_WORLD_H

#include <stddef.h>

struct ev_loop;
struct dns;
struct state;
struct callout;

struct world {
	struct ev_loop *loop;
	struct dns     *dns;
	struct state   *state;
	struct callout *callout;
};

#endif
