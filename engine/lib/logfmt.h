/*
 * logfmt.h - reads back the lines log.c writes: key=value pairs, quoted
 * values with \\, \" and \xNN escapes.
 */
#ifndef MXGATE_LOGFMT_H
#define MXGATE_LOGFMT_H

#define LOGFMT_FIELDS 32        /* pairs kept per line (log.c writes fewer) */

struct kv {
	const char *k, *v;
};

/* Splits p in place: the number of pairs (at most max kept), or -1 when
 * the line is not logfmt. */
int logfmt_split(char *p, struct kv *kv, int max);
/* The value of key k, or NULL. */
const char *logfmt_get(const struct kv *kv, int n, const char *k);

#endif
