/*
 * report.c - `mxgate report` (report.h): the portal's rejection table from
 * the structured log.
 *
 * Three steps. Learn the reasons: the stdlib and the rules load as ruletest
 * loads them (policy_open_replay: the same mxgate.lua, sandbox and
 * reason() the server runs, no network), and their reason table is read
 * back, so the report shows the text the server answers with. Fold the log: each
 * event=reject record counts toward its (reason, direction) entry and
 * becomes that entry's example when it is the newest. Print: the portal's
 * rows in its order, then whatever else was rejected.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "bridge.h"
#include "conf.h"
#include "json.h"
#include "replay.h"
#include "report.h"
#include "version.h"

#define REPORT_FIELDS  32          /* key=value pairs read per log line */
#define LOG_LINE_MAX   65536       /* longer is not a line of ours (log.c writes 4 KiB) */

struct reason {                    /* one reason as the portal shows it */
	char *key, *text, *cause;
	char  dir[16];                  /* "inbound", "outbound"; "" when not fixed */
	int   row;                      /* the portal's row; 0: not a portal row */
	int   code;                     /* its default reply code */
};

struct example {                   /* an entry's newest record */
	double t;
	int    code;
	char  *ts, *client, *from, *rcpt, *text, *enhanced, *rule, *stage;
};

struct entry {
	const struct reason *r;         /* NULL: a reason no table names */
	char   key[64];
	char   dir[16];
	long   count;
	struct example last;
};

struct report {
	struct reason *reasons;
	size_t nreasons;
	struct entry *entries;
	size_t nentries, cap;
	double since, until;            /* epoch seconds; 0: open */
	const char *match;
	const char *log;                /* "-" for stdin */
	long total, skipped;
	int  oom;
};

struct kv {
	const char *k, *v;
};

/* why == NULL and code 0: --help (stdout); otherwise a usage error (stderr, 2). */
static int
usage_to(const char *why, int code)
{
	if (why)
		fprintf(stderr, "mxgate report: %s\n", why);
	fprintf(code ? stderr : stdout,
	    "usage: mxgate report [-c CONF] [--since TIME] [--until TIME] [--match TEXT]\n"
	    "                     [--json] [--stdlib DIR] [--rules DIR] [LOGFILE | -]\n"
	    "TIME: 2026-11-28T04:00 (UTC), 2026-11-28, an epoch, or an age: 90s 30m 1h 2d 1w\n");
	return code;
}

static int
usage(const char *why)
{
	return usage_to(why, 2);
}

/* ------------------------------------------------------------------ */
/* time                                                                */

/*
 * "2026-11-28T04:00:05.123Z", "2026-11-28 04:00", "2026-11-28", an epoch
 * ("1764302400"), or an age before now ("30m"). ISO times are UTC, as the
 * log writes them. 0 on success.
 */
static int
parse_time(const char *s, double now, double *out)
{
	struct tm tm;
	char *end;
	double v;
	int n = 0, y, mo, d, h = 0, mi = 0, sec = 0;

	if (!s || !*s)
		return -1;
	if (isdigit((unsigned char)*s)) {
		v = strtod(s, &end);
		if (end != s && !*end && !strchr(s, '-')) {
			*out = v;
			return 0;
		}
		if (end != s && end[0] && !end[1] && !strchr(s, '-')) {
			static const char units[] = "smhdw";
			static const double secs[] = { 1, 60, 3600, 86400, 604800 };
			const char *u = strchr(units, end[0]);
			if (!u)
				return -1;
			*out = now - v * secs[u - units];
			return 0;
		}
	}
	if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3)
		return -1;
	s += n;
	if (*s == 'T' || *s == 't' || *s == ' ') {
		n = 0;
		if (sscanf(s + 1, "%2d:%2d%n", &h, &mi, &n) != 2)
			return -1;
		s += 1 + n;
		if (*s == ':') {
			n = 0;
			if (sscanf(s + 1, "%2d%n", &sec, &n) != 1)
				return -1;
			s += 1 + n;
			if (*s == '.') {
				v = strtod(s, &end);
				s = end;
			} else
				v = 0;
		} else
			v = 0;
	} else
		v = 0;
	if (*s == 'Z' || *s == 'z')
		s++;
	if (*s || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return -1;
	memset(&tm, 0, sizeof tm);
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	*out = (double)timegm(&tm) + v;
	return 0;
}

