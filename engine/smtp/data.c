/*
 * data.c - DATA byte stream: dot-unstuffing, strict end detection,
 * line-length and bare CR/LF accounting.
 */
#include "data.h"

enum {
	D_BOL,      /* after a real CRLF: "." here may stuff or end */
	D_MID,      /* inside a line, or after a bare CR/LF: "." is data */
	D_CR,       /* saw CR inside a line */
	D_DOT,      /* saw "." at a real BOL */
	D_DOTCR,    /* saw ".\r" at a real BOL */
};

void
data_init(struct data_parser *p, size_t max_line)
{
	p->state = D_BOL;     /* the DATA command's own CRLF starts the text */
	p->line_len = 0;
	p->max_line = max_line;
	p->size = 0;
	p->too_long = 0;
	p->bare = 0;
	p->done = 0;
}

/* A line ended (really or after normalisation): RFC 5321 counts CRLF. */
static void
eol(struct data_parser *p)
{
	if (p->line_len + 2 > p->max_line)
		p->too_long = 1;
	p->line_len = 0;
}

size_t
data_feed(struct data_parser *p, const char *in, size_t n, char *out, size_t *outn)
{
	size_t i, o = 0;

	for (i = 0; i < n && !p->done; i++) {
		char c = in[i];
again:
		switch (p->state) {
		case D_BOL:
			if (c == '.') {
				p->state = D_DOT;
				break;
			}
			p->state = D_MID;
			goto again;
		case D_MID:
			if (c == '\r') {
				p->state = D_CR;
			} else if (c == '\n') {
				p->bare = 1;          /* bare LF: a line end for storage only */
				eol(p);
				out[o++] = '\r';
				out[o++] = '\n';
			} else {
				out[o++] = c;
				p->line_len++;
			}
			break;
		case D_CR:
			if (c == '\n') {
				eol(p);
				out[o++] = '\r';
				out[o++] = '\n';
				p->state = D_BOL;
				break;
			}
			p->bare = 1;                  /* bare CR */
			eol(p);
			out[o++] = '\r';
			out[o++] = '\n';
			p->state = D_MID;
			goto again;
		case D_DOT:
			if (c == '\r') {
				p->state = D_DOTCR;
				break;
			}
			if (c == '\n') {              /* ".\n": not the end */
				p->bare = 1;
				out[o++] = '.';
				p->line_len = 1;
				eol(p);
				out[o++] = '\r';
				out[o++] = '\n';
				p->state = D_MID;
				break;
			}
			p->state = D_MID;             /* unstuff: drop the dot */
			goto again;
		case D_DOTCR:
			if (c == '\n') {
				p->done = 1;
				break;
			}
			p->bare = 1;                  /* ".\r" then not LF */
			out[o++] = '.';
			p->line_len = 1;
			eol(p);
			out[o++] = '\r';
			out[o++] = '\n';
			p->state = D_MID;
			goto again;
		}
	}
	p->size += o;
	*outn = o;
	return i;
}
