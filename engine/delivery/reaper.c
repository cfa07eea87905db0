/*
 * reaper.c - the thread that unlinks finished queue files (see reaper.h).
 *
 * Why a thread: on ext4 mounted with `discard` and no journal (this
 * machine's root), an unlink that frees blocks issues the discard and
 * waits for the device inside the syscall (ext4_free_blocks ->
 * blkdev_issue_discard -> submit_bio_wait). Draining 20,000 queued
 * messages, 94% of the delivery process's context switches were that
 * wait, two per message (the queue file and its status record), with
 * every session's socket unread meanwhile. A rename frees nothing, so the
 * loop only renames; this thread pays for the discards.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reaper.h"
#include "spool.h"

struct reaper {
	pthread_t        thread;
	pthread_mutex_t  mu;
	pthread_cond_t   cond;
	int              pending;       /* names were added since the last pass */
	int              stop;
	char             dir[1024];     /* the spool dir */
	int              trashfd;
};

/* One pass over trash/: everything in it goes. */
static void
sweep(struct reaper *r)
{
	int fd = dup(r->trashfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		unlinkat(r->trashfd, de->d_name, 0);
		/* A queue file's status record goes after it (see reaper_remove). */
		if (!strchr(de->d_name, '.') && strlen(de->d_name) < QID_LEN) {
			char p[sizeof r->dir + sizeof de->d_name + 8];

			snprintf(p, sizeof p, "%s/status/%s", r->dir, de->d_name);
			unlink(p);
		}
		if (__atomic_load_n(&r->stop, __ATOMIC_RELAXED))
			break;          /* shutting down: the rest waits for the next start */
	}
	closedir(d);
}

static void *
run(void *arg)
{
	struct reaper *r = arg;

	for (;;) {
		pthread_mutex_lock(&r->mu);
		while (!r->pending && !r->stop)
			pthread_cond_wait(&r->cond, &r->mu);
		if (r->stop) {
			pthread_mutex_unlock(&r->mu);
			return NULL;
		}
		r->pending = 0;
		pthread_mutex_unlock(&r->mu);
		sweep(r);
	}
}

struct reaper *
reaper_start(const char *spool_dir)
{
	struct reaper *r = calloc(1, sizeof *r);
	char p[1100];

	if (!r)
		return NULL;
	snprintf(r->dir, sizeof r->dir, "%s", spool_dir);
	snprintf(p, sizeof p, "%s/trash", spool_dir);
	if ((mkdir(p, 0700) < 0 && errno != EEXIST) ||
	    (r->trashfd = open(p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		free(r);
		return NULL;
	}
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cond, NULL);
	r->pending = 1;                 /* what a crash left behind */
	if (pthread_create(&r->thread, NULL, run, r) != 0) {
		close(r->trashfd);
		free(r);
		return NULL;
	}
	return r;
}

void
reaper_stop(struct reaper *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	__atomic_store_n(&r->stop, 1, __ATOMIC_RELAXED);
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->thread, NULL);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cond);
	close(r->trashfd);
	free(r);
}

/* from into trash/NAME; unlinked here when it cannot be moved (0). 1 if moved. */
static int
trash(struct reaper *r, const char *from, const char *name)
{
	if (renameat(AT_FDCWD, from, r->trashfd, name) == 0)
		return 1;
	if (errno != ENOENT)
		unlink(from);
	return 0;
}

void
reaper_remove(struct reaper *r, const char *qid)
{
	char p[1100], name[QID_LEN + 8];
	int moved = 0;

	/*
	 * The file first: no queue file without its status record. One rename
	 * per message (each is a lookup and an insert in a large directory):
	 * trash/QID stands for both, the thread unlinks it and then
	 * status/QID; a file that went into a ring sends its status record
	 * on its own, as trash/QID.status.
	 */
	if (spool_recycle_ring(r->dir, qid) < 0) {
		snprintf(p, sizeof p, "%s/queue/%s", r->dir, qid);
		moved = trash(r, p, qid);
	}
	if (!moved) {
		snprintf(p, sizeof p, "%s/status/%s", r->dir, qid);
		snprintf(name, sizeof name, "%s.status", qid);
		if (!trash(r, p, name))
			return;
	}
	pthread_mutex_lock(&r->mu);
	if (!r->pending) {
		r->pending = 1;
		pthread_cond_signal(&r->cond);
	}
	pthread_mutex_unlock(&r->mu);
}
