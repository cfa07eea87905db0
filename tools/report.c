/*
 * report.c - `mxgate report` (report.h): the portal's rejection table from
 * the structured log, printed for a terminal or as JSON.
 *
 * The table is the portal page's (engine/http/portal_table.c): the reasons
 * as the rules define them (policy_open_replay, as ruletest loads them),
 * counted through the log index (engine/http/index.c). The report indexes
 * the log into a temporary index (or into --index DIR, kept and brought up
 * to date from its checkpoint the next time), so both show the same numbers
 * by the same code.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "index.h"
#include "json.h"
#include "portal_table.h"
#include "report.h"
#include "timefmt.h"
#include "version.h"

struct report {
	struct portal_reasons reasons;
	struct portal_table t;
	double since, until;            /* epoch seconds; 0: open */
	const char *match;
	const char *log;                /* "-" for stdin */
	long skipped;
};

/* why == NULL and code 0: --help (stdout); otherwise a usage error (stderr, 2). */
static int
usage_to(const char *why, int code)
{
	if (why)
		fprintf(stderr, "mxgate report: %s\n", why);
	fprintf(code ? stderr : stdout,
	    "usage: mxgate report [-c CONF] [--since TIME] [--until TIME] [--match TEXT]\n"
	    "                     [--json] [--stdlib DIR] [--rules DIR] [--index DIR] [LOGFILE | -]\n"
	    "TIME: 2026-11-28T04:00 (UTC), 2026-11-28, an epoch, or an age: 90s 30m 1h 2d 1w\n");
	return code;
}

static int
usage(const char *why)
{
	return usage_to(why, 2);
}

/* ------------------------------------------------------------------ */
/* output                                                              */

/* Client-supplied text (addresses, replies) never drives the terminal. */
static void
put_text(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			printf("\\x%02x", *p);
		else
			putchar(*p);
	}
}

static const char *
entry_text(const struct portal_entry *e)
{
	return e->r && e->r->text ? e->r->text : e->key;
}

static const char *
dir_title(const char *dir)
{
	return !strcmp(dir, "inbound") ? "Inbound" : !strcmp(dir, "outbound") ? "Outbound" : "Unknown";
}

static void
print_table(const struct report *rp)
{
	int section = -1;
	char since[32] = "", until[32] = "";

	if (rp->since)
		time_format(rp->since, since, sizeof since);
	if (rp->until)
		time_format(rp->until, until, sizeof until);
	printf("mxgate report: %ld rejection%s in %s", rp->t.total, rp->t.total == 1 ? "" : "s",
	    strcmp(rp->log, "-") ? rp->log : "standard input");
	if (*since)
		printf(" since %s", since);
	if (*until)
		printf(" until %s", until);
	if (rp->match) {
		printf(" matching \"");
		put_text(rp->match);
		printf("\"");
	}
	printf("\n");
	printf("delivery: %ld delivered, %ld deferred, %ld bounced\n", rp->t.delivery[PT_DELIVERED],
	    rp->t.delivery[PT_DEFERRED], rp->t.delivery[PT_BOUNCED]);
	if (rp->skipped)
		printf("(%ld line%s skipped: not log records)\n", rp->skipped, rp->skipped == 1 ? "" : "s");
	for (size_t i = 0; i < rp->t.n; i++) {
		const struct portal_entry *e = &rp->t.entries[i];
		const struct portal_example *x = &e->last;
		if (portal_dir_rank(e->dir) != section) {
			section = portal_dir_rank(e->dir);
			printf("\n%s Rejections\nMessage Direction | Rejection Reason | Cause | Count | Most recent |\n",
			    dir_title(e->dir));
		}
		printf("%s | ", dir_title(e->dir));
		put_text(entry_text(e));
		printf(" | ");
		put_text(e->r && e->r->cause ? e->r->cause : "");
		printf(" | %ld | ", e->count);
		if (e->count) {
			put_text(x->ts ? x->ts : "");
			if (x->client) {
				printf(" client=");
				put_text(x->client);
			}
			if (x->from) {
				printf(" from=<");
				put_text(x->from);
				printf(">");
			}
			if (x->rcpt) {
				printf(" rcpt=<");
				put_text(x->rcpt);
				printf(">");
			}
			printf(" reply=\"%d%s", x->code, x->enhanced && *x->enhanced ? " " : "");
			put_text(x->enhanced ? x->enhanced : "");
			printf(" ");
			put_text(x->text ? x->text : "");
			printf("\" ");
		}
		printf("|\n");
	}
}

static void
kv_time(struct buf *b, const char *k, double t)
{
	char text[32];

	jsonw_key(b, k);
	if (t) {
		time_format(t, text, sizeof text);
		jsonw_strz(b, text);
	} else
		jsonw_null(b);
}

static void
kv_str(struct buf *b, const char *k, const char *v)
{
	jsonw_key(b, k);
	jsonw_strz(b, v);                  /* NULL: null */
}

