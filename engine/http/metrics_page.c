/*
 * metrics_page.c - /metrics: the shared counters summed over every
 * process's slice, in the Prometheus text format (version 0.0.4).
 */
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "conf.h"
#include "http.h"
#include "metrics.h"
#include "prom.h"

/* Plain counters and gauges: name, label, value, help. One line each. */
static const struct {
	int         counter;        /* enum metrics_counter */
	const char *name, *labels, *help;
} counters[] = {
	{ MC_RULE_ERROR, "mxgate_rule_errors_total", "cause=\"error\"",
	  "Rule runs that ended in an error (451 4.3.0), by cause." },
	{ MC_RULE_INSTRUCTIONS, "mxgate_rule_errors_total", "cause=\"instructions\"", NULL },
	{ MC_RULE_MEMORY, "mxgate_rule_errors_total", "cause=\"memory\"", NULL },
	{ MC_RELOAD_OK, "mxgate_reloads_total", "result=\"ok\"",
	  "Reloads (SIGHUP) by result, one per process that reloads; a config the master refuses counts once." },
	{ MC_RELOAD_FAILED, "mxgate_reloads_total", "result=\"failed\"", NULL },
	{ MC_JOURNAL_BYTES, "mxgate_journal_written_bytes_total", NULL,
	  "Bytes of session records written to the journal." },
	{ MC_DELIVERED, "mxgate_deliveries_total", "result=\"delivered\"",
	  "Delivery attempts by recipient and result." },
	{ MC_DEFERRED, "mxgate_deliveries_total", "result=\"deferred\"", NULL },
	{ MC_BOUNCED, "mxgate_deliveries_total", "result=\"bounced\"", NULL },
}, gauges[] = {
	{ MG_GENERATIONS, "mxgate_rule_generations_alive", NULL,
	  "Rule generations loaded and not yet freed, all workers." },
	{ MG_QUEUE_ACTIVE, "mxgate_queue_messages", "state=\"active\"",
	  "Queued messages by state (from the delivery process)." },
	{ MG_QUEUE_DEFERRED, "mxgate_queue_messages", "state=\"deferred\"", NULL },
	{ MG_QUEUE_HELD, "mxgate_queue_messages", "state=\"held\"", NULL },
};

static const struct {
	const char *name, *help;
} hists[MH_MAX] = {
	[MH_DNS] = { "mxgate_dns_lookup_duration_seconds", "DNS lookups asked by rules (cache hits included)." },
	[MH_DNSBL] = { "mxgate_dnsbl_lookup_duration_seconds", "DNSBL lookups, one per zone asked." },
	[MH_CALLOUT] = { "mxgate_callout_duration_seconds", "Recipient callouts and sender verifications." },
	[MH_STATE] = { "mxgate_state_call_duration_seconds", "Greylist and rate-limit calls to the state store." },
	[MH_SPOOL_COMMIT] = { "mxgate_spool_commit_duration_seconds",
	  "From the end of DATA to the message being durable (the group commit)." },
};

static const char *const classes[METRICS_CLASSES] = { "2xx", "3xx", "4xx", "5xx" };

static uint64_t
sum_counter(const struct metrics *m, int c)
{
	uint64_t v = 0;

	for (int i = 0; i < m->nslots; i++)
		v += __atomic_load_n(&m->slice[i].counter[c], __ATOMIC_RELAXED);
	return v;
}

static int64_t
sum_gauge(const struct metrics *m, int g)
{
	int64_t v = 0;

	for (int i = 0; i < m->nslots; i++)
		v += __atomic_load_n(&m->slice[i].gauge[g], __ATOMIC_RELAXED);
	return v;
}

static void
listener_labels(const struct conf_listener *l, char *out, size_t len)
{
	snprintf(out, len, "direction=\"%s\",listener=\"%s%s%s:%d\"", direction_str(l->direction),
	    strchr(l->address, ':') ? "[" : "", l->address, strchr(l->address, ':') ? "]" : "", l->port);
}

static void
sessions(const struct metrics *m, const struct conf *c, struct buf *out)
{
	char labels[160];

	metric_head(out, "mxgate_sessions_total", "counter", "SMTP sessions started, by listener.");
	for (int l = 0; l < c->nlisten; l++) {
		uint64_t v = 0;
		for (int i = 0; i < m->nslots; i++)
			v += __atomic_load_n(&m->slice[i].sessions[l], __ATOMIC_RELAXED);
		listener_labels(&c->listen[l], labels, sizeof labels);
		buf_printf(out, "mxgate_sessions_total{%s} %llu\n", labels, (unsigned long long)v);
	}
	metric_head(out, "mxgate_sessions_open", "gauge", "SMTP sessions open now, by listener.");
	for (int l = 0; l < c->nlisten; l++) {
		int64_t v = 0;
		for (int i = 0; i < m->nslots; i++)
			v += __atomic_load_n(&m->slice[i].sessions_open[l], __ATOMIC_RELAXED);
		listener_labels(&c->listen[l], labels, sizeof labels);
		buf_printf(out, "mxgate_sessions_open{%s} %lld\n", labels, (long long)(v > 0 ? v : 0));
	}
}

/*
 * canon[r]: the first ready slot holding slot r's key, or -1 while r is
 * not ready. One key can hold two slots (intern() gives up on a slot
 * another process is still writing, then that process writes the same
 * key), and Prometheus refuses a scrape with one series twice. The states
 * are read once here, so the whole page agrees on which slots count.
 */
