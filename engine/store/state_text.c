/*
 * state_text.c - keys and text formats shared by the state backends
 * (state_text.h): client networks, sender normalisation (case, <>, BATV,
 * SRS), bounded keys, and the operators' "expires=... since=..." values.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "state_text.h"

#define STATE_WORK_MAX     1024  /* sender decoding buffer: RFC 5321 paths are 256 */

static const char *const db_names[STATE_NDB] = {
	[STATE_GREYLIST] = "greylist", [STATE_ALLOW] = "allow",
	[STATE_RATELIMIT] = "ratelimit", [STATE_CALLOUT] = "callout",
};

/* ---- keys --------------------------------------------------------------- */

static int fold(int c, int lower)
{
	return lower ? tolower(c) : c;
}

/*
 * Copies s (lowercased if asked) into out[max + 1]. Text longer than max
 * keeps its head and ends in "#" and a hash of the whole, so that two
 * long keys stay apart without ever exceeding LMDB's key size.
 */
static void bound_copy(char *out, size_t max, const char *s, size_t n, int lower)
{
	size_t keep = n <= max ? n : max - 17;
	for (size_t i = 0; i < keep; i++)
		out[i] = (char)fold((unsigned char)s[i], lower);
	if (keep < n) {
		uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
		for (size_t i = 0; i < n; i++)
			h = (h ^ (unsigned char)fold((unsigned char)s[i], lower)) * 0x100000001b3ULL;
		snprintf(out + keep, 18, "#%016llx", (unsigned long long)h);
		keep += 17;
	}
	out[keep] = '\0';
}

static void bound_lower(char *out, size_t max, const char *s, size_t n)
{
	bound_copy(out, max, s, n, 1);
}

/*
 * "192.0.2.77" -> exact "192.0.2.77" and, keyed by /24, net "192.0.2.0/24".
 * IPv4-mapped IPv6 counts as IPv4. Something that is not an address (a
 * local injection's "unix") keys as its own lowercased text. A prefix out
 * of range (0 included) means the exact address.
 */
static void ip_keys(const char *ip, int v4p, int v6p, char *exact, char *net)
{
	unsigned char a[16];
	char buf[STATE_IP_MAX];
	int af = AF_INET, bits = 32, prefix = v4p;
	size_t n = strlen(ip);

	if (n >= sizeof buf) {
		bound_lower(exact, STATE_IP_MAX - 1, ip, n);
		strcpy(net, exact);
		return;
	}
	memcpy(buf, ip, n + 1);
	if (inet_pton(AF_INET, buf, a) != 1) {
		af = AF_INET6, bits = 128, prefix = v6p;
		if (inet_pton(AF_INET6, buf, a) != 1) {
			bound_lower(exact, STATE_IP_MAX - 1, ip, n);
			strcpy(net, exact);
			return;
		}
		static const unsigned char mapped[12] = { [10] = 0xff, [11] = 0xff };
		if (memcmp(a, mapped, 12) == 0) {
			memmove(a, a + 12, 4);
			af = AF_INET, bits = 32, prefix = v4p;
		}
	}
	inet_ntop(af, a, exact, STATE_IP_MAX);
	if (prefix <= 0 || prefix >= bits) {
		strcpy(net, exact);
		return;
	}
	for (int i = 0; i < bits / 8; i++) {
		int keep = prefix - i * 8;
		a[i] &= keep >= 8 ? 0xff : keep <= 0 ? 0 : (unsigned char)(0xff << (8 - keep));
	}
	char text[INET6_ADDRSTRLEN];
	inet_ntop(af, a, text, sizeof text);
	snprintf(net, STATE_IP_MAX, "%s/%d", text, prefix);
}

/*
 * An operator's allow key ("2001:DB8::1", "192.0.2.9/24") in the form
 * state_greylist() writes, so that get/add/del find the same record.
 */
