/*
 * qstats.c - the queue's gauges for /metrics, once a second: messages by
 * state (held; deferred: every job waiting for a retry; else active) and
 * the oldest arrival. The HTTP process turns that into an age at each
 * scrape, so it grows even while nothing is delivered.
 */
#include "metrics.h"
#include "qstats.h"

static void
tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sched *s = w->data;
	int64_t held = 0, deferred = 0, active = 0, oldest = 0;

	/* waiting is 0 between ticks: counted here, cleared below. */
	for (int i = 0; i < s->nheap; i++)
		s->heap[i]->m->waiting++;
	for (size_t i = 0; s->msgs.b && i <= s->msgs.mask; i++)
		for (struct hnode *n = s->msgs.b[i]; n; n = n->next) {
			struct msg *m = container_of(n, struct msg, h);

			if (m->env.held)
				held++;
			else if (m->njobs > 0 && m->waiting == m->njobs)
				deferred++;
			else
				active++;
			m->waiting = 0;
			if (!oldest || m->env.arrived < oldest)
				oldest = m->env.arrived;
		}
	metrics_set(MG_QUEUE_ACTIVE, active);
	metrics_set(MG_QUEUE_DEFERRED, deferred);
	metrics_set(MG_QUEUE_HELD, held);
	metrics_set(MG_QUEUE_OLDEST, oldest);
}

void
qstats_start(struct sched *s, ev_timer *w)
{
	if (!metrics_shared())
		return;
	ev_timer_init(w, tick, 0, 1);
	w->data = s;
	ev_timer_start(s->loop, w);
}
