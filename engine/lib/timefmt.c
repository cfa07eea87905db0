/* timefmt.c - parses and formats the times of reports, the portal page and the log. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "timefmt.h"

int
time_parse(const char *s, double now, double *out)
{
	struct tm tm;
	char *end;
	double v;
	int n = 0, y, mo, d, h = 0, mi = 0, sec = 0;

	if (!s || !*s)
		return -1;
	if (isdigit((unsigned char)*s)) {
		v = strtod(s, &end);
		if (end != s && !*end && !strchr(s, '-')) {
			*out = v;
			return 0;
		}
		if (end != s && end[0] && !end[1] && !strchr(s, '-')) {
			static const char units[] = "smhdw";
			static const double secs[] = { 1, 60, 3600, 86400, 604800 };
			const char *u = strchr(units, end[0]);
			if (!u)
				return -1;
			*out = now - v * secs[u - units];
			return 0;
		}
	}
	if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3)
		return -1;
	s += n;
	if (*s == 'T' || *s == 't' || *s == ' ') {
		n = 0;
		if (sscanf(s + 1, "%2d:%2d%n", &h, &mi, &n) != 2)
			return -1;
		s += 1 + n;
		if (*s == ':') {
			n = 0;
			if (sscanf(s + 1, "%2d%n", &sec, &n) != 1)
				return -1;
			s += 1 + n;
			if (*s == '.') {
				v = strtod(s, &end);
				s = end;
			} else
				v = 0;
		} else
			v = 0;
	} else
		v = 0;
	if (*s == 'Z' || *s == 'z')
		s++;
	if (*s || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return -1;
	memset(&tm, 0, sizeof tm);
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	*out = (double)timegm(&tm) + v;
	return 0;
}

void
time_format(double t, char *buf, size_t len)
{
	time_t s = (time_t)t;
	struct tm tm;

	gmtime_r(&s, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
