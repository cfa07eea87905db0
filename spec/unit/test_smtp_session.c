/*
 * test_smtp_session.c - the engine's own rules, whatever the policy says:
 * a recipient no rule accepted is refused (never an open relay), and
 * pipelined commands are answered in order while decisions are pending.
 *
 * A whole session runs on a socketpair, on its own event loop and spool,
 * with a policy made up for each test.
 */
#include <arpa/inet.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "conf.h"
#include "log.h"
#include "policy.h"
#include "session.h"
#include "smtp_server.h"
#include "spool.h"
#include "unit.h"

static struct server srv;
static struct conf  *conf;

/* ---- policies -------------------------------------------------------- */

static int  p_start(void *self, struct session_info *s) { return 0; }
static void p_end(void *self, struct session_info *s) { ev_timer_stop(srv.loop, (ev_timer *)self); }
static int  p_reload(void *self, const struct conf *c, char *err, size_t errlen) { return 0; }
static void p_free(void *self) { }

/* Never decides anything: every stage gets V_NONE. */
static int
silent_decide(void *self, struct session_info *s, enum stage st, struct verdict *v)
{
	return POLICY_DONE;
}

static const struct policy_ops silent_ops = {
	.name = "silent", .start = p_start, .end = p_end, .decide = silent_decide,
	.reload = p_reload, .free = p_free,
};

/* Answers every MAIL and RCPT later, from the loop: accept. */
static ev_timer later;
static struct session_info *later_session;

static void
on_later(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct verdict v = { .action = V_ACCEPT };

	later_session->resume(later_session, &v);
}

static int
later_decide(void *self, struct session_info *s, enum stage st, struct verdict *v)
{
	if (st != STAGE_MAIL && st != STAGE_RCPT)
		return POLICY_DONE;
	later_session = s;
	ev_timer_set(&later, 0.001, 0);
	ev_timer_start(srv.loop, &later);
	return POLICY_PENDING;
}

static const struct policy_ops later_ops = {
	.name = "later", .start = p_start, .end = p_end, .decide = later_decide,
	.reload = p_reload, .free = p_free,
};

/* ---- a session on a socketpair -------------------------------------- */

static char dir[] = "/tmp/mxgate-unit-XXXXXX";

static int
remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void
teardown(void)
{
	spool_close(srv.spool);
	nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void
setup(void)
{
	char path[256], err[1024];
	FILE *f;

	if (conf)
		return;
	if (!mkdtemp(dir))
		abort();
	snprintf(path, sizeof path, "%s/mxgate.lua", dir);
	if (!(f = fopen(path, "w")))
		abort();
	fprintf(f, "hostname = \"mx.unit.test\"\nstate_dir = \"%s\"\nrules = false\n"
	    "hosted_domains = { [\"example.test\"] = true }\n", dir);
	fclose(f);
	conf = calloc(1, sizeof *conf);
	if (!conf || conf_load(conf, path, err, sizeof err) < 0 ||
	    spool_prepare(conf->spool_dir, (uid_t)-1, (gid_t)-1) < 0) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	conf->refs = 1;
	log_open("/dev/null");
	srv.loop = ev_loop_new(EVFLAG_AUTO);
	srv.conf = conf;
	if (!(srv.spool = spool_open(srv.loop, conf->spool_dir, err, sizeof err)))
		abort();
	ev_timer_init(&later, on_later, 0, 0);
	atexit(teardown);
}

/* Sends in (the whole session, QUIT included) in one write; returns every reply. */
static const char *
talk(const struct policy_ops *ops, const char *in)
{
	static char out[16384];
	struct sockaddr_in peer = { .sin_family = AF_INET, .sin_port = htons(40000) };
	size_t n = 0;
	int sv[2];

	setup();
	srv.policy.ops = ops;
	srv.policy.self = &later;
	peer.sin_addr.s_addr = htonl(0x7f000001);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0)
		abort();
	smtp_session_start(&srv, sv[0], &conf->listen[0], (struct sockaddr *)&peer, sizeof peer);
	if (write(sv[1], in, strlen(in)) != (ssize_t)strlen(in))
		abort();
	for (int i = 0; i < 1000; i++) {
		ssize_t r;

		ev_run(srv.loop, EVRUN_NOWAIT);
		while ((r = read(sv[1], out + n, sizeof out - 1 - n)) > 0)
			n += (size_t)r;
		if (r == 0 || !srv.nsessions)
			break;
		ev_run(srv.loop, EVRUN_ONCE);
	}
	close(sv[1]);
	out[n] = '\0';
	return out;
}

/* ---- tests ----------------------------------------------------------- */

TEST(rcpt_that_no_rule_accepted_is_refused_550_571)
{
	const char *out = talk(&silent_ops,
	    "EHLO client.example\r\nMAIL FROM:<bob@sender.test>\r\n"
	    "RCPT TO:<carol@elsewhere.test>\r\nRCPT TO:<alice@example.test>\r\n"
	    "DATA\r\nQUIT\r\n");

	CHECK(strstr(out, "250 2.1.0 Ok\r\n"
	    "550 5.7.1 Relay access denied\r\n550 5.7.1 Relay access denied\r\n"
	    "503 5.5.1 Error: need RCPT command\r\n221 2.0.0 Bye\r\n") != NULL);
}

TEST(pending_decisions_keep_pipelined_replies_in_order)
{
	const char *out = talk(&later_ops,
	    "EHLO client.example\r\nMAIL FROM:<bob@sender.test>\r\n"
	    "RCPT TO:<a@elsewhere.test>\r\nNOOP\r\nRCPT TO:<b@elsewhere.test>\r\n"
	    "RSET\r\nRCPT TO:<c@elsewhere.test>\r\nQUIT\r\n");

	CHECK(strstr(out, "250 SMTPUTF8\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok\r\n"
	    "250 2.1.5 Ok\r\n250 2.0.0 Ok\r\n503 5.5.1 Error: need MAIL command\r\n"
	    "221 2.0.0 Bye\r\n") != NULL);
}

UNIT_MAIN()