static void
kv_int(struct buf *b, const char *k, long v)
{
	jsonw_key(b, k);
	jsonw_int(b, v);
}

/* The report as one JSON object, one reason a line. */
static int
print_json(const struct report *rp)
{
	struct buf b = BUF_INIT(0);

	jsonw_open(&b, '{');
	kv_str(&b, "log", rp->log);
	kv_time(&b, "since", rp->since);
	kv_time(&b, "until", rp->until);
	kv_str(&b, "match", rp->match);
	kv_int(&b, "total", rp->t.total);
	kv_int(&b, "skipped", rp->skipped);
	jsonw_key(&b, "delivery");
	jsonw_open(&b, '{');
	for (int i = 0; i < PT_NDELIVERY; i++)
		kv_int(&b, portal_delivery_names[i], rp->t.delivery[i]);
	jsonw_close(&b, '}');
	jsonw_key(&b, "reasons");
	jsonw_open(&b, '[');
	for (size_t i = 0; i < rp->t.n; i++) {
		const struct portal_entry *e = &rp->t.entries[i];
		const struct portal_example *x = &e->last;
		if (i)
			buf_addc(&b, ',');
		buf_adds(&b, "\n  ");
		jsonw_open(&b, '{');
		kv_str(&b, "reason", e->key);
		jsonw_key(&b, "row");
		if (e->r && e->r->row)
			jsonw_int(&b, e->r->row);
		else
			jsonw_null(&b);
		kv_str(&b, "direction", e->dir);
		kv_str(&b, "text", entry_text(e));
		kv_str(&b, "cause", e->r ? e->r->cause : NULL);
		kv_int(&b, "count", e->count);
		jsonw_key(&b, "last");
		if (!e->count)
			jsonw_null(&b);
		else {
			jsonw_open(&b, '{');
			kv_str(&b, "time", x->ts);
			kv_str(&b, "client", x->client);
			kv_str(&b, "sender", x->from);
			kv_str(&b, "recipient", x->rcpt);
			kv_str(&b, "stage", x->stage);
			kv_int(&b, "code", x->code);
			kv_str(&b, "enhanced", x->enhanced);
			kv_str(&b, "reply", x->text);
			kv_str(&b, "rule", x->rule);
			jsonw_close(&b, '}');
		}
		jsonw_close(&b, '}');
	}
	buf_adds(&b, "\n]}\n");
	if (b.err) {
		buf_free(&b);
		fprintf(stderr, "mxgate report: out of memory\n");
		return -1;
	}
	fwrite(b.p, 1, b.len, stdout);
	buf_free(&b);
	return 0;
}

/* ------------------------------------------------------------------ */

/* Where stdlib/ and rules.d/ are without a config: here, when this is a
 * checkout, else next to the binary (bin/..). */
static void
default_base(char *dir, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n;

	if (access("stdlib/reasons.lua", R_OK) == 0) {
		snprintf(dir, len, ".");
		return;
	}
	n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0) {
		snprintf(dir, len, ".");
		return;
	}
	exe[n] = '\0';
	snprintf(dir, len, "%s/..", dirname(exe));
}

