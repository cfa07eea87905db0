/*
 * state_cli.h - `mxgate state`: the operators' view of the shared state
 * (greylist tuples, the greylist allow list, rate-limit records, the
 * callout cache), read and written while the server runs.
 *
 *   mxgate state [-d DIR] list  DB
 *   mxgate state [-d DIR] get   DB KEY
 *   mxgate state [-d DIR] add   DB KEY [VALUE]
 *   mxgate state [-d DIR] del   DB KEY
 *   mxgate state [-d DIR] sweep
 *
 * DB is greylist, allow, ratelimit or callout. With -c FILE (engine/main.c)
 * the store is the one that config names, LMDB or Redis. Otherwise DIR
 * (LMDB) defaults to $MXGATE_STATE_DIR, else STATE_CLI_DIR; run as the
 * server's user.
 *
 * Keys, as `list` prints them:
 *   allow      the client address, or its network when greylisting keys by
 *              prefix: "192.0.2.4", "192.0.2.0/24", "2001:db8:1::/64"
 *              (any spelling of an address is accepted)
 *   greylist   "NET <sender> <rcpt>", sender without BATV/SRS, "<>" for
 *              the null sender: "192.0.2.4 <a@example.com> <b@example.net>"
 *   ratelimit  whatever the rule limits by, lowercased: the envelope sender
 *              for the portal's "Sender Rate Exceeded" ("sender@example.com").
 *              `del ratelimit KEY` also removes "KEY/..." records, so one
 *              command releases a customer however many limits a rule keeps.
 *   callout    the callout cache key, as the rule wrote it
 *
 * Values: "expires=EPOCH" first, then first_seen= (greylist), since=
 * (allow), rate= last= (ratelimit) or value=TEXT (callout). `add` takes
 * the same; expires may be "+90s", "+48h", "+35d"; `add allow IP` alone
 * allows for 35 days. `list` and `get` mark expired records "(expired)".
 *
 * Exit: 0 done, 1 no such record (or only an expired one), 2 usage or
 * store error. argv[0] is the subcommand's name ("state").
 */
#ifndef MXGATE_STATE_CLI_H
#define MXGATE_STATE_CLI_H

#define STATE_CLI_DIR "/var/lib/mxgate/state"

struct state_conf;
/* conf: the store of `mxgate state -c FILE` (any backend); NULL: LMDB in
 * DIR. -d DIR overrides it. */
int state_cli_main(int argc, char **argv, const struct state_conf *conf);

#endif
