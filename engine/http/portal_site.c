/*
 * portal_site.c - the portal's pages as a whole (portal.h): the index and
 * the reasons they read, the indexer thread, the check of every query
 * argument, and which page answers which path.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "portal.h"
#include "portal_pages.h"

#define UPDATE_BUDGET  ((size_t)8 << 20)   /* log bytes a request reads before answering */
#define PRUNE_BATCH    1000                /* records removed in one write transaction */
#define PRUNE_EVERY    60                  /* seconds between retention passes */

struct portal {
	struct logindex *ix;
	struct portal_reasons reasons;
	pthread_mutex_t lock;           /* the reasons, swapped by portal_reload */
	pthread_t indexer;
	int running, stop;
	char warn[1200];
	const struct conf *conf;        /* the caller's, alive while the portal is */
	double rules_stamp;             /* newest mtime in the rules directory */
};

/*
 * Keeps the index current between requests, so a request finds little to
 * read, and once it is current (or cannot be), within http.index_retention:
 * a pass at start and every PRUNE_EVERY seconds, PRUNE_BATCH records a
 * transaction, a pause between batches so a request's update (which
 * waits for LMDB's one writer) gets in.
 */
static void *
indexer(void *arg)
{
	struct portal *p = arg;
	double keep = p->conf->http.index_retention * 86400;
	time_t next_prune = 0;
	int pruning = 0;
	char err[512];

	while (!__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) {
		struct timespec pause = { 0, 500 * 1000 * 1000 };
		int rc = index_update(p->ix, UPDATE_BUDGET, err, sizeof err);
		/* Also after an update failed: a full index (MDB_MAP_FULL) gets
		 * its room back only from here. */
		if (rc != 1 && (pruning || time(NULL) >= next_prune)) {
			int pr = index_prune(p->ix, (double)time(NULL) - keep, PRUNE_BATCH, err, sizeof err);
			if (pr < 0 && !pruning)
				log_event("portal_error", "error", err, NULL);
			pruning = pr == 1;
			if (!pruning)
				next_prune = time(NULL) + PRUNE_EVERY;
			else
				pause.tv_nsec = 10 * 1000 * 1000;
		}
		if (rc != 1)
			nanosleep(&pause, NULL);
	}
	return NULL;
}

/* The newest modification time of the rules directory and its files: a
 * change means the reasons may have changed too (the HTTP process gets no
 * SIGHUP of its own to reload on). */
static double
rules_stamp(const char *dir)
{
	struct stat st;
	struct dirent *e;
	double newest = 0;
	char path[1024];
	DIR *d;

	if (stat(dir, &st) == 0)
		newest = (double)st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9;
	if (!(d = opendir(dir)))
		return newest;
	while ((e = readdir(d))) {
		double t;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		if (e->d_name[0] == '.' || stat(path, &st) < 0)
			continue;
		t = (double)st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9;
		newest = t > newest ? t : newest;
	}
	closedir(d);
	return newest;
}

static void
index_paths(const struct conf *c, char *dir, size_t len)
{
	snprintf(dir, len, "%.500s/index", c->state_dir);
}

struct portal *
portal_open(const struct conf *c, char *err, size_t errlen)
{
	struct portal *p = calloc(1, sizeof *p);
	char dir[600];

	if (!p) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&p->lock, NULL);
	if (!c->log_file[0]) {
		snprintf(err, errlen, "portal: log_file is not set: there is no log to index");
		goto bad;
	}
	index_paths(c, dir, sizeof dir);
	if (index_open(&p->ix, dir, c->log_file, c->journal.dir, 0, c->http.index_max_size, err,
	    errlen) < 0)
		goto bad;
	if (portal_reasons_load(&p->reasons, c->path, c->stdlib, c->rules, p->warn, sizeof p->warn,
	    err, errlen) < 0)
		goto bad;
	p->conf = c;
	p->rules_stamp = rules_stamp(c->rules);
	p->running = pthread_create(&p->indexer, NULL, indexer, p) == 0;
	return p;
bad:
	portal_close(p);
	return NULL;
}

