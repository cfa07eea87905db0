/*
 * test_smtp_parse.c - verbs, paths and ESMTP parameters (RFC 5321 4.1).
 */
#include <string.h>

#include "smtp_parse.h"
#include "unit.h"

static struct smtp_path P;

static const char *
mail(const char *args)
{
	memset(&P, 0x55, sizeof P);
	return smtp_parse_mail(args, &P);
}

static const char *
rcpt(const char *args)
{
	memset(&P, 0x55, sizeof P);
	return smtp_parse_rcpt(args, &P);
}

/* The reply code of an error ("501"), or "ok". */
static const char *
code(const char *why)
{
	static char c[4];

	if (!why)
		return "ok";
	memcpy(c, why, 3);
	c[3] = '\0';
	return c;
}

TEST(verbs_are_case_insensitive_and_args_skip_spaces)
{
	const char *args;

	CHECK_INT(smtp_parse_verb("ehlo client.example", &args), CMD_EHLO);
	CHECK_STR(args, "client.example");
	CHECK_INT(smtp_parse_verb("MaIl   FROM:<a@b.c>", &args), CMD_MAIL);
	CHECK_STR(args, "FROM:<a@b.c>");
	CHECK_INT(smtp_parse_verb("StartTLS", &args), CMD_STARTTLS);
	CHECK_STR(args, "");
	CHECK_INT(smtp_parse_verb("quit", &args), CMD_QUIT);
	CHECK_INT(smtp_parse_verb("rset", &args), CMD_RSET);
	CHECK_INT(smtp_parse_verb("data", &args), CMD_DATA);
	CHECK_INT(smtp_parse_verb("BDAT 10 LAST", &args), CMD_BDAT);
	CHECK_STR(smtp_verb_name(CMD_STARTTLS), "STARTTLS");
	CHECK_STR(smtp_verb_name(CMD_UNKNOWN), "?");
	CHECK_STR(smtp_verb_name(CMD_MAX), "?");
}

TEST(unknown_or_glued_verbs_are_unknown)
{
	const char *args;

	CHECK_INT(smtp_parse_verb("", &args), CMD_UNKNOWN);
	CHECK_INT(smtp_parse_verb("MAILFROM:<a@b.c>", &args), CMD_UNKNOWN);
	CHECK_INT(smtp_parse_verb("MAIL:FROM", &args), CMD_UNKNOWN);
	CHECK_INT(smtp_parse_verb("QUITX", &args), CMD_UNKNOWN);
	CHECK_INT(smtp_parse_verb("QUI", &args), CMD_UNKNOWN);
	CHECK_INT(smtp_parse_verb(" QUIT", &args), CMD_UNKNOWN);
	CHECK_INT(smtp_parse_verb("QUIT\t", &args), CMD_UNKNOWN);
	CHECK_INT(smtp_parse_verb("\xc3\x89HLO x", &args), CMD_UNKNOWN);
}

TEST(mail_path_and_null_sender)
{
	CHECK_STR(code(mail("FROM:<bob@sender.test>")), "ok");
	CHECK_STR(P.addr, "bob@sender.test");
	CHECK_STR(P.domain, "sender.test");
	CHECK_INT(P.size, -1);
	CHECK_INT(P.body8bit, 0);
	CHECK_INT(P.smtputf8, 0);
	CHECK_STR(code(mail("from: <bob@sender.test>")), "ok");   /* lenient space, any case */
	CHECK_STR(code(mail("FROM:<>")), "ok");
	CHECK_STR(P.addr, "");
	CHECK(P.domain == NULL);
}

