/*
 * html.h - text into HTML and into URLs: every value the portal page shows
 * (addresses, replies, rule names: a client chose many of them) goes
 * through one of these.
 */
#ifndef MXGATE_HTML_H
#define MXGATE_HTML_H

#include "buf.h"

/* &<>"' as entities, control bytes as U+FFFD; NULL writes nothing. */
int html_esc(struct buf *b, const char *s);
/* The same for a text of several lines (a multi-line reply, headers):
 * each line break becomes <br>, CR is dropped. */
int html_esc_lines(struct buf *b, const char *s);
/* A query-string value: everything but unreserved characters %XX. */
int url_esc(struct buf *b, const char *s);

#endif
