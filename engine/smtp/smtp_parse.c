/*
 * smtp_parse.c - command verbs, paths and ESMTP parameters.
 *
 * Lenient where the world is (a space after "FROM:", as Postfix and Exim
 * accept), strict where it matters: a path must be in angle brackets, an
 * address must parse, and a parameter we did not advertise is refused
 * (RFC 5321 4.1.1.11: 555).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp_parse.h"

static const char *verbs[CMD_MAX] = {
	[CMD_UNKNOWN] = "?", [CMD_HELO] = "HELO", [CMD_EHLO] = "EHLO",
	[CMD_MAIL] = "MAIL", [CMD_RCPT] = "RCPT", [CMD_DATA] = "DATA",
	[CMD_RSET] = "RSET", [CMD_NOOP] = "NOOP", [CMD_QUIT] = "QUIT",
	[CMD_VRFY] = "VRFY", [CMD_EXPN] = "EXPN", [CMD_HELP] = "HELP",
	[CMD_STARTTLS] = "STARTTLS", [CMD_AUTH] = "AUTH", [CMD_BDAT] = "BDAT",
};

const char *
smtp_verb_name(enum smtp_verb v)
{
	return v > 0 && v < CMD_MAX ? verbs[v] : "?";
}

enum smtp_verb
smtp_parse_verb(const char *line, const char **args)
{
	size_t n = 0;

	while (isalpha((unsigned char)line[n]))
		n++;
	if (line[n] != '\0' && line[n] != ' ') {
		*args = line + n;
		return CMD_UNKNOWN;
	}
	*args = line + n;
	while (**args == ' ')
		(*args)++;
	for (int v = 1; v < CMD_MAX; v++)
		if (strlen(verbs[v]) == n && strncasecmp(line, verbs[v], n) == 0)
			return (enum smtp_verb)v;
	return CMD_UNKNOWN;
}

static int
atext(int c)
{
	return isalnum(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/*
 * Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlong
 * forms, no surrogates, nothing past U+10FFFF), 0 when there is none.
 * RFC 6531 addresses are UTF-8; anything else would reach the envelope
 * JSON and the Received: header as undecodable bytes.
 */
static size_t
utf8_len(const unsigned char *p)
{
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		return (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (p[0] >= 0xe0 && p[0] <= 0xef) {
		if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
		    (p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] > 0x9f))
			return 0;
		return 3;
	}
	if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80 ||
		    (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] > 0x8f))
			return 0;
		return 4;
	}
	return 0;
}

