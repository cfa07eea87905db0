/*
 * record_journal.c - one journal line (journal.h, v1) into a record.
 *
 * The line is read as a stream by Debian's libyajl: its callbacks fill the
 * record as the bytes go by, and only a call's "a" and "r" become JSON
 * values (jansson's, in json.c's arena), because replay.c and borrow.c
 * work on those. Why not jansson's tree, as every other reader here: it
 * lexes at ~140 instructions a byte and builds a hash table per object,
 * and ruletest reads a million lines of thirty objects each to keep a few
 * fields of every one; on the replay bench's journal yajl's lexer reads a
 * line in 12 us against jansson's 72 (same run), and the tree is never
 * built.
 *
 * What it accepts is what the tree reader accepted, with the same errors
 * and the same precedence (the JSON first, then the record's shape, then
 * the first bad event): strict UTF-8, integers beyond 64 bits and reals
 * beyond a double refused, nothing after the value, values nested deeper
 * than RECORD_DEPTH refused, the last of duplicate keys wins. One
 * difference: yajl reads a lone UTF-16 surrogate escape as "?" where
 * jansson refused the line; our writer never writes one.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "record.h"
#include "record_priv.h"
#include "strcopy.h"

/* What the container at each depth is, for the record. */
enum ctx {
	C_TOP,          /* outside the line's value */
	C_ROOT,         /* the session object */
	C_CLIENT, C_LOCAL,
	C_EVENTS,       /* the events array */
	C_EVENT,        /* one event object */
	C_BUILD,        /* inside a call's "a" or "r": a JSON value being built */
	C_SKIP,         /* a value nobody reads */
};

/* The keys the record reads, at any level; K_OTHER for the rest. */
enum key {
	K_OTHER,
	/* the session */
	K_SID, K_TIME, K_DIRECTION, K_CLIENT, K_LOCAL, K_HOSTNAME, K_TRUNCATED, K_EVENTS,
	/* an endpoint */
	K_IP, K_PORT,
	/* an event */
	K_E, K_STAGE, K_QID, K_ACTION, K_REASON, K_WHERE, K_TEXT, K_TEXT_HEX, K_ROUTE,
	K_VERSION, K_CIPHER, K_PEER, K_P, K_A, K_R, K_T, K_LINE, K_LINE_HEX,
	K_HEADERS, K_HEADERS_HEX, K_HEADERS_CUT, K_CODE, K_SIZE,
	K_MAX
};

/* A scalar as the record keeps it. */
struct val {
	enum { V_STR, V_INT, V_REAL, V_TRUE, V_FALSE, V_NULL } t;
	const char *s;                /* V_STR: in the record's arena */
	size_t      n;
	long long   i;
	double      d;
};

struct rd {
	struct record *r;
	yajl_handle    h;
	int            depth;                 /* containers open; the root is 1 */
	enum ctx       ctx[RECORD_DEPTH + 2];
	enum key       key;                   /* the key whose value comes next */
	const char    *why;                   /* the parse was cancelled: why */
	/* the session's shape */
	int            root_map, events_ok;
	/* the event being read: fields[k] valid when bit k of has is set */
	struct val     f[K_MAX];
	unsigned long long has;
	json_t        *a, *res;
	int            nevent;                /* events begun, for error messages */
	char           event_why[160];        /* the first bad event, reported last */
	/* a call's "a" or "r" being built */
	json_t        *bstack[RECORD_DEPTH + 2];
	int            bn;
	json_t       **btarget;
	char          *bkey;
	size_t         bkeylen, bkeycap;
	struct buf     canon;
};

