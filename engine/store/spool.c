/*
 * spool.c - message files and the group-commit thread.
 *
 * A disk flush is the cost of a durable 250 (a few ms on the test disks),
 * and it must never run on the event loop. One thread per worker takes
 * every message whose DATA ended since its last round and makes them
 * durable together: each file gets its final length in its envelope and is
 * renamed into queue/, then ONE syncfs() writes back every file's data and
 * commits every rename in one journal transaction. Only then does the loop
 * send the 250s. One flush per batch, whatever its size (Postfix pays one
 * fsync per message).
 *
 * A crash during a round can leave a renamed file whose data never reached
 * the disk, but it was never acknowledged, and its size disagrees with the
 * length in its envelope, so a reader knows it for torn. syncfs() flushes
 * the whole file system: keep the spool on its own file system when other
 * writers share the machine.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <ev.h>

#include "safepath.h"
#include "spool.h"

#define LENGTH_FIELD "{\"length\":\"00000000000000000000\",\"sum\":\"0000000000000000\","
#define LENGTH_AT    11                 /* offset of the digits */
#define LENGTH_DIGITS 20
#define SUM_AT       40                 /* offset of the checksum's 16 hex digits */
#define SUM_DIGITS   16
#define FREE_SLOTS   1024               /* queue/.free.PID/N: recycled files, per writer */
#define RING_CACHE   64                 /* rings the delivery process keeps open */

struct spool_msg {
	struct spool     *sp;
	int               fd;
	int               ok;
	int               recycled;         /* queue/.free.PID/<slot>, not tmp/PID.QID */
	unsigned          slot;
	unsigned long long size;            /* bytes written so far */
	uint64_t          sum;              /* spool_sum() of what follows the header */
	char              qid[QID_LEN];
	spool_done_cb    *cb;
	void             *arg;
	struct spool_msg *next;
};

struct spool {
	struct ev_loop   *loop;
	ev_async          wake;
	int               tmpfd, queuefd;     /* directory descriptors */
	int               ringfd;             /* queue/.free.PID, or -1: nothing is recycled */
	pthread_t         thread;
	pthread_mutex_t   lock;
	pthread_cond_t    cond;
	struct spool_msg *todo, **todo_tail;  /* loop -> committer */
	struct spool_msg *done, **done_tail;  /* committer -> loop */
	int               stop;
	long              pending;            /* committed but not yet called back */
	unsigned          cursor;             /* the next slot of our ring to take */
	uint64_t          busy[FREE_SLOTS / 64];  /* slots being written (the ring can wrap) */
};

/*
 * Files left from an earlier owner (another `user`, the old 0640 mode)
 * become ours and private. Only plain files with one link: a link to a
 * file elsewhere, planted by whoever could write here, is left alone.
 */
