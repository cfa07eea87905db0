/*
 * report.h - `mxgate report`: the hosting portal's rejection table, read
 * back from the structured log, for the support desk's "why was my mail
 * rejected?".
 *
 *   mxgate report [-c CONF] [--since TIME] [--until TIME] [--match TEXT]
 *                 [--json] [--stdlib DIR] [--rules DIR] [--index DIR] [LOGFILE | -]
 *
 * Reads the event=reject records (LOGFILE; else CONF's log_file; else
 * stdin) and prints one line per reason: direction, the portal's reason
 * text, its cause, the count, and the most recent example (time, client,
 * sender, recipient, the reply). The portal's rows come first, in the
 * portal's order (the `row` of stdlib/reasons.lua), every one of them even
 * when nothing was rejected for it; other reasons follow, most frequent
 * first. Reason texts are those of stdlib/reasons.lua with the overrides
 * of the rules directory (reason() calls, e.g. in rules.d/00-reasons.lua).
 *
 * TIME: "2026-11-28T04:00[:SS][Z]" or "2026-11-28 04:00" (UTC, as the log
 * is), "2026-11-28", an epoch ("1764302400"), or an age: "90s", "30m",
 * "1h", "2d", "1w". --match keeps the records whose client, sender or
 * recipient contains TEXT (case-insensitive). Lines that are not log
 * records are skipped and counted. The delivery events (event=delivered,
 * deferred, bounced) are counted by result. The numbers come from the log
 * index (engine/http/index.h), as the portal page's do: the one in --index
 * DIR; with -c and no LOGFILE the server's (state_dir/index) when it may be
 * written; else a temporary one. Each is brought up to date first. Exit: 0, or 2 on a usage error or an
 * unreadable file. argv[0] is the subcommand's name ("report").
 */
#ifndef MXGATE_REPORT_H
#define MXGATE_REPORT_H

int report_main(int argc, char **argv);

#endif
