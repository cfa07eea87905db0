/* logfmt.c - splits a log line (log.c's logfmt) into key/value pairs. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "logfmt.h"

int
logfmt_split(char *p, struct kv *kv, int max)
{
	int n = 0;

	for (;;) {
		char *k, *v, *o;
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p || *p == '\n' || *p == '\r')
			return n;
		k = p;
		while (isalnum((unsigned char)*p) || *p == '_')
			p++;
		if (p == k || *p != '=')
			return -1;
		*p++ = '\0';
		v = o = p;
		if (*p == '"') {
			for (p++;; ) {
				if (!*p || *p == '\n')
					return -1;
				if (*p == '"') {
					p++;
					break;
				}
				if (*p == '\\' && p[1] == 'x' && isxdigit((unsigned char)p[2]) &&
				    isxdigit((unsigned char)p[3])) {
					char hex[3] = { p[2], p[3], '\0' };
					*o++ = (char)strtol(hex, NULL, 16);
					p += 4;
				} else if (*p == '\\' && p[1]) {
					*o++ = p[1];
					p += 2;
				} else
					*o++ = *p++;
			}
			if (*p && *p != ' ' && *p != '\n' && *p != '\r')
				return -1;
			if (*p)
				p++;
			*o = '\0';
		} else {
			while (*p && *p != ' ' && *p != '\n' && *p != '\r')
				p++;
			if (*p)
				*p++ = '\0';
		}
		if (n < max) {
			kv[n].k = k;
			kv[n].v = v;
			n++;
		}
	}
}

const char *
logfmt_get(const struct kv *kv, int n, const char *k)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(kv[i].k, k))
			return kv[i].v;
	return NULL;
}
