/*
 * log.c - logfmt lines on one append-only descriptor.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "safepath.h"

#define LOG_LINE 4096

static int  log_fd = 2;
static char log_path[512];
int log_debug;

int
log_open(const char *path)
{
	struct stat st;
	int fd;

	log_debug = getenv("MXGATE_DEBUG") != NULL;
	if (!path || !*path) {
		log_fd = 2;
		log_path[0] = '\0';
		return 0;
	}
	/* Root opens it before dropping privileges, maybe in a directory the
	 * unprivileged user can write: no planted link, no hard link to a
	 * file elsewhere, nothing but a plain file (or a device: /dev/null). */
	fd = safe_open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOCTTY | O_NONBLOCK, 0640);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !(S_ISCHR(st.st_mode) || (S_ISREG(st.st_mode) && st.st_nlink == 1))) {
		close(fd);
		errno = EPERM;
		return -1;
	}
	fcntl(fd, F_SETFL, O_APPEND);
	if (log_fd > 2)
		close(log_fd);
	log_fd = fd;
	snprintf(log_path, sizeof log_path, "%s", path);
	return 0;
}

/* The master, before dropping root: the file becomes the user's (by descriptor). */
int
log_chown(uid_t uid, gid_t gid)
{
	struct stat st;

	if (log_fd <= 2 || fstat(log_fd, &st) < 0 || !S_ISREG(st.st_mode))
		return 0;
	return safe_own(log_fd, uid, gid, 0);
}

/* After logrotate moved the file: SIGHUP reopens it by name. */
void
log_reopen(void)
{
	if (log_path[0]) {
		char p[sizeof log_path];
		memcpy(p, log_path, sizeof p);
		log_open(p);
	}
}

static size_t
put_value(char *out, size_t room, const char *v)
{
	size_t n = 0;
	int quote = (*v == '\0');
	char esc[8];

	for (const char *p = v; *p && !quote; p++)
		quote = (*p == ' ' || *p == '=' || *p == '"' || (unsigned char)*p < 0x20 || *p == 0x7f);
	if (quote && n < room)
		out[n++] = '"';
	for (const unsigned char *p = (const unsigned char *)v; *p && n + 6 < room; p++) {
		if (*p == '"' || *p == '\\') {
			out[n++] = '\\';
			out[n++] = (char)*p;
		} else if (*p < 0x20 || *p == 0x7f) {
			snprintf(esc, sizeof esc, "\\x%02x", *p);
			memcpy(out + n, esc, 4);
			n += 4;
		} else
			out[n++] = (char)*p;
	}
	if (quote && n < room)
		out[n++] = '"';
	return n;
}

void
log_event(const char *event, ...)
{
	char line[LOG_LINE];
	struct timeval tv;
	struct tm tm;
	size_t n;
	va_list ap;
	const char *k, *v;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(line, sizeof line, "ts=%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, sizeof line - n, ".%03dZ pid=%d event=",
	    (int)(tv.tv_usec / 1000), (int)getpid());
	n += put_value(line + n, sizeof line - n - 1, event);
	va_start(ap, event);
	while ((k = va_arg(ap, const char *)) != NULL) {
		v = va_arg(ap, const char *);
		if (!v)
			continue;
		if (n + strlen(k) + 4 >= sizeof line - 1)
			break;
		line[n++] = ' ';
		memcpy(line + n, k, strlen(k));
		n += strlen(k);
		line[n++] = '=';
		n += put_value(line + n, sizeof line - n - 1, v);
	}
	va_end(ap);
	line[n++] = '\n';
	(void)!write(log_fd, line, n);
}
