/*
 * prom.c - the Prometheus text format's lines and escaping.
 */
#include <math.h>

#include "prom.h"

void
metric_head(struct buf *out, const char *name, const char *type, const char *help)
{
	if (help) {
		buf_printf(out, "# HELP %s ", name);
		for (; *help; help++) {         /* help text escapes \ and newline */
			if (*help == '\\')
				buf_adds(out, "\\\\");
			else if (*help == '\n')
				buf_adds(out, "\\n");
			else
				buf_addc(out, *help);
		}
		buf_addc(out, '\n');
	}
	buf_printf(out, "# TYPE %s %s\n", name, type);
}

void
metric_line(struct buf *out, const char *name, const char *labels, double value)
{
	buf_adds(out, name);
	if (labels)
		buf_printf(out, "{%s}", labels);
	if (value == floor(value) && fabs(value) < 1e15)
		buf_printf(out, " %.0f\n", value);
	else
		buf_printf(out, " %.9g\n", value);
}

void
label_escape(struct buf *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			buf_addc(out, '\\');
		if (*s == '\n') {
			buf_adds(out, "\\n");
			continue;
		}
		buf_addc(out, *s);
	}
}
