/*
 * json.c - the one JSON codec (json.h): our writer, jansson's reader.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/* ---------------- writer ---------------- */

/* The ',' before a value when the text so far ends with one (a string, a
 * number, true/false/null, a closed container); none after '{', '[', ':',
 * ',' or anything else, such as the text a caller put before the JSON. */
static int
sep(struct buf *b)
{
	char last;

	if (!b->len)
		return 0;
	last = b->p[b->len - 1];
	if (last == '"' || last == ']' || last == '}' || last == 'e' || last == 'l' ||
	    (last >= '0' && last <= '9'))
		return buf_addc(b, ',');
	return 0;
}

/* Length of the valid UTF-8 sequence at s (2..4), or 0 if there is none. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;              /* U+D800..DFFF are not characters */
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;              /* nothing past U+10FFFF */
	} else
		return 0;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

int
json_escape(struct buf *b, const char *str, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < n) {
		size_t run = i, k;
		char esc[6];

		/* Plain printable ASCII goes in runs: the common case. */
		while (run < n && s[run] >= 0x20 && s[run] < 0x7f && s[run] != '"' && s[run] != '\\')
			run++;
		if (run > i) {
			buf_add(b, s + i, run - i);
			i = run;
			continue;
		}
		if (s[i] == '"' || s[i] == '\\') {
			esc[0] = '\\';
			esc[1] = (char)s[i++];
			buf_add(b, esc, 2);
			continue;
		}
		if (s[i] >= 0x80 && (k = utf8_seq(s + i, n - i)) > 0) {
			buf_add(b, s + i, k);
			i += k;
			continue;
		}
		/* A control character, DEL, or a byte that is not UTF-8. */
		esc[0] = '\\';
		esc[1] = 'u';
		esc[2] = '0';
		esc[3] = '0';
		esc[4] = hex[s[i] >> 4];
		esc[5] = hex[s[i] & 15];
		buf_add(b, esc, 6);
		i++;
	}
	return b->err ? -1 : 0;
}

int
json_utf8_valid(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, k;

	while (i < n) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((k = utf8_seq(s + i, n - i)) == 0)
			return 0;
		i += k;
	}
	return 1;
}

int
jsonw_hex(struct buf *b, const void *data, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = data;

	sep(b);
	buf_addc(b, '"');
	for (size_t i = 0; i < n; i++) {
		char h[2] = { hex[s[i] >> 4], hex[s[i] & 15] };
		buf_add(b, h, 2);
	}
	return buf_addc(b, '"');
}

static int
nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
json_unhex(const char *hex, size_t n, char *out)
{
	if (n % 2)
		return -1;
	for (size_t i = 0; i < n; i += 2) {
		int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i / 2] = (char)(hi << 4 | lo);
	}
	return 0;
}

int
jsonw_str(struct buf *b, const char *s, size_t n)
{
	sep(b);
	buf_addc(b, '"');
	json_escape(b, s, n);
	return buf_addc(b, '"');
}

int
jsonw_strz(struct buf *b, const char *s)
{
	return s ? jsonw_str(b, s, strlen(s)) : jsonw_null(b);
}

int
jsonw_int(struct buf *b, long long v)
{
	char num[24];
	int n = snprintf(num, sizeof num, "%lld", v);

	sep(b);
	return buf_add(b, num, (size_t)n);
}

int
jsonw_num(struct buf *b, double v)
{
	char num[32];
	int n;

	if (!isfinite(v))
		return jsonw_null(b);
	n = snprintf(num, sizeof num, "%.17g", v);
	sep(b);
	return buf_add(b, num, (size_t)n);
}

int
jsonw_bool(struct buf *b, int v)
{
	sep(b);
	return v ? buf_add(b, "true", 4) : buf_add(b, "false", 5);
}

int
jsonw_null(struct buf *b)
{
	sep(b);
	return buf_add(b, "null", 4);
}

int
jsonw_raw(struct buf *b, const char *json, size_t n)
{
	sep(b);
	return buf_add(b, json, n);
}

int
jsonw_keyn(struct buf *b, const char *k, size_t n)
{
	jsonw_str(b, k, n);
	return buf_addc(b, ':');
}

int
jsonw_key(struct buf *b, const char *k)
{
	return jsonw_keyn(b, k, strlen(k));
}

int
jsonw_open(struct buf *b, char c)
{
	sep(b);
	return buf_addc(b, c);
}

int
jsonw_close(struct buf *b, char c)
{
	return buf_addc(b, c);
}

/* ---------------- canonical form ---------------- */

static int
cmp_key(const void *a, const void *b)
{
	const char *const *x = a, *const *y = b;

	return strcmp(*x, *y);
}

