/*
 * ruletest.c - dry-run a ruleset against recorded sessions (Exim's -bh,
 * taken further): `bin/ruletest [-c CONF] [-r RULES] [--diff] JOURNAL...`.
 *
 * Each recorded session's commands go again through the server's own
 * protocol core (engine/smtp/smtp_proto.c: the same states, checks and
 * reply texts), driven here by recorded lines instead of sockets, and the
 * rules' hooks run in a generation of the NEW rules whose world primitives
 * answer from the record (lua/replay.c). Each reply is compared with the
 * one recorded. Nothing is sent, looked up or written (unless --live).
 *
 * Journals replay in time order (each session's recorded start), so that
 * the simulated state store (greylist(), ratelimit(): the live primitives
 * on an in-memory store, starting empty or from --state DIR) sees the
 * sessions as the server did; a first pass over every journal notes each
 * line's time and indexes the answers sessions may lend each other
 * (tools/borrow.c). Every answer says where it came from, and each session
 * is counted by the weakest source it used.
 *
 * Where the new rules lead the session somewhere the record cannot follow
 * (a DATA that now gets 354 although no message was recorded, a STARTTLS
 * handshake that never happened) the session is marked diverged and its
 * remaining commands are not guessed at.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ev.h>

#include "borrow.h"
#include "bridge.h"
#include "buf.h"
#include "callout.h"
#include "conf.h"
#include "dns.h"
#include "keyset.h"
#include "log.h"
#include "policy.h"
#include "record.h"
#include "replay.h"
#include "reply.h"
#include "rule_cov.h"
#include "ruletest.h"
#include "shard.h"
#include "strcopy.h"
#include "version.h"
#include "session.h"
#include "smtp_parse.h"
#include "smtp_proto.h"
#include "state.h"
#include "worker.h"
#include "world.h"

#define MAX_REPLIES 16          /* per step, recorded or new */
#define DEFAULT_TLS_VERSION "TLSv1.3"
#define DEFAULT_TLS_CIPHER  "TLS_AES_256_GCM_SHA384"
#define CASE_SIZE 1000          /* a case's message size without `size` */
#define CASE_MAX  (4 << 20)     /* a .session file larger than this is refused */
#define JOURNAL_LINE_MAX (16 << 20) /* the largest journal.max_record the config takes */
#define AUTO_JOBS_BYTES  (64 << 20) /* --jobs unset: journals this big are sharded */
#define MAX_JOBS         64

/* ---------------- the run ---------------- */

enum mode { M_TRACE, M_QUIET, M_DIFF };

struct count {
	enum stage st;
	char       action[8];
	char       reason[80];
	char       key[96];          /* "rcpt deny xbl", for the summary */
	long       recorded, now;
};

struct rt {
	enum mode       mode;
	int             tracing;        /* rules' trace on (C.trace set) */
	int             interactive;
	struct conf    *conf;
	struct conf     sconf;          /* per session: the record's hostname */
	struct policy   pol;
	struct replay_world world;
	struct buf       trace;          /* the current session, as an operator reads it */
	struct buf       diff;           /* the current session's changed steps */
	uint64_t        next_id;
	unsigned        next_qid;
	/* the simulation, lent answers, --live */
	struct world    sim;            /* state: the memory store; loop, dns, callout with --live */
	struct borrow  *borrow;
	int             sess;           /* a journal's session is replaying (0: a case or none) */
	/* totals */
	long            sessions, same, changed, unanswered, diverged, truncated, bad_lines;
	long            same_by[SRC_N], changed_by[SRC_N];   /* by the weakest source used */
	long            cases, passed, failed;
	int             journals;
	struct count   *counts;
	int             ncounts, countcap;
	/* The journal part being read (--jobs: from a byte offset): its lines
	 * are numbered from line_base, counted only when a message needs it. */
	const char     *part_path;
	off_t           part_from;
	long            line_base;          /* -1: not counted yet */
	struct shard_piece *pieces;         /* --jobs: the plan */
	int             npieces;
	struct rule_cov_table cov;          /* --jobs: the shards' coverage, added up */
	/* --jobs: what each shard met, for the parent to see whether a later
	 * shard needed an earlier one (shard_keep). Hashes (keyset.h). */
	int             sharded;            /* this process is a shard: keep the sets */
	int             shard;              /* its number (0: the first) */
	struct keyset   touched;            /* state records any call changed */
	struct keyset   sim_read;           /* ... those of sessions that used a simulated answer */
	struct keyset   asked;              /* questions left unanswered */
	struct keyset   lendable;           /* questions the records answered */
	uint64_t       *sess_keys;          /* the records this session touched */
	size_t          nsess_keys, sess_keys_cap;
	long            leaned;             /* the parent: answers a later shard took without the earlier ones */
};

struct step;
struct seg;

/* One session being replayed. The protocol (its info) first: the policy's
 * resume finds us. */
struct rs {
	struct smtp_proto   p;
	struct rt          *rt;
	struct record      *rec;
	struct step        *step;           /* the step replaying: replies go here */
	struct seg         *seg;            /* ... and what the record says of it */
	int                 decided;        /* the step's command asked its hook */
	enum action         cmd_action;     /* ... and got this */
	char                cmd_where[160]; /* ... from this rule */
	int                 diverged;
	int                 changed;
	int                 failed;         /* case: an expectation not met */
	int                 unanswered;
	int                 got;            /* a pending verdict arrived */
	struct verdict      pending;
	long long           case_size;
	const char         *why_diverged;
	char                route[300];     /* the step's RCPT: the new route ("" refused) */
	const char         *what;           /* the step replaying: "> RCPT TO:<...>" */
};

/* A reply of the replay, beside the recorded one. */
struct nreply {
	int   code;
	char  text[600];
	int   borrow;      /* engine text that depends on what the record knows better */
	char  where[160];  /* the rule behind it */
};

/* The events of one step: a command (or the connection) up to the next. */
struct seg {
	int          from, to;
	struct rev  *cmd;
	struct rev  *rec[MAX_REPLIES];  /* recorded replies, or a case's expectations */
	int          nrec;
	struct rev  *data_hook, *tls, *size;
	struct rev  *rcpt;              /* the RCPT's recorded verdict */
};

/* ---------------- verdict counts ---------------- */

static void
count_n(struct rt *rt, enum stage st, const char *action, const char *reason, int recorded, long n)
{
	struct count *c;

	/* Few distinct keys, met over and over: a plain scan, no formatting. */
	for (int i = 0; i < rt->ncounts; i++) {
		c = &rt->counts[i];
		if (c->st == st && c->action[0] == action[0] && !strcmp(c->action, action) &&
		    c->reason[0] == reason[0] && !strcmp(c->reason, reason)) {
			if (recorded)
				c->recorded += n;
			else
				c->now += n;
			return;
		}
	}
	if (rt->ncounts == rt->countcap) {
		int cap = rt->countcap ? rt->countcap * 2 : 32;
		struct count *nc = realloc(rt->counts, (size_t)cap * sizeof *nc);
		if (!nc)
			return;
		rt->counts = nc;
		rt->countcap = cap;
	}
	c = &rt->counts[rt->ncounts];
	memset(c, 0, sizeof *c);
	c->st = st;
	snprintf(c->action, sizeof c->action, "%s", action);
	snprintf(c->reason, sizeof c->reason, "%s", reason);
	snprintf(c->key, sizeof c->key, "%s %s%s%s", stage_name(st), action, *reason ? " " : "", reason);
	if (recorded)
		rt->counts[rt->ncounts++].recorded = n;
	else
		rt->counts[rt->ncounts++].now = n;
}

static void
count(struct rt *rt, enum stage st, const char *action, const char *reason, int recorded)
{
	count_n(rt, st, action, reason, recorded, 1);
}

/* A verdict as the summary counts it: what the engine made of it. */
static void
count_verdict(struct rt *rt, enum stage st, const struct verdict *v, int recorded)
{
	struct reply_words w;

	if (v->action == V_ACCEPT)
		count(rt, st, "accept", v->reason, recorded);
	else if (v->action != V_NONE || st == STAGE_RCPT) {
		enum action a = reply_for_verdict(st, v, &w);
		count(rt, st, action_name(a), w.reason, recorded);
	}
}

static enum action
action_of(const char *a)
{
	static const char *n[] = { "none", "accept", "deny", "defer", "drop" };

	for (int i = 0; i < 5; i++)
		if (!strcmp(a, n[i]))
			return (enum action)i;
	return V_NONE;
}

