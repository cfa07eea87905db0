/*
 * safepath.h - opening paths as root where the unprivileged user can write.
 *
 * state_dir belongs to the user mxgate runs as, so anything that user can
 * put there (a symlink to /etc, a hard link to a root file) must not make
 * root chown, delete or write someone else's file. Paths are walked one
 * component at a time; a symbolic link is followed only when the directory
 * holding it is owned by root (or us) and writable by nobody else, so an
 * admin's own links (/var/lib/mxgate -> /srv/mxgate) still work. Owners
 * and modes are changed on the opened descriptor, never by name.
 */
#ifndef MXGATE_SAFEPATH_H
#define MXGATE_SAFEPATH_H

#include <sys/types.h>

/* open(2) of path, refusing untrusted links (ELOOP). O_CLOEXEC is added. */
int safe_open(const char *path, int flags, mode_t mode);
/* The directory path (made with mode when missing; its parent must exist),
 * opened O_DIRECTORY; -1 with errno (ELOOP: a link we refuse). */
int safe_mkdir(const char *path, mode_t mode);
/* The same, for name inside the directory dirfd: never follows a link. */
int safe_mkdirat(int dirfd, const char *name, mode_t mode);
/* fchown (uid -1: leave) and fchmod (mode 0: leave) when they differ. */
int safe_own(int fd, uid_t uid, gid_t gid, mode_t mode);

#endif
