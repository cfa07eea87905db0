/*
 * portal_table.h - the portal's table for a time window, from the log
 * index: rejections counted per (reason, direction), each with its newest
 * record, in the portal's row order, and the delivery events counted per
 * result. `mxgate report` and the portal page both print this one table.
 */
#ifndef MXGATE_PORTAL_TABLE_H
#define MXGATE_PORTAL_TABLE_H

#include <stdint.h>

#include "index.h"

struct portal_reason {             /* one reason as the portal shows it */
	char *key, *text, *cause;
	char  dir[16];                  /* "inbound", "outbound"; "" when not fixed */
	int   row;                      /* the portal's row; 0: not a portal row */
	int   code;                     /* its default reply code */
};

struct portal_reasons {
	struct portal_reason *v;
	size_t n;
};

struct portal_example {            /* an entry's newest record */
	int64_t ms;
	int     code;
	char   *ts, *sid, *client, *from, *rcpt, *text, *enhanced, *rule, *stage;
};

struct portal_entry {
	const struct portal_reason *r;  /* NULL: a reason no table names */
	char     key[64];
	char     dir[16];
	long     count;
	uint64_t newest;                /* its record's number in the index; 0: none */
	struct portal_example last;
};

enum { PT_DELIVERED, PT_DEFERRED, PT_BOUNCED, PT_NDELIVERY };

struct portal_table {
	struct portal_entry *entries;   /* sorted: by direction, portal rows first */
	size_t n, cap;
	long   total;                   /* rejections */
	long   delivery[PT_NDELIVERY];  /* delivery events by result */
	int    oom;
};

/*
 * The reasons as the server answers with them: stdlib/reasons.lua with the
 * rules' reason() overrides, loaded by the same stdlib code and sandbox as
 * the rules (policy_open_replay, no network). Rules that do not load leave
 * the stdlib's reasons: then 1 and why in warn. 0, or -1 with err.
 */
int  portal_reasons_load(struct portal_reasons *rs, const char *conf_path, const char *stdlib,
    const char *rules, char *warn, size_t warnlen, char *err, size_t errlen);
void portal_reasons_free(struct portal_reasons *rs);

/* The table of [since, until) (epoch seconds, 0: open); match, when not
 * NULL, keeps the records whose client, sender or recipient contains it
 * (case-insensitive; those records are read one by one). 0 or -1. */
int  portal_table_build(struct portal_table *t, const struct portal_reasons *rs,
    struct logindex *ix, double since, double until, const char *match);
void portal_table_free(struct portal_table *t);

extern const char *const portal_delivery_names[PT_NDELIVERY];
/* Sections of the table: inbound 0, outbound 1, the rest 2. */
int  portal_dir_rank(const char *dir);

#endif