/* A recorded verdict event, counted as count_verdict() counts a new one. */
static void
count_recorded(struct rt *rt, const struct rev *e)
{
	enum action a = action_of(e->a);
	const char *reason = e->b ? e->b : "";

	if (a == V_ACCEPT)
		count(rt, e->stage, "accept", reason, 1);
	else if (a == V_NONE && e->stage == STAGE_RCPT)
		count(rt, e->stage, "deny", *reason ? reason : "relay_denied", 1);
	else if (a != V_NONE)
		count(rt, e->stage, action_name(a), *reason ? reason : action_name(a), 1);
}

/* ---------------- the replay world's callbacks ---------------- */

/* A session counted by the weakest source it used, as the summary says it. */
static const char *const src_using[SRC_N] = {
	[SRC_RECORDED] = "recorded answers only", [SRC_BORROWED] = "answers borrowed from other sessions",
	[SRC_SIMULATED] = "simulated state", [SRC_LIVE] = "live answers", [SRC_UNANSWERED] = "-",
};

static void
on_trace(void *arg, const char *line)
{
	struct rt *rt = arg;

	buf_printf(&rt->trace, "      %s\n", line);
}

static struct rs *current;     /* the session replaying: one at a time */

/* name(args) as a hash: args in replay.h's canonical form, as the record's and the question's are. */
static uint64_t
question_hash(const char *name, const char *args)
{
	return keyset_hash(keyset_hash(KEYSET_SEED, name, strlen(name) + 1), args, strlen(args));
}

/* The simulated store read or changed a record (state_mem_watch). */
static void
on_touched(void *arg, const char *key, size_t n, int write)
{
	struct rt *rt = arg;
	uint64_t h = keyset_hash(KEYSET_SEED, key, n);

	if (write)
		keyset_add(&rt->touched, h);
	if (rt->shard > 0 && array_reserve(&rt->sess_keys, &rt->sess_keys_cap, rt->nsess_keys + 1,
	    sizeof *rt->sess_keys) == 0)
		rt->sess_keys[rt->nsess_keys++] = h;
}

static void
on_unanswered(void *arg, const char *name, const char *args)
{
	struct rt *rt = arg;

	if (current)
		current->unanswered++;
	if (rt->sharded && rt->shard > 0)
		keyset_add(&rt->asked, question_hash(name, args));
	if ((rt->mode == M_DIFF || rt->interactive == 0) && !*args)
		buf_printf(&rt->diff, "  unanswered: %s (not in the record)\n", name);
	else if (rt->mode == M_DIFF || rt->interactive == 0)
		buf_printf(&rt->diff, "  unanswered: %s(%.*s)\n", name, (int)(strlen(args) > 2 ? strlen(args) - 2 : 0), args + 1);
}

static void
on_answered(void *arg, enum replay_src src, const char *line)
{
	struct rt *rt = arg;

	if (rt->mode == M_DIFF)
		buf_printf(&rt->diff, "  %s: %s\n", replay_src_name(src), line);
}

static const json_t *
on_borrow(void *arg, const char *name, const char *args, size_t alen, const char **from)
{
	struct rt *rt = arg;

	if (!rt->borrow || !rt->sess)
		return NULL;
	return borrow_find(rt->borrow, name, args, alen, rt->world.now, from);
}

static void
on_resume(struct session_info *i, const struct verdict *v)
{
	struct rs *s = (struct rs *)i;

	s->pending = *v;
	s->got = 1;
}

/* ---------------- replies ---------------- */

struct step {
	struct nreply r[MAX_REPLIES];
	int           n;
	int           compared;      /* replies already compared and shown */
};

static struct nreply *
add_reply(struct step *p, int code, const char *enh, const char *text)
{
	struct nreply *r;

	if (p->n >= MAX_REPLIES)
		return &p->r[MAX_REPLIES - 1];
	r = &p->r[p->n++];
	r->code = code;
	r->borrow = 0;
	r->where[0] = '\0';
	/* As the journal has it: "ENH text", or the text alone. */
	{
		size_t n = 0, e = enh ? strlen(enh) : 0, t = strlen(text);
		if (e && e < 20) {
			memcpy(r->text, enh, e);
			r->text[e] = ' ';
			n = e + 1;
		}
		if (t > sizeof r->text - 1 - n)
			t = sizeof r->text - 1 - n;
		memcpy(r->text + n, text, t);
		r->text[n + t] = '\0';
	}
	return r;
}

static void compare(struct rs *s, struct step *p, struct seg *g, int upto);

/* ---------------- the policy ---------------- */

static void
trace_verdict(struct rt *rt, enum stage st, const struct verdict *v)
{
	if (!rt->tracing)
		return;
	if (v->action == V_NONE)
		buf_printf(&rt->trace, "      %s: no verdict%s\n", stage_name(st),
		    st == STAGE_RCPT ? " (no rule accepted: refused)" : "");
	else
		buf_printf(&rt->trace, "      %s: %s%s%s%s%s%s\n", stage_name(st), action_name(v->action),
		    v->reason[0] ? " " : "", v->reason, v->where[0] ? " (" : "", v->where, v->where[0] ? ")" : "");
	/* Where the accepted recipient's mail would go (the route hook). */
	if (v->action == V_ACCEPT && v->route.route[0])
		buf_printf(&rt->trace, "      route: %s%s%s (%s)\n", v->route.route, v->route.tls[0] ? " tls=" : "",
		    v->route.tls, v->route.where);
}

static int
is_queue_error(const struct rev *r)
{
	return r && r->code == 451 && !strcmp(r->text, "4.3.0 Error: queue file write error");
}

static const struct rev *
case_tls(struct record *r)
{
	for (int i = 0; i < r->nev; i++)
		if (r->ev[i].kind == RE_TLS)
			return &r->ev[i];
	return NULL;
}

/* ---------------- the protocol core's driver: the record for the wire ---------------- */

static void
rt_reply(struct smtp_proto *pr, int code, const char *enh, const char *text, const char *reason)
{
	struct rs *s = (struct rs *)pr;
	struct nreply *r = add_reply(s->step, code, enh, text);

	if (pr->where)
		snprintf(r->where, sizeof r->where, "%s", pr->where);
	/* The greeting and the EHLO list carry what the live server offered
	 * (SIZE, STARTTLS): the record knows those better. */
	r->borrow = (code == 220 && pr->stage == STAGE_CONNECT) || (code == 250 && pr->cmd == CMD_EHLO);
}

/* Runs the hook of st with the new rules: its verdict in *v. */
static int
rt_decide(struct smtp_proto *pr, enum stage st, struct verdict *v)
{
	struct rs *s = (struct rs *)pr;
	struct rt *rt = s->rt;
	int rc = POLICY_DONE;

	s->got = 0;
	if (rt->pol.ops->decide(rt->pol.self, &pr->info, st, v) == POLICY_PENDING) {
		/* --live: a rule waits for the network; the resolver and the
		 * callout client time out by themselves. */
		while (!s->got && rt->world.live && rt->sim.loop && ev_run(rt->sim.loop, EVRUN_ONCE))
			;
		if (s->got)
			*v = s->pending;
		else {
			/* A primitive outside the world interface waited for I/O: there is
			 * no loop here to answer it. The session cannot go on. */
			memset(v, 0, sizeof *v);
			v->action = V_DEFER;
			snprintf(v->reason, sizeof v->reason, "rule_error");
			snprintf(v->text, sizeof v->text, "a rule waited for I/O that the replay world cannot answer");
			s->diverged = 1;
			s->why_diverged = "a rule waited for I/O outside the world primitives";
			rc = SMTP_UNDECIDED;
		}
	}
	trace_verdict(rt, st, v);
	count_verdict(rt, st, v, 0);
	if (st == STAGE_RCPT)
		str_copy(s->route, sizeof s->route, v->action == V_ACCEPT ? v->route.route : "");
	if (!s->decided) {
		s->decided = 1;
		s->cmd_action = v->action;
		str_copy(s->cmd_where, sizeof s->cmd_where, v->where);
	}
	return rc;
}

/* postscreen's pregreet refusal: the client's doing, not the rules'. */
static int
rt_pregreet(struct smtp_proto *pr)
{
	struct seg *g = ((struct rs *)pr)->seg;

	return g->nrec && g->rec[0]->code == 554 && strstr(g->rec[0]->text, "talked before the greeting");
}

