/*
 * replay.h - the replay world: ruletest's answers to the world primitives.
 *
 * In ruletest the rules' dns(), greylist(), ratelimit(), callout(),
 * verify_sender() and now() are answered from the session being replayed:
 * a call is answered by the next unused recorded call with the same name
 * and equal arguments. A call the record cannot answer is never guessed:
 * the rule gets nil, "unanswered" and the session is reported.
 *
 * What the record did not ask is answered, where that can be done
 * honestly, from elsewhere, and the answer says where it came from:
 * greylist() and ratelimit() always run on the simulated store (fed by
 * every session in time order; the record's own answer, when it has one,
 * is still what the rule gets), now() is the session's recorded time,
 * dns(), callout() and verify_sender() are borrowed from an earlier session
 * of the journal that asked the same, within the answer's lifetime, and
 * with --live they are asked of the network now.
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
	double       t;           /* seconds into the session it was asked at; < 0: not recorded */
};

/* Where an answer came from, strongest first; a session counts by its weakest. */
enum replay_src { SRC_RECORDED, SRC_BORROWED, SRC_SIMULATED, SRC_LIVE, SRC_UNANSWERED, SRC_N };
const char *replay_src_name(enum replay_src s);

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
	/* Per session (ruletest resets them): the weakest source used, the
	 * session's recorded start and the simulated clock: the start, moved on
	 * to each recorded call's time as the replay meets it. */
	enum replay_src     weakest;
	unsigned            used;             /* 1 << src for every source it used */
	double              start, now;
	int                 simulate;         /* greylist()/ratelimit() on the store (policy_replay_world) */
	int                 live;             /* --live: what is still unanswered goes to the network */
	/* Another session's answer to name(args) near w->now: its results
	 * (the caller's, valid until the next call) and that session's id; NULL: none. */
	const json_t     *(*borrow)(void *arg, const char *name, const char *args, size_t alen,
	    const char **from);
	/* An answer not from the record, traced or not (the diff shows them). */
	void              (*answered_cb)(void *arg, enum replay_src src, const char *line);
};

/* world_open for policy_open_replay(): C.replay and (tracing) C.trace. */
void replay_world_open(lua_State *L, void *world);

#endif
