/*
 * test_data.c - the DATA stream: only CRLF.CRLF ends it, dots are
 * unstuffed, bare CR/LF are stored as CRLF but never end the message.
 */
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "unit.h"

struct run {
	char   out[65536];
	size_t outn;
	size_t used;                /* input consumed */
	int    done, too_long, bare;
	size_t size;
};

/* Feeds in as one piece (step 0) or in pieces of step octets. */
static void
feed(struct run *r, const char *in, size_t n, size_t step)
{
	struct data_parser p;
	char *out = malloc(2 * n + 2);

	data_init(&p, 1000);
	r->outn = r->used = 0;
	if (!step)
		step = n ? n : 1;
	while (r->used < n && !p.done) {
		size_t k = n - r->used < step ? n - r->used : step, got, outn;

		got = data_feed(&p, in + r->used, k, out, &outn);
		if (outn > 2 * k + 2)
			abort();                /* the documented bound */
		memcpy(r->out + r->outn, out, outn);
		r->outn += outn;
		r->used += got;
		if (got < k && !p.done)
			abort();                /* stops early only at the end */
	}
	r->out[r->outn] = '\0';
	r->done = p.done;
	r->too_long = p.too_long;
	r->bare = p.bare;
	r->size = p.size;
	free(out);
}

static struct run R;

#define FEED(s) feed(&R, (s), sizeof(s) - 1, 0)

TEST(crlf_dot_crlf_ends_the_message_and_nothing_after_it_is_consumed)
{
	FEED("Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n");
	CHECK_INT(R.done, 1);
	CHECK_STR(R.out, "Subject: x\r\n\r\nhello\r\n");
	CHECK_INT(R.used, strlen("Subject: x\r\n\r\nhello\r\n.\r\n"));
	CHECK_INT(R.size, R.outn);
	CHECK_INT(R.bare, 0);
	CHECK_INT(R.too_long, 0);
}

TEST(empty_message_is_just_the_dot)
{
	FEED(".\r\n");
	CHECK_INT(R.done, 1);
	CHECK_INT(R.outn, 0);
	CHECK_INT(R.used, 3);
}

TEST(leading_dots_are_unstuffed)
{
	FEED("..one\r\n...two\r\n.\r\n");
	CHECK_INT(R.done, 1);
	CHECK_STR(R.out, ".one\r\n..two\r\n");
	FEED("a.\r\n.b\r\n..\r\n.\r\n");
	CHECK_STR(R.out, "a.\r\nb\r\n.\r\n");
}

TEST(end_split_across_feeds_at_every_byte_boundary)
{
	static const char msg[] = "Subject: split\r\n\r\n..body line\r\nlast\r\n.\r\nNOOP\r\n";
	const size_t n = sizeof msg - 1, end = strlen("Subject: split\r\n\r\n..body line\r\nlast\r\n.\r\n");

	for (size_t step = 1; step <= n; step++) {
		feed(&R, msg, n, step);
		CHECK_INT(R.done, 1);
		CHECK_INT(R.used, end);
		CHECK_STR(R.out, "Subject: split\r\n\r\n.body line\r\nlast\r\n");
	}
	/* Two feeds, cut anywhere. */
	for (size_t cut = 0; cut <= n; cut++) {
		struct data_parser p;
		char out[256], all[256];
		size_t o1, o2, u1, u2 = 0;

		data_init(&p, 1000);
		u1 = data_feed(&p, msg, cut, out, &o1);
		memcpy(all, out, o1);
		if (!p.done)
			u2 = data_feed(&p, msg + u1, n - u1, out, &o2);
		else
			o2 = 0;
		memcpy(all + o1, out, o2);
		all[o1 + o2] = '\0';
		CHECK_INT(p.done, 1);
		CHECK_INT(u1 + u2, end);
		CHECK_STR(all, "Subject: split\r\n\r\n.body line\r\nlast\r\n");
	}
}

TEST(bare_lf_never_ends_data)
{
	FEED("a\n.\nMAIL FROM:<evil@x.test>\r\n");
	CHECK_INT(R.done, 0);
	CHECK_INT(R.bare, 1);
	CHECK_STR(R.out, "a\r\n.\r\nMAIL FROM:<evil@x.test>\r\n");
	FEED("a\n.\r\nstill data\r\n.\r\n");
	CHECK_INT(R.done, 1);
	CHECK_STR(R.out, "a\r\n.\r\nstill data\r\n");
	FEED("a\r\n.\nstill data\r\n.\r\n");
	CHECK_INT(R.done, 1);
	CHECK_INT(R.bare, 1);
	CHECK_STR(R.out, "a\r\n.\r\nstill data\r\n");
}

TEST(bare_cr_never_ends_data)
{
	FEED("a\r.\rMAIL\r\n");
	CHECK_INT(R.done, 0);
	CHECK_INT(R.bare, 1);
	CHECK_STR(R.out, "a\r\n.\r\nMAIL\r\n");
	FEED("a\r.\r\nstill\r\n.\r\n");
	CHECK_INT(R.done, 1);
	CHECK_STR(R.out, "a\r\n.\r\nstill\r\n");
	FEED("a\r\n.\rstill\r\n.\r\n");
	CHECK_INT(R.done, 1);
	CHECK_STR(R.out, "a\r\n.\r\nstill\r\n");
	FEED("a\r\n.\r\r\n.\r\n");             /* ".\r" then CRLF: a line ".", then the end */
	CHECK_INT(R.done, 1);
	CHECK_STR(R.out, "a\r\n.\r\n\r\n");
}