static void
rt_starttls(struct smtp_proto *pr)
{
	struct rs *s = (struct rs *)pr;
	struct seg *g = s->seg;
	const struct rev *t = g->tls;
	struct rt *rt = s->rt;

	if (s->rec->is_case || rt->interactive) {
		if (!t)
			t = case_tls(s->rec);
	} else if (!t) {
		if (g->nrec && g->rec[0]->code == 220) {
			smtp_proto_close(pr, "TLS handshake failed");
			return;
		}
		s->diverged = 1;
		s->why_diverged = "STARTTLS now accepted, but no handshake was recorded";
		return;
	}
	pr->info.tls = 1;
	str_copy(pr->info.tls_version, sizeof pr->info.tls_version, t ? t->a : DEFAULT_TLS_VERSION);
	str_copy(pr->info.tls_cipher, sizeof pr->info.tls_cipher, t ? t->b : DEFAULT_TLS_CIPHER);
	str_copy(pr->info.tls_peer, sizeof pr->info.tls_peer, t && t->c ? t->c : "");
	if (rt->tracing)
		buf_printf(&rt->trace, "    . (TLS %s %s)\n", pr->info.tls_version, pr->info.tls_cipher);
	smtp_proto_tls_done(pr);
}

/*
 * 354 only where the record has one: the message itself was never
 * recorded, so a DATA the record did not reach cannot be replayed past it.
 */
static int
rt_data_begin(struct smtp_proto *pr)
{
	struct rs *s = (struct rs *)pr;
	struct seg *g = s->seg;

	if (s->rec->is_case || s->rt->interactive)
		return 0;
	/* The spool failed in the recording: not the rules' doing. */
	if (g->nrec && is_queue_error(g->rec[0]))
		return -1;
	if (!g->nrec || g->rec[0]->code != 354) {
		add_reply(s->step, 354, "", "(message not recorded)");
		s->diverged = 1;
		s->why_diverged = "DATA now gets 354, but no message was recorded";
		return 1;
	}
	return 0;
}

static void
rt_commit(struct smtp_proto *pr)
{
	struct seg *g = ((struct rs *)pr)->seg;

	smtp_proto_committed(pr, !(g->nrec > 1 && is_queue_error(g->rec[1])));
}

static void
rt_close(struct smtp_proto *pr, const char *why)
{
}

static const struct smtp_driver rt_driver = {
	.reply = rt_reply,
	.decide = rt_decide,
	.pregreet = rt_pregreet,
	.starttls = rt_starttls,
	.data_begin = rt_data_begin,
	.commit = rt_commit,
	.reset = NULL,
	.close = rt_close,
};

/* After the 354: the data hook with the size and queue id the record holds. */
static void
message(struct rs *s, struct step *p, struct seg *g)
{
	struct rt *rt = s->rt;
	struct session_info *i = &s->p.info;
	const char *headers = NULL;

	if (s->rec->is_case) {
		i->size = g->size ? (size_t)g->size->size : (size_t)s->case_size;
		if (!i->qid[0])
			snprintf(i->qid, sizeof i->qid, "RT%08X", ++rt->next_qid);
	} else if (g->data_hook) {
		i->size = g->data_hook->size > 0 ? (size_t)g->data_hook->size : 0;
		snprintf(i->qid, sizeof i->qid, "%s", g->data_hook->a ? g->data_hook->a : "");
		headers = g->data_hook->text;
	} else {
		/* Size limit, long line, bare LF, spool error: the engine's own answer. */
		if (g->nrec > 1)
			add_reply(p, g->rec[1]->code, "", g->rec[1]->text);
		smtp_proto_reset(&s->p);
		return;
	}
	/* The journal keeps the header section (journal.max_headers), never the body. */
	i->headers = headers ? headers : "";
	i->headers_len = strlen(i->headers);
	if (!headers && !s->rec->is_case)
		i->headers_len = HEADERS_UNRECORDED;    /* s.headers: unanswered */
	compare(s, p, g, 1);            /* the 354, before the data hook's trace */
	if (rt->tracing)
		buf_printf(&rt->trace, "    . (message of %zu bytes%s%s)\n", i->size,
		    s->rec->is_case ? "" : headers ? "; its headers recorded, the body not" :
		    "; neither headers nor body recorded",
		    headers && g->data_hook->b ? " (headers cut at journal.max_headers)" : "");
	smtp_proto_eom(&s->p, &(struct smtp_eom){ .size = i->size });
}

/*
 * A recipient accepted then and now whose route changed (the route hook):
 * the same 250, but its mail would go elsewhere. Records older than the
 * route in the journal say nothing.
 */
static void
compare_route(struct rs *s, struct seg *g)
{
	const struct rev *r = g->rcpt;

	if (!r || !r->route || !s->route[0] || strcmp(r->a, "accept") != 0 ||
	    strcmp(r->route, s->route) == 0)
		return;
	if (s->rt->tracing)
		buf_printf(&s->rt->trace, "    ! route %s    [recorded: %s]\n", s->route, r->route);
	buf_printf(&s->rt->diff, "  %s\n    route recorded  %s\n    route new       %s\n", s->what, r->route,
	    s->route);
	s->changed = 1;
}

/* One recorded command through the protocol core. */
static void
command(struct rs *s, struct step *p, struct seg *g, const char *line)
{
	int first = p->n;

	s->step = p;
	s->seg = g;
	s->decided = 0;
	s->route[0] = '\0';
	smtp_proto_line(&s->p, line);
	if (!s->rec->is_case)
		compare_route(s, g);
	if (s->p.state == ST_DATA && !s->rt->interactive)
		message(s, p, g);
	if (s->p.cmd == CMD_STARTTLS && s->decided && g->tls && !s->diverged &&
	    s->cmd_action != V_NONE && s->cmd_action != V_ACCEPT) {
		/* The client went on inside TLS: those commands mean nothing now. */
		s->diverged = 1;
		s->why_diverged = "STARTTLS now refused; the record goes on inside TLS";
	}
	/* The rule behind an accept too, for the diff. */
	if (s->decided && first < p->n && !p->r[first].where[0])
		str_copy(p->r[first].where, sizeof p->r[first].where, s->cmd_where);
}

/* The connection: connect hook, then greeting or refusal. */
static void
connect_step(struct rs *s, struct step *p, struct seg *g)
{
	s->step = p;
	s->seg = g;
	smtp_proto_connect(&s->p);
}

/* ---------------- steps of a record ---------------- */

static void
seg_scan(struct record *rec, int from, struct seg *g)
{
	memset(g, 0, sizeof *g);
	g->from = from;
	for (g->to = from; g->to < rec->nev && rec->ev[g->to].kind != RE_CMD; g->to++) {
		struct rev *e = &rec->ev[g->to];
		switch (e->kind) {
		case RE_REPLY:
			if (!rec->is_case && g->nrec < MAX_REPLIES)
				g->rec[g->nrec++] = e;
			break;
		case RE_EXPECT:
			if (rec->is_case && g->nrec < MAX_REPLIES)
				g->rec[g->nrec++] = e;
			break;
		case RE_HOOK:
			if (e->stage == STAGE_DATA)
				g->data_hook = e;
			break;
		case RE_VERDICT:
			if (e->stage < STAGE_MAX)
				count_recorded(current->rt, e);
			if (e->stage == STAGE_RCPT)
				g->rcpt = e;
			break;
		case RE_TLS:
			g->tls = e;
			break;
		case RE_SIZE:
			g->size = e;
			break;
		default:
			break;
		}
	}
}

static int
same_reply(const struct nreply *n, const struct rev *r, int is_case)
{
	if (n->code != r->code)
		return 0;
	if (is_case)
		return strncmp(n->text, r->text, strlen(r->text)) == 0;
	return strcmp(n->text, r->text) == 0;
}

/* The first line of a reply, and how many more there are. */
static void
shown(char *out, size_t room, int code, const char *text)
{
	const char *nl = strchr(text, '\n');
	int more = 0;

	for (const char *q = text; (q = strchr(q, '\n')) != NULL; q++)
		more++;
	if (nl)
		snprintf(out, room, "%d %.*s (+%d line%s)", code, (int)(nl - text), text, more, more > 1 ? "s" : "");
	else
		snprintf(out, room, "%d %s", code, text);
}

/*
 * Compares a step's replies with the record (up to reply upto, or all
 * when upto < 0); writes the trace and the diff.
 */
