/*
 * buf.h - the one growable byte buffer: text built piece by piece (journal
 * records, JSON, reports, traces), always NUL-terminated.
 *
 * A buffer fed from outside is bounded: max is the named limit it must not
 * pass (journal max_record, a line, a file); 0 means unbounded and is only
 * for text we generate ourselves. An append that would pass max or fails
 * to allocate appends nothing and sets err, which stays set until
 * buf_reset; later appends are no-ops, so callers check once at the end.
 */
#ifndef MXGATE_BUF_H
#define MXGATE_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

struct buf {
	char  *p;           /* NULL until the first append; then NUL-terminated */
	size_t len, cap;
	size_t max;         /* bytes of content allowed; 0: unbounded */
	int    err;         /* BUF_FULL or BUF_NOMEM: an append was refused */
};

enum { BUF_OK, BUF_FULL, BUF_NOMEM };

#define BUF_INIT(limit) { NULL, 0, 0, (limit), 0 }

void  buf_init(struct buf *b, size_t max);
int   buf_add(struct buf *b, const void *s, size_t n);   /* 0, or -1 (err set) */
int   buf_adds(struct buf *b, const char *s);
int   buf_addc(struct buf *b, char c);
int   buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int   buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Room for n more bytes without writing them (0, or -1 with err set). */
int   buf_reserve(struct buf *b, size_t n);
/* Cuts the content back to len bytes (len <= b->len) and clears err: the
 * way to take back a piece that did not fit whole. */
void  buf_truncate(struct buf *b, size_t len);
/* Empties the buffer and clears err; the memory stays for reuse. */
void  buf_reset(struct buf *b);
void  buf_free(struct buf *b);
/* The content, "" when nothing was appended. */
const char *buf_str(const struct buf *b);
/* The next line of f, without its LF or CRLF: 1, 0 at the end of f, or -1
 * for a line longer than b->max (read past to its end, not kept). */
int   buf_getline(struct buf *b, FILE *f);
/* Hands the content to the caller (free() it; never NULL unless out of
 * memory) and leaves the buffer empty. */
char *buf_take(struct buf *b, size_t *len);

/* Room for n elements of size bytes in the array *pp (a T **) of *cap
 * elements, doubling from 16: 0, or -1 out of memory (the array untouched). */
int array_reserve(void *pp, size_t *cap, size_t n, size_t size);

#endif
