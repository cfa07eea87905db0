/*
 * lua_policy.c - placeholder until the Lua bridge lands: policy_open()
 * picks the built-in policy.
 */
#include <stdio.h>

#include "conf.h"
#include "log.h"
#include "policy.h"

int
policy_open(struct policy *p, const struct conf *c, struct ev_loop *loop, char *err, size_t errlen)
{
	return policy_builtin(p, c);
}