TEST(mail_syntax_errors)
{
	CHECK_STR(code(mail("")), "501");
	CHECK_STR(code(mail("FROM:")), "501");
	CHECK_STR(code(mail("FROM bob@sender.test")), "501");
	CHECK_STR(code(mail("TO:<bob@sender.test>")), "501");
	CHECK_STR(code(mail("FROM:bob@sender.test")), "501");
	CHECK_STR(code(mail("FROM:<bob@sender.test")), "501");
	CHECK_STR(code(mail("FROM:<bob>")), "501");
	CHECK_STR(code(mail("FROM:<@sender.test>")), "501");
	CHECK_STR(code(mail("FROM:<bob@>")), "501");
	CHECK_STR(code(mail("FROM:<bob@@sender.test>")), "501");
	CHECK_STR(code(mail("FROM:<.bob@sender.test>")), "501");
	CHECK_STR(code(mail("FROM:<bob.@sender.test>")), "501");
	CHECK_STR(code(mail("FROM:<b..ob@sender.test>")), "501");
	CHECK_STR(code(mail("FROM:<bob@sender..test>")), "501");
	CHECK_STR(code(mail("FROM:<bob@-sender.test>")), "501");
	CHECK_STR(code(mail("FROM:<bob@sender-.test>")), "501");
	CHECK_STR(code(mail("FROM:<bob@sender.test.>")), "501");
	CHECK_STR(code(mail("FROM:<bob smith@sender.test>")), "501");
	CHECK_STR(code(mail("FROM:<bob@sender_test>")), "501");
	CHECK_STR(code(mail("FROM:<bob@sender.test>junk")), "501");
}

TEST(rcpt_postmaster_without_domain_only_for_rcpt)
{
	CHECK_STR(code(rcpt("TO:<postmaster>")), "ok");
	CHECK(P.domain == NULL);
	CHECK_STR(code(rcpt("TO:<PostMaster>")), "ok");
	CHECK_STR(code(rcpt("TO:<postmaster@example.test>")), "ok");
	CHECK_STR(P.domain, "example.test");
	CHECK_STR(code(rcpt("TO:<postmistress>")), "501");
	CHECK_STR(code(mail("FROM:<postmaster>")), "501");
	CHECK_STR(code(rcpt("TO:<>")), "501");
	CHECK_STR(code(rcpt("FROM:<alice@example.test>")), "501");
}

TEST(source_routes_are_dropped)
{
	CHECK_STR(code(mail("FROM:<@relay.test:bob@sender.test>")), "ok");
	CHECK_STR(P.addr, "bob@sender.test");
	CHECK_STR(code(rcpt("TO:<@a.test,@b.test:alice@example.test>")), "ok");
	CHECK_STR(P.addr, "alice@example.test");
	CHECK_STR(P.domain, "example.test");
	CHECK_STR(code(rcpt("TO:<@a.test alice@example.test>")), "501");
}

TEST(quoted_local_parts)
{
	CHECK_STR(code(rcpt("TO:<\"alice smith\"@example.test>")), "ok");
	CHECK_STR(P.addr, "\"alice smith\"@example.test");
	CHECK_STR(P.domain, "example.test");
	CHECK_STR(code(rcpt("TO:<\"a>b\"@example.test>")), "ok");     /* '>' inside quotes */
	CHECK_STR(P.addr, "\"a>b\"@example.test");
	CHECK_STR(code(rcpt("TO:<\"a\\\"b\"@example.test>")), "ok");  /* quoted-pair */
	CHECK_STR(code(rcpt("TO:<\"\"@example.test>")), "ok");
	CHECK_STR(code(rcpt("TO:<\"unterminated@example.test>")), "501");
	CHECK_STR(code(rcpt("TO:<\"a\"b@example.test>")), "501");
	CHECK_STR(code(rcpt("TO:<\"a\\\"@example.test>")), "501");
}