static void
format_time(double t, char *buf, size_t len)
{
	time_t s = (time_t)t;
	struct tm tm;

	gmtime_r(&s, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ------------------------------------------------------------------ */
/* reasons                                                             */

static char *
field_str(lua_State *L, int t, const char *k)
{
	char *s = NULL;

	if (lua_getfield(L, t, k) == LUA_TSTRING)
		s = strdup(lua_tostring(L, -1));
	lua_pop(L, 1);
	return s;
}

static int
field_int(lua_State *L, int t, const char *k)
{
	int v = 0;

	if (lua_getfield(L, t, k) == LUA_TNUMBER)
		v = (int)lua_tointeger(L, -1);
	lua_pop(L, 1);
	return v;
}

/* One reason of the loaded rules' table (on top of L) into the report. */
static void
add_reason(void *arg, const char *key, lua_State *L)
{
	struct report *rp = arg;
	struct reason *r, *nr;
	const char *dir;

	if (rp->oom || !(nr = realloc(rp->reasons, (rp->nreasons + 1) * sizeof *nr))) {
		rp->oom = 1;
		return;
	}
	rp->reasons = nr;
	r = &rp->reasons[rp->nreasons++];
	memset(r, 0, sizeof *r);
	r->key = strdup(key);
	r->text = field_str(L, -1, "text");
	r->cause = field_str(L, -1, "cause");
	r->row = field_int(L, -1, "row");
	r->code = field_int(L, -1, "code");
	lua_getfield(L, -1, "dir");
	dir = lua_tostring(L, -1);
	if (dir)
		snprintf(r->dir, sizeof r->dir, "%s", !strcmp(dir, "in") ? "inbound" :
		    !strcmp(dir, "out") ? "outbound" : dir);
	lua_pop(L, 1);
}

/* A policy as ruletest opens it: the stdlib and the rules, no network. */
static int
open_rules(struct policy *pol, struct replay_world *w, const char *conf_path, const char *stdlib,
    const char *rules, char *err, size_t errlen)
{
	struct conf c;
	int rc;

	if (conf_load(&c, conf_path ? conf_path : "/dev/null", err, errlen) < 0)
		return -1;
	snprintf(c.stdlib, sizeof c.stdlib, "%s", stdlib);
	snprintf(c.rules, sizeof c.rules, "%s", rules);
	rc = policy_open_replay(pol, &c, replay_world_open, w, err, errlen);
	conf_free(&c);
	return rc;
}

/*
 * The reasons as the server answers with them: stdlib/reasons.lua with the
 * rules' reason() overrides, loaded by the same stdlib code (mxgate.lua)
 * and sandbox as the rules themselves. Rules that do not load leave the
 * stdlib's reasons alone, with a warning.
 */
static int
load_reasons(struct report *rp, const char *conf_path, const char *stdlib, const char *rules_dir)
{
	struct replay_world w;
	struct policy pol;
	char err[1024], empty[] = "/tmp/mxgate-report-XXXXXX";

	memset(&w, 0, sizeof w);
	if (open_rules(&pol, &w, conf_path, stdlib, rules_dir, err, sizeof err) < 0) {
		fprintf(stderr, "mxgate report: %s: the rules do not load (%s); "
		    "showing the reasons without their overrides\n", rules_dir, err);
		if (!mkdtemp(empty)) {
			fprintf(stderr, "mxgate report: %s: %s\n", empty, strerror(errno));
			return -1;
		}
		if (open_rules(&pol, &w, conf_path, stdlib, empty, err, sizeof err) < 0) {
			rmdir(empty);
			fprintf(stderr, "mxgate report: %s\n", err);
			return -1;
		}
		rmdir(empty);
	}
	policy_reasons(&pol, add_reason, rp);
	pol.ops->free(pol.self);
	buf_free(&w.enc);
	if (rp->oom) {
		fprintf(stderr, "mxgate report: out of memory\n");
		return -1;
	}
	return 0;
}

static const struct reason *
find_reason(const struct report *rp, const char *key)
{
	for (size_t i = 0; i < rp->nreasons; i++)
		if (!strcmp(rp->reasons[i].key, key))
			return &rp->reasons[i];
	return NULL;
}

/* ------------------------------------------------------------------ */
/* the log                                                             */

/*
 * Splits a logfmt line in place: key=value, key="quoted \"value\"" (with
 * \\, \" and \xNN escapes, as log.c writes them). The number of pairs, or
 * -1 when the line is not logfmt.
 */
static int
parse_logfmt(char *p, struct kv *kv, int max)
{
	int n = 0;

	for (;;) {
		char *k, *v, *o;
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p || *p == '\n' || *p == '\r')
			return n;
		k = p;
		while (isalnum((unsigned char)*p) || *p == '_')
			p++;
		if (p == k || *p != '=')
			return -1;
		*p++ = '\0';
		v = o = p;
		if (*p == '"') {
			for (p++;; ) {
				if (!*p || *p == '\n')
					return -1;
				if (*p == '"') {
					p++;
					break;
				}
				if (*p == '\\' && p[1] == 'x' && isxdigit((unsigned char)p[2]) &&
				    isxdigit((unsigned char)p[3])) {
					char hex[3] = { p[2], p[3], '\0' };
					*o++ = (char)strtol(hex, NULL, 16);
					p += 4;
				} else if (*p == '\\' && p[1]) {
					*o++ = p[1];
					p += 2;
				} else
					*o++ = *p++;
			}
			if (*p && *p != ' ' && *p != '\n' && *p != '\r')
				return -1;
			if (*p)
				p++;
			*o = '\0';
		} else {
			while (*p && *p != ' ' && *p != '\n' && *p != '\r')
				p++;
			if (*p)
				*p++ = '\0';
		}
		if (n < max) {
			kv[n].k = k;
			kv[n].v = v;
			n++;
		}
	}
}

static const char *
get(const struct kv *kv, int n, const char *k)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(kv[i].k, k))
			return kv[i].v;
	return NULL;
}

