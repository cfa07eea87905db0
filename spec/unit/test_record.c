/*
 * test_record.c - ruletest's journal reader (tools/record_journal.c, a
 * stream on yajl): what it keeps of a line, how it names a bad one, and
 * the canonical form it gives a call's arguments.
 */
#include <stdio.h>
#include <string.h>

#include "record.h"
#include "unit.h"

#define HEAD "{\"v\":1,\"sid\":\"s1\",\"time\":1.5,\"direction\":\"outbound\"," \
	"\"client\":{\"ip\":\"192.0.2.1\",\"port\":4000},\"local\":{\"ip\":\"127.0.0.1\",\"port\":25},\"events\":["

static int
parse(struct record *r, const char *line, char *err)
{
	return record_parse_json(r, line, strlen(line), err, 300);
}

TEST(a_line_gives_its_facts_events_and_canonical_call_arguments)
{
	struct record r = { 0 };
	char err[300] = "";

	CHECK(parse(&r, HEAD "{\"e\":\"cmd\",\"line\":\"EHLO x\"},"
	    "{\"e\":\"call\",\"p\":\"greylist\",\"a\":[\"1.2.3.4\",{\"z\":1,\"a\":\"\\u0041\",\"n\":null}],"
	    "\"r\":[{\"pass\":true},null]},{\"e\":\"reply\",\"code\":250,\"text\":\"ok\"}],\"truncated\":true}", err) == 0);
	CHECK_STR(r.sid, "s1");
	CHECK(r.direction == DIR_OUTBOUND && r.client_port == 4000 && r.truncated);
	CHECK_STR(r.client_ip, "192.0.2.1");
	CHECK(r.nev == 3 && r.ncalls == 1);
	CHECK_STR(r.ev[0].text, "EHLO x");
	CHECK_STR(r.calls[0].args, "[\"1.2.3.4\",{\"a\":\"A\",\"z\":1}]");
	CHECK(json_array_size(r.calls[0].res) == 2);
	CHECK(r.ev[2].code == 250);
	record_free(&r);
}

TEST(a_command_that_is_not_utf8_is_replayed_from_its_exact_bytes)
{
	struct record r = { 0 };
	char err[300] = "";

	CHECK(parse(&r, HEAD "{\"e\":\"cmd\",\"line\":\"EHLO \\u00ff\",\"line_hex\":\"45484c4f20ff\"},"
	    "{\"e\":\"reply\",\"code\":501,\"text\":\"x\",\"text_hex\":\"zz\"}]}", err) == 0);
	CHECK_STR(r.ev[0].text, "EHLO \xff");
	CHECK_STR(r.ev[1].text, "x");              /* bad hex: the readable string */
	record_free(&r);
}

TEST(a_cut_line_is_truncated_and_other_garbage_is_not_a_session_record)
{
	struct record r = { 0 };
	char err[300];

	CHECK(parse(&r, HEAD "{\"e\":\"cmd\",\"line\":\"EH", err) < 0);
	CHECK(strstr(err, "truncated line") == err);
	CHECK(parse(&r, "not JSON", err) < 0);
	CHECK(strstr(err, "not a session record: offset") == err);
	CHECK(parse(&r, "{\"v\":1,\"events\":[]}", err) < 0);
	CHECK(strstr(err, "not a session record") == err);
	CHECK(parse(&r, HEAD "{\"e\":\"call\",\"p\":\"dns\"}]}", err) < 0);
	CHECK(strstr(err, "without \"p\", \"a\" or \"r\"") != NULL);
	CHECK(parse(&r, HEAD "]} trailing", err) < 0);
	record_free(&r);
}

/* A line whose one call's arguments hold arrays nested depth deep. */
static const char *
nested_call(char *line, size_t room, int depth)
{
	int n = snprintf(line, room, "%s{\"e\":\"call\",\"p\":\"x\",\"a\":[", HEAD);

	for (int i = 0; i < depth; i++)
		line[n++] = '[';
	for (int i = 0; i < depth; i++)
		line[n++] = ']';
	snprintf(line + n, room - n, "],\"r\":[]}]}");
	return line;
}

TEST(call_arguments_as_deep_as_the_writer_allows_are_read)
{
	struct record r = { 0 };
	char line[1024], err[300] = "";

	CHECK(parse(&r, nested_call(line, sizeof line, 31), err) == 0);
	CHECK(r.ncalls == 1);
	record_free(&r);
}

TEST(values_nested_deeper_than_the_writer_allows_are_refused)
{
	struct record r = { 0 };
	char line[1024], err[300] = "";

	CHECK(parse(&r, nested_call(line, sizeof line, 40), err) < 0);
	CHECK(strstr(err, "nested too deep") != NULL);
	/* ... also where nobody reads them */
	CHECK(parse(&r, "{\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}", err) < 0);
	CHECK(strstr(err, "nested too deep") != NULL);
	record_free(&r);
}

