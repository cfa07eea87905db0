/*
 * test_spool.c - the rings of recycled queue files (engine/store/spool.c):
 * a finished file goes back only into a ring that still exists, and a
 * ring goes when the master cleans up after its writer; nothing else in
 * queue/ is touched.
 */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ev.h>

#include "spool.h"
#include "unit.h"

static char dir[64];

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	return remove(p);
}

__attribute__((destructor)) static void
remove_last(void)
{
	if (dir[0])
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh spool in a new directory each test. */
static void
fresh(void)
{
	if (dir[0])
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	snprintf(dir, sizeof dir, "/tmp/mxgate-unit-spool-XXXXXX");
	if (!mkdtemp(dir) || spool_prepare(dir, (uid_t)-1, (gid_t)-1) < 0)
		abort();
}

static int
exists(const char *rel)
{
	char p[256];
	struct stat st;

	snprintf(p, sizeof p, "%s/queue/%s", dir, rel);
	return lstat(p, &st) == 0;
}

/* queue/QID as the committer leaves it (the content does not matter here). */
static void
queued(char qid[QID_LEN])
{
	char p[256];
	int fd;

	qid_new(qid);
	snprintf(p, sizeof p, "%s/queue/%s", dir, qid);
	if ((fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600)) < 0)
		abort();
	close(fd);
}

static void
make(const char *rel, int is_dir)
{
	char p[256];
	int fd;

	snprintf(p, sizeof p, "%s/queue/%s", dir, rel);
	if (is_dir) {
		mkdir(p, 0700);
		return;
	}
	if ((fd = open(p, O_WRONLY | O_CREAT, 0600)) >= 0)
		close(fd);
}

static int
entries(void)
{
	char p[256];
	DIR *d;
	int n = 0;

	snprintf(p, sizeof p, "%s/queue", dir);
	if (!(d = opendir(p)))
		return -1;
	for (struct dirent *de; (de = readdir(d)) != NULL;)
		n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
	closedir(d);
	return n;
}

TEST(a_finished_file_goes_into_the_ring_of_its_writer_while_that_ring_exists)
{
	struct ev_loop *loop = ev_loop_new(0);
	char err[256], qid[QID_LEN], ring[32], slot[48];
	struct spool *sp;

	fresh();
	snprintf(ring, sizeof ring, ".free.%d", (int)getpid());
	CHECK((sp = spool_open(loop, dir, err, sizeof err)) != NULL);
	CHECK(exists(ring));                            /* the writer made its ring */
	queued(qid);                                    /* written by us: our pid is in the id */
	spool_recycle(dir, qid);
	CHECK(!exists(qid));
	snprintf(slot, sizeof slot, "%s/0", ring);
	CHECK(exists(slot));

	/* The master reaped the writer: its ring goes, slots and all. */
	spool_clean_tmp(dir, getpid());
	CHECK(!exists(ring));
	queued(qid);
	spool_recycle(dir, qid);                        /* no ring: unlinked, no ring made */
	CHECK(!exists(qid));
	CHECK(!exists(ring));
	CHECK_INT(entries(), 0);

	/* A new writer that got the same pid has a new ring, filled from its first slot. */
	make(ring, 1);
	queued(qid);
	spool_recycle(dir, qid);
	CHECK(exists(slot));
	spool_close(sp);
	ev_loop_destroy(loop);
}

TEST(a_ring_with_no_room_left_gets_no_file)
{
	char qid[QID_LEN], ring[32], slot[48];

	fresh();
	snprintf(ring, sizeof ring, ".free.%d", (int)getpid());
	make(ring, 1);
	for (int i = 0; i < 1024; i++) {
		snprintf(slot, sizeof slot, "%s/%d", ring, i);
		make(slot, 0);
	}
	queued(qid);
	spool_recycle(dir, qid);                        /* every slot still there: unlinked, none replaced */
	CHECK(!exists(qid));
	CHECK_INT(entries(), 1);
}

TEST(cleaning_a_writer_removes_its_ring_only_and_at_start_every_ring)
{
	char qid[QID_LEN];

	fresh();
	make(".free.123", 1);
	make(".free.123/0", 0);
	make(".free.123/7", 0);
	make(".free.1234", 1);                          /* another writer whose pid starts the same */
	make(".free.1234/0", 0);
	make(".free.77.5", 0);                          /* a slot as rings were before they were directories */
	queued(qid);
	spool_clean_tmp(dir, 123);
	CHECK(!exists(".free.123"));
	CHECK(exists(".free.1234/0"));
	CHECK(exists(".free.77.5"));
	CHECK(exists(qid));
	spool_clean_tmp(dir, 0);                        /* the master's start */
	CHECK(!exists(".free.1234"));
	CHECK(!exists(".free.77.5"));
	CHECK(exists(qid));                             /* queued mail is never touched */
	CHECK_INT(entries(), 1);
}

UNIT_MAIN()