/* The key's enum: by length first, one comparison after (a line has ~150 keys). */
static enum key
key_of(const unsigned char *s, size_t n)
{
#define IS(name, k) if (!memcmp(s, name, n)) return k
	switch (n) {
	case 1:
		switch (s[0]) {
		case 'e': return K_E;
		case 'a': return K_A;
		case 'r': return K_R;
		case 'p': return K_P;
		case 't': return K_T;
		}
		break;
	case 2: IS("ip", K_IP); break;
	case 3: IS("qid", K_QID); IS("sid", K_SID); break;
	case 4:
		IS("text", K_TEXT); IS("code", K_CODE); IS("line", K_LINE); IS("size", K_SIZE);
		IS("time", K_TIME); IS("peer", K_PEER); IS("port", K_PORT);
		break;
	case 5: IS("stage", K_STAGE); IS("where", K_WHERE); IS("route", K_ROUTE); IS("local", K_LOCAL); break;
	case 6: IS("action", K_ACTION); IS("reason", K_REASON); IS("cipher", K_CIPHER); IS("client", K_CLIENT);
		IS("events", K_EVENTS); break;
	case 7: IS("version", K_VERSION); IS("headers", K_HEADERS); break;
	case 8: IS("text_hex", K_TEXT_HEX); IS("line_hex", K_LINE_HEX); IS("hostname", K_HOSTNAME); break;
	case 9: IS("direction", K_DIRECTION); IS("truncated", K_TRUNCATED); break;
	case 11: IS("headers_hex", K_HEADERS_HEX); IS("headers_cut", K_HEADERS_CUT); break;
	}
	return K_OTHER;
#undef IS
}

static int
cancel(struct rd *d, const char *why)
{
	if (!d->why)
		d->why = why;
	return 0;
}

static void
bad_event(struct rd *d, const char *why)
{
	if (!d->event_why[0])
		snprintf(d->event_why, sizeof d->event_why, "event %d: %s", d->nevent, why);
}

/* ---------------- a call's arguments and results, as JSON values ---------------- */

/* Puts v where the value being built goes next; 0 when out of memory. */
static int
attach(struct rd *d, json_t *v)
{
	json_t *top;

	if (!v)
		return 0;
	if (!d->bn) {
		json_decref(*d->btarget);
		*d->btarget = v;
		return 1;
	}
	top = d->bstack[d->bn - 1];
	if (json_is_array(top))
		return json_array_append_new(top, v) == 0;
	return json_object_setn_new(top, d->bkey ? d->bkey : "", d->bkeylen, v) == 0;
}

static json_t *
json_of(const struct val *v)
{
	switch (v->t) {
	case V_STR:   return json_stringn_nocheck(v->s, v->n);
	case V_INT:   return json_integer(v->i);
	case V_REAL:  return json_real(v->d);
	case V_TRUE:  return json_true();
	case V_FALSE: return json_false();
	default:      return json_null();
	}
}

/* ---------------- one event, once its object closes ---------------- */

static const char *
str(struct rd *d, enum key k)
{
	return (d->has >> k & 1) && d->f[k].t == V_STR ? d->f[k].s : NULL;
}

/* A number as an integer; dflt when it is none or no integer holds it
 * (converting such a double is undefined behaviour). */
static long long
integer(const struct val *v, long long dflt)
{
	if (v->t == V_INT)
		return v->i;
	if (v->t == V_REAL && v->d > -9.2e18 && v->d < 9.2e18)
		return (long long)v->d;
	return dflt;
}

static long long
num(struct rd *d, enum key k, long long dflt)
{
	return d->has >> k & 1 ? integer(&d->f[k], dflt) : dflt;
}

/* A reply code, a port: an int, 0 when out of range. */
static int
small(long long v, long long max)
{
	return v >= 0 && v <= max ? (int)v : 0;
}

static int
is_true(struct rd *d, enum key k)
{
	return (d->has >> k & 1) && d->f[k].t == V_TRUE;
}

/* A text the journal may have kept exactly in KEY_hex (journal.h). */
static const char *
text(struct rd *d, enum key k, enum key khex)
{
	const char *hex = str(d, khex);
	size_t n;
	char *out;

	if (!hex)
		return str(d, k);
	n = d->f[khex].n;
	if (!(out = alloc_(d->r, n / 2 + 1)) || json_unhex(hex, n, out) < 0)
		return str(d, k);
	out[n / 2] = '\0';
	return out;
}

