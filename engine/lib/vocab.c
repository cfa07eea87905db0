/* vocab.c - names of stages and verdict actions (see vocab.h). */
#include "vocab.h"

const char *
stage_name(enum stage st)
{
	static const char *n[STAGE_MAX] = {
		"connect", "helo", "starttls", "mail", "rcpt", "predata", "data", "quit",
	};
	return st < STAGE_MAX ? n[st] : "-";
}

const char *
action_name(enum action a)
{
	static const char *n[] = { "none", "accept", "deny", "defer", "drop" };
	return a <= V_DROP ? n[a] : "?";
}
