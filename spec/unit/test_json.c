/*
 * test_json.c - the one JSON codec (engine/lib/json.h) at every RFC 8259
 * corner it must handle: escapes, \u surrogate pairs and lone surrogates,
 * numbers, nesting depth, invalid UTF-8, trailing garbage, empty input;
 * and the one buffer (buf.h) it writes into, with its bound.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "bridge.h"
#include "buf.h"
#include "json.h"
#include "unit.h"

static json_t *
parse(const char *s, struct json_err *e)
{
	return jsonr_parse(s, strlen(s), JSON_MAX_DEPTH, e);
}

/* The string s decodes to, in out (NUL-free results only); 0 if not JSON. */
static int
decodes_to(const char *s, const char *want, size_t wantlen)
{
	json_t *v = parse(s, NULL);
	int ok = json_is_string(v) && json_string_length(v) == wantlen &&
	    memcmp(json_string_value(v), want, wantlen) == 0;

	json_decref(v);
	return ok;
}

static const char *
written(struct buf *b, const char *s, size_t n)
{
	buf_reset(b);
	jsonw_str(b, s, n);
	return buf_str(b);
}

TEST(every_short_escape_decodes)
{
	CHECK(decodes_to("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"", "a\"b\\c/d\b\f\n\r\t", 12));
	CHECK(decodes_to("\"\\u0041\\u00e9\\u20AC\"", "A\xc3\xa9\xe2\x82\xac", 6));
}

TEST(a_bad_escape_is_refused)
{
	struct json_err e;

	CHECK(parse("\"\\x41\"", &e) == NULL);
	CHECK(parse("\"\\u12\"", &e) == NULL);
	CHECK(parse("\"\\u12G4\"", &e) == NULL);
	CHECK(parse("\"tab\there\"", &e) == NULL);     /* a raw control character */
}

TEST(a_surrogate_pair_joins_into_one_code_point)
{
	CHECK(decodes_to("\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80", 4));       /* U+1F600 */
	CHECK(decodes_to("\"\\uDBFF\\uDFFF\"", "\xf4\x8f\xbf\xbf", 4));       /* U+10FFFF */
}

TEST(a_lone_surrogate_is_refused)
{
	struct json_err e;

	CHECK(parse("\"\\ud83d\"", &e) == NULL);
	CHECK(parse("\"\\ude00\"", &e) == NULL);
	CHECK(parse("\"\\ud83d\\u0041\"", &e) == NULL);
	CHECK(parse("\"\\ud83dx\"", &e) == NULL);
}

TEST(a_nul_escape_keeps_the_length)
{
	CHECK(decodes_to("\"a\\u0000b\"", "a\0b", 3));
}

TEST(numbers_integer_negative_exponent_and_too_big)
{
	struct json_err e;
	json_t *v;

	v = parse("[0, -1, 9223372036854775807, -9223372036854775808, 1.5, -2.5e-3, 1E2]", &e);
	CHECK(v != NULL);
	CHECK(json_is_integer(json_array_get(v, 0)) && json_integer_value(json_array_get(v, 0)) == 0);
	CHECK(json_integer_value(json_array_get(v, 1)) == -1);
	CHECK(json_integer_value(json_array_get(v, 2)) == 9223372036854775807LL);
	CHECK(json_integer_value(json_array_get(v, 3)) == -9223372036854775807LL - 1);
	CHECK(json_is_real(json_array_get(v, 4)) && json_real_value(json_array_get(v, 4)) == 1.5);
	CHECK(json_real_value(json_array_get(v, 5)) == -2.5e-3);
	CHECK(json_is_real(json_array_get(v, 6)) && json_real_value(json_array_get(v, 6)) == 100);
	json_decref(v);
	CHECK(parse("1e400", &e) == NULL);                     /* a real past double: refused */
	CHECK(parse("9223372036854775808", &e) == NULL);      /* past 64 bits: refused, not wrapped */
	CHECK(strstr(e.text, "too big") != NULL);
	CHECK(parse("-", &e) == NULL);
	CHECK(parse("01", &e) == NULL);
	CHECK(parse("1.", &e) == NULL);
	CHECK(parse(".5", &e) == NULL);
	CHECK(parse("+1", &e) == NULL);
	CHECK(parse("1e", &e) == NULL);
	CHECK(parse("NaN", &e) == NULL);
}

TEST(numbers_are_written_back_exactly)
{
	struct buf b = BUF_INIT(0);

	jsonw_open(&b, '[');
	jsonw_int(&b, -9223372036854775807LL - 1);
	jsonw_num(&b, 0.1);
	jsonw_num(&b, 1e300);
	jsonw_num(&b, 0.0 / 0.0);
	jsonw_close(&b, ']');
	CHECK_STR(buf_str(&b), "[-9223372036854775808,0.10000000000000001,1.0000000000000001e+300,null]");
	buf_free(&b);
}

