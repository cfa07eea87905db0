/*
 * record.c - sessions for ruletest: the record's memory (its arena, its
 * events and calls) and hand-written cases (.session files, answers).
 * Journal lines are read by record_journal.c into the same record.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "record.h"
#include "record_priv.h"

#define ABLOCK  65536

/* ---------------- arena: strings stay put until record_reset ---------------- */

struct ablock {
	struct ablock *next;
	size_t         cap, len;
	char           data[];
};

char *
alloc_(struct record *r, size_t n)
{
	struct ablock *b = r->arena;

	if (!b || b->len + n > b->cap) {
		size_t cap = n > ABLOCK ? n : ABLOCK;
		struct ablock *nb = malloc(sizeof *nb + cap);
		if (!nb)
			return NULL;
		nb->cap = cap;
		nb->len = 0;
		nb->next = b;
		r->arena = nb;
		b = nb;
	}
	b->len += n;
	return b->data + b->len - n;
}

const char *
dup_(struct record *r, const char *s, size_t n)
{
	char *p = alloc_(r, n + 1);

	if (!p)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

void
record_reset(struct record *r)
{
	struct ablock *b = r->arena;

	/* Keep the newest block for the next record; free the rest. */
	if (b) {
		struct ablock *x = b->next;
		while (x) {
			struct ablock *nx = x->next;
			free(x);
			x = nx;
		}
		b->next = NULL;
		b->len = 0;
	}
	r->nev = r->ncalls = 0;
	r->sid[0] = r->client_ip[0] = r->local_ip[0] = r->hostname[0] = r->title[0] = '\0';
	r->client_port = r->local_port = 0;
	r->direction = DIR_INBOUND;
	r->time = 0;
	r->truncated = r->is_case = 0;
	r->line = 0;
	/* A journal line's calls' values (or a failed parse's pieces) are in
	 * json.c's arena: dropped whole, not walked. One record reads at a time. */
	jsonr_arena_reset();
	json_decref(r->answers);
	r->answers = NULL;
}

void
record_free(struct record *r)
{
	record_reset(r);
	free(r->arena);
	free(r->ev);
	free(r->calls);
	memset(r, 0, sizeof *r);
}

struct rev *
add_event(struct record *r, enum rev_kind k)
{
	struct rev *e;

	if (r->nev == r->evcap) {
		int cap = r->evcap ? r->evcap * 2 : 64;
		struct rev *ne = realloc(r->ev, (size_t)cap * sizeof *ne);
		if (!ne)
			return NULL;
		r->ev = ne;
		r->evcap = cap;
	}
	e = &r->ev[r->nev++];
	memset(e, 0, sizeof *e);
	e->kind = k;
	e->stage = STAGE_MAX;
	return e;
}

struct replay_call *
add_call(struct record *r)
{
	struct replay_call *c;

	if (r->ncalls == r->callcap) {
		int cap = r->callcap ? r->callcap * 2 : 16;
		struct replay_call *nc = realloc(r->calls, (size_t)cap * sizeof *nc);
		if (!nc)
			return NULL;
		r->calls = nc;
		r->callcap = cap;
	}
	c = &r->calls[r->ncalls];
	memset(c, 0, sizeof *c);
	c->group = r->ncalls++;
	return c;
}

enum stage
stage_of(const char *s)
{
	for (int st = 0; st < STAGE_MAX; st++)
		if (!strcmp(s, stage_name((enum stage)st)))
			return (enum stage)st;
	return STAGE_MAX;
}

/* ---------------- hand-written cases ---------------- */

static int
is_number(const char *s)
{
	char *e;
	double v;

	if (!*s)
		return 0;
	v = strtod(s, &e);
	return *e == '\0' && isfinite(v);
}

/* A number token as JSON (an integer stays one); 0 if it is no finite number. */
static int
token_number(struct buf *b, const char *t)
{
	char *e;
	long long i;

	if (!is_number(t))
		return 0;
	errno = 0;
	i = strtoll(t, &e, 10);
	if (*e == '\0' && errno == 0)
		jsonw_int(b, i);
	else
		jsonw_num(b, strtod(t, NULL));
	return 1;
}

/* A token as a JSON value: numbers, true/false, nil, or a string. */
static void
token_value(struct buf *b, const char *t)
{
	if (token_number(b, t))
		return;
	if (!strcmp(t, "true") || !strcmp(t, "false"))
		jsonw_bool(b, !strcmp(t, "true"));
	else if (!strcmp(t, "nil") || !strcmp(t, "null"))
		jsonw_null(b);
	else
		jsonw_str(b, t, strlen(t));
}

/*
 * The right side of an answer line as the primitive's results, JSON:
 *   dns:        ADDR...  |  PREF HOST... (mx)  |  nxdomain | nodata | timeout | servfail
 *   greylist:   pass [allowed|retry]  |  defer [new|early] [WAIT]
 *   ratelimit:  over [RATE]  |  under [RATE]  |  error WHY
 *   callout, verify_sender:  RESULT [CODE [TEXT...]]
 *   now:        SECONDS
 *   any:        [ JSON, ... ]  (the results exactly), or TOKEN... (one value each)
 */
static int
answer_results(struct buf *b, const char *name, const char *type, char *rhs, char *err, size_t errlen)
{
	char *t[64], *save = NULL;
	int n = 0;

	while (*rhs == ' ' || *rhs == '\t')
		rhs++;
	if (*rhs == '[') {
		struct json_err je;
		json_t *v = jsonr_parse(rhs, strlen(rhs), JSON_MAX_DEPTH, &je);
		if (!json_is_array(v)) {
			snprintf(err, errlen, "results: not a JSON array (%s)", v ? "another value" : je.text);
			json_decref(v);
			return -1;
		}
		json_decref(v);
		buf_add(b, rhs, strlen(rhs));
		return 0;
	}
	for (char *x = strtok_r(rhs, " \t", &save); x && n < 63; x = strtok_r(NULL, " \t", &save))
		t[n++] = x;
	t[n] = NULL;
	if (!n) {
		snprintf(err, errlen, "no results after '->'");
		return -1;
	}
	if (!strcmp(name, "dns")) {
		static const char *status[] = { "nxdomain", "nodata", "timeout", "servfail", "error", NULL };
		for (int i = 0; status[i]; i++)
			if (n == 1 && !strcasecmp(t[0], status[i])) {
				buf_add(b, "[null,", 6);
				jsonw_str(b, status[i], strlen(status[i]));
				buf_add(b, "]", 1);
				return 0;
			}
		buf_add(b, "[[", 2);
		if (type && !strcasecmp(type, "mx")) {
			if (n % 2) {
				snprintf(err, errlen, "dns mx answers are PREF HOST pairs");
				return -1;
			}
			for (int i = 0; i < n; i += 2) {
				if (i)
					buf_add(b, ",", 1);
				buf_add(b, "{\"host\":", 8);
				jsonw_str(b, t[i + 1], strlen(t[i + 1]));
				buf_add(b, ",\"pref\":", 8);
				if (!token_number(b, t[i])) {
					snprintf(err, errlen, "dns mx answers are PREF HOST pairs");
					return -1;
				}
				buf_add(b, "}", 1);
			}
		} else
			for (int i = 0; i < n; i++) {
				if (i)
					buf_add(b, ",", 1);
				jsonw_str(b, t[i], strlen(t[i]));
			}
		buf_add(b, "],\"ok\"]", 7);
		return 0;
	}
	if (!strcmp(name, "greylist")) {
		int pass = !strcmp(t[0], "pass");
		if (!pass && strcmp(t[0], "defer") != 0) {
			snprintf(err, errlen, "greylist answers: pass [allowed|retry] or defer [new|early] [WAIT]");
			return -1;
		}
		jsonw_open(b, '[');
		jsonw_open(b, '{');
		jsonw_key(b, "pass");
		jsonw_bool(b, pass);
		jsonw_key(b, "verdict");
		jsonw_strz(b, n > 1 ? t[1] : pass ? "allowed" : "new");
		jsonw_key(b, "wait");
		if (n < 3 || !token_number(b, t[2]))
			jsonw_int(b, pass ? 0 : 60);
		jsonw_close(b, '}');
		jsonw_close(b, ']');
		return 0;
	}
	if (!strcmp(name, "ratelimit")) {
		if (!strcmp(t[0], "error")) {
			buf_add(b, "[null,", 6);
			jsonw_str(b, n > 1 ? t[1] : "error", strlen(n > 1 ? t[1] : "error"));
			buf_add(b, "]", 1);
			return 0;
		}
		if (strcmp(t[0], "over") && strcmp(t[0], "under") && strcmp(t[0], "ok")) {
			snprintf(err, errlen, "ratelimit answers: over [RATE], under [RATE] or error WHY");
			return -1;
		}
		jsonw_open(b, '[');
		jsonw_open(b, '{');
		jsonw_key(b, "over");
		jsonw_bool(b, !strcmp(t[0], "over"));
		jsonw_key(b, "rate");
		if (n < 2 || !token_number(b, t[1]))
			jsonw_int(b, 0);
		jsonw_close(b, '}');
		jsonw_close(b, ']');
		return 0;
	}
	if (!strcmp(name, "callout") || !strcmp(name, "verify_sender")) {
		buf_add(b, "[{\"result\":", 11);
		jsonw_str(b, t[0], strlen(t[0]));
		if (n > 1) {
			buf_add(b, ",\"code\":", 8);
			if (!token_number(b, t[1])) {
				snprintf(err, errlen, "%s answers: RESULT [CODE [TEXT...]]", name);
				return -1;
			}
		}
		if (n > 2) {
			struct buf text = BUF_INIT(0);
			for (int i = 2; i < n; i++) {
				if (i > 2)
					buf_add(&text, " ", 1);
				buf_add(&text, t[i], strlen(t[i]));
			}
			buf_add(b, ",\"text\":", 8);
			jsonw_str(b, buf_str(&text), text.len);
			buf_free(&text);
		}
		buf_add(b, "}]", 2);
		return 0;
	}
	buf_add(b, "[", 1);
	for (int i = 0; i < n; i++) {
		if (i)
			buf_add(b, ",", 1);
		token_value(b, t[i]);
	}
	buf_add(b, "]", 1);
	return 0;
}

int
record_add_answer(struct record *r, const char *spec, int line, char *err, size_t errlen)
{
	char *s = strdup(spec), *arrow, *save = NULL, *name, *x, *tok[64];
	struct buf res = BUF_INIT(0);
	struct json_err je;
	json_t *tree = NULL;
	struct replay_call *c;
	const char **pat;
	int ntok = 0, rc = -1;

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (!(arrow = strstr(s, "->"))) {
		snprintf(err, errlen, "an answer is: NAME [ARGS...] -> RESULTS");
		goto out;
	}
	*arrow = '\0';
	if (!(name = strtok_r(s, " \t", &save))) {
		snprintf(err, errlen, "an answer needs the primitive's name");
		goto out;
	}
	while ((x = strtok_r(NULL, " \t", &save)) != NULL && ntok < 64)
		tok[ntok++] = x;
	if (answer_results(&res, name, !strcmp(name, "dns") && ntok >= 2 ? tok[1] : NULL,
	    arrow + 2, err, errlen) < 0)
		goto out;
	if (res.err) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (!(tree = jsonr_parse(buf_str(&res), res.len, JSON_MAX_DEPTH, &je))) {
		snprintf(err, errlen, "results: %s", je.text);
		goto out;
	}
	if ((!r->answers && !(r->answers = json_array())) || json_array_append(r->answers, tree) < 0 ||
	    !(pat = (const char **)(void *)alloc_(r, (size_t)(ntok + 1) * sizeof *pat + 8)) ||
	    !(c = add_call(r))) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	/* alloc_ hands out bytes: align the pointer array. */
	pat = (const char **)(((uintptr_t)pat + 7) & ~(uintptr_t)7);
	for (int i = 0; i < ntok; i++)
		if (!(pat[i] = dup_(r, tok[i], strlen(tok[i])))) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
	c->name = dup_(r, name, strlen(name));
	c->res = tree;
	c->pattern = pat;
	c->npattern = ntok;
	/* A line asking the same question as an earlier one continues its sequence. */
	for (int i = 0; i < r->ncalls - 1; i++) {
		struct replay_call *o = &r->calls[i];
		int same = !o->args && !strcmp(o->name, c->name) && o->npattern == c->npattern;
		for (int k = 0; same && k < c->npattern; k++)
			same = !strcasecmp(o->pattern[k], c->pattern[k]);
		if (same) {
			c->group = o->group;
			break;
		}
	}
	(void)line;
	rc = 0;
out:
	json_decref(tree);
	buf_free(&res);
	free(s);
	return rc;
}

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

int
record_parse_case(struct record *r, const char *file, const char *text, size_t len,
    char *err, size_t errlen)
{
	char *buf = malloc(len + 1), *line, *next;
	int n = 0, rc = -1;
	const char *base = strrchr(file, '/');

	if (!buf) {
		snprintf(err, errlen, "%s: out of memory", file);
		return -1;
	}
	memcpy(buf, text, len);
	buf[len] = '\0';
	record_reset(r);
	r->is_case = 1;
	r->file = file;
	snprintf(r->sid, sizeof r->sid, "%s", base ? base + 1 : file);
	snprintf(r->client_ip, sizeof r->client_ip, "192.0.2.1");
	r->client_port = 40000;
	snprintf(r->local_ip, sizeof r->local_ip, "127.0.0.1");
	r->local_port = 25;
	for (line = buf; line; line = next) {
		char why[300] = "";
		struct rev *ev;
		char *l, *arg;

		n++;
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		l = trim(line);
		if (!*l)
			continue;
		if (*l == '#') {
			if (!r->title[0] && r->nev == 0)
				snprintf(r->title, sizeof r->title, "%s", trim(l + 1));
			continue;
		}
		if (*l == '>') {
			if (!(ev = add_event(r, RE_CMD)) || !(ev->text = dup_(r, trim(l + 1), strlen(trim(l + 1)))))
				goto oom;
			ev->line = n;
			continue;
		}
		if (*l == '<') {
			char *e;
			long code;
			arg = trim(l + 1);
			code = strtol(arg, &e, 10);
			if (e == arg || code < 200 || code > 599 || (*e && *e != ' ' && *e != '\t')) {
				snprintf(err, errlen, "%s:%d: an expectation is: < CODE [TEXT PREFIX]", file, n);
				goto out;
			}
			if (!(ev = add_event(r, RE_EXPECT)) || !(ev->text = dup_(r, trim(e), strlen(trim(e)))))
				goto oom;
			ev->code = (int)code;
			ev->line = n;
			continue;
		}
		arg = l + strcspn(l, " \t");
		if (*arg)
			*arg++ = '\0';
		arg = trim(arg);
		if (!strcmp(l, "client")) {
			char *port = strpbrk(arg, " \t");
			if (port)
				*port++ = '\0';
			snprintf(r->client_ip, sizeof r->client_ip, "%s", arg);
			if (port)
				r->client_port = atoi(trim(port));
		} else if (!strcmp(l, "local")) {
			char *port = strpbrk(arg, " \t");
			if (port)
				*port++ = '\0';
			snprintf(r->local_ip, sizeof r->local_ip, "%s", arg);
			if (port)
				r->local_port = atoi(trim(port));
		} else if (!strcmp(l, "direction")) {
			if (!strcmp(arg, "inbound"))
				r->direction = DIR_INBOUND;
			else if (!strcmp(arg, "outbound"))
				r->direction = DIR_OUTBOUND;
			else {
				snprintf(err, errlen, "%s:%d: direction is inbound or outbound", file, n);
				goto out;
			}
		} else if (!strcmp(l, "hostname")) {
			snprintf(r->hostname, sizeof r->hostname, "%s", arg);
		} else if (!strcmp(l, "answer")) {
			if (record_add_answer(r, arg, n, why, sizeof why) < 0) {
				snprintf(err, errlen, "%s:%d: %s", file, n, why);
				goto out;
			}
			if (!(ev = add_event(r, RE_CALL)))
				goto oom;
			ev->code = r->ncalls - 1;
			ev->line = n;
		} else if (!strcmp(l, "tls")) {
			char *save = NULL, *v = strtok_r(arg, " \t", &save), *c = strtok_r(NULL, " \t", &save);
			char *peer = save ? trim(save) : NULL;
			if (!v || !c) {
				snprintf(err, errlen, "%s:%d: tls VERSION CIPHER [PEER SUBJECT]", file, n);
				goto out;
			}
			if (!(ev = add_event(r, RE_TLS)) || !(ev->a = dup_(r, v, strlen(v))) ||
			    !(ev->b = dup_(r, c, strlen(c))) || !(ev->c = dup_(r, peer ? peer : "", peer ? strlen(peer) : 0)))
				goto oom;
			ev->line = n;
		} else if (!strcmp(l, "size")) {
			if (!is_number(arg)) {
				snprintf(err, errlen, "%s:%d: size BYTES", file, n);
				goto out;
			}
			if (!(ev = add_event(r, RE_SIZE)))
				goto oom;
			ev->size = atoll(arg);
			ev->line = n;
		} else {
			snprintf(err, errlen, "%s:%d: unknown line \"%s\" (client, direction, local, hostname, "
			    "answer, tls, size, > COMMAND, < CODE TEXT)", file, n, l);
			goto out;
		}
	}
	if (!r->title[0])
		snprintf(r->title, sizeof r->title, "%s", r->sid);
	rc = 0;
	goto out;
oom:
	snprintf(err, errlen, "%s: out of memory", file);
out:
	free(buf);
	return rc;
}
