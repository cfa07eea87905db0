/* borrow.h - answers one recorded session lends the sessions after it: the journal's dns(), callout() and verify_sender() answers by question, for as long as a cache would keep them. */
#ifndef MXGATE_BORROW_H
#define MXGATE_BORROW_H

#include "json.h"
#include "record.h"

/*
 * Sessions are added as they are replayed, in time order. A question a
 * later session asks is answered from the latest earlier session that
 * recorded it, if that answer is still within its lifetime, as a cache
 * would have served it: dns() for its recorded TTL (300 s when the record
 * has none: the resolver's negative-cache default); callout() and
 * verify_sender() for the callout cache's lifetime of that answer
 * (callout.positive_ttl for "ok", callout.negative_ttl for a 5xx refusal;
 * temporary answers are not cached live and are not lent). Answers past
 * their lifetime are dropped, so memory holds one lifetime's worth.
 */
struct borrow;

struct borrow *borrow_new(double positive_ttl, double negative_ttl);
void           borrow_free(struct borrow *b);
/* Lends r's answers to those questions: 0, or -1 (out of memory). */
int            borrow_add(struct borrow *b, const struct record *r);
/* The results of name(args) lent at time t (valid until the next call)
 * and the lending session's id; NULL: none. */
const json_t  *borrow_find(struct borrow *b, const char *name, const char *args, size_t alen,
    double t, const char **sid);

#endif
