/*
 * replay.h - the replay world: ruletest's answers to the world primitives.
 *
 * In ruletest the rules' dns(), greylist(), ratelimit(), callout(),
 * verify_sender() and now() are answered from the session being replayed:
 * a call is answered by the next unused recorded call with the same name
 * and equal arguments. A call the record cannot answer is never guessed:
 * the rule gets nil, "unanswered" and the session is reported.
 *
 * Arguments compare in canonical JSON: strings escaped as the journal
 * escapes them, integers as %lld, other numbers as %.17g, object keys in
 * byte order, an empty table as []. record.c brings recorded arguments to
 * the same form.
 */
#ifndef MXGATE_REPLAY_H
#define MXGATE_REPLAY_H

#include <stddef.h>

#include <lua.h>

#include "buf.h"
#include "json.h"

struct replay_call {
	const char  *name;
	const char  *args;        /* canonical JSON array; NULL: pattern */
	size_t       args_len;
	json_t      *res;         /* JSON array of the results (the record's) */
	/* Hand-written answers: argument patterns ("*" matches anything,
	 * missing ones too). Calls with the same name and patterns form a
	 * sequence (group: the index of its first); its last answers again. */
	const char **pattern;
	int          npattern;
	int          group;
	int          used;
};

struct replay_world {
	struct replay_call *calls;        /* the session being replayed */
	int                 ncalls;
	int                 answered, unanswered;
	/* NULL: no trace at all (C.trace stays unset, rules pay nothing). */
	void              (*trace)(void *arg, const char *line);
	void               *arg;
	/* Every unanswered question, traced or not: name and its arguments. */
	void              (*unanswered_cb)(void *arg, const char *name, const char *args);
	int                 coverage;         /* C.coverage: rules count sessions */
	struct buf          enc;              /* scratch for encoding */
};

/* world_open for policy_open_replay(): C.replay and (tracing) C.trace. */
void replay_world_open(lua_State *L, void *world);

#endif
