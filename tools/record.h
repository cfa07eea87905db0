/*
 * record.h - one session as ruletest replays it: the client's facts and the
 * events in order, read from a journal line (journal.h, v1) or from a
 * hand-written case (a .session file, spec/ruletest/README.md).
 *
 * Strings point into the record's arena and live until the next parse
 * into the same record; a record is reused line after line.
 */
#ifndef MXGATE_RECORD_H
#define MXGATE_RECORD_H

#include <stddef.h>

#include "conf.h"
#include "json.h"
#include "policy.h"
#include "replay.h"

enum rev_kind {
	RE_CMD,        /* text: the command line */
	RE_HOOK,       /* stage; data: size, a = qid, text = headers (NULL: none
	                  recorded), b = "cut" when the journal cut them */
	RE_CALL,       /* a primitive's answer: see record.calls */
	RE_VERDICT,    /* stage, code; a = action, b = reason, c = where, text */
	RE_TLS,        /* a = version, b = cipher, c = peer */
	RE_REPLY,      /* code, text ("5.7.1 XBL": the enhanced code first) */
	RE_EXPECT,     /* a case's expectation: code, text = prefix (may be "") */
	RE_SIZE,       /* a case's message size for the next DATA */
};

struct rev {
	enum rev_kind kind;
	enum stage    stage;
	int           code;
	long long     size;
	const char   *text, *a, *b, *c;
	const char   *route;         /* verdict of an accepted RCPT: its route, or NULL */
	int           line;          /* .session: the line it came from */
};

struct record {
	const char   *file;
	int           line;          /* journal: line number; case: 0 */
	char          sid[64];
	enum direction direction;
	char          client_ip[48];
	int           client_port;
	char          local_ip[48];
	int           local_port;
	char          hostname[256]; /* "" = the config's */
	double        time;
	int           truncated;     /* the journal cut this record short */
	struct rev   *ev;
	int           nev, evcap;
	struct replay_call *calls;
	int           ncalls, callcap;
	int           is_case;       /* hand-written: replies are expectations */
	char          title[256];
	void         *arena;         /* record.c's blocks */
	json_t       *answers;       /* hand-written answers' results, one tree each */
};

/* A journal line (without its newline): 0, or -1 with why in err. */
int  record_parse_json(struct record *r, const char *line, size_t len, char *err, size_t errlen);
/* A whole .session file: 0, or -1 with "file:line: why" in err. */
int  record_parse_case(struct record *r, const char *file, const char *text, size_t len,
    char *err, size_t errlen);
/* One "answer ..." line (also --answer): 0, or -1 with why. */
int  record_add_answer(struct record *r, const char *spec, int line, char *err, size_t errlen);
void record_reset(struct record *r);
void record_free(struct record *r);

#endif
