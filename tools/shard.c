/*
 * shard.c - ruletest --jobs: cut journals into runs of whole lines and replay each run in a child.
 *
 * Sessions are independent when every answer comes from their own record,
 * so a journal can be cut anywhere between two lines. The runs are
 * contiguous and their outputs are joined in order, so the result reads
 * exactly as one process's would. A replay whose sessions depend on one
 * another (simulated greylist or rate-limit state carried from session to
 * session) must not be cut this way: it runs as one job, or its shards
 * must own disjoint state keys.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shard.h"

/* The first line start at or after off in path (size when none). */
static off_t
line_start(const char *path, off_t off, off_t size)
{
	FILE *f;
	int c;

	if (off <= 0 || off >= size)
		return off <= 0 ? 0 : size;
	if (!(f = fopen(path, "r")) || fseeko(f, off - 1, SEEK_SET) < 0) {
		if (f)
			fclose(f);
		return size;
	}
	while ((c = getc(f)) != EOF && c != '\n')
		off++;
	fclose(f);
	return off < size ? off : size;
}

int
shard_plan(char *const *paths, int n, int jobs, struct shard_piece **pieces)
{
	off_t *size = calloc((size_t)n + 1, sizeof *size), total = 0;
	struct shard_piece *p = calloc((size_t)(n + 1) * (size_t)jobs, sizeof *p);
	int np = 0, file = 0;
	off_t at = 0;                    /* where the current shard starts in file */

	if (!size || !p) {
		free(size);
		free(p);
		errno = ENOMEM;
		return -1;
	}
	for (int i = 0; i < n; i++) {
		struct stat st;
		if (stat(paths[i], &st) < 0) {
			free(size);
			free(p);
			return -1;
		}
		size[i] = st.st_size;
		total += st.st_size;
	}
	for (int k = 0; k < jobs; k++) {
		/* This shard ends at the k+1-th cut of the whole stream. */
		off_t cut = k == jobs - 1 ? total : total / jobs * (k + 1), before = 0;
		int end_file = 0;
		off_t end_at;

		while (end_file < n - 1 && before + size[end_file] <= cut) {
			before += size[end_file];
			end_file++;
		}
		end_at = k == jobs - 1 ? size[n - 1] : line_start(paths[end_file], cut - before, size[end_file]);
		for (; file < end_file || (file == end_file && at < end_at); file++, at = 0) {
			off_t to = file == end_file ? end_at : size[file];
			if (at < to)
				p[np++] = (struct shard_piece){ .path = paths[file], .from = at, .to = to, .shard = k };
			if (file == end_file) {
				at = end_at;
				break;
			}
		}
	}
	free(size);
	*pieces = p;
	return np;
}

static void
copy_out(FILE *from, FILE *to)
{
	char chunk[65536];
	size_t got;

	rewind(from);
	while ((got = fread(chunk, 1, sizeof chunk, from)) > 0)
		fwrite(chunk, 1, got, to);
	fflush(to);
}

int
shard_run(int jobs, int (*child)(void *arg, int k, FILE *stats),
    void (*gather)(void *arg, int k, FILE *stats), int (*keep)(void *arg), void *arg)
{
	FILE *out[jobs], *err[jobs], *st[jobs];
	pid_t pid[jobs];
	int rc = 0;

	memset(out, 0, sizeof out);
	memset(err, 0, sizeof err);
	memset(st, 0, sizeof st);
	fflush(stdout);
	fflush(stderr);
	for (int k = 0; k < jobs; k++) {
		if (!(out[k] = tmpfile()) || !(err[k] = tmpfile()) || !(st[k] = tmpfile())) {
			fprintf(stderr, "ruletest: a temporary file: %s\n", strerror(errno));
			jobs = k;
			rc = -1;
			break;
		}
		if ((pid[k] = fork()) < 0) {
			fprintf(stderr, "ruletest: fork: %s\n", strerror(errno));
			jobs = k;
			rc = -1;
			break;
		}
		if (pid[k] == 0) {
			int code;
			dup2(fileno(out[k]), STDOUT_FILENO);
			dup2(fileno(err[k]), STDERR_FILENO);
			code = child(arg, k, st[k]);
			fflush(stdout);
			fflush(stderr);
			fflush(st[k]);
			_exit(code);
		}
	}
	for (int k = 0; k < jobs; k++) {
		int status;
		while (waitpid(pid[k], &status, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "ruletest: shard %d of %d failed (%s %d)\n", k + 1, jobs,
			    WIFEXITED(status) ? "exit" : "signal", WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
			rc = -1;
		}
	}
	for (int k = 0; k < jobs && rc == 0; k++) {
		rewind(st[k]);
		gather(arg, k, st[k]);
	}
	if (rc == 0 && !keep(arg))
		rc = 1;
	for (int k = 0; k < jobs && rc <= 0; k++) {
		copy_out(out[k], stdout);
		copy_out(err[k], stderr);
	}
	for (int k = 0; k < jobs; k++) {
		fclose(out[k]);
		fclose(err[k]);
		fclose(st[k]);
	}
	return rc;
}
