/* queue.c - queue files and their per-recipient status records, read and written by the delivery process. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"
#include "queue.h"
#include "spool.h"

#define ENVELOPE_MAX  (4 << 20)     /* an envelope line longer than this is corrupt */
#define LENGTH_PREFIX "{\"length\":\""
#define LENGTH_DIGITS 20
#define STATUS_MAX    (1 << 20)

static void
path(char *out, size_t len, const char *spool_dir, const char *sub, const char *qid)
{
	snprintf(out, len, "%s/%s/%s", spool_dir, sub, qid);
}

int
queue_dirs(const char *spool_dir)
{
	static const char *const subs[] = { "status", "corrupt", "control" };
	char p[1024];

	for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
		snprintf(p, sizeof p, "%s/%s", spool_dir, subs[i]);
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			return -1;
	}
	return 0;
}

void
queue_env_free(struct qenv *e)
{
	for (int i = 0; i < e->nrcpt; i++) {
		free(e->rcpt[i].addr);
		free(e->rcpt[i].relay);
		free(e->rcpt[i].reply);
		free(e->rcpt[i].route);
	}
	free(e->rcpt);
	free(e->sender);
	free(e->last_error);
	memset(e, 0, sizeof *e);
}

static char *
dup_str(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

/* "routes": per recipient, null (the config's) or {"route", "tls"}. */
static int
parse_routes(struct qenv *e, json_t *routes, char *why, size_t whylen)
{
	if (!routes)
		return 0;
	if (!json_is_array(routes) || json_array_size(routes) != (size_t)e->nrcpt) {
		snprintf(why, whylen, "envelope routes do not match its recipients");
		return -1;
	}
	for (int i = 0; i < e->nrcpt; i++) {
		json_t *r = json_array_get(routes, (size_t)i), *t;

		if (json_is_null(r))
			continue;
		t = json_object_get(r, "tls");
		if (!json_is_string(json_object_get(r, "route")) || (t && !json_is_string(t)) ||
		    (t && strlen(json_string_value(t)) >= sizeof e->rcpt[i].tls)) {
			snprintf(why, whylen, "envelope route %d is malformed", i);
			return -1;
		}
		if (t)
			snprintf(e->rcpt[i].tls, sizeof e->rcpt[i].tls, "%s", json_string_value(t));
		if (!(e->rcpt[i].route = strdup(json_string_value(json_object_get(r, "route"))))) {
			snprintf(why, whylen, "out of memory");
			return -1;
		}
	}
	return 0;
}

/* The envelope line, as spool.c and smtp_server.c write it. */
static int
parse_envelope(struct qenv *e, const char *line, size_t len, char *why, size_t whylen)
{
	struct json_err jerr;
	json_t *o = jsonr_parse(line, len, JSON_MAX_DEPTH, &jerr), *r, *v;
	int rc = -1;

	if (!o || !json_is_object(o)) {
		snprintf(why, whylen, "envelope is not JSON: %s", o ? "not an object" : jerr.text);
		goto out;
	}
	e->sender = dup_str(o, "sender");
	r = json_object_get(o, "rcpts");
	if (!e->sender || !json_is_array(r) || json_array_size(r) == 0 || json_array_size(r) > 100000) {
		snprintf(why, whylen, "envelope has no sender or no recipients");
		goto out;
	}
	v = json_object_get(o, "time");
	e->arrived = json_is_integer(v) ? (time_t)json_integer_value(v) : time(NULL);
	v = json_object_get(o, "direction");
	e->inbound = !json_is_string(v) || strcmp(json_string_value(v), "outbound") != 0;
	e->smtputf8 = json_is_true(json_object_get(o, "smtputf8"));
	v = json_object_get(o, "body");
	e->body8bit = json_is_string(v) && strcmp(json_string_value(v), "8BITMIME") == 0;
	e->nrcpt = (int)json_array_size(r);
	if (!(e->rcpt = calloc((size_t)e->nrcpt, sizeof *e->rcpt)))
		goto oom;
	for (int i = 0; i < e->nrcpt; i++) {
		json_t *a = json_array_get(r, (size_t)i);

		if (!json_is_string(a)) {
			snprintf(why, whylen, "envelope recipient %d is not a string", i);
			goto out;
		}
		if (!(e->rcpt[i].addr = strdup(json_string_value(a))))
			goto oom;
	}
	if (parse_routes(e, json_object_get(o, "routes"), why, whylen) < 0)
		goto out;
	rc = 0;
	goto out;
oom:
	snprintf(why, whylen, "out of memory");
out:
	json_decref(o);
	return rc;
}

/* Applies the status record's facts to the envelope. */
static void
load_status(const char *spool_dir, struct qenv *e)
{
	char p[1024], *buf, *line, *save = NULL;
	int fd;
	ssize_t n;

	path(p, sizeof p, spool_dir, "status", e->qid);
	if ((fd = open(p, O_RDONLY | O_CLOEXEC)) < 0)
		return;
	buf = malloc(STATUS_MAX + 1);
	n = buf ? read(fd, buf, STATUS_MAX) : -1;
	close(fd);
	if (n <= 0) {
		free(buf);
		return;
	}
	buf[n] = '\0';
	/* A torn last line (no newline) was never acted on: ignore it. */
	if (buf[n - 1] != '\n') {
		char *nl = strrchr(buf, '\n');
		if (!nl) {
			free(buf);
			return;
		}
		nl[1] = '\0';
	}
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char relay[300];
		int i, code, off = 0;
		long long due;

		if (sscanf(line, "T %lld %d %n", &due, &i, &off) == 2 && off > 0) {
			e->next_due = (time_t)due;
			e->attempts = i;
			free(e->last_error);
			e->last_error = strdup(line + off);
		} else if (line[0] == 'H' && !line[1])
			e->held = 1;
		else if (line[0] == 'R' && !line[1])
			e->held = 0;
		else if (line[0] == 'B' && !line[1])
			e->bounced = 1;
		else if (line[0] == 'W' && !line[1])
			e->warned = 1;
		else if (sscanf(line, "D %d", &i) == 1 && i >= 0 && i < e->nrcpt)
			e->rcpt[i].state = R_DONE;
		else if (sscanf(line, "P %d %299s %d %n", &i, relay, &code, &off) == 3 && off > 0 &&
		    i >= 0 && i < e->nrcpt) {
			struct qrcpt *r = &e->rcpt[i];

			r->state = R_FAILED;
			r->code = code;
			free(r->relay);
			free(r->reply);
			r->relay = strdup(strcmp(relay, "-") == 0 ? "" : relay);
			r->reply = strdup(line + off);
		}
	}
	free(buf);
}

