/*
 * fuzz_session.c - libFuzzer target: random bytes into a live SMTP session.
 *
 * The session runs exactly as in a worker (event loop, built-in policy,
 * spool with its committer thread, STARTTLS) on one end of a socketpair;
 * the input is written to the other end in pieces while the loop runs,
 * the replies are read and thrown away. Then the peer closes and the
 * session must go away. The parsers are also fed directly, with checks
 * no e2e test can make: data_feed() gives the same stream however the
 * input is cut, and never writes more than 2n+2 octets.
 *
 * Input: byte 0 picks the listener, the client address, bare_lf and
 * whether verdicts come at once or later from the loop (as Lua rules
 * waiting on DNS do); byte 1 the size of the pieces; the rest is what the
 * client sends.
 *
 *     make fuzz FUZZ_SECONDS=120
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ev.h>

#include "conf.h"
#include "data.h"
#include "log.h"
#include "policy.h"
#include "session.h"
#include "smtp_parse.h"
#include "smtp_server.h"
#include "spool.h"
#include "tls.h"

static struct server srv;
static struct conf  *conf;
static char          dir[256];

/* The built-in policy, answering later: every verdict goes through resume. */
static struct policy builtin;
static ev_timer      later;
static struct session_info *later_session;
static struct verdict later_verdict;

static void
on_later(struct ev_loop *loop, ev_timer *w, int revents)
{
	later_session->resume(later_session, &later_verdict);
}

static int
later_start(void *self, struct session_info *s)
{
	return builtin.ops->start(builtin.self, s);
}

static void
later_end(void *self, struct session_info *s)
{
	if (later_session == s)
		ev_timer_stop(srv.loop, &later);   /* its answer must never arrive */
	builtin.ops->end(builtin.self, s);
}

static int
later_decide(void *self, struct session_info *s, enum stage st, struct verdict *v)
{
	memset(&later_verdict, 0, sizeof later_verdict);
	builtin.ops->decide(builtin.self, s, st, &later_verdict);
	later_session = s;
	ev_timer_set(&later, 0, 0);
	ev_timer_start(srv.loop, &later);
	return POLICY_PENDING;
}

static int
later_reload(void *self, const struct conf *c, char *err, size_t errlen)
{
	return 0;
}

static void
later_free(void *self)
{
}

static const struct policy_ops later_ops = {
	.name = "later", .start = later_start, .end = later_end, .decide = later_decide,
	.reload = later_reload, .free = later_free,
};

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
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	char path[512], tlsdir[512], err[1024];
	FILE *f;

	signal(SIGPIPE, SIG_IGN);
	snprintf(dir, sizeof dir, "%s/mxgate-fuzz-XXXXXX", base);
	if (!mkdtemp(dir))
		abort();
	snprintf(path, sizeof path, "%s/mxgate.lua", dir);
	if (!(f = fopen(path, "w")))
		abort();
	fprintf(f, "hostname = \"mx.fuzz.test\"\n"
	    "state_dir = \"%s\"\n"
	    "rules = false\n"
	    "hosted_domains = { [\"example.test\"] = true }\n"
	    "relay_networks = { \"127.0.0.0/8\" }\n"
	    "limits = { max_message_size = 8192, max_recipients = 4, max_errors = 50 }\n", dir);
	fclose(f);
	if (!(conf = calloc(1, sizeof *conf)) || conf_load(conf, path, err, sizeof err) < 0) {
		fprintf(stderr, "fuzz_session: %s\n", err);
		abort();
	}
	conf->refs = 1;
	log_open("/dev/null");
	if (spool_prepare(conf->spool_dir, (uid_t)-1, (gid_t)-1) < 0)
		abort();
	srv.loop = ev_loop_new(EVFLAG_AUTO);
	srv.conf = conf;
	if (!(srv.spool = spool_open(srv.loop, conf->spool_dir, err, sizeof err)))
		abort();
	policy_builtin(&builtin, conf);
	ev_timer_init(&later, on_later, 0, 0);
	snprintf(tlsdir, sizeof tlsdir, "%s/tls", dir);
	if (!(srv.tls = tls_server_ctx("", "", tlsdir, conf->hostname, err, sizeof err))) {
		fprintf(stderr, "fuzz_session: %s\n", err);
		abort();
	}
	atexit(teardown);
}

