/*
 * state_cli.c - `mxgate state` (see state_cli.h): a thin front end over
 * the operators' calls of state.h, so the server and the operator always
 * agree on keys and value formats, whichever backend (LMDB or Redis).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <ev.h>

#include "state.h"
#include "state_cli.h"
#include "version.h"

#define CLI_VALUE_MAX 2048       /* a rendered value: callout text is <= 1024 */
#define CLI_DEFAULT_ALLOW "expires=+35d"

enum { EXIT_DONE = 0, EXIT_NOTFOUND = 1, EXIT_ERROR = 2 };

/* why == NULL and code 0: --help (stdout); otherwise a usage error (stderr, 2). */
static int usage_to(const char *why, int code)
{
	if (why)
		fprintf(stderr, "mxgate state: %s\n", why);
	fprintf(code ? stderr : stdout,
	    "usage: mxgate state [-d DIR] list DB\n"
	    "       mxgate state [-d DIR] get DB KEY\n"
	    "       mxgate state [-d DIR] add DB KEY [VALUE]\n"
	    "       mxgate state [-d DIR] del DB KEY\n"
	    "       mxgate state [-d DIR] sweep\n"
	    "DB: greylist | allow | ratelimit | callout\n"
	    "(mxgate state -c CONFIG ... reads that config's state_dir)\n");
	return code;
}

static int usage(const char *why)
{
	return usage_to(why, EXIT_ERROR);
}

/* Keys hold whatever an SMTP client sent: never let one drive the terminal. */
static void put_text(FILE *f, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\x%02x", *p);
		else
			fputc(*p, f);
	}
}

static int expired(const char *value, double now)
{
	if (strncmp(value, "expires=", 8) != 0)
		return 1;
	return strtod(value + 8, NULL) <= now;
}

static void print_record(const char *key, const char *value, double now)
{
	if (key) {
		put_text(stdout, key);
		fputc('\t', stdout);
	}
	put_text(stdout, value);
	if (expired(value, now))
		fputs("\t(expired)", stdout);
	fputc('\n', stdout);
}

static void list_cb(void *arg, const char *key, const char *value)
{
	print_record(key, value, *(const double *)arg);
}

struct keys {
	const char *prefix;   /* "KEY/" */
	char      **v;
	size_t      n, cap;
	int         oom;
};

static void collect_cb(void *arg, const char *key, const char *value)
{
	struct keys *k = arg;
	if (strncasecmp(key, k->prefix, strlen(k->prefix)) != 0 || k->oom)
		return;
	if (k->n == k->cap) {
		size_t cap = k->cap ? k->cap * 2 : 16;
		char **v = realloc(k->v, cap * sizeof *v);
		if (!v) {
			k->oom = 1;
			return;
		}
		k->v = v, k->cap = cap;
	}
	if (!(k->v[k->n] = strdup(key)))
		k->oom = 1;
	else
		k->n++;
}

static void not_found(const char *db, const char *key)
{
	fprintf(stderr, "mxgate state: no such record: %s ", db);
	put_text(stderr, key);
	fputc('\n', stderr);
}

static int store_error(struct state *st, const char *verb)
{
	fprintf(stderr, "mxgate state: %s: %s\n", verb, state_error(st));
	return EXIT_ERROR;
}

/* A ratelimit key and the limits a rule keeps under it ("KEY/..."). */
static int del_ratelimit(struct state *st, const char *key)
{
	char prefix[1024];
	struct keys k = { prefix, NULL, 0, 0, 0 };
	int found = 0, rc = EXIT_DONE;

	if ((size_t)snprintf(prefix, sizeof prefix, "%s/", key) >= sizeof prefix)
		return usage("key too long");
	if (state_list_wait(st, STATE_RATELIMIT, collect_cb, &k))
		rc = store_error(st, "del");
	else if (k.oom) {
		fprintf(stderr, "mxgate state: del: out of memory\n");
		rc = EXIT_ERROR;
	}
	int r = rc ? 1 : state_del_wait(st, STATE_RATELIMIT, key);
	if (r < 0)
		rc = store_error(st, "del");
	found |= r == 0;
	for (size_t i = 0; i < k.n; i++) {
		if (!rc && (r = state_del_wait(st, STATE_RATELIMIT, k.v[i])) < 0)
			rc = store_error(st, "del");
		found |= r == 0;
		free(k.v[i]);
	}
	free(k.v);
	if (!rc && !found) {
		not_found("ratelimit", key);
		rc = EXIT_NOTFOUND;
	}
	return rc;
}

