/*
 * journal.c - session records for ruletest, one JSON line each.
 *
 * A record grows in memory while the session runs (bounded: an event that
 * would pass max_record is left out whole, the record is marked truncated
 * and stops growing, and still ends as valid JSON) and is written
 * with one write(2) on an O_APPEND file when the session ends, so the
 * workers' lines never interleave. One file a day, continued in a new
 * numbered file past max_file bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"
#include "json.h"
#include "metrics.h"
#include "session.h"

struct journal_writer {
	struct journal_conf conf;
	char                dir[512];
	int                 fd;
	char                day[16];     /* the file's date */
	int                 part;        /* .N past max_file */
	unsigned long long  sampled;     /* for deterministic sampling */
};

struct journal {
	struct journal_writer *w;
	struct buf             b;         /* the record; max: max_record less the closing */
	size_t                 mark;      /* where the event being written began */
	int                    truncated;
};

#define TAIL_ROOM 64                      /* "],\"truncated\":true}\n" always fits */

struct journal_writer *
journal_writer_open(const struct journal_conf *c, char *err, size_t errlen)
{
	struct journal_writer *w = calloc(1, sizeof *w);

	if (!w) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	w->conf = *c;
	snprintf(w->dir, sizeof w->dir, "%s", c->dir);
	w->conf.dir = w->dir;
	if (!w->conf.max_record)
		w->conf.max_record = 64 * 1024;
	if (!w->conf.max_file)
		w->conf.max_file = 100u * 1024 * 1024;
	w->fd = -1;
	if (mkdir(w->dir, 0750) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", w->dir, strerror(errno));
		free(w);
		return NULL;
	}
	return w;
}

void
journal_writer_close(struct journal_writer *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	free(w);
}

/* The file for today, opened anew on a new day or past max_file. */
static int
writer_fd(struct journal_writer *w)
{
	char day[16], path[600];
	time_t now = time(NULL);
	struct tm tm;
	struct stat st;

	localtime_r(&now, &tm);
	strftime(day, sizeof day, "%Y-%m-%d", &tm);
	if (w->fd >= 0 && strcmp(day, w->day) == 0 &&
	    (fstat(w->fd, &st) < 0 || (size_t)st.st_size < w->conf.max_file))
		return w->fd;
	if (strcmp(day, w->day) != 0) {
		snprintf(w->day, sizeof w->day, "%s", day);
		w->part = 0;
	}
	for (;;) {
		if (w->fd >= 0)
			close(w->fd);
		if (w->part)
			snprintf(path, sizeof path, "%s/%s.%d.jsonl", w->dir, day, w->part);
		else
			snprintf(path, sizeof path, "%s/%s.jsonl", w->dir, day);
		w->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (w->fd < 0)
			return -1;
		if (fstat(w->fd, &st) == 0 && (size_t)st.st_size >= w->conf.max_file && w->part < 1000) {
			w->part++;
			continue;
		}
		return w->fd;
	}
}

/*
 * Each event is written whole or not at all: one that does not fit in
 * max_record is taken back at its first byte, the record is marked
 * truncated and keeps no later event, so a long session still ends as
 * valid JSON that ruletest can read (its events up to the cut).
 */
static int
event_open(struct journal *j, const char *e)
{
	if (j->truncated)
		return -1;
	j->mark = j->b.len;
	jsonw_open(&j->b, '{');
	jsonw_key(&j->b, "e");
	return jsonw_strz(&j->b, e);
}

static void
event_close(struct journal *j)
{
	jsonw_close(&j->b, '}');
	if (j->b.err) {
		buf_truncate(&j->b, j->mark);
		j->truncated = 1;
	}
}

static void
kv_str(struct journal *j, const char *k, const char *v)
{
	jsonw_key(&j->b, k);
	jsonw_strz(&j->b, v);
}

/*
 * Text the replay compares byte for byte (a command, a reply): when it is
 * not UTF-8 the string holds it readably (json.h: bytes as U+0080..U+00FF)
 * and KEY_hex holds its exact bytes, so ruletest replays what was sent.
 */
static void
kv_textn(struct journal *j, const char *k, const char *v, size_t n)
{
	char hk[32];

	jsonw_key(&j->b, k);
	jsonw_str(&j->b, v, n);
	if (!json_utf8_valid(v, n)) {
		snprintf(hk, sizeof hk, "%s_hex", k);
		jsonw_key(&j->b, hk);
		jsonw_hex(&j->b, v, n);
	}
}

static void
kv_text(struct journal *j, const char *k, const char *v)
{
	kv_textn(j, k, v, strlen(v));
}

/*
 * The header section for ruletest's data hook, at most max bytes: cut
 * after the last whole field (a CRLF not followed by a folded line), so a
 * rule never sees half a header. Bodies are never recorded.
 */
static void
kv_headers(struct journal *j, const char *h, size_t n, size_t max)
{
	size_t keep = n;

	if (!max || !h)
		return;
	if (n > max) {
		keep = 0;
		for (size_t i = max; i >= 2; i--)
			if (h[i - 2] == '\r' && h[i - 1] == '\n' && h[i] != ' ' && h[i] != '\t') {
				keep = i;
				break;
			}
	}
	kv_textn(j, "headers", h, keep);
	if (keep < n) {
		jsonw_key(&j->b, "headers_cut");
		jsonw_bool(&j->b, 1);
	}
}

static void
kv_num(struct journal *j, const char *k, long long v)
{
	jsonw_key(&j->b, k);
	jsonw_int(&j->b, v);
}