static int
canon(struct buf *b, const json_t *v, int depth)
{
	if (depth > JSON_MAX_DEPTH) {
		b->err = b->err ? b->err : BUF_FULL;
		return -1;
	}
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		size_t n = 0, i = 0;
		const char *k, **keys;
		json_t *m;
		json_object_foreach((json_t *)v, k, m)
			if (!json_is_null(m))
				n++;
		if (!n)
			return jsonw_raw(b, "[]", 2);   /* an empty Lua table encodes as [] */
		if (!(keys = malloc(n * sizeof *keys))) {
			b->err = BUF_NOMEM;
			return -1;
		}
		json_object_foreach((json_t *)v, k, m)
			if (!json_is_null(m))
				keys[i++] = k;
		qsort(keys, n, sizeof *keys, cmp_key);
		jsonw_open(b, '{');
		for (i = 0; i < n; i++) {
			jsonw_key(b, keys[i]);
			canon(b, json_object_get(v, keys[i]), depth + 1);
		}
		free(keys);
		return jsonw_close(b, '}');
	}
	case JSON_ARRAY: {
		size_t i;
		json_t *e;
		jsonw_open(b, '[');
		json_array_foreach((json_t *)v, i, e)
			canon(b, e, depth + 1);
		return jsonw_close(b, ']');
	}
	case JSON_STRING:
		return jsonw_str(b, json_string_value(v), json_string_length(v));
	case JSON_INTEGER:
		return jsonw_int(b, (long long)json_integer_value(v));
	case JSON_REAL:
		return jsonw_num(b, json_real_value(v));
	case JSON_TRUE:
		return jsonw_bool(b, 1);
	case JSON_FALSE:
		return jsonw_bool(b, 0);
	default:
		return jsonw_null(b);
	}
}

int
jsonw_canonical(struct buf *b, const json_t *v)
{
	return canon(b, v, 0) < 0 || b->err ? -1 : 0;
}

/* ---------------- reader ---------------- */

static int
too_deep(const json_t *v, int depth, int max)
{
	size_t i;
	const char *k;
	json_t *e;

	if (!json_is_object(v) && !json_is_array(v))
		return 0;
	if (depth >= max)
		return 1;
	if (json_is_array(v)) {
		json_array_foreach((json_t *)v, i, e)
			if (too_deep(e, depth + 1, max))
				return 1;
	} else {
		json_object_foreach((json_t *)v, k, e)
			if (too_deep(e, depth + 1, max))
				return 1;
	}
	return 0;
}

/* ---------------- the reader's arena ---------------- */

#define ARENA_BLOCK (1 << 20)

struct arena_block {
	struct arena_block *next;
	size_t              cap, len;
	max_align_t         data[];
};

static struct {
	struct arena_block *blocks;     /* newest first */
	int                 on;         /* jansson allocates here now */
	int                 installed;
} arena;

static int
in_arena(const void *p)
{
	for (struct arena_block *b = arena.blocks; b; b = b->next)
		if ((const char *)p >= (const char *)b->data && (const char *)p < (const char *)b->data + b->cap)
			return 1;
	return 0;
}

static void *
arena_malloc(size_t n)
{
	struct arena_block *b = arena.blocks;

	if (!arena.on)
		return malloc(n);
	n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
	if (!b || b->len + n > b->cap) {
		size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
		if (!(b = malloc(sizeof *b + cap)))
			return NULL;
		b->cap = cap;
		b->len = 0;
		b->next = arena.blocks;
		arena.blocks = b;
	}
	b->len += n;
	return (char *)b->data + b->len - n;
}

static void
arena_free(void *p)
{
	if (p && !in_arena(p))
		free(p);
}

void
jsonr_arena_reset(void)
{
	struct arena_block *b = arena.blocks;

	/* Keep one block (the newest, as large as any) for the next parse. */
	if (!b)
		return;
	for (struct arena_block *x = b->next, *nx; x; x = nx) {
		nx = x->next;
		free(x);
	}
	b->next = NULL;
	b->len = 0;
}

void
jsonr_arena_enter(void)
{
	if (!arena.installed) {
		json_set_alloc_funcs(arena_malloc, arena_free);
		arena.installed = 1;
	}
	arena.on = 1;
}

void
jsonr_arena_leave(void)
{
	arena.on = 0;
}

json_t *
jsonr_parse_arena(const char *s, size_t n, int max_depth, struct json_err *e)
{
	json_t *v;

	jsonr_arena_enter();
	v = jsonr_parse(s, n, max_depth, e);
	jsonr_arena_leave();
	return v;
}

json_t *
jsonr_parse(const char *s, size_t n, int max_depth, struct json_err *e)
{
	json_error_t je;
	json_t *v;

	if (e)
		memset(e, 0, sizeof *e);
	v = json_loadb(s, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
	if (!v) {
		if (e) {
			e->offset = (size_t)je.position;
			e->premature = json_error_code(&je) == json_error_premature_end_of_input;
			snprintf(e->text, sizeof e->text, "%s", je.text);
		}
		return NULL;
	}
	if (max_depth > 0 && too_deep(v, 0, max_depth)) {
		json_decref(v);
		if (e) {
			e->offset = 0;
			snprintf(e->text, sizeof e->text, "nested too deep");
		}
		return NULL;
	}
	return v;
}
