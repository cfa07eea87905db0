/*
 * prom.h - writing the Prometheus text exposition format (0.0.4).
 */
#ifndef MXGATE_PROM_H
#define MXGATE_PROM_H

#include "buf.h"

struct metrics;
struct conf;

/* # HELP and # TYPE lines (help may be NULL). */
void metric_head(struct buf *out, const char *name, const char *type, const char *help);
/* name{labels} value; labels already formatted, or NULL. */
void metric_line(struct buf *out, const char *name, const char *labels, double value);
/* A label value: backslash, double quote and newline escaped. */
void label_escape(struct buf *out, const char *s);
/* Every series of the shared counters (metrics_page.c). */
void metrics_format(const struct metrics *m, const struct conf *c, double now, struct buf *out);

#endif