static void
endpoint(struct journal *j, const char *k, const char *ip, int port)
{
	jsonw_key(&j->b, k);
	jsonw_open(&j->b, '{');
	kv_str(j, "ip", ip);
	kv_num(j, "port", port);
	jsonw_close(&j->b, '}');
}

struct journal *
journal_begin(struct journal_writer *w, const struct session_info *i, const char *listener)
{
	struct journal *j;

	if (!w || w->conf.sample <= 0)
		return NULL;
	/* Deterministic sampling: every 1/sample-th session. */
	if (w->conf.sample < 1) {
		unsigned long long n = w->sampled++;
		if ((unsigned long long)((double)(n + 1) * w->conf.sample) ==
		    (unsigned long long)((double)n * w->conf.sample))
			return NULL;
	}
	if (!(j = calloc(1, sizeof *j)))
		return NULL;
	j->w = w;
	buf_init(&j->b, w->conf.max_record > TAIL_ROOM * 2 ? w->conf.max_record - TAIL_ROOM : TAIL_ROOM);
	if (buf_reserve(&j->b, 1024) < 0) {
		free(j);
		return NULL;
	}
	jsonw_open(&j->b, '{');
	kv_num(j, "v", 1);
	kv_str(j, "sid", i->sid);
	jsonw_key(&j->b, "time");
	buf_printf(&j->b, "%.3f", i->start);
	kv_str(j, "direction", direction_str(i->direction));
	kv_str(j, "listener", listener);
	endpoint(j, "client", i->client_ip, i->client_port);
	endpoint(j, "local", i->local_ip, i->local_port);
	kv_str(j, "hostname", i->conf->hostname);
	jsonw_key(&j->b, "events");
	jsonw_open(&j->b, '[');
	if (j->b.err) {                           /* not even the header fits */
		buf_free(&j->b);
		free(j);
		return NULL;
	}
	return j;
}

void
journal_cmd(struct journal *j, const char *line)
{
	if (!j || event_open(j, "cmd") < 0)
		return;
	kv_text(j, "line", line);
	event_close(j);
}

void
journal_hook(struct journal *j, enum stage st, const struct session_info *i)
{
	if (!j || event_open(j, "hook") < 0)
		return;
	kv_str(j, "stage", stage_name(st));
	switch (st) {
	case STAGE_HELO:
		kv_str(j, "helo", i->helo);
		jsonw_key(&j->b, "esmtp");
		jsonw_bool(&j->b, i->esmtp);
		break;
	case STAGE_MAIL:
		kv_str(j, "sender", i->mail.addr);
		if (i->mail.smtputf8) {
			jsonw_key(&j->b, "smtputf8");
			jsonw_bool(&j->b, 1);
		}
		if (i->mail.size >= 0)
			kv_num(j, "size", i->mail.size);
		break;
	case STAGE_RCPT:
		kv_str(j, "rcpt", i->rcpt.addr);
		break;
	case STAGE_DATA:
		kv_num(j, "size", (long long)i->size);
		kv_str(j, "qid", i->qid);
		kv_headers(j, i->headers, i->headers_len, j->w->conf.max_headers);
		break;
	default:
		break;
	}
	event_close(j);
}

void
journal_verdict(struct journal *j, enum stage st, const struct verdict *v)
{
	if (!j || event_open(j, "verdict") < 0)
		return;
	kv_str(j, "stage", stage_name(st));
	kv_str(j, "action", action_name(v->action));
	if (v->code)
		kv_num(j, "code", v->code);
	if (v->enhanced[0])
		kv_str(j, "enhanced", v->enhanced);
	if (v->text[0])
		kv_str(j, "text", v->text);
	if (v->reason[0])
		kv_str(j, "reason", v->reason);
	if (v->where[0])
		kv_str(j, "where", v->where);
	if (v->route.route[0]) {
		kv_str(j, "route", v->route.route);
		if (v->route.tls[0])
			kv_str(j, "route_tls", v->route.tls);
		kv_str(j, "route_where", v->route.where);
	}
	event_close(j);
}

void
journal_tls(struct journal *j, const struct session_info *i)
{
	if (!j || event_open(j, "tls") < 0)
		return;
	kv_str(j, "version", i->tls_version);
	kv_str(j, "cipher", i->tls_cipher);
	if (i->tls_peer[0])
		kv_str(j, "peer", i->tls_peer);
	event_close(j);
}

void
journal_reply(struct journal *j, int code, const char *text)
{
	if (!j || event_open(j, "reply") < 0)
		return;
	kv_num(j, "code", code);
	kv_text(j, "text", text);
	event_close(j);
}

void
journal_call(struct journal *j, const char *json, size_t len)
{
	if (!j || event_open(j, "call") < 0)
		return;
	jsonw_raw(&j->b, json, len);              /* members: "p":...,"a":...,"r":... */
	event_close(j);
}

void
journal_end(struct journal *j)
{
	int fd;

	if (!j)
		return;
	j->b.max += TAIL_ROOM;
	jsonw_close(&j->b, ']');
	if (j->truncated) {
		jsonw_key(&j->b, "truncated");
		jsonw_bool(&j->b, 1);
	}
	jsonw_close(&j->b, '}');
	buf_addc(&j->b, '\n');
	if (!j->b.err && (fd = writer_fd(j->w)) >= 0) {
		ssize_t n = write(fd, j->b.p, j->b.len);
		if (n > 0)
			metrics_count(MC_JOURNAL_BYTES, (uint64_t)n);
	}
	buf_free(&j->b);
	free(j);
}