static const char *
finish_event(struct rd *d)
{
	struct record *r = d->r;
	const char *e = str(d, K_E), *s;
	struct rev *ev;

	if (!e)
		return "an event without \"e\"";
	if (!strcmp(e, "cmd")) {
		const char *line = text(d, K_LINE, K_LINE_HEX);
		if (!(ev = add_event(r, RE_CMD)))
			return "out of memory";
		ev->text = line ? line : "";
	} else if (!strcmp(e, "hook")) {
		if (!(ev = add_event(r, RE_HOOK)))
			return "out of memory";
		ev->stage = (s = str(d, K_STAGE)) ? stage_of(s) : STAGE_MAX;
		ev->size = num(d, K_SIZE, -1);
		ev->a = str(d, K_QID);
		ev->text = text(d, K_HEADERS, K_HEADERS_HEX);    /* NULL: not recorded */
		ev->b = is_true(d, K_HEADERS_CUT) ? "cut" : NULL;
	} else if (!strcmp(e, "call")) {
		struct replay_call *c;
		const char *p = str(d, K_P);
		if (!p || !d->a || !d->res)
			return "a call without \"p\", \"a\" or \"r\"";
		/* The question in replay.h's canonical form, as replay.c asks it. */
		buf_reset(&d->canon);
		if (jsonw_canonical(&d->canon, d->a) < 0)
			return d->canon.err == BUF_NOMEM ? "out of memory" : "a call's arguments nested too deep";
		if (!(ev = add_event(r, RE_CALL)) || !(c = add_call(r)) ||
		    !(c->args = dup_(r, buf_str(&d->canon), d->canon.len)))
			return "out of memory";
		c->args_len = d->canon.len;
		c->name = p;
		c->res = d->res;
		/* seconds into the session when it was asked (older journals: -1) */
		c->t = (d->has >> K_T & 1) && d->f[K_T].t == V_INT ? (double)d->f[K_T].i :
		    (d->has >> K_T & 1) && d->f[K_T].t == V_REAL ? d->f[K_T].d : -1;
		ev->code = r->ncalls - 1;
	} else if (!strcmp(e, "verdict")) {
		const char *action = str(d, K_ACTION), *reason = str(d, K_REASON), *where = str(d, K_WHERE),
		    *txt = str(d, K_TEXT);
		if (!(ev = add_event(r, RE_VERDICT)))
			return "out of memory";
		ev->stage = (s = str(d, K_STAGE)) ? stage_of(s) : STAGE_MAX;
		ev->code = small(num(d, K_CODE, 0), 999);
		ev->a = action ? action : "none";
		ev->b = reason ? reason : "";
		ev->c = where ? where : "";
		ev->text = txt ? txt : "";
		ev->route = str(d, K_ROUTE);
	} else if (!strcmp(e, "tls")) {
		const char *version = str(d, K_VERSION), *cipher = str(d, K_CIPHER), *peer = str(d, K_PEER);
		if (!(ev = add_event(r, RE_TLS)))
			return "out of memory";
		ev->a = version ? version : "";
		ev->b = cipher ? cipher : "";
		ev->c = peer ? peer : "";
	} else if (!strcmp(e, "reply")) {
		const char *txt = text(d, K_TEXT, K_TEXT_HEX);
		if (!(ev = add_event(r, RE_REPLY)))
			return "out of memory";
		ev->code = small(num(d, K_CODE, 0), 999);
		ev->text = txt ? txt : "";
	}
	/* Unknown kinds of event (a later journal version): ignored. */
	return NULL;
}

/* ---------------- the stream's callbacks ---------------- */

static void
copy_to(char *dst, size_t room, const struct val *v)
{
	str_ncopy(dst, room, v->t == V_STR ? v->s : "", v->t == V_STR ? v->n : 0);
}

/* A scalar where the stream is now. */
static int
scalar(struct rd *d, struct val *v)
{
	struct record *r = d->r;

	switch (d->ctx[d->depth]) {
	case C_ROOT:
		switch (d->key) {
		case K_SID:       copy_to(r->sid, sizeof r->sid, v); break;
		case K_HOSTNAME:  copy_to(r->hostname, sizeof r->hostname, v); break;
		case K_TIME:      r->time = v->t == V_INT ? (double)v->i : v->t == V_REAL ? v->d : 0; break;
		case K_DIRECTION:
			r->direction = v->t == V_STR && v->n == 8 && !memcmp(v->s, "outbound", 8) ? DIR_OUTBOUND : DIR_INBOUND;
			break;
		case K_TRUNCATED: r->truncated = v->t == V_TRUE; break;
		case K_CLIENT:    r->client_ip[0] = '\0'; r->client_port = 0; break;
		case K_LOCAL:     r->local_ip[0] = '\0'; r->local_port = 0; break;
		case K_EVENTS:    d->events_ok = 0; break;
		default:          break;
		}
		break;
	case C_CLIENT:
	case C_LOCAL: {
		int client = d->ctx[d->depth] == C_CLIENT;
		if (d->key == K_IP) {
			if (client)
				copy_to(r->client_ip, sizeof r->client_ip, v);
			else
				copy_to(r->local_ip, sizeof r->local_ip, v);
		} else if (d->key == K_PORT) {
			*(client ? &r->client_port : &r->local_port) = small(integer(v, 0), 65535);
		}
		break;
	}
	case C_EVENTS:
		d->nevent++;
		bad_event(d, "an event that is not an object");
		break;
	case C_EVENT:
		if (d->key == K_A || d->key == K_R) {
			json_t **t = d->key == K_A ? &d->a : &d->res;
			json_decref(*t);
			if (!(*t = json_of(v)))
				return cancel(d, "out of memory");
		} else if (d->key != K_OTHER) {
			d->f[d->key] = *v;
			d->has |= 1ULL << d->key;
		}
		break;
	case C_BUILD:
		if (!attach(d, json_of(v)))
			return cancel(d, "out of memory");
		break;
	case C_TOP:
		d->root_map = 0;
		break;
	case C_SKIP:
		break;
	}
	return 1;
}

