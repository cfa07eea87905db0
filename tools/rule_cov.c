/*
 * rule_cov.c - ruletest --coverage: which rules the replayed sessions reached and decided.
 *
 * The counting is the stdlib's (run_chain, when C.coverage is set): a
 * session counts once per rule however many of its hooks ran that rule.
 * This file gathers the counts, adds shards' counts together and prints
 * them as file:line, name and hook, then the rules no session reached
 * and those that never decided one.
 */
#include <stdlib.h>
#include <string.h>

#include "rule_cov.h"

static void
add(void *arg, const struct rule_cov *rc)
{
	struct rule_cov_table *t = arg;
	struct cov_rule *c;

	if (t->n == t->cap) {
		int cap = t->cap ? t->cap * 2 : 64;
		struct cov_rule *nr = realloc(t->r, (size_t)cap * sizeof *nr);
		if (!nr)
			return;
		t->r = nr;
		t->cap = cap;
	}
	c = &t->r[t->n++];
	snprintf(c->hook, sizeof c->hook, "%s", rc->hook);
	snprintf(c->name, sizeof c->name, "%s", rc->name);
	snprintf(c->where, sizeof c->where, "%s", rc->where);
	c->reached = rc->reached;
	c->decided = rc->decided;
	c->disabled = rc->disabled;
}

int
rule_cov_collect(struct rule_cov_table *t, struct policy *pol)
{
	return policy_coverage(pol, add, t);
}

void
rule_cov_merge(struct rule_cov_table *t, const struct rule_cov_table *src)
{
	if (!t->n) {
		for (int i = 0; i < src->n; i++) {
			const struct cov_rule *s = &src->r[i];
			add(t, &(struct rule_cov){ .hook = s->hook, .name = s->name, .where = s->where,
			    .reached = s->reached, .decided = s->decided, .disabled = s->disabled });
		}
		return;
	}
	for (int i = 0; i < t->n && i < src->n; i++) {
		t->r[i].reached += src->r[i].reached;
		t->r[i].decided += src->r[i].decided;
	}
}

static void
list(const struct rule_cov_table *t, FILE *out, const char *title, int (*pick)(const struct cov_rule *))
{
	int n = 0;

	for (int i = 0; i < t->n; i++)
		n += pick(&t->r[i]);
	fprintf(out, "%s: %d\n", title, n);
	for (int i = 0; i < t->n; i++)
		if (pick(&t->r[i]))
			fprintf(out, "  %-36s %-24s %s\n", t->r[i].where, t->r[i].name, t->r[i].hook);
}

static int
never_reached(const struct cov_rule *r)
{
	return !r->disabled && !r->reached;
}

static int
never_decided(const struct cov_rule *r)
{
	return !r->disabled && r->reached && !r->decided;
}

void
rule_cov_print(const struct rule_cov_table *t, long sessions, FILE *out)
{
	fprintf(out, "coverage: rules in load order; of %ld session%s, how many reached each rule and how many it decided\n",
	    sessions, sessions == 1 ? "" : "s");
	fprintf(out, "  %-36s %-24s %-8s %10s %10s\n", "file:line", "rule", "hook", "reached", "decided");
	for (int i = 0; i < t->n; i++) {
		const struct cov_rule *r = &t->r[i];
		if (r->disabled)
			fprintf(out, "  %-36s %-24s %-8s %10s %10s\n", r->where, r->name, r->hook, "disabled", "-");
		else
			fprintf(out, "  %-36s %-24s %-8s %10ld %10ld\n", r->where, r->name, r->hook, r->reached, r->decided);
	}
	list(t, out, "never reached", never_reached);
	list(t, out, "reached but never decided", never_decided);
}

void
rule_cov_free(struct rule_cov_table *t)
{
	free(t->r);
	memset(t, 0, sizeof *t);
}