int
portal_reload(struct portal *p, const struct conf *c, char *err, size_t errlen)
{
	struct portal_reasons rs, old;
	char warn[sizeof p->warn];

	if (portal_reasons_load(&rs, c->path, c->stdlib, c->rules, warn, sizeof warn, err, errlen) < 0)
		return -1;
	pthread_mutex_lock(&p->lock);
	old = p->reasons;
	p->reasons = rs;
	memcpy(p->warn, warn, sizeof warn);
	pthread_mutex_unlock(&p->lock);
	portal_reasons_free(&old);
	return 0;
}

void
portal_close(struct portal *p)
{
	if (!p)
		return;
	if (p->running) {
		__atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);
		pthread_join(p->indexer, NULL);
	}
	index_close(p->ix);
	portal_reasons_free(&p->reasons);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

/* ------------------------------------------------------------------ */
/* requests                                                            */

static const char *const pages[] = { "/", "/search", "/trace" };

int
portal_owns(const char *path)
{
	for (size_t i = 0; i < sizeof pages / sizeof *pages; i++)
		if (!strcmp(path, pages[i]))
			return 1;
	return 0;
}

/* The arguments every page may take; each checked once, here. */
static const char *const known_args[] = { "window", "since", "until", "field", "q", "before", "id" };

/*
 * The arguments, bounded and printable: 0, or the status of the error page
 * (414 for a huge one, 400 for control bytes) with why.
 */
static int
check_args(struct portal_query *q, portal_arg_fn arg, void *ctx, char *why, size_t len)
{
	for (size_t i = 0; i < sizeof known_args / sizeof *known_args; i++) {
		const char *v = arg(ctx, known_args[i]);
		if (!v)
			continue;
		if (strlen(v) > PORTAL_ARG_MAX) {
			snprintf(why, len, "the argument %s is longer than %d bytes", known_args[i], PORTAL_ARG_MAX);
			return 414;
		}
		for (const unsigned char *s = (const unsigned char *)v; *s; s++)
			if (*s < 0x20 || *s == 0x7f) {
				snprintf(why, len, "the argument %s holds control characters", known_args[i]);
				return 400;
			}
	}
	q->window = arg(ctx, "window");
	q->since_s = arg(ctx, "since");
	q->until_s = arg(ctx, "until");
	q->field = arg(ctx, "field");
	q->value = arg(ctx, "q");
	q->before_s = arg(ctx, "before");
	q->id = arg(ctx, "id");
	return portal_query_window(q, why, len);
}

void
portal_handle(struct portal *p, const char *path, portal_arg_fn arg, void *ctx, struct portal_reply *r)
{
	struct portal_query q;
	char why[300], err[512];
	int status;

	r->status = 200;
	r->type = "text/html; charset=utf-8";
	memset(&q, 0, sizeof q);
	if (!portal_owns(path)) {
		portal_error(&r->body, 404, "There is no such page.");
		r->status = 404;
		return;
	}
	if ((status = check_args(&q, arg, ctx, why, sizeof why)) != 0) {
		portal_error(&r->body, status, why);
		r->status = status;
		return;
	}
	/* What the log gained since the indexer last looked, bounded. */
	if (index_update(p->ix, UPDATE_BUDGET, err, sizeof err) < 0) {
		portal_error(&r->body, 503, err);
		r->status = 503;
		return;
	}
	/* Rules edited since: their reasons, before the table shows them. */
	if (!strcmp(path, "/")) {
		double stamp = rules_stamp(p->conf->rules);
		if (stamp != p->rules_stamp && portal_reload(p, p->conf, err, sizeof err) == 0)
			p->rules_stamp = stamp;
	}
	pthread_mutex_lock(&p->lock);
	if (!strcmp(path, "/"))
		r->status = portal_page_table(&r->body, p->ix, &p->reasons, &q);
	else if (!strcmp(path, "/search"))
		r->status = portal_page_search(&r->body, p->ix, &q);
	else
		r->status = portal_page_trace(&r->body, p->ix, &q);
	pthread_mutex_unlock(&p->lock);
	if (r->body.err) {
		buf_reset(&r->body);
		portal_error(&r->body, 500, "The page did not fit.");
		r->status = 500;
	}
}
