/*
 * journal.h - the session journal: one JSON line per session with the
 * client's facts, every command, every hook with the facts it saw, every
 * primitive's question and answer, every verdict and every reply. It is
 * what `ruletest` replays. Message bodies are never recorded;
 * headers are, up to a bound.
 *
 * Line format (v1):
 *   {"v":1,"sid":S,"time":T,"direction":"inbound","listener":"ip:port",
 *    "client":{"ip":S,"port":N},"local":{"ip":S,"port":N},"hostname":S,
 *    "events":[ EVENT, ... ],"truncated":true?}
 * EVENT is one of
 *   {"e":"cmd","line":S}
 *   {"e":"hook","stage":S, ...facts: "helo","esmtp","sender","smtputf8",
 *        "rcpt","rcpts","size","qid" as that stage sees them; at "data"
 *        "headers":S, the message's header section up to journal.max_headers
 *        bytes, cut after its last whole header line, "headers_cut":true
 *        when cut; no "headers" when max_headers is 0}
 *   {"e":"call","p":NAME,"a":[ARGS],"r":[RESULTS],"t":SECONDS}   (t: into the session)
 *   {"e":"verdict","stage":S,"action":S,"code":N,"enhanced":S,"text":S,
 *        "reason":S,"where":S}
 *   {"e":"tls","version":S,"cipher":S,"peer":S}
 *   {"e":"reply","code":N,"text":S}        (text: whole reply, lines joined by \n)
 * A command line or reply text that is not UTF-8 is written readably (its
 * other bytes as U+0080..U+00FF) with its exact bytes beside it in hex:
 * "line_hex":S, "text_hex":S. Every line is valid JSON.
 */
#ifndef MXGATE_JOURNAL_H
#define MXGATE_JOURNAL_H

#include <stddef.h>

#include "policy.h"

struct journal;
struct journal_writer;
struct session_info;

struct journal_conf {
	const char *dir;         /* journal/ under state_dir */
	double      sample;      /* 0 = off, 1 = every session */
	size_t      max_record;  /* bytes per session (64 KiB) */
	size_t      max_file;    /* bytes per file before the next one (100 MiB) */
	size_t      max_headers; /* header section bytes kept per message (0: none) */
};

struct journal_writer *journal_writer_open(const struct journal_conf *c, char *err, size_t errlen);
void journal_writer_close(struct journal_writer *w);

/* NULL when this session is not sampled (or out of memory). */
struct journal *journal_begin(struct journal_writer *w, const struct session_info *i,
    const char *listener);
void journal_cmd(struct journal *j, const char *line);
void journal_hook(struct journal *j, enum stage st, const struct session_info *i);
void journal_verdict(struct journal *j, enum stage st, const struct verdict *v);
void journal_tls(struct journal *j, const struct session_info *i);
void journal_reply(struct journal *j, int code, const char *text);
/* A primitive's call, already JSON: "\"p\":\"dns\",\"a\":[...],\"r\":[...]". */
void journal_call(struct journal *j, const char *json, size_t len);
/* Writes the line and frees j. */
void journal_end(struct journal *j);

#endif