/* Checks a label sequence (RFC 5321 Domain) or an address literal. */
int
smtp_valid_domain(const char *d, int utf8)
{
	size_t len = strlen(d), label = 0;

	if (len == 0 || len > 255)
		return 0;
	if (d[0] == '[') {
		/* RFC 5321 4.1.3 dcontent: printable ASCII but "[", "\\", "]". */
		if (len < 3 || d[len - 1] != ']')
			return 0;
		for (size_t i = 1; i < len - 1; i++)
			if (d[i] < 33 || d[i] > 126 || d[i] == '[' || d[i] == '\\' || d[i] == ']')
				return 0;
		return 1;                       /* the address itself: checked by users */
	}
	for (const unsigned char *p = (const unsigned char *)d; *p; p++) {
		size_t u = 0;

		if (*p == '.') {
			if (label == 0 || p[-1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!(isalnum(*p) || *p == '-' || (utf8 && (u = utf8_len(p)) != 0)))
			return 0;
		if (label == 0 && *p == '-')
			return 0;
		if (u > 1)
			p += u - 1;
		if ((label += u ? u : 1) > 63)
			return 0;
	}
	return label > 0 && d[len - 1] != '-';
}

/* RFC 5321 Mailbox: Local-part "@" ( Domain / address-literal ). */
static int
valid_mailbox(char *addr, char **domain, int utf8)
{
	char *at = NULL, *p = addr, *dots;

	if (*p == '"') {                        /* Quoted-string local part */
		for (p++; *p && *p != '"'; p++) {
			size_t u;

			if (*p == '\\')               /* quoted-pair: %d92 %d32-126 */
				p++;
			/* No CR, LF or other control octet: they would end up in headers. */
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				return 0;
			if ((unsigned char)*p >= 0x80) {
				if (!utf8 || !(u = utf8_len((const unsigned char *)p)))
					return 0;
				p += u - 1;
			}
		}
		if (*p != '"')
			return 0;
		at = p + 1;
		if (*at != '@')
			return 0;
	} else {                                /* Dot-string */
		for (; *p && *p != '@'; p++) {
			size_t u;

			if ((unsigned char)*p >= 0x80) {
				if (!utf8 || !(u = utf8_len((const unsigned char *)p)))
					return 0;
				p += u - 1;
			} else if (!atext((unsigned char)*p) && *p != '.')
				return 0;
		}
		dots = strstr(addr, "..");
		if (*p != '@' || p == addr || addr[0] == '.' || p[-1] == '.' || (dots && dots < p))
			return 0;
		at = p;
	}
	if (at - addr > 64)
		return 0;
	*domain = at + 1;
	return smtp_valid_domain(at + 1, utf8);
}

static int
has_8bit(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

/*
 * "<" [ A-d-l ":" ] Mailbox ">": the source route is obsolete and
 * ignored (RFC 5321 4.1.2, C.). Returns pointer after '>' or NULL.
 */
static const char *
parse_path(const char *s, struct smtp_path *out, int allow_null, const char **why)
{
	const char *end;
	size_t n;

	while (*s == ' ')
		s++;
	if (*s != '<') {
		*why = "501 5.5.4 Syntax: angle brackets required around the address";
		return NULL;
	}
	s++;
	if (*s == '@') {                        /* source route */
		const char *colon = strchr(s, ':');
		if (!colon) {
			*why = "501 5.1.3 Bad address syntax";
			return NULL;
		}
		s = colon + 1;
	}
	end = s;
	if (*end == '"') {                      /* quoted local part may hold '>' */
		for (end++; *end && *end != '"'; end++)
			if (*end == '\\' && end[1])
				end++;
		if (*end)
			end++;
	}
	end = strchr(end, '>');
	if (!end) {
		*why = "501 5.5.4 Syntax: missing '>'";
		return NULL;
	}
	n = (size_t)(end - s);
	if (n >= SMTP_ADDR_MAX) {
		*why = "501 5.1.3 Address too long";
		return NULL;
	}
	memcpy(out->addr, s, n);
	out->addr[n] = '\0';
	out->domain = NULL;
	if (n == 0) {
		if (!allow_null) {
			*why = "501 5.1.3 Bad recipient address syntax";
			return NULL;
		}
		return end + 1;
	}
	return end + 1;
}

static const char *
parse_params(const char *p, struct smtp_path *out, int mail)
{
	char key[32], val[64];

	out->size = -1;
	out->body8bit = 0;
	out->smtputf8 = 0;
	while (*p) {
		size_t kn = 0, vn = 0;

		while (*p == ' ')
			p++;
		if (!*p)
			break;
		while (*p && *p != ' ' && *p != '=' && kn < sizeof key - 1)
			key[kn++] = *p++;
		key[kn] = '\0';
		val[0] = '\0';
		if (*p == '=') {
			p++;
			while (*p && *p != ' ' && vn < sizeof val - 1)
				val[vn++] = *p++;
			val[vn] = '\0';
		}
		if (*p && *p != ' ')
			return "501 5.5.4 Syntax error in parameters";
		if (mail && strcasecmp(key, "SIZE") == 0) {
			char *e;
			if (!val[0] || !isdigit((unsigned char)val[0]))
				return "501 5.5.4 Bad SIZE parameter";
			out->size = strtoll(val, &e, 10);
			if (*e || out->size < 0)
				return "501 5.5.4 Bad SIZE parameter";
		} else if (mail && strcasecmp(key, "BODY") == 0) {
			if (strcasecmp(val, "8BITMIME") == 0)
				out->body8bit = 1;
			else if (strcasecmp(val, "7BIT") != 0)
				return "501 5.5.4 Bad BODY parameter";
		} else if (mail && strcasecmp(key, "SMTPUTF8") == 0 && !val[0]) {
			out->smtputf8 = 1;
		} else
			return "555 5.5.4 Unsupported parameter";
	}
	return NULL;
}

static const char *
parse_cmd_path(const char *args, const char *prefix, struct smtp_path *out, int mail)
{
	size_t plen = strlen(prefix);
	const char *why = NULL, *rest;

	if (strncasecmp(args, prefix, plen) != 0)
		return mail ? "501 5.5.4 Syntax: MAIL FROM:<address>" : "501 5.5.4 Syntax: RCPT TO:<address>";
	rest = parse_path(args + plen, out, mail, &why);
	if (!rest)
		return why;
	if (*rest && *rest != ' ')
		return "501 5.5.4 Syntax: a space must follow the address";
	if ((why = parse_params(rest, out, mail)) != NULL)
		return why;
	if (!out->addr[0])
		return NULL;
	if (has_8bit(out->addr) && !out->smtputf8 && mail)
		return "553 5.6.7 Non-ASCII address requires SMTPUTF8";
	if (!mail && strcasecmp(out->addr, "postmaster") == 0)
		return NULL;                    /* RFC 5321 4.5.1 */
	if (!valid_mailbox(out->addr, &out->domain, 1))
		return mail ? "501 5.1.7 Bad sender address syntax" : "501 5.1.3 Bad recipient address syntax";
	return NULL;
}

const char *
smtp_parse_mail(const char *args, struct smtp_path *out)
{
	return parse_cmd_path(args, "FROM:", out, 1);
}

const char *
smtp_parse_rcpt(const char *args, struct smtp_path *out)
{
	return parse_cmd_path(args, "TO:", out, 0);
}
