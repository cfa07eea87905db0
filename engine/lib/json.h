/*
 * json.h - the one JSON codec: a streaming writer into a struct buf (the
 * one string escaper) and a reader that is Debian's libjansson behind a
 * small wrapper (depth limit, error text with the byte offset).
 *
 * Writer: every value function puts the ',' that separates it from the
 * value before it by itself (when the text so far ends with a value: none
 * after '{', '[', ':', ','), so callers write structure, not commas:
 *     jsonw_open(b, '{'); jsonw_key(b, "e"); jsonw_strz(b, "cmd");
 *     jsonw_key(b, "n"); jsonw_int(b, 3); jsonw_close(b, '}');
 * gives {"e":"cmd","n":3}. Errors are the buffer's (b->err).
 *
 * Strings: '"' and '\' are escaped, control characters and DEL as \u00XX;
 * UTF-8 passes as it is. Bytes that are not UTF-8 (a client may send any
 * octet) are written as the code point of the same value (\u0080..\u00ff,
 * as Latin-1 reads them), so every line we write is valid JSON that any
 * reader accepts.
 *
 * Reader: RFC 8259 as libjansson implements it: strict UTF-8, surrogate
 * pairs joined, lone surrogates refused, integers beyond 64 bits refused
 * ("too big integer"), reals past a double refused, no trailing text. jansson's names (json_t,
 * json_object_get...) are used directly by the callers.
 */
#ifndef MXGATE_JSON_H
#define MXGATE_JSON_H

#include <stddef.h>

#include <jansson.h>

#include "buf.h"

#define JSON_MAX_DEPTH 32          /* containers nested deeper are refused */

/* ---- writer ---- */
int jsonw_str(struct buf *b, const char *s, size_t n);
int jsonw_strz(struct buf *b, const char *s);          /* NULL writes null */
int jsonw_int(struct buf *b, long long v);
int jsonw_num(struct buf *b, double v);                /* %.17g; NaN, inf: null */
int jsonw_bool(struct buf *b, int v);
int jsonw_null(struct buf *b);
int jsonw_raw(struct buf *b, const char *json, size_t n);  /* a value already JSON */
int jsonw_key(struct buf *b, const char *k);           /* "k": */
int jsonw_keyn(struct buf *b, const char *k, size_t n);
int jsonw_open(struct buf *b, char c);                 /* '{' or '[' */
int jsonw_close(struct buf *b, char c);                /* '}' or ']' */
/* The escaped body of a string, without quotes or separator. */
int json_escape(struct buf *b, const char *s, size_t n);
/* 1 when the bytes are valid UTF-8 (the writer then keeps them exactly). */
int json_utf8_valid(const char *s, size_t n);
/* Bytes as a string of hex digits: for the exact bytes of a text that is
 * not UTF-8, beside its readable (lossy) string. */
int jsonw_hex(struct buf *b, const void *s, size_t n);
/* Back from hex: n/2 bytes into out (room for them), or -1. */
int json_unhex(const char *hex, size_t n, char *out);

/* ---- reader ---- */
struct json_err {
	size_t offset;              /* byte offset of the error in the input */
	int    premature;           /* the input ended inside a value */
	char   text[160];
};

/* The value the text holds (any JSON value, NUL allowed in strings), or
 * NULL with why in *e (e may be NULL). Free with json_decref(). */
json_t *jsonr_parse(const char *s, size_t n, int max_depth, struct json_err *e);
/*
 * The same parse with the tree in an arena (jansson's allocator points
 * there while it parses) until jsonr_arena_reset(): no malloc per node and
 * no walk to free the tree, for a reader that parses line after line
 * (ruletest's record). json_decref on such a tree is harmless and frees
 * nothing; a part wanted past the reset is kept with json_deep_copy().
 * One arena per process.
 */
json_t *jsonr_parse_arena(const char *s, size_t n, int max_depth, struct json_err *e);
void    jsonr_arena_reset(void);
/* Values made with jansson's constructors between these go to the arena
 * too (a streaming reader building them: tools/record_journal.c). */
void    jsonr_arena_enter(void);
void    jsonr_arena_leave(void);
/* The canonical text of a value (replay.h): object keys in byte order,
 * an empty object as [], null members left out, integers %lld, reals
 * %.17g, strings escaped as the writer escapes them. */
int jsonw_canonical(struct buf *b, const json_t *v);

#endif