static void allow_key(const char *in, char *out)
{
	char ip[STATE_IP_MAX], exact[STATE_IP_MAX], net[STATE_IP_MAX];
	const char *slash = strchr(in, '/');
	size_t n = slash ? (size_t)(slash - in) : strlen(in);
	int prefix = 0;

	if (n < sizeof ip && slash) {
		char *end;
		long v = strtol(slash + 1, &end, 10);
		if (*end || end == slash + 1 || v < 0 || v > 128)
			n = sizeof ip; /* not ours: keep it as typed */
		prefix = (int)v;
	}
	if (n >= sizeof ip) {
		bound_lower(out, STATE_IP_MAX - 1, in, strlen(in));
		return;
	}
	memcpy(ip, in, n);
	ip[n] = '\0';
	ip_keys(ip, prefix, prefix, exact, net);
	strcpy(out, net);
}

/* ---- sender normalisation ----------------------------------------------- */

/* Replaces w (local@domain) by local@domain built from the given pieces. */
static int rebuild(char *w, const char *local, size_t ln, const char *dom, size_t dn)
{
	char tmp[STATE_WORK_MAX];
	if (ln == 0 || ln + 1 + dn >= sizeof tmp)
		return 0;
	memcpy(tmp, local, ln);
	if (dom) {
		tmp[ln] = '@';
		memcpy(tmp + ln + 1, dom, dn);
		ln += 1 + dn;
	}
	tmp[ln] = '\0';
	memcpy(w, tmp, ln + 1);
	return 1;
}

/*
 * BATV signs the bounce address with a tag that changes every day or
 * message; the tuple must not. Forms seen in the wild:
 *   prvs=KDDDSSSSSS=user@dom     (the draft, Exim and Postfix)
 *   prvs=user/KDDDSSSSSS@dom     (an early Exim form)
 *   msprvs1=TAG=user@dom         (Exchange Online)
 *   btv1==TAG==user@dom          (Barracuda)
 */
static int batv_strip(char *w)
{
	char *at = strrchr(w, '@');
	size_t ln = at ? (size_t)(at - w) : strlen(w);
	const char *dom = at ? at + 1 : NULL;
	size_t dn = at ? strlen(dom) : 0;
	const char *rest = NULL, *p;

	if (strncmp(w, "btv1==", 6) == 0) {
		rest = w + 6;
		for (p = rest; p + 1 < w + ln; p++)
			if (p[0] == '=' && p[1] == '=')
				return rebuild(w, p + 2, (size_t)(w + ln - p - 2), dom, dn);
		return 0;
	}
	if (strncmp(w, "prvs=", 5) == 0)
		rest = w + 5;
	else if (strncmp(w, "msprvs1=", 8) == 0)
		rest = w + 8;
	else
		return 0;

	const char *eq = memchr(rest, '=', (size_t)(w + ln - rest));
	const char *slash = memchr(rest, '/', (size_t)(w + ln - rest));
	if (eq && eq > rest && (!slash || slash > eq))
		return rebuild(w, eq + 1, (size_t)(w + ln - eq - 1), dom, dn);
	if (slash) {
		const char *last = slash;
		for (p = slash; p < w + ln; p++)
			if (*p == '/')
				last = p;
		return rebuild(w, rest, (size_t)(last - rest), dom, dn);
	}
	return 0;
}

/* "HHH=TT=domain=local" (the opaque part of SRS0) -> "local@domain". */
static int srs0_body(char *w, const char *body, const char *end)
{
	const char *f[3];
	const char *p = body;
	for (int i = 0; i < 3; i++) {
		f[i] = memchr(p, '=', (size_t)(end - p));
		if (!f[i])
			return 0;
		p = f[i] + 1;
	}
	/* f[1]+1 .. f[2] is the original domain, after f[2] the local part */
	return rebuild(w, f[2] + 1, (size_t)(end - f[2] - 1), f[1] + 1, (size_t)(f[2] - f[1] - 1));
}

/*
 * SRS rewrites a forwarded sender with a hash and a timestamp that change
 * with every message. We key by the original sender (local@domain), which
 * is stable per original sender; the forwarder is already in the tuple as
 * the client address. Forms (libsrs2; "+" and "-" may stand for the "="
 * after SRS0/SRS1):
 *   SRS0=HHH=TT=domain=local@forwarder
 *   SRS1=HHH=first.hop==HHH=TT=domain=local@forwarder
 */
