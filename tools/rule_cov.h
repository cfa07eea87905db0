/*
 * rule_cov.h - ruletest --coverage: per rule, the sessions that reached it and those it decided.
 */
#ifndef MXGATE_RULE_COV_H
#define MXGATE_RULE_COV_H

#include <stdio.h>

#include "bridge.h"

struct cov_rule {
	char hook[16], name[80], where[160];
	long reached, decided;
	int  disabled;
};

struct rule_cov_table {
	struct cov_rule *r;
	int              n, cap;
};

/* The loaded rules' counts so far (load order), added to t: 0, or -1. */
int  rule_cov_collect(struct rule_cov_table *t, struct policy *pol);
/* Adds src's counts to t rule by rule (shards ran the same rules). */
void rule_cov_merge(struct rule_cov_table *t, const struct rule_cov_table *src);
void rule_cov_print(const struct rule_cov_table *t, long sessions, FILE *out);
void rule_cov_free(struct rule_cov_table *t);

#endif