static void
own_files(int dfd, uid_t uid, gid_t gid)
{
	int fd = dup(dfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	struct stat st;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		int f;
		if (de->d_name[0] == '.' ||
		    fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) ||
		    st.st_nlink != 1 || ((uid == (uid_t)-1 || st.st_uid == uid) && (st.st_mode & 0777) == 0600))
			continue;
		f = openat(dfd, de->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (f < 0)
			continue;
		if (fstat(f, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1)
			(void)safe_own(f, uid, gid, 0600);
		close(f);
	}
	closedir(d);
}

/* dir (made when missing), then tmp/ and queue/ in it, each 0700 and ours. */
int
spool_prepare(const char *dir, uid_t uid, gid_t gid)
{
	const char *sub[] = { "tmp", "queue" };
	int dfd = safe_mkdir(dir, 0700), rc = -1, e;

	if (dfd < 0 || safe_own(dfd, uid, gid, 0700) < 0)
		goto out;
	for (int i = 0; i < 2; i++) {
		int fd = safe_mkdirat(dfd, sub[i], 0700);
		if (fd < 0)
			goto out;
		if (safe_own(fd, uid, gid, 0700) < 0) {
			e = errno;
			close(fd);
			errno = e;
			goto out;
		}
		own_files(fd, uid, gid);
		close(fd);
	}
	rc = 0;
out:
	e = errno;
	if (dfd >= 0)
		close(dfd);
	errno = e;
	return rc;
}

/*
 * Empties and removes the ring directory `name` in queue/. The delivery
 * process may still be renaming a finished message of the dead writer into
 * it: such a file lands before the rmdir (and the next round finds it, the
 * rmdir having failed with ENOTEMPTY) or after it, when the rename fails
 * (a removed directory takes no new names) and the delivery process unlinks
 * the file itself. The writer is dead, so its finished messages, and the
 * rounds, are finite.
 */
static void
remove_ring(int qfd, const char *name)
{
	for (int round = 0; round < 1000; round++) {
		int fd = openat(qfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
		struct dirent *de;

		if (!d) {
			if (fd >= 0)
				close(fd);
			if (errno == ENOTDIR)           /* a slot file of the flat layout before rings were directories */
				unlinkat(qfd, name, 0);
			return;
		}
		while ((de = readdir(d)) != NULL)
			if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
				unlinkat(fd, de->d_name, 0);
		closedir(d);
		if (unlinkat(qfd, name, AT_REMOVEDIR) == 0 || errno != ENOTEMPTY)
			return;
	}
}

/*
 * In dir/sub, the entries whose names start with prefix+pid+"." (every pid
 * when pid is 0), or are exactly prefix+pid when `ring`: each is removed
 * with remove_ring() then, files and ring directories alike.
 */
static void
clean_dir(const char *dir, const char *sub, const char *prefix, pid_t pid, int ring)
{
	char p[1024], start[40];
	DIR *d;
	struct dirent *de;
	int dfd, len;

	snprintf(p, sizeof p, "%s/%s", dir, sub);
	if (pid)
		len = snprintf(start, sizeof start, "%s%d%s", prefix, (int)pid, ring ? "" : ".");
	else
		len = snprintf(start, sizeof start, "%s", prefix);
	if ((dfd = safe_open(p, O_RDONLY | O_DIRECTORY, 0)) < 0)
		return;
	if (ring && pid) {                      /* one name: no need to list the queue */
		remove_ring(dfd, start);
		close(dfd);
		return;
	}
	if (!(d = fdopendir(dfd))) {
		close(dfd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    (!start[0] && de->d_name[0] == '.') || strncmp(de->d_name, start, (size_t)len) != 0)
			continue;
		if (ring)
			remove_ring(dfd, de->d_name);
		else
			unlinkat(dfd, de->d_name, 0);
	}
	closedir(d);
}

void
spool_clean_tmp(const char *dir, pid_t pid)
{
	clean_dir(dir, "tmp", "", pid, 0);
	clean_dir(dir, "queue", ".free.", pid, 1);  /* its ring, and what it was writing there */
}

/*
 * Queue ids sort by time and are unique across workers and restarts:
 * microseconds since the epoch, the pid and a counter, in base 32.
 */
void
qid_new(char out[QID_LEN])
{
	static const char b32[] = "0123456789ABCDEFGHJKLMNPQRSTVWXY";
	static unsigned counter;
	struct timeval tv;
	uint64_t us;
	unsigned pid = (unsigned)getpid(), c = counter++;
	int n = 0;
	char t[16];

	gettimeofday(&tv, NULL);
	us = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
	for (int i = 10; i >= 0; i--, us >>= 5)
		t[i] = b32[us & 31];
	memcpy(out, t, 11);
	n = 11;
	for (int i = 0; i < 5; i++, pid >>= 5)
		out[n++] = b32[pid & 31];
	for (int i = 0; i < 3; i++, c >>= 5)
		out[n++] = b32[c & 31];
	out[n] = '\0';
}

/* Where a message is written: tmp/PID.QID (a new file) or its ring slot queue/.free.PID/N. */
static void
tmpname(char *buf, size_t len, const struct spool_msg *m)
{
	if (m->recycled)
		snprintf(buf, len, "%u", m->slot);
	else
		snprintf(buf, len, "%d.%s", (int)getpid(), m->qid);
}

static int
tmpdir(const struct spool_msg *m)
{
	return m->recycled ? m->sp->ringfd : m->sp->tmpfd;
}

uint64_t
spool_sum(uint64_t h, const void *buf, size_t n)
{
	return fnv1a(h, buf, n);
}

/*
 * A file the delivery process finished with (spool_recycle()) is opened
 * where it lies and overwritten: no inode is allocated. On ext4 without a
 * journal, allocating one skips every inode of the group freed in the last
 * 60 s (recently_deleted()): with delivery deleting as fast as we accept,
 * that scan was a quarter of the workers' CPU. Each process has its own
 * ring of slots, queue/.free.PID/N, filled in order by the delivery process
 * (one producer, which never replaces a slot that exists) and taken in
 * order here (one consumer): the slot is ours until the commit renames it
 * to queue/QID. `busy` keeps two messages out of one slot when more than
 * FREE_SLOTS are written at once.
 */
static int
claim(struct spool *sp, struct spool_msg *m)
{
	char name[48];
	unsigned slot = sp->cursor % FREE_SLOTS;

	if (sp->ringfd < 0 || (sp->busy[slot / 64] & (1ULL << (slot % 64))))
		return -1;
	m->recycled = 1;
	m->slot = slot;
	tmpname(name, sizeof name, m);
	if ((m->fd = openat(sp->ringfd, name, O_WRONLY | O_NOFOLLOW | O_CLOEXEC)) >= 0) {
		sp->busy[slot / 64] |= 1ULL << (slot % 64);
		sp->cursor++;
		return 0;
	}
	m->recycled = 0;
	return -1;
}

/* The loop thread only: the slot can be taken again. */
static void
release(struct spool_msg *m)
{
	if (m->recycled)
		m->sp->busy[m->slot / 64] &= ~(1ULL << (m->slot % 64));
}

struct spool_msg *
spool_create(struct spool *sp, const char *qid)
{
	struct spool_msg *m = calloc(1, sizeof *m);
	char name[64];

	if (!m)
		return NULL;
	m->sp = sp;
	snprintf(m->qid, sizeof m->qid, "%s", qid);
	if (claim(sp, m) < 0) {
		tmpname(name, sizeof name, m);
		m->fd = openat(sp->tmpfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	}
	if (m->fd < 0) {
		free(m);
		return NULL;
	}
	if (spool_write(m, LENGTH_FIELD, strlen(LENGTH_FIELD)) < 0) {
		spool_abort(m);
		return NULL;
	}
	m->sum = SPOOL_SUM_INIT;
	return m;
}

int
spool_write(struct spool_msg *m, const void *buf, size_t n)
{
	const char *p = buf;

	m->sum = spool_sum(m->sum, buf, n);
	while (n > 0) {
		ssize_t w = write(m->fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
		m->size += (unsigned long long)w;
	}
	return 0;
}

void
spool_abort(struct spool_msg *m)
{
	char name[64];

	tmpname(name, sizeof name, m);
	if (!m->recycled)               /* a slot stays a slot, whatever it holds */
		unlinkat(tmpdir(m), name, 0);
	release(m);
	close(m->fd);
	free(m);
}

/* The pid qid_new() wrote into a queue id, or 0. */
static pid_t
qid_pid(const char *qid)
{
	static const char b32[] = "0123456789ABCDEFGHJKLMNPQRSTVWXY";
	unsigned pid = 0;

	if (strlen(qid) != 19)          /* 11 time, 5 pid, 3 counter */
		return 0;
	for (int i = 4; i >= 0; i--) {
		const char *c = memchr(b32, qid[11 + i], 32);
		if (!c || !qid[11 + i])
			return 0;
		pid = pid << 5 | (unsigned)(c - b32);
	}
	return (pid_t)pid;
}

/*
 * The delivery process's open rings, by writer pid. A ring's directory
 * exists from its writer's spool_open() until the master, having reaped
 * that writer, removes it: so "is the writer still there" is "does its
 * ring still take names", which no other process that later gets the same
 * pid can fake (kill(pid, 0) could be fooled, and the slots it let in were
 * stranded: nobody consumes them, nobody removes them).
 */
static struct ring { pid_t pid; int fd; unsigned next; } rings[RING_CACHE];
static unsigned ring_victim;

static void
ring_forget(struct ring *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->pid = 0;
	r->fd = -1;
}

/* The open ring of writer pid, or NULL when it has none (gone, or never had one). */
static struct ring *
ring_of(const char *dir, pid_t pid)
{
	char p[1024];
	struct ring *r;
	int fd;

	for (int i = 0; i < RING_CACHE; i++)
		if (rings[i].pid == pid && rings[i].fd >= 0)
			return &rings[i];
	snprintf(p, sizeof p, "%s/queue/.free.%d", dir, (int)pid);
	if ((fd = open(p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return NULL;
	r = &rings[ring_victim++ % RING_CACHE];
	if (r->pid)
		ring_forget(r);
	r->pid = pid;
	r->fd = fd;
	r->next = 0;
	return r;
}

/*
 * The delivery process is done with queue/QID: it goes back to the ring of
 * the process that wrote it (its pid is in the queue id), if that one still
 * has a ring with room, instead of being deleted. A crash can bring back a
 * file whose rename did not reach the disk: under its old name it is the
 * old message, whole (a duplicate, as an unlink that did not reach the disk
 * would be); a recycled file renamed to a new name but only partly
 * rewritten fails its "sum" and is skipped.
 */
int
spool_recycle_ring(const char *dir, const char *qid)
{
	char from[1024], slot[16];
	pid_t pid = qid_pid(qid);
	struct ring *r;
	struct stat st;

	snprintf(from, sizeof from, "%s/queue/%s", dir, qid);
	/* Twice at most: a ring found removed may have a successor under the
	 * same pid (a new worker the kernel gave it). */
	for (int tries = 0; pid > 1 && tries < 2 && (r = ring_of(dir, pid)) != NULL; tries++) {
		snprintf(slot, sizeof slot, "%u", r->next % FREE_SLOTS);
		if (renameat2(AT_FDCWD, from, r->fd, slot, RENAME_NOREPLACE) == 0) {
			r->next++;
			return 0;
		}
		if (errno != ENOENT || fstat(r->fd, &st) < 0 || st.st_nlink > 0)
			break;                  /* its ring is full (EEXIST), or queue/QID is gone */
		ring_forget(r);                 /* removed: its writer was reaped */
	}
	return -1;
}

void
spool_recycle(const char *dir, const char *qid)
{
	char from[1024];

	if (spool_recycle_ring(dir, qid) == 0)
		return;
	snprintf(from, sizeof from, "%s/queue/%s", dir, qid);
	unlink(from);
}

/* One round: everything queued so far becomes durable together. */
static void
commit_batch(struct spool *sp, struct spool_msg *batch)
{
	char name[64], digits[LENGTH_DIGITS + 1], sum[SUM_DIGITS + 1];
	int synced;

	for (struct spool_msg *m = batch; m; m = m->next) {
		tmpname(name, sizeof name, m);
		snprintf(digits, sizeof digits, "%0*llu", LENGTH_DIGITS, m->size);
		snprintf(sum, sizeof sum, "%0*llx", SUM_DIGITS, (unsigned long long)m->sum);
		m->ok = pwrite(m->fd, digits, LENGTH_DIGITS, LENGTH_AT) == LENGTH_DIGITS &&
		    pwrite(m->fd, sum, SUM_DIGITS, SUM_AT) == SUM_DIGITS &&
		    (!m->recycled || ftruncate(m->fd, (off_t)m->size) == 0) &&
		    renameat(tmpdir(m), name, sp->queuefd, m->qid) == 0;
		if (!m->ok && !m->recycled)
			unlinkat(tmpdir(m), name, 0);
	}
	synced = syncfs(sp->queuefd) == 0;
	for (struct spool_msg *m = batch; m; m = m->next) {
		if (m->ok && !synced) {
			unlinkat(sp->queuefd, m->qid, 0);   /* not durable: no 250, no copy */
			m->ok = 0;
		}
		close(m->fd);
		m->fd = -1;
	}
}

static void *
committer(void *arg)
{
	struct spool *sp = arg;

	pthread_mutex_lock(&sp->lock);
	for (;;) {
		struct spool_msg *batch, **tail;

		while (!sp->todo && !sp->stop)
			pthread_cond_wait(&sp->cond, &sp->lock);
		if (!sp->todo && sp->stop)
			break;
		batch = sp->todo;
		tail = sp->todo_tail;
		sp->todo = NULL;
		sp->todo_tail = &sp->todo;
		pthread_mutex_unlock(&sp->lock);

		commit_batch(sp, batch);

		pthread_mutex_lock(&sp->lock);
		*sp->done_tail = batch;
		sp->done_tail = tail;
		ev_async_send(sp->loop, &sp->wake);
	}
	pthread_mutex_unlock(&sp->lock);
	return NULL;
}

static void
deliver_done(struct spool *sp)
{
	struct spool_msg *list, *m;

	pthread_mutex_lock(&sp->lock);
	list = sp->done;
	sp->done = NULL;
	sp->done_tail = &sp->done;
	pthread_mutex_unlock(&sp->lock);
	while ((m = list) != NULL) {
		spool_done_cb *cb = m->cb;
		void *arg = m->arg;
		int ok = m->ok;

		list = m->next;
		release(m);
		free(m);
		sp->pending--;
		cb(arg, ok);
	}
}

static void
on_wake(struct ev_loop *loop, ev_async *w, int revents)
{
	deliver_done(w->data);
}

void
spool_commit(struct spool_msg *m, spool_done_cb *cb, void *arg)
{
	struct spool *sp = m->sp;

	m->cb = cb;
	m->arg = arg;
	m->next = NULL;
	sp->pending++;
	pthread_mutex_lock(&sp->lock);
	*sp->todo_tail = m;
	sp->todo_tail = &m->next;
	pthread_cond_signal(&sp->cond);
	pthread_mutex_unlock(&sp->lock);
}

/*
 * This process's ring, queue/.free.PID, made here and removed by the
 * master when it reaps us (spool_clean_tmp()). One left by an earlier
 * process with our pid that nobody reaped (not a child of a master) holds
 * only finished files: they are slots like any other. -1: we write into
 * tmp/ only.
 */
static int
open_ring(int queuefd)
{
	char name[32];

	snprintf(name, sizeof name, ".free.%d", (int)getpid());
	if (mkdirat(queuefd, name, 0700) < 0 && errno != EEXIST)
		return -1;
	return openat(queuefd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

struct spool *
spool_open(struct ev_loop *loop, const char *dir, char *err, size_t errlen)
{
	struct spool *sp = calloc(1, sizeof *sp);
	char p[1024];

	if (!sp) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	sp->loop = loop;
	sp->tmpfd = sp->queuefd = sp->ringfd = -1;
	sp->todo_tail = &sp->todo;
	sp->done_tail = &sp->done;
	snprintf(p, sizeof p, "%s/tmp", dir);
	sp->tmpfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	snprintf(p, sizeof p, "%s/queue", dir);
	sp->queuefd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sp->tmpfd < 0 || sp->queuefd < 0) {
		snprintf(err, errlen, "%s: %s", p, strerror(errno));
		goto fail;
	}
	sp->ringfd = open_ring(sp->queuefd);
	pthread_mutex_init(&sp->lock, NULL);
	pthread_cond_init(&sp->cond, NULL);
	ev_async_init(&sp->wake, on_wake);
	sp->wake.data = sp;
	ev_async_start(loop, &sp->wake);
	ev_unref(loop);                 /* the committer alone keeps no loop alive */
	if (pthread_create(&sp->thread, NULL, committer, sp) != 0) {
		snprintf(err, errlen, "cannot start the committer thread");
		goto fail;
	}
	return sp;
fail:
	if (sp->tmpfd >= 0)
		close(sp->tmpfd);
	if (sp->queuefd >= 0)
		close(sp->queuefd);
	if (sp->ringfd >= 0)
		close(sp->ringfd);
	free(sp);
	return NULL;
}

void
spool_close(struct spool *sp)
{
	if (!sp)
		return;
	pthread_mutex_lock(&sp->lock);
	sp->stop = 1;
	pthread_cond_signal(&sp->cond);
	pthread_mutex_unlock(&sp->lock);
	pthread_join(sp->thread, NULL);
	deliver_done(sp);
	ev_ref(sp->loop);
	ev_async_stop(sp->loop, &sp->wake);
	close(sp->tmpfd);
	close(sp->queuefd);
	if (sp->ringfd >= 0)
		close(sp->ringfd);
	free(sp);
}
