/*
 * record_priv.h - what record.c (the record's memory, cases) and
 * record_journal.c (journal lines) share; not for other callers.
 */
#ifndef MXGATE_RECORD_PRIV_H
#define MXGATE_RECORD_PRIV_H

#include "record.h"

/* The line, its events, an event, a call's "a" or "r": then values as deep
 * as the writer (lua_json.c) lets them be. */
#define RECORD_DEPTH (4 + JSON_MAX_DEPTH)

/* Bytes in the record's arena, kept until record_reset(); NULL when out of memory. */
char               *alloc_(struct record *r, size_t n);
const char         *dup_(struct record *r, const char *s, size_t n);   /* NUL added */
struct rev         *add_event(struct record *r, enum rev_kind k);
struct replay_call *add_call(struct record *r);
enum stage          stage_of(const char *s);

#endif
