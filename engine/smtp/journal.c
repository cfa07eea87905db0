/*
 * journal.c - session records for ruletest, one JSON line each.
 *
 * A record grows in memory while the session runs (bounded: past
 * max_record it is marked truncated and stops growing) and is written
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
	char                  *buf;
	size_t                 len, cap;
	int                    nevents;
	int                    truncated;
};

int
json_quote(char *out, size_t room, const char *s, size_t len)
{
	size_t n = 0;

	if (room < 3)
		return -1;
	out[n++] = '"';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (n + 7 >= room)
			return -1;
		if (c == '"' || c == '\\') {
			out[n++] = '\\';
			out[n++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			n += (size_t)snprintf(out + n, room - n, "\\u%04x", c);
		} else
			out[n++] = (char)c;    /* UTF-8 passes through; invalid bytes too */
	}
	out[n++] = '"';
	out[n] = '\0';
	return (int)n;
}

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

/* Appends raw text; past the bound the record is only marked truncated. */
static void
put(struct journal *j, const char *s, size_t n)
{
	if (j->truncated)
		return;
	if (j->len + n + 64 > j->w->conf.max_record) {
		j->truncated = 1;
		return;
	}
	if (j->len + n + 1 > j->cap) {
		size_t cap = j->cap * 2;
		char *nb;
		while (cap < j->len + n + 1)
			cap *= 2;
		if (!(nb = realloc(j->buf, cap))) {
			j->truncated = 1;
			return;
		}
		j->buf = nb;
		j->cap = cap;
	}
	memcpy(j->buf + j->len, s, n);
	j->len += n;
	j->buf[j->len] = '\0';
}

static void
puts_(struct journal *j, const char *s)
{
	put(j, s, strlen(s));
}

static void
put_str(struct journal *j, const char *s)
{
	char tmp[2048];
	int n = json_quote(tmp, sizeof tmp, s, strlen(s));

	if (n < 0)
		puts_(j, "\"(too long)\"");
	else
		put(j, tmp, (size_t)n);
}

static void
put_kv_str(struct journal *j, const char *k, const char *v)
{
	char tmp[64];

	snprintf(tmp, sizeof tmp, ",\"%s\":", k);
	puts_(j, tmp);
	put_str(j, v);
}

static void
put_kv_num(struct journal *j, const char *k, long long v)
{
	char tmp[96];

	snprintf(tmp, sizeof tmp, ",\"%s\":%lld", k, v);
	puts_(j, tmp);
}

static void
event_open(struct journal *j, const char *e)
{
	if (j->nevents++)
		puts_(j, ",");
	puts_(j, "{\"e\":\"");
	puts_(j, e);
	puts_(j, "\"");
}

struct journal *
journal_begin(struct journal_writer *w, const struct session_info *i, const char *listener)
{
	struct journal *j;
	char tmp[256];

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
	j->cap = 1024;
	if (!(j->buf = malloc(j->cap))) {
		free(j);
		return NULL;
	}
	snprintf(tmp, sizeof tmp, "{\"v\":1,\"sid\":\"%s\",\"time\":%.3f,\"direction\":\"%s\"",
	    i->sid, i->start, direction_str(i->direction));
	puts_(j, tmp);
	put_kv_str(j, "listener", listener);
	puts_(j, ",\"client\":{\"ip\":");
	put_str(j, i->client_ip);
	put_kv_num(j, "port", i->client_port);
	puts_(j, "},\"local\":{\"ip\":");
	put_str(j, i->local_ip);
	put_kv_num(j, "port", i->local_port);
	puts_(j, "}");
	put_kv_str(j, "hostname", i->conf->hostname);
	puts_(j, ",\"events\":[");
	return j;
}

void
journal_cmd(struct journal *j, const char *line)
{
	if (!j)
		return;
	event_open(j, "cmd");
	put_kv_str(j, "line", line);
	puts_(j, "}");
}

void
journal_hook(struct journal *j, enum stage st, const struct session_info *i)
{
	if (!j)
		return;
	event_open(j, "hook");
	put_kv_str(j, "stage", stage_name(st));
	switch (st) {
	case STAGE_HELO:
		put_kv_str(j, "helo", i->helo);
		puts_(j, i->esmtp ? ",\"esmtp\":true" : ",\"esmtp\":false");
		break;
	case STAGE_MAIL:
		put_kv_str(j, "sender", i->mail.addr);
		if (i->mail.smtputf8)
			puts_(j, ",\"smtputf8\":true");
		if (i->mail.size >= 0)
			put_kv_num(j, "size", i->mail.size);
		break;
	case STAGE_RCPT:
		put_kv_str(j, "rcpt", i->rcpt.addr);
		break;
	case STAGE_DATA:
		put_kv_num(j, "size", (long long)i->size);
		put_kv_str(j, "qid", i->qid);
		break;
	default:
		break;
	}
	puts_(j, "}");
}

void
journal_verdict(struct journal *j, enum stage st, const struct verdict *v)
{
	if (!j)
		return;
	event_open(j, "verdict");
	put_kv_str(j, "stage", stage_name(st));
	put_kv_str(j, "action", action_name(v->action));
	if (v->code)
		put_kv_num(j, "code", v->code);
	if (v->enhanced[0])
		put_kv_str(j, "enhanced", v->enhanced);
	if (v->text[0])
		put_kv_str(j, "text", v->text);
	if (v->reason[0])
		put_kv_str(j, "reason", v->reason);
	if (v->where[0])
		put_kv_str(j, "where", v->where);
	puts_(j, "}");
}

void
journal_tls(struct journal *j, const struct session_info *i)
{
	if (!j)
		return;
	event_open(j, "tls");
	put_kv_str(j, "version", i->tls_version);
	put_kv_str(j, "cipher", i->tls_cipher);
	if (i->tls_peer[0])
		put_kv_str(j, "peer", i->tls_peer);
	puts_(j, "}");
}

void
journal_reply(struct journal *j, int code, const char *text)
{
	if (!j)
		return;
	event_open(j, "reply");
	put_kv_num(j, "code", code);
	put_kv_str(j, "text", text);
	puts_(j, "}");
}

void
journal_call(struct journal *j, const char *json, size_t len)
{
	if (!j)
		return;
	event_open(j, "call");
	puts_(j, ",");
	put(j, json, len);
	puts_(j, "}");
}

void
journal_end(struct journal *j)
{
	int fd;

	if (!j)
		return;
	/* put() keeps 64 bytes spare for exactly this closing. */
	j->truncated = j->truncated ? 2 : 0;
	if (j->len + 40 < j->cap || (j->buf = realloc(j->buf, j->cap = j->len + 64))) {
		const char *tail = j->truncated ? "],\"truncated\":true}\n" : "]}\n";
		memcpy(j->buf + j->len, tail, strlen(tail));
		j->len += strlen(tail);
		if ((fd = writer_fd(j->w)) >= 0)
			(void)!write(fd, j->buf, j->len);
	}
	free(j->buf);
	free(j);
}