/* Accepted messages pile up in queue/: empty it between inputs. */
static void
empty_queue(void)
{
	char p[600];
	DIR *d;
	struct dirent *de;

	snprintf(p, sizeof p, "%s/queue", conf->spool_dir);
	if (!(d = opendir(p)))
		return;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
}

static void
drain(int fd)
{
	char buf[4096];

	while (read(fd, buf, sizeof buf) > 0)
		;
}

/* data_feed() whole and in pieces of step octets: its state carries
 * across calls, so where the input is cut must never matter. */
static void
fuzz_data(const uint8_t *in, size_t n, size_t step)
{
	struct data_parser a, b;
	char *out = malloc(2 * step + 2), *whole = malloc(2 * n + 2);
	size_t wn, used, pn = 0, pused = 0, outn;

	data_init(&a, 1000);
	used = data_feed(&a, (const char *)in, n, whole, &wn);
	if (wn > 2 * n + 2 || used > n || (used < n && !a.done) || a.size != wn)
		abort();
	data_init(&b, 1000);
	while (pused < n && !b.done) {
		size_t k = n - pused < step ? n - pused : step;
		size_t got = data_feed(&b, (const char *)in + pused, k, out, &outn);

		if (outn > 2 * k + 2 || got > k || (got < k && !b.done))
			abort();
		if (pn + outn > wn || memcmp(whole + pn, out, outn) != 0)
			abort();
		pn += outn;
		pused += got;
	}
	if (pn != wn || a.done != b.done || used != pused || a.too_long != b.too_long || a.bare != b.bare)
		abort();
	free(out);
	free(whole);
}

/* Each line through the command parsers, as process() would hand it over. */
static void
fuzz_parsers(const uint8_t *in, size_t n)
{
	char line[1024];
	size_t i = 0;

	while (i < n) {
		size_t len = 0;
		const char *args;
		struct smtp_path p;

		while (i < n && in[i] != '\n' && len < sizeof line - 1)
			line[len++] = (char)in[i++];
		i++;
		line[len] = '\0';
		switch (smtp_parse_verb(line, &args)) {
		case CMD_MAIL:
			if (!smtp_parse_mail(args, &p) && p.addr[0] && (!p.domain || strlen(p.addr) >= SMTP_ADDR_MAX))
				abort();
			break;
		case CMD_RCPT:
			if (!smtp_parse_rcpt(args, &p) && strlen(p.addr) >= SMTP_ADDR_MAX)
				abort();
			break;
		case CMD_EHLO:
		case CMD_HELO:
			smtp_valid_domain(args, 1);
			break;
		default:
			break;
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_in peer = { .sin_family = AF_INET, .sin_port = htons(40000) };
	size_t step, off = 0;
	int sv[2], flags, spins = 0;

	if (!conf)
		setup();
	if (size < 2)
		return 0;
	flags = data[0];
	step = (size_t)data[1] + 1;
	if (data[1] & 0x80)
		step *= 32;                     /* up to 4 KB: fill the input buffer */
	data += 2;
	size -= 2;

	fuzz_parsers(data, size);
	fuzz_data(data, size, step);

	snprintf(conf->bare_lf, sizeof conf->bare_lf, "%s", flags & 2 ? "reject" : "normalize");
	peer.sin_addr.s_addr = htonl(flags & 4 ? 0xc0000201 : 0x7f000001);   /* 192.0.2.1 : 127.0.0.1 */
	if (flags & 8)
		srv.policy = (struct policy){ &later_ops, NULL };
	else
		srv.policy = builtin;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	smtp_session_start(&srv, sv[0], &conf->listen[flags & 1], (struct sockaddr *)&peer, sizeof peer);
	while (off < size && srv.nsessions) {
		size_t k = size - off < step ? size - off : step;
		ssize_t w = write(sv[1], data + off, k);

		if (w > 0)
			off += (size_t)w;
		ev_run(srv.loop, EVRUN_NOWAIT);
		drain(sv[1]);
		if (w <= 0) {
			/* The session reads nothing now: a commit is on its way. */
			ev_run(srv.loop, EVRUN_ONCE);
			if (++spins > 100000)
				abort();
		}
	}
	ev_run(srv.loop, EVRUN_NOWAIT);
	drain(sv[1]);
	close(sv[1]);
	/* The client is gone: the session must follow. */
	for (int i = 0; srv.nsessions && i < 1000; i++)
		ev_run(srv.loop, EVRUN_ONCE);
	if (srv.nsessions)
		abort();
	empty_queue();
	return 0;
}
