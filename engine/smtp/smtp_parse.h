/*
 * smtp_parse.h - pure parsing of SMTP command lines (RFC 5321 4.1).
 * No I/O, no allocation: unit-tested and fuzzed on its own.
 */
#ifndef MXGATE_SMTP_PARSE_H
#define MXGATE_SMTP_PARSE_H

#include <stddef.h>

enum smtp_verb {
	CMD_UNKNOWN = 0, CMD_HELO, CMD_EHLO, CMD_MAIL, CMD_RCPT, CMD_DATA,
	CMD_RSET, CMD_NOOP, CMD_QUIT, CMD_VRFY, CMD_EXPN, CMD_HELP, CMD_STARTTLS,
	CMD_AUTH, CMD_BDAT, CMD_MAX
};

#define SMTP_ADDR_MAX 320       /* RFC 5321 4.5.3.1: 64 local + @ + 255 domain */

struct smtp_path {
	char   addr[SMTP_ADDR_MAX]; /* "" for the null path <> */
	char  *domain;              /* into addr, after '@'; NULL when none */
	long long size;             /* SIZE=, -1 when absent */
	int    body8bit;            /* BODY=8BITMIME */
	int    smtputf8;            /* SMTPUTF8 */
};

/* Splits "VERB args"; *args points into line (NUL-terminated by caller). */
enum smtp_verb smtp_parse_verb(const char *line, const char **args);
const char    *smtp_verb_name(enum smtp_verb v);

/*
 * Parses the argument of MAIL ("FROM:<a> PARAMS") or RCPT ("TO:<a>").
 * Returns 0, or an SMTP reply ("501 5.1.7 Bad sender address syntax")
 * describing what is wrong.
 */
const char *smtp_parse_mail(const char *args, struct smtp_path *out);
const char *smtp_parse_rcpt(const char *args, struct smtp_path *out);

/* RFC 5321 4.1.2 domain or address literal; 1 when valid. */
int smtp_valid_domain(const char *d, int utf8);

#endif