static int
on_null(void *ctx)
{
	struct val v = { .t = V_NULL };
	return scalar(ctx, &v);
}

static int
on_bool(void *ctx, int b)
{
	struct val v = { .t = b ? V_TRUE : V_FALSE };
	return scalar(ctx, &v);
}

static int
on_number(void *ctx, const char *s, size_t n)
{
	struct rd *d = ctx;
	struct val v = { .t = V_INT };
	char small_[64], *tmp = small_, *end;
	int real;

	/* Only C_SKIP values go unread; the rest are converted as jansson would. */
	if (d->ctx[d->depth] == C_SKIP)
		return 1;
	real = memchr(s, '.', n) || memchr(s, 'e', n) || memchr(s, 'E', n);
	if (!real && n > 20)
		return cancel(d, "too big integer");
	/* A real may be written with any number of digits (yajl checked its syntax). */
	if (n >= sizeof small_ && !(tmp = malloc(n + 1)))
		return cancel(d, "out of memory");
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	errno = 0;
	if (real) {
		v.t = V_REAL;
		v.d = strtod(tmp, &end);
	} else
		v.i = strtoll(tmp, &end, 10);
	if (tmp != small_)
		free(tmp);
	if (errno == ERANGE && (!real || fabs(v.d) > 1))    /* an underflow reads as 0, as jansson's */
		return cancel(d, real ? "real number overflow" : "too big integer");
	return scalar(d, &v);
}

static int
on_string(void *ctx, const unsigned char *s, size_t n)
{
	struct rd *d = ctx;
	struct val v = { .t = V_STR, .s = (const char *)s, .n = n };

	switch (d->ctx[d->depth]) {
	case C_SKIP:
		return 1;
	case C_BUILD:
		return attach(d, json_stringn_nocheck((const char *)s, n)) ? 1 : cancel(d, "out of memory");
	case C_EVENT:
		/* The event's strings outlive the callback: the record keeps them. */
		if (d->key == K_OTHER || d->key == K_A || d->key == K_R)
			break;
		if (!(v.s = dup_(d->r, (const char *)s, n)))
			return cancel(d, "out of memory");
		break;
	default:
		break;          /* copied out by scalar() */
	}
	return scalar(d, &v);
}

static int
on_key(void *ctx, const unsigned char *s, size_t n)
{
	struct rd *d = ctx;

	switch (d->ctx[d->depth]) {
	case C_ROOT:
	case C_CLIENT:
	case C_LOCAL:
	case C_EVENT:
		d->key = n ? key_of(s, n) : K_OTHER;
		break;
	case C_BUILD:
		if (n + 1 > d->bkeycap) {
			char *nk = realloc(d->bkey, n + 1);
			if (!nk)
				return cancel(d, "out of memory");
			d->bkey = nk;
			d->bkeycap = n + 1;
		}
		memcpy(d->bkey, s, n);
		d->bkey[n] = '\0';
		d->bkeylen = n;
		break;
	default:
		break;
	}
	return 1;
}