static void
compare(struct rs *s, struct step *p, struct seg *g, int upto)
{
	struct rt *rt = s->rt;
	const char *what = s->what;
	int n = p->n > g->nrec ? p->n : g->nrec, diff = 0;
	int is_case = s->rec->is_case;
	char a[700], b[700];

	/* Engine texts the record knows better (the live SIZE, STARTTLS offer). */
	for (int i = 0; i < p->n && i < g->nrec; i++)
		if (p->r[i].borrow && !is_case && p->r[i].code == g->rec[i]->code)
			snprintf(p->r[i].text, sizeof p->r[i].text, "%s", g->rec[i]->text);
	/* A cut record says nothing past its end. */
	if (s->rec->truncated && g->nrec == 0 && g->to >= s->rec->nev)
		n = p->n;
	if (upto >= 0 && upto < n)
		n = upto;
	for (int i = p->compared; i < n; i++) {
		const struct nreply *nr = i < p->n ? &p->r[i] : NULL;
		const struct rev *rr = i < g->nrec ? g->rec[i] : NULL;
		int same = nr && rr && same_reply(nr, rr, is_case);
		int unchecked = !rr && (is_case || (s->rec->truncated && g->to >= s->rec->nev) || rt->interactive);

		if ((same || unchecked) && !rt->tracing)
			continue;
		if (nr)
			shown(a, sizeof a, nr->code, nr->text);
		if (rr)
			shown(b, sizeof b, rr->code, rr->text);
		if (rt->tracing) {
			if (same || unchecked)
				buf_printf(&rt->trace, "    %s %s\n", unchecked && !rt->interactive ? "." : "=", a);
			else if (nr && rr)
				buf_printf(&rt->trace, "    ! %s    [%s: %s]\n", a, is_case ? "expected" : "recorded", b);
			else if (nr)
				buf_printf(&rt->trace, "    + %s    [not recorded]\n", a);
			else
				buf_printf(&rt->trace, "    - (no reply now)    [%s: %s]\n", is_case ? "expected" : "recorded", b);
		}
		if (same || unchecked)
			continue;
		if (!diff++)
			buf_printf(&rt->diff, "  %s\n", what);
		if (is_case)
			buf_printf(&rt->diff, "    line %d: expected %d%s%s, got %s\n", rr ? rr->line : 0,
			    rr ? rr->code : 0, rr && *rr->text ? " " : "", rr ? rr->text : "", nr ? a : "no reply");
		else
			buf_printf(&rt->diff, "    recorded  %s\n    new       %s%s%s%s\n", rr ? b : "(no reply)",
			    nr ? a : "(no reply)", nr && nr->where[0] ? "   (" : "", nr ? nr->where : "",
			    nr && nr->where[0] ? ")" : "");
	}
	p->compared = n;
	if (diff) {
		if (is_case)
			s->failed = 1;
		else
			s->changed = 1;
	}
}

/* Recorded replies the engine gave on its own (line too long, timeout, shutdown). */
static void
surplus(struct rs *s, struct step *p, struct seg *g)
{
	if (s->rec->is_case || s->p.state == ST_QUIT || s->diverged)
		return;
	for (int i = p->n; i < g->nrec; i++) {
		const struct rev *r = g->rec[i];
		add_reply(p, r->code, "", r->text);
		if (r->code == 421)
			s->p.state = ST_QUIT;
		else if (r->code >= 500)
			s->p.errors++;
	}
}

/* Lines before part_from, counted once (a shard starts mid-file). */
static long
line_no(struct rt *rt, long n)
{
	if (rt->line_base < 0) {
		FILE *f = fopen(rt->part_path, "r");
		char chunk[65536];
		off_t left = rt->part_from;
		size_t got;

		rt->line_base = 0;
		while (f && left > 0 && (got = fread(chunk, 1, left < (off_t)sizeof chunk ? (size_t)left : sizeof chunk, f)) > 0) {
			for (char *q = chunk; (q = memchr(q, '\n', (size_t)(chunk + got - q))) != NULL; q++)
				rt->line_base++;
			left -= (off_t)got;
		}
		if (f)
			fclose(f);
	}
	return rt->line_base + n;
}

static void
session_header(struct rs *s, struct buf *b)
{
	struct record *r = s->rec;

	if (r->is_case)
		buf_printf(b, "session %s  %s %s:%d -> %s:%d\n", r->file, direction_str(r->direction),
		    r->client_ip, r->client_port, r->local_ip, r->local_port);
	else
		buf_printf(b, "session %s  %s %s:%d -> %s:%d  (%s:%ld)\n", r->sid[0] ? r->sid : "-",
		    direction_str(r->direction), r->client_ip, r->client_port, r->local_ip, r->local_port,
		    r->file, line_no(s->rt, r->line));
}

static void
session_begin(struct rt *rt, struct rs *s, struct record *rec)
{
	memset(s, 0, sizeof *s);
	s->rt = rt;
	s->rec = rec;
	smtp_proto_init(&s->p, &rt_driver);
	s->p.tls_available = 1;
	s->case_size = CASE_SIZE;
	s->p.info.id = ++rt->next_id;
	str_ncopy(s->p.info.sid, sizeof s->p.info.sid, rec->sid, 23);
	s->p.info.direction = rec->direction;
	str_copy(s->p.info.client_ip, sizeof s->p.info.client_ip, rec->client_ip);
	s->p.info.client_port = rec->client_port;
	str_copy(s->p.info.local_ip, sizeof s->p.info.local_ip, rec->local_ip);
	s->p.info.local_port = rec->local_port;
	s->p.info.start = rec->time;
	str_copy(rt->sconf.hostname, sizeof rt->sconf.hostname, rec->hostname[0] ? rec->hostname : rt->conf->hostname);
	s->p.info.conf = &rt->sconf;
	s->p.info.resume = on_resume;
	/* A server that refused STARTTLS for want of TLS did not offer it. */
	for (int i = 0; i < rec->nev; i++)
		if (rec->ev[i].kind == RE_REPLY && rec->ev[i].code == 502 &&
		    !strcmp(rec->ev[i].text, "5.5.1 STARTTLS not available"))
			s->p.tls_available = 0;
	rt->world.calls = rec->calls;
	rt->world.ncalls = rec->ncalls;
	rt->world.answered = rt->world.unanswered = 0;
	rt->world.weakest = SRC_RECORDED;
	rt->world.used = 0;
	rt->nsess_keys = 0;
	/* Cases and the interactive session answer only from what they say. */
	rt->world.simulate = rt->sim.state && !rec->is_case && !rt->interactive;
	rt->world.start = rt->world.now = rec->is_case || rt->interactive ? 0 : rec->time;
	buf_reset(&rt->trace);
	buf_reset(&rt->diff);
	current = s;
	if (rt->tracing)
		session_header(s, &rt->trace);
}

/* Replays one record; returns 0, or -1 when the policy cannot start. */
static int
replay(struct rt *rt, struct record *rec)
{
	struct rs s;
	struct seg g;
	struct step p;
	int i;

	session_begin(rt, &s, rec);
	if (rt->pol.ops->start(rt->pol.self, &s.p.info) < 0)
		return -1;
	seg_scan(rec, 0, &g);
	p.n = p.compared = 0;
	s.what = "connect";
	if (rt->tracing)
		buf_printf(&rt->trace, "  connect\n");
	connect_step(&s, &p, &g);
	surplus(&s, &p, &g);
	compare(&s, &p, &g, -1);
	for (i = g.to; i < rec->nev; i = g.to) {
		struct rev *cmd = &rec->ev[i];
		char what[600];

		seg_scan(rec, i + 1, &g);
		g.cmd = cmd;
		if (g.size)
			s.case_size = g.size->size;
		what[0] = '>';
		what[1] = ' ';
		str_copy(what + 2, sizeof what - 2, cmd->text);
		if (rt->tracing)
			buf_printf(&rt->trace, "  %s\n", what);
		p.n = p.compared = 0;
		s.what = what;
		if (s.diverged) {
			if (rt->tracing)
				buf_printf(&rt->trace, "    . not replayed: %s\n", s.why_diverged);
			continue;
		}
		if (s.p.state != ST_QUIT)
			command(&s, &p, &g, cmd->text);
		else if (rt->tracing)
			buf_printf(&rt->trace, "    . (the connection is closed now)\n");
		surplus(&s, &p, &g);
		compare(&s, &p, &g, -1);
	}
	if (s.diverged) {
		s.changed = 1;
		buf_printf(&rt->diff, "  diverged: %s\n", s.why_diverged);
	}
	rt->pol.ops->end(rt->pol.self, &s.p.info);
	smtp_proto_reset(&s.p);
	current = NULL;

	/* The verdict on the session. */
	if (rec->is_case) {
		rt->cases++;
		if (s.unanswered)
			s.failed = 1;
		if (s.failed) {
			rt->failed++;
			printf("FAIL %s: %s\n", rec->file, rec->title);
			fwrite(rt->diff.p ? rt->diff.p : "", 1, rt->diff.len, stdout);
			if (s.unanswered)
				printf("  (answer every question the rules ask: answer NAME ARGS... -> RESULTS)\n");
			fwrite(rt->trace.p ? rt->trace.p : "", 1, rt->trace.len, stdout);
		} else {
			rt->passed++;
			printf("PASS %s: %s\n", rec->file, rec->title);
		}
		return 0;
	}
	rt->sessions++;
	/* A simulated answer depends on the sessions before this one that met
	 * the same records: shard_keep() checks them against earlier shards. */
	if (rt->sharded && rt->shard > 0 && rt->world.used & 1u << SRC_SIMULATED)
		for (size_t i = 0; i < rt->nsess_keys; i++)
			keyset_add(&rt->sim_read, rt->sess_keys[i]);
	if (rec->truncated)
		rt->truncated++;
	if (s.diverged)
		rt->diverged++;
	if (s.unanswered)
		rt->unanswered++;
	else if (s.changed) {
		rt->changed++;
		rt->changed_by[rt->world.weakest]++;
	} else {
		rt->same++;
		rt->same_by[rt->world.weakest]++;
	}
	if (rt->mode == M_TRACE) {
		char using[80] = "";
		if (!s.unanswered && rt->world.weakest != SRC_RECORDED)
			snprintf(using, sizeof using, " (using %s)", src_using[rt->world.weakest]);
		buf_printf(&rt->trace, "  result: %s%s%s\n\n", s.unanswered ? "UNANSWERED" : s.changed ? "CHANGED" : "same",
		    using, rec->truncated ? " (the record was truncated)" : "");
		fwrite(rt->trace.p, 1, rt->trace.len, stdout);
	} else if (rt->mode == M_DIFF && (s.changed || s.unanswered)) {
		struct buf h = BUF_INIT(0);
		session_header(&s, &h);
		fwrite(buf_str(&h), 1, h.len, stdout);
		buf_free(&h);
		fwrite(rt->diff.p, 1, rt->diff.len, stdout);
		putchar('\n');
	}
	return 0;
}

