/* safepath.c - path walks that never follow a link someone else planted (see safepath.h). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safepath.h"

/* A directory only root (or we) can change: its links are the admin's. */
static int
trusted(int dirfd)
{
	struct stat st;

	return fstat(dirfd, &st) == 0 && (st.st_uid == 0 || st.st_uid == geteuid()) &&
	    !(st.st_mode & (S_IWGRP | S_IWOTH));
}

/* openat without following a link in the last component, unless dirfd is trusted. */
static int
open_in(int dirfd, const char *name, int flags, mode_t mode)
{
	int fd = openat(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC, mode);
	struct stat st;

	/* Refused as a link: follow it only where the admin put it. */
	if (fd < 0 && (errno == ELOOP || errno == ENOTDIR) &&
	    fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
		if (trusted(dirfd))
			fd = openat(dirfd, name, flags | O_CLOEXEC, mode);
		else
			errno = ELOOP;
	}
	return fd;
}

/*
 * Opens every directory on the way to path's last component (O_PATH) and
 * returns the one holding it; the last component is copied into last.
 */
static int
walk(const char *path, char *last, size_t lastlen)
{
	char buf[1024], *p, *slash;
	int fd, nfd;
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof buf) {
		errno = n ? ENAMETOOLONG : ENOENT;
		return -1;
	}
	memcpy(buf, path, n + 1);
	while (n > 1 && buf[n - 1] == '/')
		buf[--n] = '\0';
	fd = open(buf[0] == '/' ? "/" : ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	p = buf;
	for (;;) {
		while (*p == '/')
			p++;
		if (!(slash = strchr(p, '/')))
			break;
		*slash = '\0';
		if (*p && strcmp(p, ".") != 0) {
			nfd = open_in(fd, p, O_PATH | O_DIRECTORY, 0);
			close(fd);
			if (nfd < 0)
				return -1;
			fd = nfd;
		}
		p = slash + 1;
	}
	if (!*p)
		p = ".";
	if (strlen(p) >= lastlen) {
		close(fd);
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(last, p);
	return fd;
}

int
safe_open(const char *path, int flags, mode_t mode)
{
	char last[256];
	int dfd = walk(path, last, sizeof last), fd, e;

	if (dfd < 0)
		return -1;
	fd = open_in(dfd, last, flags, mode);
	e = errno;
	close(dfd);
	errno = e;
	return fd;
}

int
safe_mkdirat(int dirfd, const char *name, mode_t mode)
{
	if (mkdirat(dirfd, name, mode) < 0 && errno != EEXIST)
		return -1;
	return openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

int
safe_mkdir(const char *path, mode_t mode)
{
	char last[256];
	int dfd = walk(path, last, sizeof last), fd, e;

	if (dfd < 0)
		return -1;
	if (mkdirat(dfd, last, mode) < 0 && errno != EEXIST) {
		e = errno;
		close(dfd);
		errno = e;
		return -1;
	}
	fd = open_in(dfd, last, O_RDONLY | O_DIRECTORY, 0);
	e = errno;
	close(dfd);
	errno = e;
	return fd;
}

int
safe_own(int fd, uid_t uid, gid_t gid, mode_t mode)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -1;
	if (uid != (uid_t)-1 && (st.st_uid != uid || st.st_gid != gid) && fchown(fd, uid, gid) < 0)
		return -1;
	if (mode && (st.st_mode & 07777) != mode && fchmod(fd, mode) < 0)
		return -1;
	return 0;
}
