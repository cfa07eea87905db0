/*
 * metrics.h - counters every process increments without locks, in memory
 * the master maps (MAP_SHARED | MAP_ANONYMOUS) before it forks; the HTTP
 * process sums the slices for /metrics.
 *
 * One slice per process (worker i: slot i; the delivery process, then the
 * master, after them). A process writes only its own slice, with relaxed
 * atomics: no lock, no cache line shared with another writer on the SMTP
 * path. A restarted worker gets the same slot, so counters never go back;
 * the master zeroes only the dead process's gauges (sessions open,
 * generations alive). Labels are bounded: listener index, stage, code
 * class, and reason keys interned into a fixed table (overflow: "other").
 *
 * Without metrics_new() (no `http` in the config) every call is a no-op.
 */
#ifndef MXGATE_METRICS_H
#define MXGATE_METRICS_H

#include <stdint.h>

#include "conf.h"
#include "vocab.h"

/* Plain counters, each one series (the HTTP side names and labels them). */
enum metrics_counter {
	MC_RULE_ERROR,          /* a rule raised an error (451 4.3.0) ... */
	MC_RULE_INSTRUCTIONS,   /* ... ran past rule_limits.instructions ... */
	MC_RULE_MEMORY,         /* ... or hit a memory limit */
	MC_RELOAD_OK,           /* a process took a SIGHUP's config and rules */
	MC_RELOAD_FAILED,       /* ... or refused them (the master counts its own refusal) */
	MC_JOURNAL_BYTES,       /* session records written */
	MC_DELIVERED,           /* recipients, per attempt */
	MC_DEFERRED,
	MC_BOUNCED,
	MC_MAX
};

/* Gauges: a process sets its own value; the sum over slices is exported. */
enum metrics_gauge {
	MG_GENERATIONS,         /* rule generations alive (workers) */
	MG_QUEUE_ACTIVE,        /* queued messages: being sent or due (delivery) */
	MG_QUEUE_DEFERRED,      /* waiting for a retry */
	MG_QUEUE_HELD,
	MG_QUEUE_OLDEST,        /* arrival time (epoch s) of the oldest queued message, 0: none */
	MG_GENERATION,          /* master: the config generation (1 at start, +1 per reload it
	                           accepts); a worker: the one it has loaded (0: none yet) */
	MG_MAX
};

enum metrics_hist {
	MH_DNS,                 /* one dns() lookup (cache hits included) */
	MH_DNSBL,               /* one dnsbl() answer */
	MH_CALLOUT,             /* a callout or sender verification */
	MH_STATE,               /* a greylist / ratelimit call to the state store */
	MH_SPOOL_COMMIT,        /* end of data to durable (the group commit) */
	MH_MAX
};

#define METRICS_BUCKETS 14     /* upper bounds in metrics_bucket_le[], then +Inf */
#define METRICS_REASONS 128    /* interned reason keys; slot 0 "", the last "other" */
#define METRICS_REASON_LEN 48
#define METRICS_CLASSES 4      /* 2xx 3xx 4xx 5xx */

extern const double metrics_bucket_le[METRICS_BUCKETS];

struct metrics_hist_data {
	uint64_t bucket[METRICS_BUCKETS + 1];   /* not cumulative; the last is +Inf */
	uint64_t count;
	uint64_t sum_ns;
};

struct metrics_slice {
	uint64_t counter[MC_MAX];
	int64_t  gauge[MG_MAX];
	uint64_t sessions[CONF_MAX_LISTEN];     /* started, by listener */
	int64_t  sessions_open[CONF_MAX_LISTEN];
	uint64_t replies[STAGE_MAX][METRICS_CLASSES][METRICS_REASONS];
	struct metrics_hist_data hist[MH_MAX];
} __attribute__((aligned(64)));

struct metrics {
	int      nslots;        /* nworkers + 2 */
	int      nworkers;
	double   started;       /* epoch seconds, set by metrics_new() */
	uint32_t reason_state[METRICS_REASONS];   /* 0 free, 1 being written, 2 ready */
	char     reason[METRICS_REASONS][METRICS_REASON_LEN];
	struct metrics_slice slice[];
};

/* Master, before fork: a slice per worker, then the delivery process's,
 * then its own. 0, or -1 (errno). */
int  metrics_new(int nworkers);
#define METRICS_DELIVERY(m) ((m)->nworkers)
#define METRICS_MASTER(m)   ((m)->nworkers + 1)
/* In a child (and the master): this process writes slot. */
void metrics_slot(int slot);
/* Master: a process died; its gauges go, its counters stay. */
void metrics_forget(int slot);
/* The mapping (NULL: metrics are off). For the HTTP side. */
const struct metrics *metrics_shared(void);

/* What /healthz and /metrics say of the whole server. */
struct metrics_health {
	int    ready;           /* every worker has loaded its rules */
	long   generation;      /* the oldest rule generation a worker serves */
	double uptime;          /* seconds */
};
void metrics_health(const struct metrics *m, double now, struct metrics_health *out);

/* A worker loaded the master's current generation (start or reload). */
void metrics_loaded(void);

void metrics_count(enum metrics_counter c, uint64_t n);
void metrics_set(enum metrics_gauge g, int64_t v);
void metrics_gauge_add(enum metrics_gauge g, int64_t delta);
void metrics_session(int listener, int open);   /* open 1: started, 0: ended */
/* One reply to a client: stage, SMTP code, reason key ("" or NULL: none). */
void metrics_reply(enum stage st, int code, const char *reason);
void metrics_observe(enum metrics_hist h, double seconds);

#endif