/* ---------------- input ---------------- */

static int
ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcmp(s + n - m, suffix);
}

/* One journal line, found by the first pass. */
struct jline {
	double time;        /* the session's recorded start */
	long   seq;         /* the order read: ties keep it */
	off_t  off;
	long   line;        /* within its part: line_no() makes it the file's */
	int    file;
};

/* The journal parts one process replays (--jobs: its shard's). */
struct journals {
	const char  **path;
	FILE        **f;
	off_t        *from;         /* where the part starts */
	long         *line_base;    /* lines before it, -1: not counted yet */
	int           n, cap;
	struct jline *l;
	size_t        nl, lcap;
};

static void
journals_free(struct journals *j)
{
	for (int i = 0; i < j->n; i++)
		fclose(j->f[i]);
	free(j->path);
	free(j->f);
	free(j->from);
	free(j->line_base);
	free(j->l);
	memset(j, 0, sizeof *j);
}

/* Standard input, kept in a temporary file: the second pass reads it again. */
static FILE *
spool_stdin(void)
{
	FILE *t = tmpfile();
	char chunk[65536];
	size_t got;

	if (!t)
		return NULL;
	while ((got = fread(chunk, 1, sizeof chunk, stdin)) > 0)
		if (fwrite(chunk, 1, got, t) != got) {
			fclose(t);
			return NULL;
		}
	rewind(t);
	return t;
}

/* A journal line's recorded start, read off its head ({"v":1,"sid":S,"time":T,...},
 * as journal.c writes it) without parsing the line: 0, or -1. */
static int
head_time(const char *line, size_t len, double *t)
{
	static const char key[] = "\"time\":";
	const char *p = memmem(line, len < 256 ? len : 256, key, sizeof key - 1);
	char *end;

	if (!p)
		return -1;
	*t = strtod(p + sizeof key - 1, &end);
	return end > p + sizeof key - 1 && (*end == ',' || *end == '}') ? 0 : -1;
}

/* Makes the part of j numbered file the one line numbers count in. */
static void
use_part(struct rt *rt, struct journals *j, int file)
{
	rt->part_path = j->path[file];
	rt->part_from = j->from[file];
	rt->line_base = j->line_base[file];
}

/*
 * The first pass over one journal's lines that start in [from, to) (to < 0:
 * to its end): each line's place and time. A line whose head names no time
 * is parsed now (to report it, or to find its time).
 */
static int
index_journal(struct rt *rt, struct journals *j, const char *path, off_t from, off_t to, struct record *rec)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "r") : spool_stdin();
	struct buf line = BUF_INIT(JOURNAL_LINE_MAX);
	char err[300];
	long n = 0;
	int rc, file = j->n;

	if (!f) {
		fprintf(stderr, "ruletest: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (from > 0 && fseeko(f, from, SEEK_SET) < 0) {
		fprintf(stderr, "ruletest: %s: %s\n", path, strerror(errno));
		fclose(f);
		return -1;
	}
	if (j->n == j->cap) {
		int cap = j->cap ? j->cap * 2 : 8;
		const char **np = realloc(j->path, (size_t)cap * sizeof *np);
		FILE **nf = np ? realloc(j->f, (size_t)cap * sizeof *nf) : NULL;
		off_t *no = nf ? realloc(j->from, (size_t)cap * sizeof *no) : NULL;
		long *nb = no ? realloc(j->line_base, (size_t)cap * sizeof *nb) : NULL;
		if (np)
			j->path = np;
		if (nf)
			j->f = nf;
		if (no)
			j->from = no;
		if (!nb) {
			fclose(f);
			fprintf(stderr, "ruletest: %s: out of memory\n", path);
			return -1;
		}
		j->line_base = nb;
		j->cap = cap;
	}
	j->path[file] = path;
	j->f[file] = f;
	j->from[file] = from;
	j->line_base[file] = from > 0 ? -1 : 0;
	j->n++;
	rt->journals++;
	use_part(rt, j, file);
	for (off_t off = ftello(f); (to < 0 || off < to) && (rc = buf_getline(&line, f)) != 0; off = ftello(f)) {
		n++;
		if (rc < 0) {
			fprintf(stderr, "%s:%ld: a line longer than %d bytes: skipped\n", path, line_no(rt, n),
			    JOURNAL_LINE_MAX);
			rt->bad_lines++;
			continue;
		}
		if (!line.len)
			continue;
		double t;
		if (head_time(line.p, line.len, &t) < 0) {
			if (record_parse_json(rec, line.p, line.len, err, sizeof err) < 0) {
				fprintf(stderr, "%s:%ld: %s: skipped\n", path, line_no(rt, n), err);
				rt->bad_lines++;
				continue;
			}
			t = rec->time;
		}
		if (array_reserve(&j->l, &j->lcap, j->nl + 1, sizeof *j->l) < 0)
			goto oom;
		j->l[j->nl] = (struct jline){ t, (long)j->nl, off, n, file };
		j->nl++;
	}
	j->line_base[file] = rt->line_base;
	buf_free(&line);
	return 0;
oom:
	fprintf(stderr, "ruletest: %s: out of memory\n", path);
	buf_free(&line);
	return -1;
}