/* Standard input into a file, for the index to read. */
static int
copy_stdin(const char *path)
{
	char b[65536];
	size_t n;
	FILE *f = fopen(path, "w");

	if (!f) {
		fprintf(stderr, "mxgate report: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while ((n = fread(b, 1, sizeof b, stdin)) > 0)
		if (fwrite(b, 1, n, f) != n)
			break;
	if (ferror(stdin) || fclose(f) != 0) {
		fprintf(stderr, "mxgate report: standard input: read error\n");
		return -1;
	}
	return 0;
}

/* The temporary directory: its index and its copy of standard input. */
static void
remove_tmp(const char *tmp)
{
	static const char *const files[] = { "index/data.mdb", "index/lock.mdb", "index", "stdin.log" };
	char p[PATH_MAX];

	for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
		snprintf(p, sizeof p, "%s/%s", tmp, files[i]);
		if (unlink(p) < 0 && errno == EISDIR)
			rmdir(p);
		else if (errno == EPERM)
			rmdir(p);
	}
	rmdir(tmp);
}

int
report_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "since", required_argument, NULL, 's' },
		{ "until", required_argument, NULL, 'u' },
		{ "match", required_argument, NULL, 'm' },
		{ "json", no_argument, NULL, 'j' },
		{ "stdlib", required_argument, NULL, 'S' },
		{ "rules", required_argument, NULL, 'R' },
		{ "index", required_argument, NULL, 'I' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct report rp = { 0 };
	const char *conf_path = NULL, *since = NULL, *until = NULL;
	char stdlib[PATH_MAX] = "", rules[PATH_MAX] = "", log[PATH_MAX] = "", base[PATH_MAX - 16];
	char index_dir[PATH_MAX] = "", tmp[] = "/tmp/mxgate-report-XXXXXX", warn[1200], err[1200];
	int opt, json = 0, rc = 2, w, flags = 0;
	size_t max_size = 0;            /* the index's bound: the server's with -c, else the default */
	struct logindex *ix = NULL;
	struct index_stats st;
	struct timespec now;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': conf_path = optarg; break;
		case 's': since = optarg; break;
		case 'u': until = optarg; break;
		case 'm': rp.match = optarg; break;
		case 'j': json = 1; break;
		case 'S': snprintf(stdlib, sizeof stdlib, "%s", optarg); break;
		case 'R': snprintf(rules, sizeof rules, "%s", optarg); break;
		case 'I': snprintf(index_dir, sizeof index_dir, "%s", optarg); break;
		case 'h': return usage_to(NULL, 0);
		case 'V': printf("mxgate report %s\n", MXGATE_VERSION); return 0;
		default: return usage(NULL);
		}
	}
	if (argc - optind > 1)
		return usage("one log file at most");
	clock_gettime(CLOCK_REALTIME, &now);
	if (since && time_parse(since, (double)now.tv_sec, &rp.since) < 0)
		return usage("--since: not a time");
	if (until && time_parse(until, (double)now.tv_sec, &rp.until) < 0)
		return usage("--until: not a time");
	if (conf_path) {
		struct conf c;
		char err[1024];
		if (conf_load(&c, conf_path, err, sizeof err) < 0) {
			fprintf(stderr, "mxgate report: %s\n", err);
			return 2;
		}
		if (!*stdlib)
			snprintf(stdlib, sizeof stdlib, "%s", c.stdlib);
		if (!*rules)
			snprintf(rules, sizeof rules, "%s", c.rules);
		snprintf(log, sizeof log, "%s", c.log_file);
		max_size = c.http.index_max_size;
		/* The server's own index, kept current by its HTTP process: the
		 * numbers of its page, without reading the log again. */
		if (optind == argc && !*index_dir) {
			char data[PATH_MAX + 16];
			snprintf(index_dir, sizeof index_dir, "%.2000s/index", c.state_dir);
			snprintf(data, sizeof data, "%s/data.mdb", index_dir);
			if (access(data, R_OK | W_OK) < 0 || access(index_dir, W_OK) < 0)
				index_dir[0] = '\0';
		}
		conf_free(&c);
	} else {
		default_base(base, sizeof base);
		if (!*stdlib)
			snprintf(stdlib, sizeof stdlib, "%s/stdlib", base);
		if (!*rules)
			snprintf(rules, sizeof rules, "%s/rules.d", base);
	}
	if (optind < argc)
		snprintf(log, sizeof log, "%s", argv[optind]);
	if (!*log)
		snprintf(log, sizeof log, "-");
	rp.log = log;

	if (!strcmp(log, "-") || !*index_dir) {
		if (!mkdtemp(tmp)) {
			fprintf(stderr, "mxgate report: %s: %s\n", tmp, strerror(errno));
			return 2;
		}
		if (!*index_dir) {
			snprintf(index_dir, sizeof index_dir, "%s/index", tmp);
			flags = INDEX_COUNTS_ONLY;  /* thrown away after this report */
		}
	}
	if (!strcmp(log, "-")) {
		snprintf(log, sizeof log, "%s/stdin.log", tmp);
		if (copy_stdin(log) < 0)
			goto out;
	} else if (access(log, R_OK) < 0) {
		fprintf(stderr, "mxgate report: %s: %s\n", log, strerror(errno));
		goto out;
	}
	if ((w = portal_reasons_load(&rp.reasons, conf_path, stdlib, rules, warn, sizeof warn,
	    err, sizeof err)) < 0) {
		fprintf(stderr, "mxgate report: %s\n", err);
		goto out;
	}
	if (w)
		fprintf(stderr, "mxgate report: %s\n", warn);
	if (index_open(&ix, index_dir, log, NULL, flags, max_size, err, sizeof err) < 0 ||
	    index_update(ix, 0, err, sizeof err) < 0) {
		fprintf(stderr, "mxgate report: %s\n", err);
		goto out;
	}
	index_stats(ix, &st);
	rp.skipped = (long)st.skipped;
	if (portal_table_build(&rp.t, &rp.reasons, ix, rp.since, rp.until, rp.match) < 0) {
		fprintf(stderr, "mxgate report: %s: cannot read the index\n", index_dir);
		goto out;
	}
	rc = 0;
	if (json)
		rc = print_json(&rp) < 0 ? 1 : 0;
	else
		print_table(&rp);
out:
	index_close(ix);
	portal_table_free(&rp.t);
	portal_reasons_free(&rp.reasons);
	if (strcmp(tmp + strlen(tmp) - 6, "XXXXXX"))
		remove_tmp(tmp);
	return rc;
}