static int srs_decode(char *w)
{
	char *at = strrchr(w, '@');
	const char *end = at ? at : w + strlen(w);
	int srs1;

	if (strncmp(w, "srs0", 4) == 0)
		srs1 = 0;
	else if (strncmp(w, "srs1", 4) == 0)
		srs1 = 1;
	else
		return 0;
	if (!w[4] || !strchr("=+-", w[4]))
		return 0;
	const char *body = w + 5;
	if (srs1) {
		const char *hash = memchr(body, '=', (size_t)(end - body));
		const char *hop = hash ? memchr(hash + 1, '=', (size_t)(end - hash - 1)) : NULL;
		if (!hop || hop + 1 >= end || !strchr("=+-", hop[1]))
			return 0;
		body = hop + 2;
	}
	return srs0_body(w, body, end);
}

/*
 * The sender as it keys a greylist tuple: without <>, lowercased, BATV
 * and SRS undone (in any nesting: a BATV-signed SRS address, an SRS
 * address of a BATV-signed sender). The null sender stays "".
 */
static void sender_key(const char *sender, char *out)
{
	char w[STATE_WORK_MAX];
	size_t n = strlen(sender);

	if (n >= 2 && sender[0] == '<' && sender[n - 1] == '>')
		sender++, n -= 2;
	if (n >= sizeof w) {
		bound_lower(out, STATE_ADDR_MAX, sender, n);
		return;
	}
	for (size_t i = 0; i < n; i++)
		w[i] = (char)tolower((unsigned char)sender[i]);
	w[n] = '\0';
	for (int round = 0; round < 4; round++)
		if (!batv_strip(w) && !srs_decode(w))
			break;
	bound_lower(out, STATE_ADDR_MAX, w, strlen(w));
}

void state_grey_keys(const struct greylist_conf *c, const char *ip, const char *sender,
    const char *rcpt, struct grey_keys *k)
{
	char snd[STATE_ADDR_MAX + 1], rcp[STATE_ADDR_MAX + 1];

	ip_keys(ip ? ip : "", c->v4_prefix, c->v6_prefix, k->exact, k->net);
	sender_key(sender ? sender : "", snd);
	size_t rn = rcpt ? strlen(rcpt) : 0;
	if (rn >= 2 && rcpt[0] == '<' && rcpt[rn - 1] == '>')
		rcpt++, rn -= 2;
	bound_lower(rcp, STATE_ADDR_MAX, rcpt ? rcpt : "", rn);
	snprintf(k->tuple, sizeof k->tuple, "%s <%s> <%s>", k->net, snd, rcp);
}

void state_key(enum state_db db, const char *in, char *out)
{
	if (db == STATE_ALLOW)
		allow_key(in, out);
	else
		bound_copy(out, STATE_KEY_MAX, in, strlen(in), db != STATE_CALLOUT);
}

/* Rewriting the allow entry on every RCPT would take LMDB's writer lock
 * for each; an expiry that lags by a little is as good. */
double state_allow_slack(const struct greylist_conf *c)
{
	return c->allow_ttl / 10 < ALLOW_REFRESH_MAX ? c->allow_ttl / 10 : ALLOW_REFRESH_MAX;
}

int state_render(enum state_db db, const struct state_rec *r, char *out, size_t outlen)
{
	int n;

	if (db == STATE_CALLOUT)
		n = snprintf(out, outlen, "expires=%.3f value=%.*s", r->expires,
		    (int)(r->vlen > STATE_CACHE_MAX ? STATE_CACHE_MAX : r->vlen), r->value);
	else if (db == STATE_GREYLIST)
		n = snprintf(out, outlen, "expires=%.3f first_seen=%.3f", r->expires, r->a);
	else if (db == STATE_ALLOW)
		n = snprintf(out, outlen, "expires=%.3f since=%.3f", r->expires, r->a);
	else
		n = snprintf(out, outlen, "expires=%.3f rate=%.6f last=%.3f", r->expires, r->a, r->b);
	return n < 0 || (size_t)n >= outlen ? -1 : n;
}