TEST(numbers_beyond_64_bits_or_a_double_are_refused_as_jansson_refused_them)
{
	struct record r = { 0 };
	char err[300] = "";

	CHECK(parse(&r, HEAD "{\"e\":\"reply\",\"code\":99999999999999999999,\"text\":\"x\"}]}", err) < 0);
	CHECK(strstr(err, "too big integer") != NULL);
	CHECK(parse(&r, HEAD "{\"e\":\"call\",\"p\":\"x\",\"a\":[1e999],\"r\":[]}]}", err) < 0);
	CHECK(strstr(err, "real number overflow") != NULL);
	/* Digits are not a limit for a real (jansson read these too). */
	CHECK(parse(&r, HEAD "{\"e\":\"call\",\"p\":\"x\",\"a\":[1.00000000000000000000000000000000000000000000000000"
	    "000000000000000000000000000000001,1e-999],\"r\":[]}]}", err) == 0);
	CHECK_STR(r.calls[0].args, "[1,0]");
	CHECK(parse(&r, HEAD "{\"e\":\"reply\",\"code\":250,\"text\":\"\xff\"}]}", err) < 0);
	CHECK(strstr(err, "not a session record: offset") == err);          /* not UTF-8 */
	record_free(&r);
}

TEST(the_last_of_duplicate_keys_wins_and_unknown_members_are_skipped_whatever_they_hold)
{
	struct record r = { 0 };
	char err[300] = "";

	CHECK(parse(&r, "{\"v\":1,\"client\":{\"ip\":\"192.0.2.9\",\"port\":1},\"future\":{\"events\":[1,{\"e\":2}],"
	    "\"client\":[]},\"events\":[{\"e\":\"cmd\",\"line\":\"A\"}],"
	    "\"client\":{\"ip\":\"192.0.2.1\"},\"events\":[{\"e\":\"cmd\",\"line\":\"B\",\"line\":\"C\","
	    "\"x\":{\"e\":[{}]}},{\"e\":\"later\",\"a\":[1]}]}", err) == 0);
	CHECK_STR(r.client_ip, "192.0.2.1");
	CHECK(r.client_port == 0);                 /* the first "client" is gone whole */
	CHECK(r.nev == 1);                         /* the last "events"; an unknown kind is ignored */
	CHECK_STR(r.ev[0].text, "C");
	/* The shape comes before the first bad event; the events before their JSON. */
	CHECK(parse(&r, "{\"events\":[3]}", err) < 0);
	CHECK_STR(err, "not a session record (no \"client\" or \"events\")");
	CHECK(parse(&r, HEAD "3,{}]}", err) < 0);
	CHECK_STR(err, "not a session record: event 1: an event that is not an object");
	CHECK(parse(&r, HEAD "3,{}] x", err) < 0);
	CHECK(strstr(err, "not a session record: offset") == err);
	record_free(&r);
}

TEST(numbers_no_int_holds_read_as_nothing_rather_than_undefined_behaviour)
{
	struct record r = { 0 };
	char err[300] = "";

	/* Found by fuzz_journal (UBSan: 1e+25 outside the range of int). */
	CHECK(parse(&r, "{\"v\":1,\"client\":{\"ip\":\"192.0.2.1\",\"port\":1e25},\"events\":["
	    "{\"e\":\"reply\",\"code\":-1e300,\"text\":\"x\"},{\"e\":\"hook\",\"stage\":\"data\",\"size\":1e300},"
	    "{\"e\":\"reply\",\"code\":70000}]}", err) == 0);
	CHECK(r.client_port == 0);
	CHECK(r.ev[0].code == 0 && r.ev[1].size == -1 && r.ev[2].code == 0);
	record_free(&r);
}

TEST(hand_written_answers_are_written_as_json_whatever_the_tokens)
{
	struct record r = { 0 };
	char err[300] = "";
	struct buf b = BUF_INIT(0);

	/* A quote in a token used to be pasted into the JSON as it stood. */
	CHECK(record_add_answer(&r, "greylist * -> defer ne\"w 1.5", 1, err, sizeof err) == 0);
	CHECK(jsonw_canonical(&b, r.calls[0].res) == 0);
	CHECK_STR(buf_str(&b), "[{\"pass\":false,\"verdict\":\"ne\\\"w\",\"wait\":1.5}]");
	CHECK(record_add_answer(&r, "ratelimit * -> over 7", 2, err, sizeof err) == 0);
	buf_reset(&b);
	CHECK(jsonw_canonical(&b, r.calls[1].res) == 0);
	CHECK_STR(buf_str(&b), "[{\"over\":true,\"rate\":7}]");
	CHECK(record_add_answer(&r, "dns example.test mx -> 10 mx1.example.test 20 mx2.example.test", 3, err,
	    sizeof err) == 0);
	CHECK(record_add_answer(&r, "dns example.test mx -> nan mx1.example.test", 4, err, sizeof err) < 0);
	CHECK(record_add_answer(&r, "callout * -> rejected inf", 5, err, sizeof err) < 0);
	CHECK(record_add_answer(&r, "now -> 1700000000 true nil x", 6, err, sizeof err) == 0);
	buf_reset(&b);
	CHECK(jsonw_canonical(&b, r.calls[r.ncalls - 1].res) == 0);
	CHECK_STR(buf_str(&b), "[1700000000,true,null,\"x\"]");
	buf_free(&b);
	record_free(&r);
}

UNIT_MAIN()