/* Received: lines in the header section (what of it was read). */
static void
count_received(struct qenv *e, const char *p, size_t n)
{
	const char *end = p + n;

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));

		if (*p == '\r' || *p == '\n')
			break;                  /* the empty line: the body follows */
		if ((size_t)(end - p) >= 9 && strncasecmp(p, "Received:", 9) == 0)
			e->received++;
		if (!eol)
			break;
		p = eol + 1;
	}
}

/*
 * A file with a "sum" (spool.h) must match it: a recycled file that a crash
 * left partly rewritten is whole by length but not by content.
 */
static int
check_sum(int fd, long long length, char *why, size_t whylen)
{
	static const char field[] = "\",\"sum\":\"";
	char head[SPOOL_HEADER_LEN + 1], buf[16384], *end;
	unsigned long long want;
	uint64_t h = SPOOL_SUM_INIT;
	off_t off = SPOOL_HEADER_LEN;

	if (length < SPOOL_HEADER_LEN || pread(fd, head, SPOOL_HEADER_LEN, 0) != SPOOL_HEADER_LEN)
		return 0;
	head[SPOOL_HEADER_LEN] = '\0';
	if (memcmp(head + 31, field, sizeof field - 1) != 0)
		return 0;                       /* written before "sum" */
	want = strtoull(head + 40, &end, 16);
	if (end != head + 56)
		return 0;
	while (off < length) {
		ssize_t n = pread(fd, buf, sizeof buf, off);
		if (n <= 0)
			break;
		h = spool_sum(h, buf, (size_t)n);
		off += n;
	}
	if (off != length || h != (uint64_t)want) {
		snprintf(why, whylen, "torn: checksum");
		return -1;
	}
	return 0;
}

