/*
 * journal_bench.c - the cost of writing one session's journal record, with
 * our writer (engine/lib/json.c, as journal.c runs it) or with jansson's
 * encoder building the same record as a tree and dumping it.
 *
 *   build/bench/journal_bench [ours|jansson] [SESSIONS]
 *
 * One record is a typical inbound session: header, EHLO/MAIL/2 RCPT/DATA/
 * QUIT commands, their hooks, verdicts and replies, three DNS calls. Run
 * it under `valgrind --tool=callgrind` for repeatable instruction counts
 * (the machine is shared and noisy): the two modes write the same bytes
 * modulo escaping style, and `ours` is what the server runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <jansson.h>

#include "conf.h"
#include "journal.h"
#include "json.h"
#include "session.h"

static const char *cmds[] = { "EHLO client.example.net", "MAIL FROM:<alice@sender.example> SIZE=2048",
	"RCPT TO:<bob@customer.example>", "RCPT TO:<carol@customer.example>", "DATA", "QUIT" };
static const char *call = "\"p\":\"dns\",\"a\":[\"2.0.0.127.zen.spamhaus.org\",\"a\"],\"r\":[null,\"nxdomain\"]";

static void
ours(struct journal_writer *w, struct session_info *i)
{
	struct journal *j = journal_begin(w, i, "0.0.0.0:25");
	struct verdict v = { .action = V_ACCEPT, .where = "rules.d/99-accept.lua:1" };

	journal_reply(j, 220, "mx.example ESMTP mxgate");
	for (size_t k = 0; k < sizeof cmds / sizeof *cmds; k++) {
		journal_cmd(j, cmds[k]);
		journal_hook(j, (enum stage)(k + 1 < STAGE_MAX ? k + 1 : STAGE_QUIT), i);
		if (k >= 2 && k <= 3)
			for (int c = 0; c < 3; c++)
				journal_call(j, call, strlen(call));
		journal_verdict(j, STAGE_RCPT, &v);
		journal_reply(j, 250, "2.1.5 Ok");
	}
	journal_end(j);
}

/* The same record as a jansson tree, dumped into one buffer and written. */
static void
with_jansson(int fd, struct session_info *i)
{
	json_t *r = json_object(), *ev = json_array(), *e;
	char *text;

#define EV(kind) do { e = json_object(); json_object_set_new(e, "e", json_string(kind)); json_array_append_new(ev, e); } while (0)
	json_object_set_new(r, "v", json_integer(1));
	json_object_set_new(r, "sid", json_string(i->sid));
	json_object_set_new(r, "time", json_real(i->start));
	json_object_set_new(r, "direction", json_string("inbound"));
	json_object_set_new(r, "listener", json_string("0.0.0.0:25"));
	json_object_set_new(r, "client", json_pack("{s:s,s:i}", "ip", i->client_ip, "port", i->client_port));
	json_object_set_new(r, "local", json_pack("{s:s,s:i}", "ip", i->local_ip, "port", i->local_port));
	json_object_set_new(r, "hostname", json_string(i->conf->hostname));
	EV("reply");
	json_object_set_new(e, "code", json_integer(220));
	json_object_set_new(e, "text", json_string("mx.example ESMTP mxgate"));
	for (size_t k = 0; k < sizeof cmds / sizeof *cmds; k++) {
		EV("cmd");
		json_object_set_new(e, "line", json_string(cmds[k]));
		EV("hook");
		json_object_set_new(e, "stage", json_string(stage_name(k + 1 < STAGE_MAX ? k + 1 : STAGE_QUIT)));
		json_object_set_new(e, "helo", json_string(i->helo));
		json_object_set_new(e, "esmtp", json_true());
		if (k >= 2 && k <= 3)
			for (int c = 0; c < 3; c++) {
				EV("call");
				json_object_set_new(e, "p", json_string("dns"));
				json_object_set_new(e, "a", json_pack("[s,s]", "2.0.0.127.zen.spamhaus.org", "a"));
				json_object_set_new(e, "r", json_pack("[n,s]", "nxdomain"));
			}
		EV("verdict");
		json_object_set_new(e, "stage", json_string("rcpt"));
		json_object_set_new(e, "action", json_string("accept"));
		json_object_set_new(e, "where", json_string("rules.d/99-accept.lua:1"));
		EV("reply");
		json_object_set_new(e, "code", json_integer(250));
		json_object_set_new(e, "text", json_string("2.1.5 Ok"));
	}
	json_object_set_new(r, "events", ev);
	text = json_dumps(r, JSON_COMPACT);
	(void)!write(fd, text, strlen(text));
	(void)!write(fd, "\n", 1);
	free(text);
	json_decref(r);
}

int
main(int argc, char **argv)
{
	int jansson = argc > 1 && !strcmp(argv[1], "jansson");
	int n = argc > 2 ? atoi(argv[2]) : 1000;
	char dir[] = "/tmp/journal-bench-XXXXXX", err[200];
	struct conf c = { 0 };
	struct session_info i = { 0 };
	struct journal_conf jc = { 0 };
	struct journal_writer *w;
	int fd;

	if (!mkdtemp(dir))
		return 1;
	snprintf(c.hostname, sizeof c.hostname, "mx.example");
	i.conf = &c;
	snprintf(i.sid, sizeof i.sid, "6b10730b02150000003");
	snprintf(i.client_ip, sizeof i.client_ip, "192.0.2.10");
	snprintf(i.local_ip, sizeof i.local_ip, "198.51.100.1");
	snprintf(i.helo, sizeof i.helo, "client.example.net");
	snprintf(i.mail.addr, sizeof i.mail.addr, "alice@sender.example");
	snprintf(i.rcpt.addr, sizeof i.rcpt.addr, "bob@customer.example");
	snprintf(i.qid, sizeof i.qid, "1K1MEYQ9B9NGA800000");
	i.client_port = 40000;
	i.local_port = 25;
	i.esmtp = 1;
	i.mail.size = 2048;
	i.start = 1764302400.123;
	jc.dir = dir;
	jc.sample = 1;
	if (!(w = journal_writer_open(&jc, err, sizeof err)))
		return 1;
	fd = open("/dev/null", 1);
	for (int k = 0; k < n; k++) {
		if (jansson)
			with_jansson(fd, &i);
		else
			ours(w, &i);
	}
	journal_writer_close(w);
	close(fd);
	if (fork() == 0)
		execlp("rm", "rm", "-rf", dir, (char *)NULL);
	return 0;
}
