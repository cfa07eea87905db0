/* borrow.h - answers one recorded session lends another: the journal's dns(), callout() and verify_sender() answers by question. */
#ifndef MXGATE_BORROW_H
#define MXGATE_BORROW_H

#include "json.h"
#include "record.h"

/*
 * A question another session asked is answered for this one when it was
 * asked within the answer's lifetime of this session's time, either side:
 * dns() for its recorded TTL (300 s when the record has none: the
 * resolver's negative-cache default); callout() and verify_sender() for
 * the callout cache's lifetime of that answer (callout.positive_ttl for
 * "ok", callout.negative_ttl for a 5xx refusal; other answers, temporary
 * ones, are not cached live and are not lent). The nearest in time wins.
 */
struct borrow;

struct borrow *borrow_new(double positive_ttl, double negative_ttl);
void           borrow_free(struct borrow *b);
/* Indexes r's answers to those questions as session number sess: 0, or -1 (out of memory). */
int            borrow_add(struct borrow *b, const struct record *r, int sess);
/* The results of name(args) lent at time t by a session other than self
 * (valid until the next call), and that session's number; NULL: none. */
const json_t  *borrow_find(struct borrow *b, const char *name, const char *args, size_t alen,
    double t, int self, int *sess);

#endif