static struct entry *
find_entry(struct report *rp, const char *key, const char *dir)
{
	struct entry *e;

	for (size_t i = 0; i < rp->nentries; i++)
		if (!strcmp(rp->entries[i].key, key) && !strcmp(rp->entries[i].dir, dir))
			return &rp->entries[i];
	if (rp->nentries == rp->cap) {
		size_t cap = rp->cap ? rp->cap * 2 : 32;
		struct entry *ne = realloc(rp->entries, cap * sizeof *ne);
		if (!ne)
			return NULL;
		rp->entries = ne;
		rp->cap = cap;
	}
	e = &rp->entries[rp->nentries++];
	memset(e, 0, sizeof *e);
	snprintf(e->key, sizeof e->key, "%s", key);
	snprintf(e->dir, sizeof e->dir, "%s", dir);
	e->r = find_reason(rp, key);
	return e;
}

static void
set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = v ? strdup(v) : NULL;
}

static int
matches(const struct report *rp, const struct kv *kv, int n)
{
	static const char *fields[] = { "client", "from", "rcpt" };

	if (!rp->match)
		return 1;
	for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
		const char *v = get(kv, n, fields[i]);
		if (v && strcasestr(v, rp->match))
			return 1;
	}
	return 0;
}

static void
fold_line(struct report *rp, char *line)
{
	struct kv kv[REPORT_FIELDS];
	int n = parse_logfmt(line, kv, REPORT_FIELDS);
	const char *ts, *ev, *reason, *dir, *code;
	struct entry *e;
	double t;

	if (n < 0 || !(ts = get(kv, n, "ts")) || !(ev = get(kv, n, "event")) ||
	    parse_time(ts, 0, &t) < 0) {
		rp->skipped++;
		return;
	}
	if (strcmp(ev, "reject") != 0 || (rp->since && t < rp->since) || (rp->until && t >= rp->until) ||
	    !matches(rp, kv, n))
		return;
	reason = get(kv, n, "reason");
	dir = get(kv, n, "dir");
	if (!(e = find_entry(rp, reason && *reason ? reason : "unknown", dir ? dir : "")))
		return;
	e->count++;
	rp->total++;
	if (e->count > 1 && t < e->last.t)
		return;
	e->last.t = t;
	code = get(kv, n, "code");
	e->last.code = code ? atoi(code) : 0;
	set_str(&e->last.ts, ts);
	set_str(&e->last.client, get(kv, n, "client"));
	set_str(&e->last.from, get(kv, n, "from"));
	set_str(&e->last.rcpt, get(kv, n, "rcpt"));
	set_str(&e->last.text, get(kv, n, "text"));
	set_str(&e->last.enhanced, get(kv, n, "enhanced"));
	set_str(&e->last.rule, get(kv, n, "rule"));
	set_str(&e->last.stage, get(kv, n, "stage"));
}