TEST(bare_line_ends_at_every_byte_boundary_never_end_data)
{
	static const char *tricks[] = {
		"x\n.\nMAIL\r\n", "x\r.\rMAIL\r\n", "x\r\n.\nMAIL\r\n", "x\n.\r\nMAIL\r\n",
		"x\r.\r\nMAIL\r\n", "x\r\n.\rMAIL\r\n", "x\n\r.\r\nMAIL\r\n", "x\r\r\n.\nMAIL\r\n",
	};
	for (size_t t = 0; t < sizeof tricks / sizeof *tricks; t++)
		for (size_t step = 1; step <= strlen(tricks[t]); step++) {
			feed(&R, tricks[t], strlen(tricks[t]), step);
			CHECK_INT(R.done, 0);
			CHECK_INT(R.bare, 1);
			CHECK_INT(R.used, strlen(tricks[t]));
		}
}

TEST(crlf_stays_clean)
{
	FEED("a\r\nb\r\n\r\n.\r\n");
	CHECK_INT(R.bare, 0);
	CHECK_STR(R.out, "a\r\nb\r\n\r\n");
}

TEST(line_of_1000_octets_with_crlf_is_fine_1001_is_too_long)
{
	char *msg = malloc(4000);
	size_t n;

	memset(msg, 'x', 998);
	memcpy(msg + 998, "\r\n.\r\n", 5);
	feed(&R, msg, 1003, 0);
	CHECK_INT(R.done, 1);
	CHECK_INT(R.too_long, 0);
	CHECK_INT(R.outn, 1000);

	memset(msg, 'x', 999);
	memcpy(msg + 999, "\r\n.\r\n", 5);
	feed(&R, msg, 1004, 0);
	CHECK_INT(R.done, 1);
	CHECK_INT(R.too_long, 1);
	CHECK_INT(R.outn, 1001);

	/* The last line, ended by the terminator's CRLF, counts too. */
	memcpy(msg, "ok\r\n", 4);
	memset(msg + 4, 'y', 999);
	memcpy(msg + 1003, "\r\n.\r\n", 5);
	feed(&R, msg, 1008, 7);
	CHECK_INT(R.too_long, 1);

	/* A line ended by a bare LF is measured the same way. */
	memset(msg, 'z', 999);
	n = 999;
	memcpy(msg + n, "\nok\r\n.\r\n", 8);
	feed(&R, msg, n + 8, 0);
	CHECK_INT(R.done, 1);
	CHECK_INT(R.too_long, 1);

	/* Many 998-octet lines are all fine. */
	for (int i = 0; i < 3; i++) {
		memset(msg + i * 1000, 'w', 998);
		memcpy(msg + i * 1000 + 998, "\r\n", 2);
	}
	memcpy(msg + 3000, ".\r\n", 3);
	feed(&R, msg, 3003, 13);
	CHECK_INT(R.done, 1);
	CHECK_INT(R.too_long, 0);
	free(msg);
}

TEST(output_never_exceeds_2n_plus_2)
{
	/* Worst cases for growth: bare LFs and CRs each become CRLF, and a
	 * pending ".\r" from the previous feed is released with the next. */
	static const char *worst[] = { "\n\n\n\n\n\n", "\r\r\r\r\r\r", "\r\n.\r", "x", "\n", "\r" };
	struct data_parser p;
	char out[64];
	size_t outn;

	data_init(&p, 1000);
	data_feed(&p, "\r\n.\r", 4, out, &outn);
	CHECK_INT(outn, 2);
	data_feed(&p, "\r", 1, out, &outn);         /* ".\r" + "\r": 4 octets from 1 */
	CHECK(outn <= 2 * 1 + 2);
	CHECK_INT(p.done, 0);
	for (size_t w = 0; w < sizeof worst / sizeof *worst; w++)
		for (size_t step = 1; step <= 6; step++)
			feed(&R, worst[w], strlen(worst[w]), step);   /* feed() aborts past the bound */
}

TEST(size_counts_stored_octets)
{
	FEED("ab\ncd\r\n..e\r\n.\r\n");
	CHECK_STR(R.out, "ab\r\ncd\r\n.e\r\n");
	CHECK_INT(R.size, strlen("ab\r\ncd\r\n.e\r\n"));
}

TEST(nul_and_8bit_octets_pass_through)
{
	static const char msg[] = "a\0b\xff\xfe\r\n\0.\r\n.\r\n";

	feed(&R, msg, sizeof msg - 1, 0);
	CHECK_INT(R.done, 1);
	CHECK_INT(R.outn, 11);
	CHECK(memcmp(R.out, "a\0b\xff\xfe\r\n\0.\r\n", 11) == 0);
}

UNIT_MAIN()
