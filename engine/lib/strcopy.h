/*
 * strcopy.h - a bounded string copy, for the per-session paths where
 * snprintf(dst, room, "%s", src) cost ~650 instructions a call (the printf
 * machinery), 6% of ruletest's replay in callgrind.
 */
#ifndef MXGATE_STRCOPY_H
#define MXGATE_STRCOPY_H

#include <stddef.h>
#include <string.h>

/* src (at most max bytes of it) into dst, cut to room - 1 bytes and
 * NUL-terminated, as snprintf(dst, room, "%.*s", max, src) would; room > 0. */
static inline void
str_ncopy(char *dst, size_t room, const char *src, size_t max)
{
	size_t lim = max < room - 1 ? max : room - 1, n = 0;

	/* A loop, not strnlen: src may be an array shorter than room (a bound
	 * past it is stopped by its NUL, but the compiler cannot know). */
	while (n < lim && src[n])
		n++;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static inline void
str_copy(char *dst, size_t room, const char *src)
{
	str_ncopy(dst, room, src, room - 1);
}

#endif