static int
fold_log(struct report *rp, FILE *f)
{
	struct buf line = BUF_INIT(LOG_LINE_MAX);
	char empty[1] = "";
	int rc;

	while ((rc = buf_getline(&line, f)) != 0) {
		if (rc < 0)
			rp->skipped++;          /* not a line mxgate writes */
		else
			fold_line(rp, line.p ? line.p : empty);
	}
	buf_free(&line);
	return ferror(f) ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* output                                                              */

static int
dir_rank(const char *dir)
{
	return !strcmp(dir, "inbound") ? 0 : !strcmp(dir, "outbound") ? 1 : 2;
}

/* Sections by direction; the portal's rows first, in its order (the
 * permanent answer before the temporary one of the same row); then the
 * rest, most frequent first. */
static int
cmp_entry(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	int rx = x->r ? x->r->row : 0, ry = y->r ? y->r->row : 0;

	if (dir_rank(x->dir) != dir_rank(y->dir))
		return dir_rank(x->dir) - dir_rank(y->dir);
	if (!rx != !ry)
		return rx ? -1 : 1;
	if (rx != ry)
		return rx - ry;
	if (rx && x->r->code != y->r->code)
		return y->r->code - x->r->code;
	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return strcmp(x->key, y->key);
}

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
entry_text(const struct entry *e)
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
		format_time(rp->since, since, sizeof since);
	if (rp->until)
		format_time(rp->until, until, sizeof until);
	printf("mxgate report: %ld rejection%s in %s", rp->total, rp->total == 1 ? "" : "s",
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
	if (rp->skipped)
		printf("(%ld line%s skipped: not log records)\n", rp->skipped, rp->skipped == 1 ? "" : "s");
	for (size_t i = 0; i < rp->nentries; i++) {
		const struct entry *e = &rp->entries[i];
		const struct example *x = &e->last;
		if (dir_rank(e->dir) != section) {
			section = dir_rank(e->dir);
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
		format_time(t, text, sizeof text);
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
	kv_int(&b, "total", rp->total);
	kv_int(&b, "skipped", rp->skipped);
	jsonw_key(&b, "reasons");
	jsonw_open(&b, '[');
	for (size_t i = 0; i < rp->nentries; i++) {
		const struct entry *e = &rp->entries[i];
		const struct example *x = &e->last;
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

static void
free_report(struct report *rp)
{
	for (size_t i = 0; i < rp->nentries; i++) {
		struct example *x = &rp->entries[i].last;
		free(x->ts);
		free(x->client);
		free(x->from);
		free(x->rcpt);
		free(x->text);
		free(x->enhanced);
		free(x->rule);
		free(x->stage);
	}
	free(rp->entries);
	for (size_t i = 0; i < rp->nreasons; i++) {
		free(rp->reasons[i].key);
		free(rp->reasons[i].text);
		free(rp->reasons[i].cause);
	}
	free(rp->reasons);
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
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct report rp = { 0 };
	const char *conf_path = NULL, *since = NULL, *until = NULL;
	char stdlib[PATH_MAX] = "", rules[PATH_MAX] = "", log[PATH_MAX] = "", base[PATH_MAX - 16];
	int opt, json = 0, rc = 2;
	struct timespec now;
	FILE *f;

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
		case 'h': return usage_to(NULL, 0);
		case 'V': printf("mxgate report %s\n", MXGATE_VERSION); return 0;
		default: return usage(NULL);
		}
	}
	if (argc - optind > 1)
		return usage("one log file at most");
	clock_gettime(CLOCK_REALTIME, &now);
	if (since && parse_time(since, (double)now.tv_sec, &rp.since) < 0)
		return usage("--since: not a time");
	if (until && parse_time(until, (double)now.tv_sec, &rp.until) < 0)
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

	if (load_reasons(&rp, conf_path, stdlib, rules) < 0)
		goto out;
	/* Every portal row has a line, rejected or not. */
	for (size_t i = 0; i < rp.nreasons; i++)
		if (rp.reasons[i].row > 0 && !find_entry(&rp, rp.reasons[i].key, rp.reasons[i].dir))
			goto out;
	if (!strcmp(log, "-"))
		f = stdin;
	else if (!(f = fopen(log, "r"))) {
		fprintf(stderr, "mxgate report: %s: %s\n", log, strerror(errno));
		goto out;
	}
	if (fold_log(&rp, f) < 0) {
		fprintf(stderr, "mxgate report: %s: read error\n", log);
		if (f != stdin)
			fclose(f);
		goto out;
	}
	if (f != stdin)
		fclose(f);
	/* The rows point at reasons[]; sorting entries moves nothing they use. */
	qsort(rp.entries, rp.nentries, sizeof *rp.entries, cmp_entry);
	rc = 0;
	if (json)
		rc = print_json(&rp) < 0 ? 1 : 0;
	else
		print_table(&rp);
out:
	free_report(&rp);
	return rc;
}