static int
by_time(const void *a, const void *b)
{
	const struct jline *x = a, *y = b;

	/* Journals in the order given (a day's file after the day before),
	 * each in time order: so a --jobs shard, a run of whole lines, sorts
	 * its part as one process would. */
	if (x->file != y->file)
		return x->file < y->file ? -1 : 1;
	if (x->time != y->time)
		return x->time < y->time ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The second pass: every indexed session, in time order. */
static void
replay_journals(struct rt *rt, struct journals *j, struct record *rec)
{
	struct buf line = BUF_INIT(JOURNAL_LINE_MAX);
	char err[300];

	if (j->nl)
		qsort(j->l, j->nl, sizeof *j->l, by_time);
	for (size_t i = 0; i < j->nl; i++) {
		struct jline *l = &j->l[i];
		FILE *f = j->f[l->file];

		use_part(rt, j, l->file);
		if (fseeko(f, l->off, SEEK_SET) < 0 || buf_getline(&line, f) <= 0) {
			fprintf(stderr, "%s:%ld: could not be read again: skipped\n", j->path[l->file], line_no(rt, l->line));
			rt->bad_lines++;
		} else if (record_parse_json(rec, line.p, line.len, err, sizeof err) < 0) {
			fprintf(stderr, "%s:%ld: %s: skipped\n", j->path[l->file], line_no(rt, l->line), err);
			rt->bad_lines++;
		} else {
			rec->file = j->path[l->file];
			rec->line = (int)l->line;
			rt->sess = 1;
			if (replay(rt, rec) < 0) {
				fprintf(stderr, "%s:%ld: the policy could not start a session\n", rec->file,
				    line_no(rt, l->line));
				rt->bad_lines++;
			}
			/* Its answers, for the sessions after it. */
			if (rt->borrow && borrow_add(rt->borrow, rec) < 0)
				fprintf(stderr, "ruletest: out of memory: answers are no longer lent\n");
			if (rt->sharded)
				for (int c = 0; c < rec->ncalls; c++)
					if (rec->calls[c].args)
						keyset_add(&rt->lendable, question_hash(rec->calls[c].name, rec->calls[c].args));
		}
		j->line_base[l->file] = rt->line_base;
	}
	rt->sess = 0;
	buf_free(&line);
}

/* ---------------- --jobs: shards of the journals (tools/shard.c) ---------------- */

#define TOTALS(rt) (&(rt)->sessions)
#define NTOTALS 7               /* sessions same changed unanswered diverged truncated bad_lines */

/* Counts back to nothing: a sharded run that cannot vouch for its
 * predictions is replayed again as one job. */
static void
totals_reset(struct rt *rt)
{
	memset(TOTALS(rt), 0, NTOTALS * sizeof(long));
	memset(rt->same_by, 0, sizeof rt->same_by);
	memset(rt->changed_by, 0, sizeof rt->changed_by);
	rt->ncounts = 0;
	rt->journals = 0;
	rt->leaned = 0;
	keyset_free(&rt->touched);
	keyset_free(&rt->lendable);
	rule_cov_free(&rt->cov);
}

static int
shard_child(void *arg, int k, FILE *stats)
{
	struct rt *rt = arg;
	struct record rec;
	struct rule_cov_table cov = { 0 };

	struct journals jr = { 0 };

	memset(&rec, 0, sizeof rec);
	rt->sharded = 1;
	rt->shard = k;
	state_mem_watch(rt->sim.state, on_touched, rt);
	/* Its parts in time order: the simulated store and the lent answers
	 * see this shard's sessions only. */
	for (int i = 0; i < rt->npieces; i++)
		if (rt->pieces[i].shard == k &&
		    index_journal(rt, &jr, rt->pieces[i].path, rt->pieces[i].from, rt->pieces[i].to, &rec) < 0)
			return 2;
	replay_journals(rt, &jr, &rec);
	journals_free(&jr);
	record_free(&rec);
	fwrite(TOTALS(rt), sizeof(long), NTOTALS, stats);
	fwrite(rt->same_by, sizeof(long), SRC_N, stats);
	fwrite(rt->changed_by, sizeof(long), SRC_N, stats);
	/* What this shard took from before it, then what it leaves after it. */
	keyset_write(&rt->sim_read, stats);
	keyset_write(&rt->asked, stats);
	keyset_write(&rt->touched, stats);
	keyset_write(&rt->lendable, stats);
	fwrite(&rt->ncounts, sizeof rt->ncounts, 1, stats);
	fwrite(rt->counts, sizeof *rt->counts, (size_t)rt->ncounts, stats);
	if (rt->world.coverage)
		rule_cov_collect(&cov, &rt->pol);
	fwrite(&cov.n, sizeof cov.n, 1, stats);
	fwrite(cov.r, sizeof *cov.r, (size_t)cov.n, stats);
	rule_cov_free(&cov);
	return 0;
}

static void leaned_on_state(void *arg, uint64_t h) { struct rt *rt = arg; rt->leaned += keyset_has(&rt->touched, h); }
static void leaned_on_answer(void *arg, uint64_t h) { struct rt *rt = arg; rt->leaned += keyset_has(&rt->lendable, h); }
static void add_touched(void *arg, uint64_t h) { struct rt *rt = arg; if (keyset_add(&rt->touched, h) < 0) rt->leaned++; }
static void add_lendable(void *arg, uint64_t h) { struct rt *rt = arg; if (keyset_add(&rt->lendable, h) < 0) rt->leaned++; }

/* Adds shard k's totals, verdict counts and coverage to the parent's. */
static void
shard_gather(void *arg, int k, FILE *stats)
{
	struct rt *rt = arg;
	long t[NTOTALS];
	struct count c;
	struct rule_cov_table cov = { 0 };
	int n;

	long same_by[SRC_N], changed_by[SRC_N];

	if (fread(t, sizeof(long), NTOTALS, stats) != NTOTALS ||
	    fread(same_by, sizeof(long), SRC_N, stats) != SRC_N ||
	    fread(changed_by, sizeof(long), SRC_N, stats) != SRC_N)
		return;
	/* Shards come in order: rt->touched and rt->lendable hold what the
	 * shards before this one met. A simulated answer from a record they
	 * changed, or a question unanswered here that their records answered,
	 * is not what one job would have said. */
	if (keyset_read(stats, leaned_on_state, rt) < 0 || keyset_read(stats, leaned_on_answer, rt) < 0 ||
	    keyset_read(stats, add_touched, rt) < 0 || keyset_read(stats, add_lendable, rt) < 0) {
		rt->leaned++;           /* unreadable: vouch for nothing */
		return;
	}
	for (int i = 0; i < NTOTALS; i++)
		TOTALS(rt)[i] += t[i];
	for (int i = 0; i < SRC_N; i++) {
		rt->same_by[i] += same_by[i];
		rt->changed_by[i] += changed_by[i];
	}
	if (fread(&n, sizeof n, 1, stats) != 1)
		return;
	for (int i = 0; i < n && fread(&c, sizeof c, 1, stats) == 1; i++) {
		if (c.recorded)
			count_n(rt, c.st, c.action, c.reason, 1, c.recorded);
		if (c.now)
			count_n(rt, c.st, c.action, c.reason, 0, c.now);
	}
	if (fread(&n, sizeof n, 1, stats) != 1 || n <= 0)
		return;
	cov.r = calloc((size_t)n, sizeof *cov.r);
	if (cov.r && fread(cov.r, sizeof *cov.r, (size_t)n, stats) == (size_t)n) {
		cov.n = cov.cap = n;
		rule_cov_merge(&rt->cov, &cov);
	}
	rule_cov_free(&cov);
}

/* Only when no shard took an answer that needed the shards before it (a
 * simulated answer from a record they changed, or a question left
 * unanswered that their records answered) are the shards' predictions
 * the one job's. */
static int
shard_keep(void *arg)
{
	struct rt *rt = arg;

	return rt->leaned == 0;
}

/* 0: replayed; 1: the shards could not vouch for every prediction, nothing
 * printed, the caller replays as one job; -1: a shard failed. */
static int
replay_sharded(struct rt *rt, char *const *paths, int n, int jobs)
{
	int np = shard_plan(paths, n, jobs, &rt->pieces);

	if (np < 0) {
		fprintf(stderr, "ruletest: %s\n", strerror(errno));
		return -1;
	}
	rt->npieces = np;
	rt->journals = n;
	np = shard_run(jobs, shard_child, shard_gather, shard_keep, rt);
	free(rt->pieces);
	rt->pieces = NULL;
	return np;
}

/* --jobs unset: the online CPUs for a journal big enough to gain (one
 * process is about 4,000 sessions a second), one otherwise. */
/* Only regular journal files can be cut (not stdin, a pipe or a case). */
static int
shardable(char *const *paths, int n, off_t *total)
{
	struct stat st;

	for (int i = 0; i < n; i++) {
		if (!strcmp(paths[i], "-") || ends_with(paths[i], ".session") || stat(paths[i], &st) < 0 ||
		    !S_ISREG(st.st_mode))
			return 0;
		if (total)
			*total += st.st_size;
	}
	return 1;
}

static int
auto_jobs(char *const *paths, int n)
{
	off_t total = 0;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (!shardable(paths, n, &total) || total < AUTO_JOBS_BYTES || cpus < 2)
		return 1;
	return cpus > MAX_JOBS ? MAX_JOBS : (int)cpus;
}

/* A whole .session file (at most CASE_MAX bytes): malloc'd, or NULL with errno. */
static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	struct buf b = BUF_INIT(CASE_MAX);
	char chunk[4096];
	size_t got;

	if (!f)
		return NULL;
	while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
		if (buf_add(&b, chunk, got) < 0)
			break;
	fclose(f);
	if (b.err) {
		errno = b.err == BUF_FULL ? EFBIG : ENOMEM;
		buf_free(&b);
		return NULL;
	}
	return buf_take(&b, len);
}

static int
run_case(struct rt *rt, const char *path, struct record *rec)
{
	size_t len;
	char *text = slurp(path, &len), err[600];

	if (!text) {
		fprintf(stderr, "ruletest: %s: %s\n", path, strerror(errno));
		rt->cases++;
		rt->failed++;
		return -1;
	}
	if (record_parse_case(rec, path, text, len, err, sizeof err) < 0) {
		printf("FAIL %s: %s\n", path, err);
		rt->cases++;
		rt->failed++;
		free(text);
		return -1;
	}
	free(text);
	return replay(rt, rec);
}

/* ---------------- interactive: exim -bh ---------------- */

static void
print_wire(struct step *p, int from)
{
	for (int i = from; i < p->n; i++) {
		const char *t = p->r[i].text;
		do {
			const char *nl = strchr(t, '\n');
			printf("%03d%c%.*s\n", p->r[i].code, nl ? '-' : ' ', (int)(nl ? nl - t : (long)strlen(t)), t);
			t = nl ? nl + 1 : NULL;
		} while (t);
	}
}