static int run(struct state *st, const char *verb, int db, const char *dbname,
    const char *key, const char *value)
{
	double now = (double)time(NULL);
	char buf[CLI_VALUE_MAX];
	int r;

	if (strcmp(verb, "list") == 0) {
		return state_list_wait(st, db, list_cb, &now) ? store_error(st, "list") : EXIT_DONE;
	}
	if (strcmp(verb, "get") == 0) {
		if ((r = state_get_wait(st, db, key, buf, sizeof buf)) < 0)
			return store_error(st, "get");
		if (r > 0) {
			not_found(dbname, key);
			return EXIT_NOTFOUND;
		}
		print_record(NULL, buf, now);
		return expired(buf, now) ? EXIT_NOTFOUND : EXIT_DONE;
	}
	if (strcmp(verb, "add") == 0) {
		if (!value && db != STATE_ALLOW)
			return usage("add needs a VALUE, e.g. \"expires=+48h\"");
		return state_put_wait(st, db, key, value ? value : CLI_DEFAULT_ALLOW, now)
		    ? store_error(st, "add") : EXIT_DONE;
	}
	if (db == STATE_RATELIMIT)
		return del_ratelimit(st, key);
	if ((r = state_del_wait(st, db, key)) < 0)
		return store_error(st, "del");
	if (r > 0) {
		not_found(dbname, key);
		return EXIT_NOTFOUND;
	}
	return EXIT_DONE;
}

int state_cli_main(int argc, char **argv, const struct state_conf *conf)
{
	const char *dir = getenv("MXGATE_STATE_DIR");
	struct state_conf sc = { .backend = "lmdb" };
	char err[512], path[4096];
	struct stat sb;
	int i = 1, db = -1, nargs, dir_given = 0;

	if (!dir || !*dir)
		dir = STATE_CLI_DIR;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-d") == 0 && i + 1 < argc)
			dir = argv[++i], dir_given = 1;
		else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return usage_to(NULL, EXIT_DONE);
		else if (strcmp(argv[i], "--version") == 0)
			return printf("mxgate state %s\n", MXGATE_VERSION), EXIT_DONE;
		else
			return usage("unknown option");
	}
	if (i >= argc)
		return usage(NULL);
	const char *verb = argv[i++];
	nargs = argc - i;
	if (strcmp(verb, "sweep") == 0) {
		if (nargs != 0)
			return usage("sweep takes no arguments");
	} else if (strcmp(verb, "list") == 0 || strcmp(verb, "get") == 0 ||
	    strcmp(verb, "add") == 0 || strcmp(verb, "del") == 0) {
		int want = strcmp(verb, "list") == 0 ? 1 : 2;
		int most = strcmp(verb, "add") == 0 ? 3 : want;
		if (nargs < want || nargs > most)
			return usage(nargs < want ? "missing arguments" : "too many arguments");
		if ((db = state_db_lookup(argv[i])) < 0) {
			fprintf(stderr, "mxgate state: no such database: %s "
			    "(greylist, allow, ratelimit, callout)\n", argv[i]);
			return EXIT_ERROR;
		}
		if (nargs >= 2 && !*argv[i + 1])
			return usage("empty key");
	} else {
		fprintf(stderr, "mxgate state: unknown command: %s\n", verb);
		return usage(NULL);
	}

	if (conf && !dir_given)
		sc = *conf;
	else
		snprintf(sc.dir, sizeof sc.dir, "%s", dir);
	/* Creating a store here would leave files the server (another user)
	 * cannot lock, and hide a mistyped -d. */
	snprintf(path, sizeof path, "%s/data.mdb", sc.dir);
	if (strcmp(sc.backend, "lmdb") == 0 && stat(path, &sb) != 0) {
		fprintf(stderr, "mxgate state: no state store in %s (use -d DIR or MXGATE_STATE_DIR)\n", sc.dir);
		return EXIT_ERROR;
	}
	/* A loop of our own: a networked store answers on it, we wait. */
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct state *st = loop ? state_open(&sc, loop, err, sizeof err) : NULL;
	if (!st) {
		fprintf(stderr, "mxgate %s\n", loop ? err : "state: cannot create an event loop");
		if (loop)
			ev_loop_destroy(loop);
		return EXIT_ERROR;
	}
	int rc;
	if (strcmp(verb, "sweep") == 0) {
		long n = state_sweep_wait(st, (double)time(NULL));
		rc = n < 0 ? store_error(st, "sweep") : EXIT_DONE;
		if (n >= 0)
			printf("swept %ld expired records\n", n);
	} else {
		rc = run(st, verb, db, argv[i], nargs >= 2 ? argv[i + 1] : NULL,
		    nargs >= 3 ? argv[i + 2] : NULL);
	}
	state_close(st);
	ev_loop_destroy(loop);
	if (fflush(stdout) != 0 && rc == EXIT_DONE)
		rc = EXIT_ERROR;
	return rc;
}
