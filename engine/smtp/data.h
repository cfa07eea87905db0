/*
 * data.h - the DATA phase as a pure byte-level state machine.
 *
 * Only CRLF "." CRLF ends the message (RFC 5321 4.1.1.4). A bare CR or a
 * bare LF is a line end for storage (normalised to CRLF) but never starts
 * a line that can end the message: that is what defeats SMTP smuggling
 * (CVE-2023-51764 and friends), where a receiver and a relay disagree
 * about where a message stops.
 */
#ifndef MXGATE_DATA_H
#define MXGATE_DATA_H

#include <stddef.h>

struct data_parser {
	int    state;
	size_t line_len;        /* octets on the current line so far */
	size_t max_line;        /* text line limit, CRLF included (1000) */
	size_t size;            /* octets of message stored so far */
	int    too_long;        /* a line exceeded max_line */
	int    bare;            /* a bare CR or LF was seen */
	int    done;            /* CRLF.CRLF consumed */
};

void   data_init(struct data_parser *p, size_t max_line);

/*
 * Consumes bytes from in (stopping right after CRLF.CRLF), writes the
 * unstuffed, CRLF-normalised message to out, which must hold 2 * n + 2
 * bytes. Returns the number of input bytes consumed; *outn gets the
 * number written.
 */
size_t data_feed(struct data_parser *p, const char *in, size_t n,
    char *out, size_t *outn);

#endif