TEST(nesting_past_the_limit_is_refused)
{
	char deep[200];
	struct json_err e;
	json_t *v;
	int n = JSON_MAX_DEPTH;

	memset(deep, '[', (size_t)n);
	memset(deep + n, ']', (size_t)n);
	deep[2 * n] = '\0';
	CHECK((v = parse(deep, &e)) != NULL);                  /* exactly the limit */
	json_decref(v);
	memset(deep, '[', (size_t)n + 1);
	memset(deep + n + 1, ']', (size_t)n + 1);
	deep[2 * n + 2] = '\0';
	CHECK(parse(deep, &e) == NULL);
	CHECK_STR(e.text, "nested too deep");
	memset(deep, '[', 150);                                 /* and never a crash */
	deep[150] = '\0';
	CHECK(parse(deep, &e) == NULL);
}

TEST(invalid_utf8_in_input_is_refused)
{
	struct json_err e;

	CHECK(parse("\"\xff\"", &e) == NULL);
	CHECK(parse("\"\xc3\"", &e) == NULL);                  /* cut sequence */
	CHECK(parse("\"\xc0\xaf\"", &e) == NULL);              /* overlong */
	CHECK(parse("\"\xed\xa0\x80\"", &e) == NULL);          /* an encoded surrogate */
	CHECK(decodes_to("\"\xc3\xa9\"", "\xc3\xa9", 2));
}

TEST(trailing_garbage_and_empty_input_are_refused)
{
	struct json_err e;

	CHECK(parse("{} x", &e) == NULL);
	CHECK(!e.premature);
	CHECK(parse("[1]]", &e) == NULL);
	CHECK(parse("", &e) == NULL);
	CHECK(parse("   ", &e) == NULL);
	CHECK(parse("{\"a\":[1,2", &e) == NULL);               /* cut: premature */
	CHECK(e.premature);
	CHECK(parse("[1,]", &e) == NULL);                       /* no trailing commas */
	CHECK(parse("{\"a\" 1}", &e) == NULL);
	CHECK(parse("{a:1}", &e) == NULL);
}

