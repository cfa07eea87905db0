/*
 * record.c - sessions for ruletest: journal lines and hand-written cases.
 *
 * A journal line is parsed in one pass straight into events (no JSON tree):
 * ruletest reads a day of traffic, so this is its hot path after the rules
 * themselves. A primitive's arguments are brought to the canonical form
 * replay.c compares against; its results are kept as JSON text and only
 * become Lua values when a rule asks that question.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "record.h"

#define ABLOCK  65536
#define DEPTH   32

/* ---------------- arena: strings stay put until record_reset ---------------- */

struct ablock {
	struct ablock *next;
	size_t         cap, len;
	char           data[];
};

static char *
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

static const char *
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

static struct rev *
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

static struct replay_call *
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

static enum stage
stage_of(const char *s)
{
	for (int st = 0; st < STAGE_MAX; st++)
		if (!strcmp(s, stage_name((enum stage)st)))
			return (enum stage)st;
	return STAGE_MAX;
}

/* ---------------- JSON ---------------- */

struct jp {
	struct record *r;
	const char    *p, *end, *start;
	const char    *err;
};

/* A growable buffer for canonical forms. */
struct cbuf {
	char  *p;
	size_t n, cap;
	int    err;
};

static void
cput(struct cbuf *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		char *np;
		while (cap < b->n + n + 1)
			cap *= 2;
		if (!(np = realloc(b->p, cap))) {
			b->err = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

/* The journal's (and replay.c's) string escaping. */
static void
cput_string(struct cbuf *b, const char *s, size_t n)
{
	cput(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		size_t run = i;
		while (run < n && (unsigned char)s[run] >= 0x20 && s[run] != '"' && s[run] != '\\' && s[run] != 0x7f)
			run++;
		if (run > i) {
			cput(b, s + i, run - i);
			i = run - 1;
			continue;
		}
		if (c == '"' || c == '\\') {
			char esc[2] = { '\\', (char)c };
			cput(b, esc, 2);
		} else if (c < 0x20 || c == 0x7f) {
			char esc[8];
			snprintf(esc, sizeof esc, "\\u%04x", c);
			cput(b, esc, 6);
		} else
			cput(b, s + i, 1);
	}
	cput(b, "\"", 1);
}

static void
ws(struct jp *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static int
fail(struct jp *j, const char *why)
{
	if (!j->err)
		j->err = why;
	return -1;
}

static void
utf8(struct cbuf *b, unsigned long cp)
{
	char o[4];
	size_t n;

	if (cp < 0x80) {
		o[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		o[0] = (char)(0xf0 | (cp >> 18));
		o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	cput(b, o, n);
}

static int
hex4(const char *p, unsigned long *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		*v <<= 4;
		if (c >= '0' && c <= '9') *v |= (unsigned long)(c - '0');
		else if (c >= 'a' && c <= 'f') *v |= (unsigned long)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F') *v |= (unsigned long)(c - 'A' + 10);
		else return -1;
	}
	return 0;
}

/*
 * A string at j->p, decoded. Without escapes (nearly always) it is copied
 * once into the arena; *out is NUL-terminated, *n its length.
 */
static int
jstring(struct jp *j, const char **out, size_t *n)
{
	const char *s = j->p + 1, *q = s;
	struct cbuf b = { 0 };

	if (j->p >= j->end || *j->p != '"')
		return fail(j, "expected a string");
	while (q < j->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20)
		q++;
	if (q < j->end && *q == '"') {
		*n = (size_t)(q - s);
		if (!(*out = dup_(j->r, s, *n)))
			return fail(j, "out of memory");
		j->p = q + 1;
		return 0;
	}
	j->p = s;
	while (j->p < j->end && *j->p != '"') {
		unsigned char c = (unsigned char)*j->p;
		if (c < 0x20) {
			free(b.p);
			return fail(j, "control character in a string");
		}
		if (c != '\\') {
			const char *run = j->p;
			while (j->p < j->end && *j->p != '"' && *j->p != '\\' && (unsigned char)*j->p >= 0x20)
				j->p++;
			cput(&b, run, (size_t)(j->p - run));
			continue;
		}
		if (++j->p >= j->end)
			break;
		switch (*j->p) {
		case '"': case '\\': case '/': cput(&b, j->p, 1); break;
		case 'b': cput(&b, "\b", 1); break;
		case 'f': cput(&b, "\f", 1); break;
		case 'n': cput(&b, "\n", 1); break;
		case 'r': cput(&b, "\r", 1); break;
		case 't': cput(&b, "\t", 1); break;
		case 'u': {
			unsigned long cp, lo;
			if (j->end - j->p < 5 || hex4(j->p + 1, &cp) < 0) {
				free(b.p);
				return fail(j, "bad \\u escape");
			}
			j->p += 4;
			if (cp >= 0xd800 && cp < 0xdc00 && j->end - j->p >= 7 && j->p[1] == '\\' &&
			    j->p[2] == 'u' && hex4(j->p + 3, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000) {
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				j->p += 6;
			}
			utf8(&b, cp);
			break;
		}
		default:
			free(b.p);
			return fail(j, "bad escape");
		}
		j->p++;
	}
	if (j->p >= j->end) {
		free(b.p);
		return fail(j, "unterminated string");
	}
	j->p++;
	*n = b.n;
	*out = dup_(j->r, b.p ? b.p : "", b.n);
	free(b.p);
	return *out ? 0 : fail(j, "out of memory");
}

static int
jnumber(struct jp *j, double *v)
{
	char buf[64], *e;
	size_t n = 0;

	while (j->p + n < j->end && n < sizeof buf - 1 && strchr("+-0123456789.eE", j->p[n]))
		n++;
	if (!n)
		return fail(j, "unexpected character");
	memcpy(buf, j->p, n);
	buf[n] = '\0';
	*v = strtod(buf, &e);
	if (*e)
		return fail(j, "bad number");
	j->p += n;
	return 0;
}

static int jcanon(struct jp *j, struct cbuf *b, int depth);

/* Skips any value (validating it). */
static int
jskip(struct jp *j, int depth)
{
	ws(j);
	if (j->p >= j->end)
		return fail(j, "unexpected end");
	if (depth > DEPTH)
		return fail(j, "nested too deep");
	switch (*j->p) {
	case '"': {
		j->p++;
		while (j->p < j->end && *j->p != '"') {
			if ((unsigned char)*j->p < 0x20)
				return fail(j, "control character in a string");
			if (*j->p == '\\')
				j->p++;
			j->p++;
		}
		if (j->p >= j->end)
			return fail(j, "unterminated string");
		j->p++;
		return 0;
	}
	case '[': case '{': {
		char close = *j->p == '[' ? ']' : '}';
		int obj = *j->p == '{';
		j->p++;
		ws(j);
		if (j->p < j->end && *j->p == close) {
			j->p++;
			return 0;
		}
		for (;;) {
			if (obj) {
				const char *k;
				size_t kn;
				ws(j);
				/* Keys are short: decoding them is as cheap as skipping. */
				if (jstring(j, &k, &kn) < 0)
					return -1;
				ws(j);
				if (j->p >= j->end || *j->p++ != ':')
					return fail(j, "expected ':'");
			}
			if (jskip(j, depth + 1) < 0)
				return -1;
			ws(j);
			if (j->p < j->end && *j->p == ',') {
				j->p++;
				continue;
			}
			if (j->p < j->end && *j->p == close) {
				j->p++;
				return 0;
			}
			return fail(j, obj ? "expected ',' or '}'" : "expected ',' or ']'");
		}
	}
	case 't':
		if (j->end - j->p >= 4 && !memcmp(j->p, "true", 4)) { j->p += 4; return 0; }
		return fail(j, "unexpected character");
	case 'f':
		if (j->end - j->p >= 5 && !memcmp(j->p, "false", 5)) { j->p += 5; return 0; }
		return fail(j, "unexpected character");
	case 'n':
		if (j->end - j->p >= 4 && !memcmp(j->p, "null", 4)) { j->p += 4; return 0; }
		return fail(j, "unexpected character");
	default: {
		double v;
		return jnumber(j, &v);
	}
	}
}

struct member {
	const char *k;
	size_t      kn;
	char       *v;
	size_t      vn;
};

static int
cmp_member(const void *a, const void *b)
{
	const struct member *x = a, *y = b;
	int c = memcmp(x->k, y->k, x->kn < y->kn ? x->kn : y->kn);

	return c ? c : (x->kn > y->kn) - (x->kn < y->kn);
}

/* Re-emits a value in replay.h's canonical form. */
static int
jcanon(struct jp *j, struct cbuf *b, int depth)
{
	ws(j);
	if (j->p >= j->end)
		return fail(j, "unexpected end");
	if (depth > DEPTH)
		return fail(j, "nested too deep");
	switch (*j->p) {
	case '"': {
		const char *s = j->p + 1, *q = s;
		size_t n;
		/* Plain text is its own canonical form: copied as it stands. */
		while (q < j->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20 && *q != 0x7f)
			q++;
		if (q < j->end && *q == '"') {
			cput(b, j->p, (size_t)(q + 1 - j->p));
			j->p = q + 1;
			return 0;
		}
		if (jstring(j, &s, &n) < 0)
			return -1;
		cput_string(b, s, n);
		return 0;
	}
	case '[': {
		int first = 1;
		j->p++;
		cput(b, "[", 1);
		ws(j);
		if (j->p < j->end && *j->p == ']') {
			j->p++;
			cput(b, "]", 1);
			return 0;
		}
		for (;;) {
			if (!first)
				cput(b, ",", 1);
			first = 0;
			if (jcanon(j, b, depth + 1) < 0)
				return -1;
			ws(j);
			if (j->p < j->end && *j->p == ',') {
				j->p++;
				continue;
			}
			if (j->p < j->end && *j->p == ']') {
				j->p++;
				cput(b, "]", 1);
				return 0;
			}
			return fail(j, "expected ',' or ']'");
		}
	}
	case '{': {
		struct member *m = NULL;
		int n = 0, cap = 0, rc = -1;
		j->p++;
		ws(j);
		if (j->p < j->end && *j->p == '}') {
			j->p++;
			cput(b, "[]", 2);               /* an empty Lua table encodes as [] */
			return 0;
		}
		for (;;) {
			struct cbuf v = { 0 };
			const char *k;
			size_t kn;
			ws(j);
			if (jstring(j, &k, &kn) < 0)
				goto out;
			ws(j);
			if (j->p >= j->end || *j->p++ != ':') {
				fail(j, "expected ':'");
				goto out;
			}
			ws(j);
			if (j->end - j->p >= 4 && !memcmp(j->p, "null", 4)) {
				j->p += 4;                  /* a null member is absent */
			} else {
				if (jcanon(j, &v, depth + 1) < 0) {
					free(v.p);
					goto out;
				}
				if (n == cap) {
					struct member *nm = realloc(m, (size_t)(cap = cap ? cap * 2 : 8) * sizeof *m);
					if (!nm) {
						free(v.p);
						fail(j, "out of memory");
						goto out;
					}
					m = nm;
				}
				m[n++] = (struct member){ k, kn, v.p, v.n };
			}
			ws(j);
			if (j->p < j->end && *j->p == ',') {
				j->p++;
				continue;
			}
			if (j->p < j->end && *j->p == '}') {
				j->p++;
				break;
			}
			fail(j, "expected ',' or '}'");
			goto out;
		}
		if (!n) {
			cput(b, "[]", 2);
			rc = 0;
			goto out;
		}
		qsort(m, (size_t)n, sizeof *m, cmp_member);
		cput(b, "{", 1);
		for (int i = 0; i < n; i++) {
			if (i)
				cput(b, ",", 1);
			cput_string(b, m[i].k, m[i].kn);
			cput(b, ":", 1);
			cput(b, m[i].v ? m[i].v : "", m[i].vn);
		}
		cput(b, "}", 1);
		rc = 0;
out:
		for (int i = 0; i < n; i++)
			free(m[i].v);
		free(m);
		return rc;
	}
	default: {
		/* true, false, null and numbers: as written (the journal wrote them
		 * with the same %lld / %.17g replay.c uses). */
		const char *s = j->p;
		if (jskip(j, depth) < 0)
			return -1;
		cput(b, s, (size_t)(j->p - s));
		return 0;
	}
	}
}

static int
expect(struct jp *j, char c)
{
	ws(j);
	if (j->p >= j->end || *j->p != c) {
		static char why[32];
		snprintf(why, sizeof why, "expected '%c'", c);
		return fail(j, why);
	}
	j->p++;
	return 0;
}

/* Iterates an object's members: 1 with the key, 0 at the end, -1 on error. */
static int
next_member(struct jp *j, int *first, const char **k, size_t *kn)
{
	ws(j);
	if (j->p < j->end && *j->p == '}') {
		j->p++;
		return 0;
	}
	if (!*first) {
		if (expect(j, ',') < 0)
			return -1;
		ws(j);
	}
	*first = 0;
	if (j->p < j->end && *j->p == '"') {
		/* Keys are ours, short and plain: compared where they lie. */
		const char *s = j->p + 1, *q = s;
		while (q < j->end && *q != '"' && *q != '\\' && q - s < 31)
			q++;
		if (q < j->end && *q == '"') {
			static char key[32];
			memcpy(key, s, (size_t)(q - s));
			key[q - s] = '\0';
			*k = key;
			*kn = (size_t)(q - s);
			j->p = q + 1;
			if (expect(j, ':') < 0)
				return -1;
			ws(j);
			return 1;
		}
	}
	if (jstring(j, k, kn) < 0 || expect(j, ':') < 0)
		return -1;
	ws(j);
	return 1;
}

static int
jstr_field(struct jp *j, const char **out)
{
	size_t n;

	if (j->p < j->end && *j->p == 'n')         /* null: absent */
		return jskip(j, 0);
	return jstring(j, out, &n);
}

static int
jcopy_field(struct jp *j, char *dst, size_t room)
{
	const char *s = NULL;

	if (jstr_field(j, &s) < 0)
		return -1;
	snprintf(dst, room, "%s", s ? s : "");
	return 0;
}

static int
jint_field(struct jp *j, long long *out)
{
	double v;

	ws(j);
	if (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
		long long n = 0;
		const char *q = j->p;
		while (q < j->end && *q >= '0' && *q <= '9' && q - j->p < 18)
			n = n * 10 + (*q++ - '0');
		if (q >= j->end || !strchr(".eE0123456789", *q)) {
			*out = n;
			j->p = q;
			return 0;
		}
	}
	if (j->p < j->end && (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'))) {
		if (jnumber(j, &v) < 0)
			return -1;
		*out = (long long)v;
		return 0;
	}
	return jskip(j, 0);
}

static int
endpoint(struct jp *j, char *ip, size_t iplen, int *port)
{
	int first = 1, rc;
	const char *k;
	size_t kn;
	long long n = 0;

	if (expect(j, '{') < 0)
		return -1;
	while ((rc = next_member(j, &first, &k, &kn)) > 0) {
		if (!strcmp(k, "ip"))
			rc = jcopy_field(j, ip, iplen);
		else if (!strcmp(k, "port")) {
			rc = jint_field(j, &n);
			*port = (int)n;
		} else
			rc = jskip(j, 1);
		if (rc < 0)
			return -1;
	}
	return rc;
}

static int
event(struct jp *j)
{
	struct record *r = j->r;
	const char *e = NULL, *line = NULL, *stage = NULL, *qid = NULL, *p = NULL, *action = NULL,
	    *text = NULL, *reason = NULL, *where = NULL, *version = NULL, *cipher = NULL, *peer = NULL;
	const char *args = NULL, *res = NULL, *k;
	size_t args_len = 0, res_len = 0, kn;
	long long code = 0, size = -1;
	int first = 1, rc;
	struct rev *ev;

	if (expect(j, '{') < 0)
		return -1;
	while ((rc = next_member(j, &first, &k, &kn)) > 0) {
		switch (k[0]) {
		case 'a':
			if (!strcmp(k, "action")) { rc = jstr_field(j, &action); break; }
			if (!strcmp(k, "a")) {
				struct cbuf b = { 0 };
				rc = jcanon(j, &b, 1);
				if (rc == 0 && (b.err || !(args = dup_(r, b.p, b.n))))
					rc = fail(j, "out of memory");
				args_len = b.n;
				free(b.p);
				break;
			}
			rc = jskip(j, 1);
			break;
		case 'c':
			if (!strcmp(k, "code")) { rc = jint_field(j, &code); break; }
			if (!strcmp(k, "cipher")) { rc = jstr_field(j, &cipher); break; }
			rc = jskip(j, 1);
			break;
		case 'e':
			if (!strcmp(k, "e")) { rc = jstr_field(j, &e); break; }
			rc = jskip(j, 1);
			break;
		case 'l':
			if (!strcmp(k, "line")) { rc = jstr_field(j, &line); break; }
			rc = jskip(j, 1);
			break;
		case 'p':
			if (!strcmp(k, "p")) { rc = jstr_field(j, &p); break; }
			if (!strcmp(k, "peer")) { rc = jstr_field(j, &peer); break; }
			rc = jskip(j, 1);
			break;
		case 'q':
			if (!strcmp(k, "qid")) { rc = jstr_field(j, &qid); break; }
			rc = jskip(j, 1);
			break;
		case 'r':
			if (!strcmp(k, "r")) {
				const char *s = j->p;
				if ((rc = jskip(j, 1)) == 0) {
					res_len = (size_t)(j->p - s);
					if (!(res = dup_(r, s, res_len)))
						rc = fail(j, "out of memory");
				}
				break;
			}
			if (!strcmp(k, "reason")) { rc = jstr_field(j, &reason); break; }
			rc = jskip(j, 1);
			break;
		case 's':
			if (!strcmp(k, "stage")) { rc = jstr_field(j, &stage); break; }
			if (!strcmp(k, "size")) { rc = jint_field(j, &size); break; }
			rc = jskip(j, 1);
			break;
		case 't':
			if (!strcmp(k, "text")) { rc = jstr_field(j, &text); break; }
			rc = jskip(j, 1);
			break;
		case 'v':
			if (!strcmp(k, "version")) { rc = jstr_field(j, &version); break; }
			rc = jskip(j, 1);
			break;
		case 'w':
			if (!strcmp(k, "where")) { rc = jstr_field(j, &where); break; }
			rc = jskip(j, 1);
			break;
		default:
			rc = jskip(j, 1);
		}
		if (rc < 0)
			return -1;
	}
	if (rc < 0)
		return -1;
	if (!e)
		return fail(j, "an event without \"e\"");
	if (!strcmp(e, "cmd")) {
		if (!(ev = add_event(r, RE_CMD)))
			return fail(j, "out of memory");
		ev->text = line ? line : "";
	} else if (!strcmp(e, "hook")) {
		if (!(ev = add_event(r, RE_HOOK)))
			return fail(j, "out of memory");
		ev->stage = stage ? stage_of(stage) : STAGE_MAX;
		ev->size = size;
		ev->a = qid;
	} else if (!strcmp(e, "call")) {
		struct replay_call *c;
		if (!p || !args || !res)
			return fail(j, "a call without \"p\", \"a\" or \"r\"");
		if (!(ev = add_event(r, RE_CALL)) || !(c = add_call(r)))
			return fail(j, "out of memory");
		c->name = p;
		c->args = args;
		c->args_len = args_len;
		c->res = res;
		c->res_len = res_len;
		ev->code = r->ncalls - 1;
	} else if (!strcmp(e, "verdict")) {
		if (!(ev = add_event(r, RE_VERDICT)))
			return fail(j, "out of memory");
		ev->stage = stage ? stage_of(stage) : STAGE_MAX;
		ev->code = (int)code;
		ev->a = action ? action : "none";
		ev->b = reason ? reason : "";
		ev->c = where ? where : "";
		ev->text = text ? text : "";
	} else if (!strcmp(e, "tls")) {
		if (!(ev = add_event(r, RE_TLS)))
			return fail(j, "out of memory");
		ev->a = version ? version : "";
		ev->b = cipher ? cipher : "";
		ev->c = peer ? peer : "";
	} else if (!strcmp(e, "reply")) {
		if (!(ev = add_event(r, RE_REPLY)))
			return fail(j, "out of memory");
		ev->code = (int)code;
		ev->text = text ? text : "";
	}
	/* Unknown kinds of event (a later journal version): ignored. */
	return 0;
}

int
record_parse_json(struct record *r, const char *line, size_t len, char *err, size_t errlen)
{
	struct jp j = { r, line, line + len, line, NULL };
	int first = 1, rc, have_events = 0;
	const char *k;
	size_t kn;

	record_reset(r);
	if (expect(&j, '{') < 0)
		goto bad;
	while ((rc = next_member(&j, &first, &k, &kn)) > 0) {
		if (!strcmp(k, "sid"))
			rc = jcopy_field(&j, r->sid, sizeof r->sid);
		else if (!strcmp(k, "time")) {
			if (j.p < j.end && *j.p != 'n')
				rc = jnumber(&j, &r->time);
			else
				rc = jskip(&j, 0);
		} else if (!strcmp(k, "direction")) {
			char d[16];
			if ((rc = jcopy_field(&j, d, sizeof d)) == 0)
				r->direction = strcmp(d, "outbound") == 0 ? DIR_OUTBOUND : DIR_INBOUND;
		} else if (!strcmp(k, "client"))
			rc = endpoint(&j, r->client_ip, sizeof r->client_ip, &r->client_port);
		else if (!strcmp(k, "local"))
			rc = endpoint(&j, r->local_ip, sizeof r->local_ip, &r->local_port);
		else if (!strcmp(k, "hostname"))
			rc = jcopy_field(&j, r->hostname, sizeof r->hostname);
		else if (!strcmp(k, "truncated")) {
			r->truncated = j.end - j.p >= 4 && !memcmp(j.p, "true", 4);
			rc = jskip(&j, 0);
		} else if (!strcmp(k, "events")) {
			int efirst = 1;
			have_events = 1;
			if ((rc = expect(&j, '[')) < 0)
				break;
			for (;;) {
				ws(&j);
				if (j.p < j.end && *j.p == ']') {
					j.p++;
					break;
				}
				if (!efirst && (rc = expect(&j, ',')) < 0)
					break;
				efirst = 0;
				if ((rc = event(&j)) < 0)
					break;
			}
		} else
			rc = jskip(&j, 0);
		if (rc < 0)
			break;
	}
	if (rc < 0 || j.err)
		goto bad;
	ws(&j);
	if (j.p != j.end) {
		fail(&j, "trailing characters");
		goto bad;
	}
	if (!have_events || !r->client_ip[0]) {
		fail(&j, "not a session record (no \"client\" or \"events\")");
		goto bad;
	}
	return 0;
bad:
	if (j.p >= j.end && (!j.err || !strcmp(j.err, "unexpected end") || !strcmp(j.err, "unterminated string") ||
	    !strncmp(j.err, "expected", 8)))
		snprintf(err, errlen, "truncated line (ends after %zu bytes)", len);
	else
		snprintf(err, errlen, "not a session record: offset %d: %s", (int)(j.p - line),
		    j.err ? j.err : "bad JSON");
	return -1;
}

/* ---------------- hand-written cases ---------------- */

static int
is_number(const char *s)
{
	char *e;

	if (!*s)
		return 0;
	strtod(s, &e);
	return *e == '\0';
}

/* A token as a JSON value: numbers, true/false, nil, or a string. */
static void
token_value(struct cbuf *b, const char *t)
{
	if (is_number(t) || !strcmp(t, "true") || !strcmp(t, "false"))
		cput(b, t, strlen(t));
	else if (!strcmp(t, "nil") || !strcmp(t, "null"))
		cput(b, "null", 4);
	else
		cput_string(b, t, strlen(t));
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
answer_results(struct cbuf *b, const char *name, const char *type, char *rhs, char *err, size_t errlen)
{
	char *t[64], *save = NULL;
	int n = 0;

	while (*rhs == ' ' || *rhs == '\t')
		rhs++;
	if (*rhs == '[') {
		struct record tmp = { 0 };
		struct jp j = { &tmp, rhs, rhs + strlen(rhs), rhs, NULL };
		int rc = jskip(&j, 0);
		ws(&j);
		record_free(&tmp);
		if (rc < 0 || j.p != j.end) {
			snprintf(err, errlen, "results: not a JSON array (%s)", j.err ? j.err : "trailing text");
			return -1;
		}
		cput(b, rhs, strlen(rhs));
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
				cput(b, "[null,", 6);
				cput_string(b, status[i], strlen(status[i]));
				cput(b, "]", 1);
				return 0;
			}
		cput(b, "[[", 2);
		if (type && !strcasecmp(type, "mx")) {
			if (n % 2) {
				snprintf(err, errlen, "dns mx answers are PREF HOST pairs");
				return -1;
			}
			for (int i = 0; i < n; i += 2) {
				if (i)
					cput(b, ",", 1);
				cput(b, "{\"host\":", 8);
				cput_string(b, t[i + 1], strlen(t[i + 1]));
				cput(b, ",\"pref\":", 8);
				cput(b, t[i], strlen(t[i]));
				cput(b, "}", 1);
			}
		} else
			for (int i = 0; i < n; i++) {
				if (i)
					cput(b, ",", 1);
				cput_string(b, t[i], strlen(t[i]));
			}
		cput(b, "],\"ok\"]", 7);
		return 0;
	}
	if (!strcmp(name, "greylist")) {
		int pass = !strcmp(t[0], "pass");
		char tmp[160];
		if (!pass && strcmp(t[0], "defer") != 0) {
			snprintf(err, errlen, "greylist answers: pass [allowed|retry] or defer [new|early] [WAIT]");
			return -1;
		}
		snprintf(tmp, sizeof tmp, "[{\"pass\":%s,\"verdict\":\"%s\",\"wait\":%s}]",
		    pass ? "true" : "false", n > 1 ? t[1] : pass ? "allowed" : "new",
		    n > 2 && is_number(t[2]) ? t[2] : pass ? "0" : "60");
		cput(b, tmp, strlen(tmp));
		return 0;
	}
	if (!strcmp(name, "ratelimit")) {
		char tmp[160];
		if (!strcmp(t[0], "error")) {
			cput(b, "[null,", 6);
			cput_string(b, n > 1 ? t[1] : "error", strlen(n > 1 ? t[1] : "error"));
			cput(b, "]", 1);
			return 0;
		}
		if (strcmp(t[0], "over") && strcmp(t[0], "under") && strcmp(t[0], "ok")) {
			snprintf(err, errlen, "ratelimit answers: over [RATE], under [RATE] or error WHY");
			return -1;
		}
		snprintf(tmp, sizeof tmp, "[{\"over\":%s,\"rate\":%s}]", !strcmp(t[0], "over") ? "true" : "false",
		    n > 1 && is_number(t[1]) ? t[1] : "0");
		cput(b, tmp, strlen(tmp));
		return 0;
	}
	if (!strcmp(name, "callout") || !strcmp(name, "verify_sender")) {
		cput(b, "[{\"result\":", 11);
		cput_string(b, t[0], strlen(t[0]));
		if (n > 1) {
			if (!is_number(t[1])) {
				snprintf(err, errlen, "%s answers: RESULT [CODE [TEXT...]]", name);
				return -1;
			}
			cput(b, ",\"code\":", 8);
			cput(b, t[1], strlen(t[1]));
		}
		if (n > 2) {
			struct cbuf text = { 0 };
			for (int i = 2; i < n; i++) {
				if (i > 2)
					cput(&text, " ", 1);
				cput(&text, t[i], strlen(t[i]));
			}
			cput(b, ",\"text\":", 8);
			cput_string(b, text.p, text.n);
			free(text.p);
		}
		cput(b, "}]", 2);
		return 0;
	}
	cput(b, "[", 1);
	for (int i = 0; i < n; i++) {
		if (i)
			cput(b, ",", 1);
		token_value(b, t[i]);
	}
	cput(b, "]", 1);
	return 0;
}

int
record_add_answer(struct record *r, const char *spec, int line, char *err, size_t errlen)
{
	char *s = strdup(spec), *arrow, *save = NULL, *name, *x, *tok[64];
	struct cbuf res = { 0 };
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
	if (res.err || !(pat = (const char **)(void *)alloc_(r, (size_t)(ntok + 1) * sizeof *pat + 8)) ||
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
	c->res = dup_(r, res.p, res.n);
	c->res_len = res.n;
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
	free(res.p);
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