static void
flush_trace(struct rt *rt)
{
	/* Trace lines as Exim's -bh shows them: ">>> ". */
	char *line = rt->trace.p;

	while (line && *line) {
		char *nl = strchr(line, '\n');
		char *t = line;
		while (*t == ' ')
			t++;
		printf(">>> %.*s\n", (int)(nl ? nl - t : (long)strlen(t)), t);
		line = nl ? nl + 1 : NULL;
	}
	buf_reset(&rt->trace);
	fflush(stdout);
}

static int
interactive(struct rt *rt, struct record *rec)
{
	struct rs s;
	struct seg g;
	struct step p;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;

	rt->interactive = 1;
	session_begin(rt, &s, rec);
	buf_reset(&rt->trace);
	if (rt->pol.ops->start(rt->pol.self, &s.p.info) < 0)
		return 2;
	memset(&g, 0, sizeof g);
	p.n = p.compared = 0;
	printf(">>> session %s %s:%d -> %s:%d (%s)\n", direction_str(rec->direction), rec->client_ip,
	    rec->client_port, rec->local_ip, rec->local_port, "no network: primitives answer from --answer");
	connect_step(&s, &p, &g);
	flush_trace(rt);
	print_wire(&p, 0);
	while (s.p.state != ST_QUIT && (len = getline(&line, &cap, stdin)) > 0) {
		struct buf msg = BUF_INIT(0);
		size_t hdrlen = 0;
		int in_headers = 1;

		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		p.n = p.compared = 0;
		memset(&g, 0, sizeof g);
		command(&s, &p, &g, line);
		flush_trace(rt);
		print_wire(&p, 0);
		if (s.p.state != ST_DATA)
			continue;
		/* The message follows the 354: its size and headers. */
		fflush(stdout);
		while ((len = getline(&line, &cap, stdin)) > 0) {
			while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
				line[--len] = '\0';
			if (!strcmp(line, "."))
				break;
			const char *l = line[0] == '.' ? line + 1 : line;
			if (in_headers && !*l) {
				in_headers = 0;
				hdrlen = msg.len;
			}
			buf_add(&msg, l, strlen(l));
			buf_add(&msg, "\r\n", 2);
		}
		if (in_headers)
			hdrlen = msg.len;
		p.n = p.compared = 0;
		snprintf(s.p.info.qid, sizeof s.p.info.qid, "RT%08X", ++rt->next_qid);
		s.p.info.headers = msg.p ? msg.p : "";
		s.p.info.headers_len = hdrlen;
		smtp_proto_eom(&s.p, &(struct smtp_eom){ .size = msg.len });
		buf_free(&msg);
		flush_trace(rt);
		print_wire(&p, 0);
	}
	free(line);
	rt->pol.ops->end(rt->pol.self, &s.p.info);
	smtp_proto_reset(&s.p);
	current = NULL;
	return 0;
}

/* ---------------- summary and main ---------------- */

static int
cmp_count(const void *a, const void *b)
{
	return strcmp(((const struct count *)a)->key, ((const struct count *)b)->key);
}

/* "would change: 17 (12 from recorded answers only, 5 using simulated state)" */
static void
by_source(const char *what, long total, const long *by)
{
	if (!total)
		return;
	printf("%s: %ld (%ld from %s", what, total, by[SRC_RECORDED], src_using[SRC_RECORDED]);
	for (int i = SRC_RECORDED + 1; i < SRC_UNANSWERED; i++)
		if (by[i])
			printf(", %ld using %s", by[i], src_using[i]);
	printf(")\n");
}

static void
summary(struct rt *rt)
{
	if (!rt->sessions && !rt->bad_lines)
		return;
	printf("summary: %ld session%s replayed: %ld same, %ld would change, %ld unanswered",
	    rt->sessions, rt->sessions == 1 ? "" : "s", rt->same, rt->changed, rt->unanswered);
	if (rt->diverged)
		printf(" (%ld diverged)", rt->diverged);
	if (rt->truncated)
		printf(", %ld truncated record%s", rt->truncated, rt->truncated == 1 ? "" : "s");
	printf(", %ld line%s skipped\n", rt->bad_lines, rt->bad_lines == 1 ? "" : "s");
	by_source("would change", rt->changed, rt->changed_by);
	by_source("same", rt->same, rt->same_by);
	if (rt->mode == M_DIFF || !rt->ncounts)
		return;
	qsort(rt->counts, (size_t)rt->ncounts, sizeof *rt->counts, cmp_count);
	printf("%-48s %10s %10s\n", "verdicts (stage action reason)", "recorded", "new");
	for (int i = 0; i < rt->ncounts; i++)
		printf("  %-46s %10ld %10ld%s\n", rt->counts[i].key, rt->counts[i].recorded, rt->counts[i].now,
		    rt->counts[i].recorded != rt->counts[i].now ? "  *" : "");
}

/*
 * The simulated store, empty or a copy of the real one (--state DIR, the
 * LMDB directory, opened read-only), and with --live a resolver and a
 * callout client on a loop of ruletest's own.
 */
static int
open_sim(struct rt *rt, const char *dir, char *err, size_t errlen)
{
	struct state_conf mc = { .backend = "memory" }, ro = { .backend = "lmdb", .readonly = 1 };

	if (!(rt->sim.state = state_open(&mc, NULL, err, errlen)))
		return -1;
	if (dir) {
		snprintf(ro.dir, sizeof ro.dir, "%s", dir);
		struct state *snap = state_open(&ro, NULL, err, errlen);
		if (!snap)
			return -1;
		long n = state_copy_wait(snap, rt->sim.state);
		if (n < 0)
			snprintf(err, errlen, "--state %s: %s", dir, state_error(snap));
		state_close(snap);
		if (n < 0)
			return -1;
	}
	rt->borrow = borrow_new(rt->conf->callout.positive_ttl, rt->conf->callout.negative_ttl);
	if (!rt->borrow) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (rt->world.live) {
		rt->sim.loop = ev_default_loop(0);
		if (world_net_open(&rt->sim, rt->conf, err, errlen) < 0)
			return -1;
	}
	return 0;
}

static void
close_sim(struct rt *rt)
{
	if (rt->sim.callout)
		callout_free(rt->sim.callout);
	if (rt->sim.dns)
		dns_free(rt->sim.dns);
	if (rt->sim.state)
		state_close(rt->sim.state);
	borrow_free(rt->borrow);
}

/* --help: stdout, exit 0; a usage error: stderr, exit 2 (every mxgate command). */
static void
usage(int code)
{
	fprintf(code ? stderr : stdout,
	    "usage: ruletest [-c CONFIG] [-r RULES_DIR] [--diff [--allow-skipped]] [--quiet] [--coverage]\n"
	    "                [--jobs N] [--state DIR] [--live] JOURNAL.jsonl... CASE.session...\n"
	    "       ruletest [-c CONFIG] [-r RULES_DIR] --client IP [--direction inbound|outbound]\n"
	    "                [--answer 'NAME ARGS... -> RESULTS']... [--tls VERSION:CIPHER] < commands\n"
	    "  replays recorded sessions (mxgate's journal) or hand-written cases against the rules,\n"
	    "  offline: world primitives answer from the record. What a journal's record did not ask\n"
	    "  is answered, and marked, by the simulated state store (greylist, ratelimit; empty, or\n"
	    "  a read-only copy of --state DIR, the LMDB directory), by an earlier session's record\n"
	    "  (dns, callout, verify_sender, within the answer's lifetime) or, with --live, by the\n"
	    "  network now; else it stays unanswered. --diff shows only sessions whose replies would\n"
	    "  change and exits 1 if any would (or could not be decided), or if a journal line could\n"
	    "  not be read (unless --allow-skipped). --coverage adds, per rule, the sessions that\n"
	    "  reached it and those it decided, and the rules that never fired. --jobs N replays\n"
	    "  journals in N processes (default: one per CPU from 64 MiB of journal); when a session\n"
	    "  needs the sessions before its part (simulated state, an answer another could lend),\n"
	    "  the journals are replayed again as one job.\n"
	    "       ruletest --help | --version          (see ruletest(8))\n");
	exit(code);
}