static void
canonical_slots(const struct metrics *m, int canon[METRICS_REASONS])
{
	for (int r = 0; r < METRICS_REASONS; r++) {
		canon[r] = -1;
		if (__atomic_load_n(&m->reason_state[r], __ATOMIC_ACQUIRE) != 2)
			continue;
		canon[r] = r;
		for (int f = 0; f < r; f++)
			if (canon[f] == f && strcmp(m->reason[f], m->reason[r]) == 0) {
				canon[r] = f;
				break;
			}
	}
}

/* Only the series seen so far: stage x class x reason is sparse. */
static void
replies(const struct metrics *m, struct buf *out)
{
	int canon[METRICS_REASONS];

	canonical_slots(m, canon);
	metric_head(out, "mxgate_replies_total", "counter",
	    "Replies sent to SMTP clients by stage, code class and reason key (\"\" when no rule gave one).");
	for (int st = 0; st < STAGE_MAX; st++)
		for (int cl = 0; cl < METRICS_CLASSES; cl++) {
			uint64_t v[METRICS_REASONS] = { 0 };
			for (int r = 0; r < METRICS_REASONS; r++)
				if (canon[r] >= 0)
					for (int i = 0; i < m->nslots; i++)
						v[canon[r]] += __atomic_load_n(&m->slice[i].replies[st][cl][r], __ATOMIC_RELAXED);
			for (int r = 0; r < METRICS_REASONS; r++) {
				if (!v[r])
					continue;
				buf_printf(out, "mxgate_replies_total{stage=\"%s\",class=\"%s\",reason=\"",
				    stage_name(st), classes[cl]);
				label_escape(out, m->reason[r]);
				buf_printf(out, "\"} %llu\n", (unsigned long long)v[r]);
			}
		}
}

static void
histogram(const struct metrics *m, int h, struct buf *out)
{
	uint64_t cum = 0, sum_ns = 0;

	metric_head(out, hists[h].name, "histogram", hists[h].help);
	for (int b = 0; b <= METRICS_BUCKETS; b++) {
		for (int i = 0; i < m->nslots; i++)
			cum += __atomic_load_n(&m->slice[i].hist[h].bucket[b], __ATOMIC_RELAXED);
		if (b < METRICS_BUCKETS)
			buf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", hists[h].name, metrics_bucket_le[b],
			    (unsigned long long)cum);
		else
			buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", hists[h].name, (unsigned long long)cum);
	}
	for (int i = 0; i < m->nslots; i++)
		sum_ns += __atomic_load_n(&m->slice[i].hist[h].sum_ns, __ATOMIC_RELAXED);
	/* _count is the +Inf bucket: read once, the two cannot disagree. */
	buf_printf(out, "%s_sum %.9f\n%s_count %llu\n", hists[h].name, (double)sum_ns / 1e9, hists[h].name,
	    (unsigned long long)cum);
}

void
metrics_format(const struct metrics *m, const struct conf *c, double now, struct buf *out)
{
	const char *last = "";
	int64_t oldest = __atomic_load_n(&m->slice[METRICS_DELIVERY(m)].gauge[MG_QUEUE_OLDEST], __ATOMIC_RELAXED);
	struct metrics_health hl;

	sessions(m, c, out);
	replies(m, out);
	for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
		if (strcmp(last, counters[i].name) != 0)
			metric_head(out, counters[i].name, "counter", counters[i].help);
		last = counters[i].name;
		metric_line(out, counters[i].name, counters[i].labels, (double)sum_counter(m, counters[i].counter));
	}
	for (size_t i = 0; i < sizeof gauges / sizeof gauges[0]; i++) {
		if (strcmp(last, gauges[i].name) != 0)
			metric_head(out, gauges[i].name, "gauge", gauges[i].help);
		last = gauges[i].name;
		metric_line(out, gauges[i].name, gauges[i].labels, (double)sum_gauge(m, gauges[i].counter));
	}
	metric_head(out, "mxgate_queue_oldest_message_age_seconds", "gauge",
	    "Age of the oldest queued message (0: the queue is empty), computed at each scrape.");
	metric_line(out, "mxgate_queue_oldest_message_age_seconds", NULL, oldest > 0 && now > oldest ? now - oldest : 0);
	for (int h = 0; h < MH_MAX; h++)
		histogram(m, h, out);
	metrics_health(m, now, &hl);
	metric_head(out, "mxgate_ready", "gauge", "1 when every worker has loaded its rules.");
	metric_line(out, "mxgate_ready", NULL, hl.ready);
	metric_head(out, "mxgate_rule_generation", "gauge",
	    "The rule generation the workers serve (1 at start, +1 per reload that took).");
	metric_line(out, "mxgate_rule_generation", NULL, hl.generation);
	metric_head(out, "mxgate_start_time_seconds", "gauge", "When the server started (Unix time).");
	metric_line(out, "mxgate_start_time_seconds", NULL, m->started);
}

int
page_metrics(struct http_req *req, struct buf *out)
{
	const struct metrics *m = metrics_shared();

	req->content_type = "text/plain; version=0.0.4; charset=utf-8";
	if (!m) {
		buf_adds(out, "# metrics are off\n");
		return 503;
	}
	metrics_format(m, req->conf, clock_wall(), out);
	return 200;
}
