/*
 * buf.c - the one growable byte buffer (buf.h).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

void
buf_init(struct buf *b, size_t max)
{
	memset(b, 0, sizeof *b);
	b->max = max;
}

static int
refuse(struct buf *b, int why)
{
	if (!b->err)
		b->err = why;
	return -1;
}

int
buf_reserve(struct buf *b, size_t n)
{
	size_t need, cap;
	char *np;

	if (b->err)
		return -1;
	if (n > (size_t)-1 / 2 - b->len || (b->max && b->len + n > b->max))
		return refuse(b, BUF_FULL);
	need = b->len + n + 1;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	if (b->max && cap > b->max + 1)
		cap = b->max + 1;
	if (!(np = realloc(b->p, cap)))
		return refuse(b, BUF_NOMEM);
	b->p = np;
	b->cap = cap;
	return 0;
}

int
buf_add(struct buf *b, const void *s, size_t n)
{
	if (buf_reserve(b, n) < 0)
		return -1;
	if (n)
		memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

int
buf_adds(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

int
buf_addc(struct buf *b, char c)
{
	if (b->len + 1 < b->cap && !b->err && (!b->max || b->len < b->max)) {
		b->p[b->len++] = c;
		b->p[b->len] = '\0';
		return 0;
	}
	return buf_add(b, &c, 1);
}

int
buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	if (b->err)
		return -1;
	va_copy(ap2, ap);
	n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return refuse(b, BUF_NOMEM);
	if (b->p && b->len + (size_t)n < b->cap && (!b->max || b->len + (size_t)n <= b->max)) {
		b->len += (size_t)n;
		return 0;
	}
	if (b->p)
		b->p[b->len] = '\0';            /* undo the partial write */
	if (buf_reserve(b, (size_t)n) < 0)
		return -1;
	vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

void
buf_truncate(struct buf *b, size_t len)
{
	if (len < b->len) {
		b->len = len;
		b->p[len] = '\0';
	}
	b->err = 0;
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
	b->err = 0;
	if (b->p)
		b->p[0] = '\0';
}

void
buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
	b->err = 0;
}

const char *
buf_str(const struct buf *b)
{
	return b->p ? b->p : "";
}

char *
buf_take(struct buf *b, size_t *len)
{
	char *p = b->p ? b->p : strdup("");

	if (len)
		*len = b->len;
	b->p = NULL;
	b->len = b->cap = 0;
	b->err = 0;
	return p;
}

int
buf_getline(struct buf *b, FILE *f)
{
	char chunk[8192];
	int any = 0;

	buf_reset(b);
	while (fgets(chunk, sizeof chunk, f)) {
		size_t n = strlen(chunk);
		any = 1;
		buf_add(b, chunk, n);           /* past max: err set, the rest still read */
		if (n && chunk[n - 1] == '\n')
			break;
	}
	if (!any)
		return 0;
	if (b->err)
		return -1;
	while (b->len && (b->p[b->len - 1] == '\n' || b->p[b->len - 1] == '\r'))
		buf_truncate(b, b->len - 1);
	return 1;
}

int array_reserve(void *pp, size_t *cap, size_t n, size_t size)
{
	void **p = pp, *np;
	size_t c = *cap ? *cap : 16;

	if (n <= *cap)
		return 0;
	while (c < n)
		c *= 2;
	if (c > SIZE_MAX / size || !(np = realloc(*p, c * size)))
		return -1;
	*p = np;
	*cap = c;
	return 0;
}
