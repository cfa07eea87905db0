/*
 * fuzz_journal.c - libFuzzer target: random bytes as a journal line into
 * ruletest's journal reader (tools/record_journal.c on yajl, engine/lib/json.c).
 *
 * Each input is read as one line with record_parse_json(), into a record
 * reused from the last input as ruletest reuses it; a line that parses has
 * every event and every call's canonical arguments and results walked. The
 * same bytes then go through the one string escaper, with two checks no
 * e2e test can make: whatever the bytes, the writer's output is valid JSON
 * jansson accepts, and when the bytes were valid UTF-8 it decodes back to
 * exactly them.
 *
 *     make fuzz FUZZ_SECONDS=120
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "json.h"
#include "record.h"

static struct record rec;

static int
valid_utf8(const uint8_t *s, size_t n)
{
	json_t *v;
	struct buf b = BUF_INIT(0);
	int ok;

	/* jansson itself says: a JSON string of the raw bytes. */
	buf_addc(&b, '"');
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] == '"' || s[i] == '\\') {
			buf_free(&b);
			return 0;
		}
	buf_add(&b, s, n);
	buf_addc(&b, '"');
	v = jsonr_parse(b.p, b.len, 0, NULL);
	ok = v != NULL;
	json_decref(v);
	buf_free(&b);
	return ok;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[300];
	struct buf b = BUF_INIT(0);
	json_t *v;

	if (record_parse_json(&rec, (const char *)data, size, err, sizeof err) == 0) {
		for (int i = 0; i < rec.nev; i++) {
			const struct rev *e = &rec.ev[i];
			if (e->text && strlen(e->text) > size)
				abort();
		}
		for (int i = 0; i < rec.ncalls; i++) {
			buf_reset(&b);
			if (jsonw_canonical(&b, rec.calls[i].res) == 0) {
				/* canonical text is JSON too */
				if (!(v = jsonr_parse(b.p, b.len, 0, NULL)))
					abort();
				json_decref(v);
			}
			if (memchr(rec.calls[i].args, '\0', rec.calls[i].args_len))
				abort();
		}
	} else if (!err[0])
		abort();

	/* The writer: anything in, valid JSON out, UTF-8 unchanged. */
	buf_reset(&b);
	jsonw_str(&b, (const char *)data, size);
	if (b.err || !(v = jsonr_parse(b.p, b.len, 0, NULL)) || !json_is_string(v))
		abort();
	if (size < 4096 && valid_utf8(data, size) &&
	    (json_string_length(v) != size || memcmp(json_string_value(v), data, size) != 0))
		abort();
	json_decref(v);
	buf_free(&b);
	return 0;
}
