/*
 * metrics.c - the shared-memory counters: one slice per process, relaxed
 * atomics, reason keys interned in a fixed table.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "clock.h"
#include "metrics.h"

const double metrics_bucket_le[METRICS_BUCKETS] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

/* The last slot's label: keys that do not fit in the table count here. */
#define OVERFLOW "other"

static struct metrics *M;
static struct metrics_slice *S;     /* this process's slice */

/* Reason keys this process has already found in M->reason: the common
 * case costs a few compares of local memory, not a scan of shared state. */
#define CACHE 32
static struct {
	char key[METRICS_REASON_LEN];
	int  index;
} cache[CACHE];
static int ncache;

int
metrics_new(int nworkers)
{
	int nslots = nworkers + 2;
	size_t len = sizeof(struct metrics) + (size_t)nslots * sizeof(struct metrics_slice);
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return -1;
	M = p;
	M->nslots = nslots;
	M->nworkers = nworkers;
	M->started = clock_wall();
	M->reason_state[0] = 2;                         /* "": no reason */
	strcpy(M->reason[METRICS_REASONS - 1], OVERFLOW);
	M->reason_state[METRICS_REASONS - 1] = 2;
	return 0;
}

void
metrics_slot(int slot)
{
	S = M && slot >= 0 && slot < M->nslots ? &M->slice[slot] : NULL;
	ncache = 0;
}

void
metrics_forget(int slot)
{
	struct metrics_slice *s;

	if (!M || slot < 0 || slot >= M->nslots)
		return;
	s = &M->slice[slot];
	for (int i = 0; i < CONF_MAX_LISTEN; i++)
		__atomic_store_n(&s->sessions_open[i], 0, __ATOMIC_RELAXED);
	/* Queue gauges stay: a dead delivery process must not make the queue
	 * look empty (the oldest message's age keeps growing at each scrape). */
	__atomic_store_n(&s->gauge[MG_GENERATIONS], 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->gauge[MG_GENERATION], 0, __ATOMIC_RELAXED);
}

const struct metrics *
metrics_shared(void)
{
	return M;
}

void
metrics_count(enum metrics_counter c, uint64_t n)
{
	if (S)
		__atomic_fetch_add(&S->counter[c], n, __ATOMIC_RELAXED);
}

void
metrics_set(enum metrics_gauge g, int64_t v)
{
	if (S)
		__atomic_store_n(&S->gauge[g], v, __ATOMIC_RELAXED);
}

void
metrics_gauge_add(enum metrics_gauge g, int64_t delta)
{
	if (S)
		__atomic_fetch_add(&S->gauge[g], delta, __ATOMIC_RELAXED);
}

void
metrics_session(int listener, int open)
{
	if (!S || listener < 0 || listener >= CONF_MAX_LISTEN)
		return;
	if (open)
		__atomic_fetch_add(&S->sessions[listener], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&S->sessions_open[listener], open ? 1 : -1, __ATOMIC_RELAXED);
}

/*
 * The table's index of key, claiming a free slot for a new one. Slots are
 * claimed by compare-and-swap (0 -> 1), written, then published (2), so
 * two processes meeting a new key at once cannot both take it; a slot a
 * dying process left half-written (1) is skipped, never waited for.
 * A rule's own key "other" is the overflow slot: a second slot with that
 * label would be the same series twice on /metrics.
 */
static int
intern(const char *key)
{
	size_t n = strlen(key);
	int i;

	if (n >= METRICS_REASON_LEN || strcmp(key, OVERFLOW) == 0)
		return METRICS_REASONS - 1;
	for (i = 0; i < ncache; i++)
		if (strcmp(cache[i].key, key) == 0)
			return cache[i].index;
	for (i = 1; i < METRICS_REASONS - 1; i++) {
		uint32_t st = __atomic_load_n(&M->reason_state[i], __ATOMIC_ACQUIRE), free_ = 0;
		if (st == 0 && __atomic_compare_exchange_n(&M->reason_state[i], &free_, 1, 0,
		    __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
			memcpy(M->reason[i], key, n + 1);
			__atomic_store_n(&M->reason_state[i], 2, __ATOMIC_RELEASE);
			break;
		}
		/* Someone else is writing this slot: a few spins, then give up on it. */
		for (int spin = 0; spin < 1000 && st != 2; spin++)
			st = __atomic_load_n(&M->reason_state[i], __ATOMIC_ACQUIRE);
		if (st == 2 && strcmp(M->reason[i], key) == 0)
			break;
	}
	if (ncache < CACHE) {
		memcpy(cache[ncache].key, key, n + 1);
		cache[ncache++].index = i;
	}
	return i;
}

void
metrics_reply(enum stage st, int code, const char *reason)
{
	int cls = code / 100 - 2;

	if (!S || st < 0 || st >= STAGE_MAX || cls < 0 || cls >= METRICS_CLASSES)
		return;
	__atomic_fetch_add(&S->replies[st][cls][reason && reason[0] ? intern(reason) : 0], 1,
	    __ATOMIC_RELAXED);
}

void
metrics_observe(enum metrics_hist h, double seconds)
{
	struct metrics_hist_data *d;
	int b = 0;

	if (!S)
		return;
	d = &S->hist[h];
	while (b < METRICS_BUCKETS && seconds > metrics_bucket_le[b])
		b++;
	__atomic_fetch_add(&d->bucket[b], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&d->count, 1, __ATOMIC_RELAXED);
	if (seconds > 0)
		__atomic_fetch_add(&d->sum_ns, (uint64_t)(seconds * 1e9), __ATOMIC_RELAXED);
}

void
metrics_health(const struct metrics *m, double now, struct metrics_health *out)
{
	out->ready = 1;
	out->generation = 0;
	out->uptime = now - m->started;
	for (int i = 0; i < m->nworkers; i++) {
		int64_t g = __atomic_load_n(&m->slice[i].gauge[MG_GENERATION], __ATOMIC_RELAXED);
		if (g <= 0)
			out->ready = 0;
		else if (!out->generation || g < out->generation)
			out->generation = (long)g;
	}
}

void
metrics_loaded(void)
{
	if (S)
		metrics_set(MG_GENERATION, __atomic_load_n(&M->slice[METRICS_MASTER(M)].gauge[MG_GENERATION],
		    __ATOMIC_RELAXED));
}
