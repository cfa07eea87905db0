/* html.c - the portal page's escapers (html.h). */
#include <stdio.h>
#include <string.h>

#include "html.h"

static int
esc(struct buf *b, const char *s, int lines)
{
	if (!s)
		return 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (lines && (*p == '\n' || *p == '\r')) {
			if (*p == '\n')
				buf_adds(b, "<br>");
			continue;
		}
		switch (*p) {
		case '&': buf_adds(b, "&amp;"); break;
		case '<': buf_adds(b, "&lt;"); break;
		case '>': buf_adds(b, "&gt;"); break;
		case '"': buf_adds(b, "&quot;"); break;
		case '\'': buf_adds(b, "&#39;"); break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				buf_adds(b, "\xef\xbf\xbd");
			else
				buf_addc(b, (char)*p);
		}
	}
	return b->err ? -1 : 0;
}

int
html_esc(struct buf *b, const char *s)
{
	return esc(b, s, 0);
}

int
html_esc_lines(struct buf *b, const char *s)
{
	return esc(b, s, 1);
}

int
url_esc(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    strchr("-._~", *p))
			buf_addc(b, (char)*p);
		else {
			buf_addc(b, '%');
			buf_addc(b, hex[*p >> 4]);
			buf_addc(b, hex[*p & 15]);
		}
	}
	return b->err ? -1 : 0;
}