TEST(control_characters_never_make_an_address)
{
	/* A bare CR inside a command line must not become a header break. */
	CHECK_STR(code(rcpt("TO:<\"a\rX: y\"@example.test>")), "501");
	CHECK_STR(code(rcpt("TO:<\"a\\\rX: y\"@example.test>")), "501");
	CHECK_STR(code(rcpt("TO:<\"a\\\x7f\"@example.test>")), "501");
	CHECK_STR(code(rcpt("TO:<a\rb@example.test>")), "501");
	CHECK_STR(code(rcpt("TO:<a@exa\rmple.test>")), "501");
	CHECK_STR(code(rcpt("TO:<a@[192.0.2.1\rX: y]>")), "501");
	CHECK_STR(code(rcpt("TO:<a@[192.0.2.1 ]>")), "501");
	CHECK_STR(code(rcpt("TO:<a@[192.0.2.[1]>")), "501");
	CHECK_STR(code(rcpt("TO:<a@[]>")), "501");
	CHECK_STR(code(rcpt("TO:<a@[192.0.2.1]>")), "ok");
	CHECK_STR(P.domain, "[192.0.2.1]");
	CHECK_STR(code(rcpt("TO:<a@[IPv6:2001:db8::1]>")), "ok");
}

TEST(utf8_addresses_need_smtputf8_and_must_be_well_formed)
{
	CHECK_STR(code(mail("FROM:<j\xc3\xb6rg@sender.test>")), "553");
	CHECK_STR(code(mail("FROM:<j\xc3\xb6rg@sender.test> SMTPUTF8")), "ok");
	CHECK_INT(P.smtputf8, 1);
	CHECK_STR(code(mail("FROM:<bob@b\xc3\xbc" "cher.test> smtputf8")), "ok");
	CHECK_STR(code(mail("FROM:<\xff@sender.test> SMTPUTF8")), "501");          /* not UTF-8 */
	CHECK_STR(code(mail("FROM:<\xc3@sender.test> SMTPUTF8")), "501");          /* truncated */
	CHECK_STR(code(mail("FROM:<\xc0\xaf@sender.test> SMTPUTF8")), "501");      /* overlong */
	CHECK_STR(code(mail("FROM:<\xed\xa0\x80@sender.test> SMTPUTF8")), "501");  /* surrogate */
	CHECK_STR(code(mail("FROM:<a@\xf4\x90\x80\x80.test> SMTPUTF8")), "501");   /* > U+10FFFF */
	CHECK_STR(code(mail("FROM:<\xf0\x9f\x93\xa7@sender.test> SMTPUTF8")), "ok");
	/* RCPT has no SMTPUTF8 parameter: the session checks MAIL's (553 there). */
	CHECK_STR(code(rcpt("TO:<z\xc3\xab@example.test>")), "ok");
	CHECK_STR(code(rcpt("TO:<z\xeb@example.test>")), "501");
}

TEST(mail_parameters_size_body_smtputf8)
{
	CHECK_STR(code(mail("FROM:<a@b.test> SIZE=1000")), "ok");
	CHECK_INT(P.size, 1000);
	CHECK_STR(code(mail("FROM:<a@b.test> size=0")), "ok");
	CHECK_INT(P.size, 0);
	CHECK_STR(code(mail("FROM:<a@b.test> BODY=8BITMIME")), "ok");
	CHECK_INT(P.body8bit, 1);
	CHECK_STR(code(mail("FROM:<a@b.test> body=7bit")), "ok");
	CHECK_INT(P.body8bit, 0);
	CHECK_STR(code(mail("FROM:<a@b.test>  SIZE=5   BODY=8BITMIME  SMTPUTF8 ")), "ok");
	CHECK_INT(P.size, 5);
	CHECK_INT(P.body8bit, 1);
	CHECK_INT(P.smtputf8, 1);
	CHECK_STR(code(mail("FROM:<a@b.test> SIZE=99999999999999999999999")), "ok");
	CHECK(P.size > 0);                       /* saturates: over any limit */
}