/* --answer dns:NAME=ADDR[,ADDR] (short form) or 'dns NAME -> ADDR ADDR'. */
static int
add_cli_answer(struct record *rec, const char *a, char *err, size_t errlen)
{
	char spec[1200];
	const char *colon = strchr(a, ':'), *eq;

	if (!strstr(a, "->") && colon && (eq = strchr(colon, '=')) != NULL && !strchr(a, ' ')) {
		size_t n = 0;
		n += (size_t)snprintf(spec + n, sizeof spec - n, "%.*s ", (int)(colon - a), a);
		for (const char *q = colon + 1; q < eq && n < sizeof spec - 8; q++)
			spec[n++] = *q == ',' ? ' ' : *q;
		n += (size_t)snprintf(spec + n, sizeof spec - n, " -> ");
		for (const char *q = eq + 1; *q && n < sizeof spec - 2; q++)
			spec[n++] = *q == ',' ? ' ' : *q;
		spec[n] = '\0';
	} else
		snprintf(spec, sizeof spec, "%s", a);
	return record_add_answer(rec, spec, 0, err, errlen);
}

int
ruletest_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "diff", no_argument, NULL, 'd' },
		{ "allow-skipped", no_argument, NULL, 'S' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "live", no_argument, NULL, 'L' },
		{ "coverage", no_argument, NULL, 'G' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "state", required_argument, NULL, 's' },
		{ "client", required_argument, NULL, 'C' },
		{ "direction", required_argument, NULL, 'D' },
		{ "answer", required_argument, NULL, 'A' },
		{ "tls", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = "etc/mxgate.lua", *rules = NULL, *client = NULL, *tls = NULL, *state_dir = NULL;
	struct journals jr = { 0 };
	const char **answers = NULL;
	int nanswers = 0, opt, live = 0, rc = 0, ncases = 0, allow_skipped = 0, jobs = 0;
	enum direction dir = DIR_INBOUND;
	struct rt rt;
	struct record rec;
	char err[1024];

	memset(&rt, 0, sizeof rt);
	memset(&rec, 0, sizeof rec);
	rt.mode = M_TRACE;
	if (!(answers = calloc((size_t)argc + 1, sizeof *answers)))
		return 2;
	while ((opt = getopt_long(argc, argv, "c:r:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case 'r': rules = optarg; break;
		case 'd': rt.mode = M_DIFF; break;
		case 'S': allow_skipped = 1; break;
		case 'q': rt.mode = M_QUIET; break;
		case 'L': live = 1; break;
		case 'G': rt.world.coverage = 1; break;
		case 'j':
			jobs = atoi(optarg);
			if (jobs < 1 || jobs > MAX_JOBS)
				usage(2);
			break;
		case 's': state_dir = optarg; break;
		case 'C': client = optarg; break;
		case 'D':
			if (!strcmp(optarg, "inbound"))
				dir = DIR_INBOUND;
			else if (!strcmp(optarg, "outbound"))
				dir = DIR_OUTBOUND;
			else
				usage(2);
			break;
		case 'A': answers[nanswers++] = optarg; break;
		case 'T': tls = optarg; break;
		case 'h': usage(0); break;
		case 'V': printf("ruletest (mxgate) %s\n", MXGATE_VERSION); free(answers); return 0;
		default: usage(2);
		}
	}
	if (!client && optind == argc)
		usage(2);
	if (client && optind != argc)
		usage(2);
	/* Rule errors, rule logs and warnings are in the trace; the log stays quiet. */
	log_open("/dev/null");
	if (!(rt.conf = calloc(1, sizeof *rt.conf)) || conf_load(rt.conf, path, err, sizeof err) < 0) {
		fprintf(stderr, "%s\n", rt.conf ? err : "out of memory");
		if (rt.conf)
			conf_free(rt.conf);             /* what conf_load had taken */
		free(rt.conf);
		free(answers);
		return 2;
	}
	if (rules)
		snprintf(rt.conf->rules, sizeof rt.conf->rules, "%s", rules);
	rt.sconf = *rt.conf;
	for (int i = optind; i < argc; i++)
		ncases += ends_with(argv[i], ".session");
	rt.tracing = client || ncases || rt.mode == M_TRACE;
	rt.world.trace = rt.tracing ? on_trace : NULL;
	rt.world.arg = &rt;
	rt.world.unanswered_cb = on_unanswered;
	rt.world.answered_cb = on_answered;
	rt.world.borrow = on_borrow;
	rt.world.live = live;
	if (open_sim(&rt, state_dir, err, sizeof err) < 0) {
		fprintf(stderr, "ruletest: %s\n", err);
		rc = 2;
		goto out_conf;
	}
	if (policy_open_replay(&rt.pol, rt.conf, replay_world_open, &rt.world, err, sizeof err) < 0) {
		fprintf(stderr, "%s\n", err);
		rc = 2;
		goto out_conf;
	}
	policy_replay_world(&rt.pol, &rt.sim);
	policy_replay_clock(&rt.pol, &rt.world.now);
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	if (client) {
		record_reset(&rec);
		snprintf(rec.client_ip, sizeof rec.client_ip, "%s", client);
		rec.client_port = 40000;
		snprintf(rec.local_ip, sizeof rec.local_ip, "127.0.0.1");
		rec.local_port = 25;
		rec.direction = dir;
		snprintf(rec.sid, sizeof rec.sid, "interactive");
		rec.is_case = 0;
		rec.file = "stdin";
		for (int i = 0; i < nanswers; i++)
			if (add_cli_answer(&rec, answers[i], err, sizeof err) < 0) {
				fprintf(stderr, "ruletest: --answer %s: %s\n", answers[i], err);
				rc = 2;
				goto out;
			}
		if (tls) {
			/* VERSION:CIPHER, kept as the session's one tls event (case_tls()). */
			char *t = strdup(tls), *c = t ? strchr(t, ':') : NULL;
			struct rev *ev = c ? realloc(rec.ev, sizeof *rec.ev) : NULL;
			if (!ev) {
				fprintf(stderr, "ruletest: --tls VERSION:CIPHER\n");
				free(t);
				rc = 2;
				goto out;
			}
			*c = '\0';
			rec.ev = ev;
			rec.evcap = rec.nev = 1;
			rec.ev[0] = (struct rev){ .kind = RE_TLS, .stage = STAGE_MAX, .a = t, .b = c + 1, .c = "" };
		}
		rc = interactive(&rt, &rec);
		for (int i = 0; i < rec.nev; i++)
			if (rec.ev[i].kind == RE_TLS)
				free((char *)rec.ev[i].a);      /* the --tls copy */
		goto out;
	}
	if (!jobs || ncases || !shardable(argv + optind, argc - optind, NULL))
		jobs = ncases ? 1 : auto_jobs(argv + optind, argc - optind);
	if (live)
		jobs = 1;               /* one resolver and callout client, on one loop */
	if (jobs > 1 && (rc = replay_sharded(&rt, argv + optind, argc - optind, jobs)) != 1) {
		if (rc < 0) {
			rc = 2;
			goto out;
		}
	} else {
		if (rc == 1) {
			fprintf(stderr, "ruletest: of %d runs, a later one answered from %ld state record%s or "
			    "question%s an earlier one had met (simulated state it changed, answers it could lend): "
			    "replaying as one job\n", jobs, rt.leaned, rt.leaned == 1 ? "" : "s", rt.leaned == 1 ? "" : "s");
			totals_reset(&rt);
			rc = 0;
		}
		for (int i = optind; i < argc; i++) {
			if (ends_with(argv[i], ".session"))
				run_case(&rt, argv[i], &rec);
			else if (index_journal(&rt, &jr, argv[i], 0, -1, &rec) < 0)
				rc = 2;
		}
		if (rc)
			goto out;
		replay_journals(&rt, &jr, &rec);
	}
	if (rt.sessions || rt.bad_lines || rt.journals)
		summary(&rt);
	if (rt.world.coverage) {
		if (rt.cov.n || rule_cov_collect(&rt.cov, &rt.pol) == 0)
			rule_cov_print(&rt.cov, rt.sessions + rt.cases, stdout);
		rule_cov_free(&rt.cov);
	}
	if (rt.cases)
		printf("cases: %ld passed, %ld failed\n", rt.passed, rt.failed);
	fflush(stdout);
	if (rt.failed)
		rc = 1;
	if (rt.mode == M_DIFF && (rt.changed || rt.unanswered))
		rc = 1;
	/* A skipped line is a session --diff could not vouch for (issue 11 #9). */
	if (rt.mode == M_DIFF && rt.bad_lines && !allow_skipped) {
		fprintf(stderr, "ruletest: %ld journal line%s skipped, not replayed: the diff is incomplete "
		    "(--allow-skipped accepts that)\n", rt.bad_lines, rt.bad_lines == 1 ? " was" : "s were");
		rc = 1;
	}
out:
	fflush(stdout);
	rt.pol.ops->free(rt.pol.self);
	journals_free(&jr);
	record_free(&rec);
	buf_free(&rt.trace);
	buf_free(&rt.diff);
	free(rt.counts);
	buf_free(&rt.world.enc);
out_conf:
	close_sim(&rt);
	free(answers);
	conf_free(rt.conf);
	free(rt.conf);
	return rc;
}