/* A container opens: what it is for the record. */
static int
open_(struct rd *d, int map)
{
	struct record *r = d->r;
	enum ctx parent = d->ctx[d->depth], c = C_SKIP;

	if (d->depth + 1 > RECORD_DEPTH)
		return cancel(d, "nested too deep");
	switch (parent) {
	case C_TOP:
		d->root_map = map;
		c = map ? C_ROOT : C_SKIP;
		break;
	case C_ROOT:
		if (d->key == K_CLIENT || d->key == K_LOCAL) {
			char *ip = d->key == K_CLIENT ? r->client_ip : r->local_ip;
			int *port = d->key == K_CLIENT ? &r->client_port : &r->local_port;
			*ip = '\0';         /* the last "client" wins, whatever it is */
			*port = 0;
			if (map)
				c = d->key == K_CLIENT ? C_CLIENT : C_LOCAL;
		} else if (d->key == K_EVENTS) {
			/* The last "events" wins: a session has one list. */
			d->events_ok = !map;
			r->nev = r->ncalls = 0;
			d->nevent = 0;
			d->event_why[0] = '\0';
			if (!map)
				c = C_EVENTS;
		}
		break;
	case C_EVENTS:
		d->nevent++;
		if (map) {
			c = C_EVENT;
			d->has = 0;
			d->a = d->res = NULL;
		} else {
			bad_event(d, "an event that is not an object");
		}
		break;
	case C_EVENT:
		if (d->key == K_A || d->key == K_R) {
			d->btarget = d->key == K_A ? &d->a : &d->res;
			d->bn = 0;
			c = C_BUILD;
		}
		break;
	case C_BUILD:
		c = C_BUILD;
		break;
	default:
		break;
	}
	if (c == C_BUILD) {
		json_t *v = map ? json_object() : json_array();
		if (!attach(d, v))
			return cancel(d, "out of memory");
		d->bstack[d->bn++] = v;
	}
	d->ctx[++d->depth] = c;
	return 1;
}

static int
close_(struct rd *d)
{
	const char *why;

	switch (d->ctx[d->depth]) {
	case C_EVENT:
		if ((why = finish_event(d)) != NULL) {
			if (!strcmp(why, "out of memory"))
				return cancel(d, why);
			bad_event(d, why);
		}
		break;
	case C_BUILD:
		d->bn--;
		break;
	default:
		break;
	}
	d->depth--;
	return 1;
}

static int on_start_map(void *ctx) { return open_(ctx, 1); }
static int on_start_array(void *ctx) { return open_(ctx, 0); }
static int on_end(void *ctx) { return close_(ctx); }

static const yajl_callbacks callbacks = {
	.yajl_null = on_null,
	.yajl_boolean = on_bool,
	.yajl_number = on_number,
	.yajl_string = on_string,
	.yajl_start_map = on_start_map,
	.yajl_map_key = on_key,
	.yajl_end_map = on_end,
	.yajl_start_array = on_start_array,
	.yajl_end_array = on_end,
};

int
record_parse_json(struct record *r, const char *line, size_t len, char *err, size_t errlen)
{
	struct rd d = { .r = r, .canon = BUF_INIT(0) };
	yajl_status st;
	int rc = -1;

	record_reset(r);
	if (!(d.h = yajl_alloc(&callbacks, NULL, &d))) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* The results' values live in json.c's arena, dropped by record_reset. */
	jsonr_arena_enter();
	st = yajl_parse(d.h, (const unsigned char *)line, len);
	if (st == yajl_status_ok && yajl_complete_parse(d.h) != yajl_status_ok)
		snprintf(err, errlen, "truncated line (ends after %zu bytes)", len);
	else if (st != yajl_status_ok && d.why)
		snprintf(err, errlen, "not a session record: offset %zu: %s", yajl_get_bytes_consumed(d.h), d.why);
	else if (st != yajl_status_ok) {
		unsigned char *msg = yajl_get_error(d.h, 0, NULL, 0);
		char *nl;
		if (msg && (nl = strchr((char *)msg, '\n')))
			*nl = '\0';
		snprintf(err, errlen, "not a session record: offset %zu: %s", yajl_get_bytes_consumed(d.h),
		    msg ? (char *)msg : "not JSON");
		yajl_free_error(d.h, msg);
	} else if (!d.root_map || !d.events_ok || !r->client_ip[0])
		snprintf(err, errlen, "not a session record (no \"client\" or \"events\")");
	else if (d.event_why[0])
		snprintf(err, errlen, "not a session record: %s", d.event_why);
	else
		rc = 0;
	jsonr_arena_leave();
	yajl_free(d.h);
	buf_free(&d.canon);
	free(d.bkey);
	return rc;
}