TEST(mail_parameter_errors)
{
	CHECK_STR(code(mail("FROM:<a@b.test> SIZE")), "501");
	CHECK_STR(code(mail("FROM:<a@b.test> SIZE=")), "501");
	CHECK_STR(code(mail("FROM:<a@b.test> SIZE=-1")), "501");
	CHECK_STR(code(mail("FROM:<a@b.test> SIZE=12k")), "501");
	CHECK_STR(code(mail("FROM:<a@b.test> SIZE=+5")), "501");
	CHECK_STR(code(mail("FROM:<a@b.test> BODY=BINARYMIME")), "501");
	CHECK_STR(code(mail("FROM:<a@b.test> SMTPUTF8=yes")), "555");
	CHECK_STR(code(mail("FROM:<a@b.test> AUTH=<>")), "555");
	CHECK_STR(code(mail("FROM:<a@b.test> RET=HDRS")), "555");
	CHECK_STR(code(rcpt("TO:<a@example.test> NOTIFY=NEVER")), "555");
	CHECK_STR(code(rcpt("TO:<a@example.test> SIZE=1")), "555");
	CHECK_STR(code(mail("FROM:<a@b.test> AVERYLONGPARAMETERNAMEOVERTHIRTYTWOCHARS=1")), "501");
}

TEST(length_bounds)
{
	char buf[1200], local[80], dom[300];

	/* 64-octet local part is the maximum (RFC 5321 4.5.3.1.1). */
	memset(local, 'l', 64);
	local[64] = '\0';
	snprintf(buf, sizeof buf, "TO:<%s@example.test>", local);
	CHECK_STR(code(rcpt(buf)), "ok");
	snprintf(buf, sizeof buf, "TO:<%sl@example.test>", local);
	CHECK_STR(code(rcpt(buf)), "501");

	/* 63-octet labels are the maximum. */
	memset(dom, 'd', 63);
	strcpy(dom + 63, ".test");
	snprintf(buf, sizeof buf, "TO:<a@%s>", dom);
	CHECK_STR(code(rcpt(buf)), "ok");
	memset(dom, 'd', 64);
	strcpy(dom + 64, ".test");
	snprintf(buf, sizeof buf, "TO:<a@%s>", dom);
	CHECK_STR(code(rcpt(buf)), "501");

	/* The whole path is bounded by SMTP_ADDR_MAX, longer is refused. */
	memset(dom, 0, sizeof dom);
	for (int i = 0; i < 4; i++)
		memset(dom + i * 64, 'd', 63), dom[i * 64 + 63] = '.';
	dom[255] = '\0';
	dom[254] = 't';
	snprintf(buf, sizeof buf, "TO:<%s@%s>", local, dom);
	CHECK(strlen(buf) - 5 >= SMTP_ADDR_MAX);
	CHECK_STR(code(rcpt(buf)), "501");
	memset(buf, 'x', sizeof buf - 1);
	buf[sizeof buf - 1] = '\0';
	memcpy(buf, "TO:<", 4);
	CHECK_STR(code(rcpt(buf)), "501");
}

TEST(valid_domain)
{
	CHECK_INT(smtp_valid_domain("example.test", 0), 1);
	CHECK_INT(smtp_valid_domain("a", 0), 1);
	CHECK_INT(smtp_valid_domain("xn--bcher-kva.test", 0), 1);
	CHECK_INT(smtp_valid_domain("b\xc3\xbc" "cher.test", 0), 0);
	CHECK_INT(smtp_valid_domain("b\xc3\xbc" "cher.test", 1), 1);
	CHECK_INT(smtp_valid_domain("", 0), 0);
	CHECK_INT(smtp_valid_domain(".test", 0), 0);
	CHECK_INT(smtp_valid_domain("a..test", 0), 0);
	CHECK_INT(smtp_valid_domain("a b.test", 0), 0);
	CHECK_INT(smtp_valid_domain("[192.0.2.1]", 0), 1);
	CHECK_INT(smtp_valid_domain("[192.0.2.1", 0), 0);
	CHECK_INT(smtp_valid_domain("[]", 0), 0);
	CHECK_INT(smtp_valid_domain("[", 0), 0);
}

UNIT_MAIN()