int
queue_load(const char *spool_dir, const char *qid, struct qenv *e, char *why, size_t whylen)
{
	char p[1024], head[sizeof LENGTH_PREFIX + LENGTH_DIGITS], *buf = NULL, *nl = NULL;
	struct stat st;
	size_t cap = 65536, have = 0;
	long long length;
	int fd;

	memset(e, 0, sizeof *e);
	snprintf(e->qid, sizeof e->qid, "%s", qid);
	path(p, sizeof p, spool_dir, "queue", qid);
	if ((fd = open(p, O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(why, whylen, "%s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0)
		goto io;
	/*
	 * spool.c writes the file's final size into its first field before
	 * the rename; a crash can leave a file whose data never reached the
	 * disk (never acknowledged): its size disagrees, and it is torn.
	 */
	if (pread(fd, head, sizeof head - 1, 0) != (ssize_t)sizeof head - 1 ||
	    memcmp(head, LENGTH_PREFIX, strlen(LENGTH_PREFIX)) != 0) {
		snprintf(why, whylen, "torn: no length field");
		goto fail;
	}
	head[sizeof head - 1] = '\0';
	length = strtoll(head + strlen(LENGTH_PREFIX), NULL, 10);
	if (length != (long long)st.st_size) {
		snprintf(why, whylen, "torn: length %lld, size %lld", length, (long long)st.st_size);
		goto fail;
	}
	if (check_sum(fd, length, why, whylen) < 0)
		goto fail;
	e->size = length;
	while (!nl) {
		char *nb;
		ssize_t n;

		if (have == cap || !buf) {
			if (cap > ENVELOPE_MAX || !(nb = realloc(buf, cap *= 2)))
				break;
			buf = nb;
		}
		n = pread(fd, buf + have, cap - have, (off_t)have);
		if (n <= 0)
			break;
		nl = memchr(buf + have, '\n', (size_t)n);
		have += (size_t)n;
	}
	if (!nl) {
		snprintf(why, whylen, "corrupt: no envelope line");
		goto fail;
	}
	e->body_off = (long long)(nl - buf) + 1;
	if (parse_envelope(e, buf, (size_t)(nl - buf), why, whylen) < 0)
		goto fail;
	count_received(e, nl + 1, (size_t)(buf + have - nl - 1));
	free(buf);
	close(fd);
	load_status(spool_dir, e);
	return 0;
io:
	snprintf(why, whylen, "%s", strerror(errno));
fail:
	free(buf);
	close(fd);
	queue_env_free(e);
	snprintf(e->qid, sizeof e->qid, "%s", qid);
	return -1;
}

int
queue_open(const char *spool_dir, const char *qid)
{
	char p[1024];

	path(p, sizeof p, spool_dir, "queue", qid);
	return open(p, O_RDONLY | O_CLOEXEC);
}

int
queue_note(const char *spool_dir, const char *qid, int sync, const char *fmt, ...)
{
	char p[1024], line[1024];
	va_list ap;
	int fd, n, rc;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof line - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n >= sizeof line - 1)
		n = (int)sizeof line - 2;
	/* One line per fact: nothing a server said may break the record. */
	for (int i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[n++] = '\n';
	path(p, sizeof p, spool_dir, "status", qid);
	if ((fd = open(p, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)) < 0)
		return -1;
	rc = write(fd, line, (size_t)n) == n && (!sync || fdatasync(fd) == 0) ? 0 : -1;
	close(fd);
	return rc;
}

void
queue_remove(const char *spool_dir, const char *qid)
{
	char p[1024];

	spool_recycle(spool_dir, qid);          /* the file first: no file without its status */
	path(p, sizeof p, spool_dir, "status", qid);
	unlink(p);
}

void
queue_quarantine(const char *spool_dir, const char *qid)
{
	char from[1024], to[1024];

	path(from, sizeof from, spool_dir, "queue", qid);
	path(to, sizeof to, spool_dir, "corrupt", qid);
	rename(from, to);
}

void
queue_pidfile(const char *spool_dir)
{
	char p[1024], tmp[1100], pid[32];
	int fd, n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());

	snprintf(p, sizeof p, "%s/delivery.pid", spool_dir);
	snprintf(tmp, sizeof tmp, "%s.tmp", p);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0)
		return;
	if (write(fd, pid, (size_t)n) == n)
		rename(tmp, p);
	close(fd);
}

int
queue_control(const char *spool_dir, const char *request)
{
	char p[1024], tmp[1100], buf[32];
	static unsigned seq;
	int fd, n;
	long pid;

	snprintf(p, sizeof p, "%s/control/%d.%u", spool_dir, (int)getpid(), seq++);
	snprintf(tmp, sizeof tmp, "%s/control/.%d.tmp", spool_dir, (int)getpid());
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0)
		return -1;
	n = (int)strlen(request);
	if (write(fd, request, (size_t)n) != n || close(fd) < 0 || rename(tmp, p) < 0) {
		unlink(tmp);
		return -1;
	}
	snprintf(p, sizeof p, "%s/delivery.pid", spool_dir);
	if ((fd = open(p, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = (int)read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	pid = strtol(buf, NULL, 10);
	return pid > 1 && kill((pid_t)pid, SIGUSR1) == 0 ? 1 : 0;
}

void
queue_requests(const char *spool_dir, void (*fn)(void *arg, const char *req), void *arg)
{
	char p[1024], f[1400], req[512];
	DIR *d;
	struct dirent *de;

	snprintf(p, sizeof p, "%s/control", spool_dir);
	if (!(d = opendir(p)))
		return;
	while ((de = readdir(d)) != NULL) {
		int fd;
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		snprintf(f, sizeof f, "%s/%s", p, de->d_name);
		if ((fd = open(f, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
			continue;
		n = read(fd, req, sizeof req - 1);
		close(fd);
		unlink(f);
		if (n > 0) {
			req[n] = '\0';
			fn(arg, req);
		}
	}
	closedir(d);
}

long
queue_scan(const char *spool_dir, void (*fn)(void *arg, const char *qid), void *arg)
{
	char p[1024];
	DIR *d;
	struct dirent *de;
	long n = 0;

	snprintf(p, sizeof p, "%s/queue", spool_dir);
	if (!(d = opendir(p)))
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		fn(arg, de->d_name);
		n++;
	}
	closedir(d);
	return n;
}
