/*
 * policy_builtin.c - the policy when no rules directory is configured
 * (rules = false): what every MX must do and nothing more. Inbound, a
 * recipient is accepted for a hosted domain; outbound, for a client in the
 * relay networks. Everything else falls to the engine's fail-closed
 * default. It is also the C-only baseline `make bench` compares Lua with.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "conf.h"
#include "policy.h"
#include "session.h"

static int
b_start(void *self, struct session_info *s)
{
	return 0;
}

static void
b_end(void *self, struct session_info *s)
{
}

static void
deny(struct verdict *v, const char *reason, const char *text)
{
	v->action = V_DENY;
	v->code = 550;
	snprintf(v->enhanced, sizeof v->enhanced, "5.7.1");
	snprintf(v->reason, sizeof v->reason, "%s", reason);
	snprintf(v->text, sizeof v->text, "%s", text);
}

static int
b_decide(void *self, struct session_info *i, enum stage st, struct verdict *v)
{
	const struct conf *c = i->conf;

	if (st != STAGE_RCPT)
		return POLICY_DONE;
	if (i->direction == DIR_OUTBOUND) {
		if (conf_net_match(c->relay_nets, c->nrelay_nets, (const struct sockaddr *)&i->client_sa))
			v->action = V_ACCEPT;
		else
			deny(v, "relay_denied", "Relay Denied");
	} else if (strcasecmp(i->rcpt.addr, c->postmaster) == 0) {
		v->action = V_ACCEPT;           /* our postmaster, RFC 5321 4.5.1 */
	} else if (conf_domain(c, i->rcpt.domain)) {
		v->action = V_ACCEPT;
	} else
		deny(v, "not_hosted", "Your domain is not configured to use this MX host.");
	return POLICY_DONE;
}

static int
b_reload(void *self, const struct conf *c, char *err, size_t errlen)
{
	return 0;
}

static void
b_free(void *self)
{
}

static const struct policy_ops builtin_ops = {
	.name = "builtin", .start = b_start, .end = b_end, .decide = b_decide,
	.reload = b_reload, .free = b_free,
};

int
policy_builtin(struct policy *p, const struct conf *c)
{
	p->ops = &builtin_ops;
	p->self = NULL;
	return 0;
}