TEST(the_writer_escapes_quotes_backslash_and_controls)
{
	struct buf b = BUF_INIT(0);

	CHECK_STR(written(&b, "a\"b\\c", 5), "\"a\\\"b\\\\c\"");
	CHECK_STR(written(&b, "\r\n\t\x01\x7f", 5), "\"\\u000d\\u000a\\u0009\\u0001\\u007f\"");
	CHECK_STR(written(&b, "a\0b", 3), "\"a\\u0000b\"");
	CHECK_STR(written(&b, "caf\xc3\xa9 \xf0\x9f\x98\x80", 10), "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"");
	buf_free(&b);
}

TEST(the_writer_turns_bytes_that_are_not_utf8_into_valid_json)
{
	struct buf b = BUF_INIT(0);
	const char *bad = "\xff\xc3(\xed\xa0\x80\xe2\x82";
	json_t *v;

	CHECK_STR(written(&b, bad, 8), "\"\\u00ff\\u00c3(\\u00ed\\u00a0\\u0080\\u00e2\\u0082\"");
	v = jsonr_parse(b.p, b.len, 4, NULL);       /* any reader takes it */
	CHECK(json_is_string(v));
	json_decref(v);
	buf_free(&b);
}

TEST(utf8_validity_and_hex_round_trip)
{
	struct buf b = BUF_INIT(0);
	char out[8];

	CHECK(json_utf8_valid("caf\xc3\xa9", 5));
	CHECK(!json_utf8_valid("caf\xe9", 4));
	CHECK(!json_utf8_valid("\xed\xa0\x80", 3));
	jsonw_hex(&b, "\x00\xff" "A", 3);
	CHECK_STR(buf_str(&b), "\"00ff41\"");
	CHECK(json_unhex("00ff41", 6, out) == 0 && !memcmp(out, "\x00\xff" "A", 3));
	CHECK(json_unhex("0g", 2, out) < 0);
	CHECK(json_unhex("abc", 3, out) < 0);
	buf_free(&b);
}

TEST(writer_values_round_trip_through_the_reader)
{
	struct buf b = BUF_INIT(0);
	json_t *v;

	jsonw_open(&b, '{');
	jsonw_key(&b, "s");
	jsonw_str(&b, "x\ny", 3);
	jsonw_key(&b, "a");
	jsonw_open(&b, '[');
	jsonw_int(&b, 1);
	jsonw_bool(&b, 0);
	jsonw_null(&b);
	jsonw_open(&b, '{');
	jsonw_close(&b, '}');
	jsonw_close(&b, ']');
	jsonw_close(&b, '}');
	CHECK_STR(buf_str(&b), "{\"s\":\"x\\u000ay\",\"a\":[1,false,null,{}]}");
	v = parse(buf_str(&b), NULL);
	CHECK(v != NULL);
	CHECK_STR(json_string_value(json_object_get(v, "s")), "x\ny");
	CHECK(json_array_size(json_object_get(v, "a")) == 4);
	json_decref(v);
	buf_free(&b);
}

TEST(canonical_form_sorts_keys_and_drops_null_members)
{
	struct buf b = BUF_INIT(0);
	json_t *v = parse("[{\"b\":1,\"a\":\"\\u0041\",\"n\":null,\"c\":{}},2.0,0.5]", NULL);

	CHECK(v != NULL);
	CHECK(jsonw_canonical(&b, v) == 0);
	CHECK_STR(buf_str(&b), "[{\"a\":\"A\",\"b\":1,\"c\":[]},2,0.5]");
	json_decref(v);
	buf_free(&b);
}

TEST(a_bounded_buffer_refuses_what_passes_its_limit_whole)
{
	struct buf b = BUF_INIT(8);

	CHECK(buf_adds(&b, "12345") == 0);
	CHECK(buf_adds(&b, "6789") < 0);            /* would be 9 */
	CHECK(b.err == BUF_FULL);
	CHECK_STR(buf_str(&b), "12345");
	CHECK(buf_adds(&b, "6") < 0);               /* err sticks */
	buf_truncate(&b, 5);                        /* until taken back */
	CHECK(buf_printf(&b, "%d", 678) == 0);
	CHECK_STR(buf_str(&b), "12345678");
	CHECK(buf_printf(&b, "%d", 9) < 0);
	buf_reset(&b);
	CHECK(buf_printf(&b, "%s-%s", "long", "ok") == 0);
	CHECK_STR(buf_str(&b), "long-ok");
	buf_free(&b);
}

TEST(an_unbounded_buffer_grows_and_printf_can_exceed_any_scratch)
{
	struct buf b = BUF_INIT(0);
	char big[5000];

	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	for (int i = 0; i < 100; i++)
		CHECK(buf_printf(&b, "%s", big) == 0);
	CHECK(b.len == 100 * (sizeof big - 1));
	CHECK(strlen(buf_str(&b)) == b.len);
	buf_free(&b);
	CHECK_STR(buf_str(&b), "");
}

TEST(getline_strips_the_end_and_skips_a_line_past_the_bound_whole)
{
	struct buf b = BUF_INIT(16);
	char text[] = "one\r\n\nthis line is far longer than sixteen bytes\nlast";
	FILE *f = fmemopen(text, strlen(text), "r");

	CHECK(f != NULL);
	CHECK(buf_getline(&b, f) == 1);
	CHECK_STR(buf_str(&b), "one");
	CHECK(buf_getline(&b, f) == 1);
	CHECK(b.len == 0);
	CHECK(buf_getline(&b, f) == -1);           /* too long: read past, not kept */
	CHECK(buf_getline(&b, f) == 1);
	CHECK_STR(buf_str(&b), "last");            /* no newline at the end */
	CHECK(buf_getline(&b, f) == 0);
	fclose(f);
	buf_free(&b);
}

/* ruletest's record: a tree in the arena lives until the reset; other trees are untouched. */
TEST(arena_trees_live_until_the_reset_and_other_trees_are_freed_as_usual)
{
	struct json_err e;
	json_t *kept = jsonr_parse("{\"k\":[\"kept\"]}", 14, 8, NULL);
	json_t *v, *copy;

	for (int i = 0; i < 3; i++) {
		char line[64];
		int n = snprintf(line, sizeof line, "{\"e\":\"cmd\",\"line\":\"EHLO h%d\",\"n\":[%d]}", i, i);
		jsonr_arena_reset();
		CHECK((v = jsonr_parse_arena(line, (size_t)n, 8, &e)) != NULL);
		CHECK(json_integer_value(json_array_get(json_object_get(v, "n"), 0)) == i);
		json_decref(v);                        /* harmless: frees nothing */
		CHECK(!strncmp(json_string_value(json_object_get(v, "line")), "EHLO h", 6));
	}
	copy = json_deep_copy(json_object_get(v, "n"));   /* kept past the reset */
	CHECK(jsonr_parse_arena("[1,", 3, 8, &e) == NULL && e.premature);
	jsonr_arena_reset();
	CHECK(json_integer_value(json_array_get(copy, 0)) == 2);
	CHECK_STR(json_string_value(json_array_get(json_object_get(kept, "k"), 0)), "kept");
	json_decref(copy);
	json_decref(kept);
}

/* Lua's side: json_decode keeps array length with json_null, drops null members. */
TEST(lua_decode_keeps_nulls_in_arrays_and_reports_the_offset)
{
	lua_State *L = luaL_newstate();

	lua_newtable(L);
	ljson_open(L);
	lua_setglobal(L, "C");
	luaL_openlibs(L);
	CHECK(luaL_dostring(L,
	    "local v = C.json_decode('[1,null,{\"a\":null,\"b\":\"x\"},1.5]')\n"
	    "assert(#v == 4 and v[2] == C.json_null and v[3].a == nil and v[3].b == 'x')\n"
	    "assert(math.type(v[1]) == 'integer' and v[4] == 1.5)\n"
	    "local bad, why = C.json_decode('[1,2')\n"
	    "assert(bad == nil and why:match('^offset %d+: '), why)\n"
	    "assert(C.json_decode('{} x') == nil)\n"
	    "assert(C.json_encode({1, 'a\"'}) == '[1,\"a\\\\\"\"]')\n"
	    "assert(not pcall(C.json_encode, {print}))\n") == LUA_OK);
	lua_close(L);
}

UNIT_MAIN()