/* "1700000000.5", or "+90", "+45m", "+48h", "+35d" from the wall clock. */
static int parse_time(const char *s, double *t)
{
	char *end;
	int rel = *s == '+';
	double v = strtod(s + rel, &end);

	if (end == s + rel || !(v >= 0) || isinf(v))
		return -1;
	if (rel) {
		switch (*end) {
		case 'd': v *= 86400; end++; break;
		case 'h': v *= 3600; end++; break;
		case 'm': v *= 60; end++; break;
		case 's': end++; break;
		default: break;
		}
		v += (double)time(NULL);
	}
	if (*end)
		return -1;
	*t = v;
	return 0;
}

/*
 * Parses what render() prints: "expires=T" and the database's own fields
 * in any order ("value=" takes the rest of the line). Fields left out
 * default to now (times) or 0 (rate); expires is required.
 */
int state_parse(enum state_db db, const char *in, struct state_rec *out, char *err, size_t errlen)
{
	struct state_rec r = { -1, (double)time(NULL), 0, 0, "" };
	const char *p = in, *value = "";
	size_t vn = 0;

	if (db == STATE_RATELIMIT)
		r.a = 0, r.b = (double)time(NULL);
	while (*p) {
		char name[16], num[64];
		const char *eq, *sp;
		double *field = NULL;

		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		if (!(eq = strchr(p, '=')) || (size_t)(eq - p) >= sizeof name)
			goto bad;
		memcpy(name, p, (size_t)(eq - p));
		name[eq - p] = '\0';
		if (db == STATE_CALLOUT && strcmp(name, "value") == 0) {
			value = eq + 1, vn = strlen(value);
			break;
		}
		for (sp = eq + 1; *sp && *sp != ' ' && *sp != '\t'; sp++)
			;
		if ((size_t)(sp - eq - 1) >= sizeof num)
			goto bad;
		memcpy(num, eq + 1, (size_t)(sp - eq - 1));
		num[sp - eq - 1] = '\0';
		if (strcmp(name, "expires") == 0)
			field = &r.expires;
		else if ((db == STATE_GREYLIST && strcmp(name, "first_seen") == 0) ||
		    (db == STATE_ALLOW && strcmp(name, "since") == 0) ||
		    (db == STATE_RATELIMIT && strcmp(name, "rate") == 0))
			field = &r.a;
		else if (db == STATE_RATELIMIT && strcmp(name, "last") == 0)
			field = &r.b;
		if (!field) {
			snprintf(err, errlen, "unknown field \"%s\" for %s", name, db_names[db]);
			return -1;
		}
		if (field == &r.a && db == STATE_RATELIMIT) {
			char *end;
			r.a = strtod(num, &end);
			if (*end || end == num || !(r.a >= 0))
				goto bad;
		} else if (parse_time(num, field)) {
			goto bad;
		}
		p = sp;
	}
	if (r.expires < 0) {
		snprintf(err, errlen, "value needs expires=EPOCH or expires=+DURATION");
		return -1;
	}
	if (db == STATE_CALLOUT) {
		if (vn > STATE_CACHE_MAX) {
			snprintf(err, errlen, "value longer than %d bytes", STATE_CACHE_MAX);
			return -1;
		}
		memcpy(r.value, value, vn);
		r.value[vn] = '\0';
		r.vlen = vn;
	}
	*out = r;
	return 0;
bad:
	snprintf(err, errlen, "cannot parse \"%s\": expected e.g. \"expires=1700000000 %s\"",
	    in, db == STATE_GREYLIST ? "first_seen=1699990000" : db == STATE_ALLOW ? "since=1699990000" :
	    db == STATE_RATELIMIT ? "rate=12.5 last=1699990000" : "value=550 5.1.1 unknown");
	return -1;
}

const char *state_db_name(enum state_db db)
{
	return (unsigned)db < STATE_NDB ? db_names[db] : NULL;
}

int state_db_lookup(const char *name)
{
	for (int i = 0; i < STATE_NDB; i++)
		if (strcmp(name, db_names[i]) == 0)
			return i;
	return -1;
}
