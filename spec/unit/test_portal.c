/* test_portal.c - the portal's pages through portal_handle: statuses for bad input, escaping, search, trace. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "portal.h"
#include "unit.h"

static char dir[64], logp[160];
static struct conf conf;
static struct portal *portal;

struct args {
	const char *k[8], *v[8];
	int n;
};

static const char *
arg(void *ctx, const char *name)
{
	struct args *a = ctx;

	for (int i = 0; i < a->n; i++)
		if (!strcmp(a->k[i], name))
			return a->v[i];
	return NULL;
}

static void
append(const char *path, const char *text)
{
	FILE *f = fopen(path, "a");

	fputs(text, f);
	fclose(f);
}

static int
setup(void)
{
	char path[300], text[2200], err[512], jdir[200];
	char cwd[256];

	if (portal)
		return 0;
	snprintf(dir, sizeof dir, "/tmp/mxgate-portal-XXXXXX");
	if (!mkdtemp(dir) || !getcwd(cwd, sizeof cwd))
		return -1;
	snprintf(logp, sizeof logp, "%s/mxgate.log", dir);
	snprintf(jdir, sizeof jdir, "%s/journal", dir);
	mkdir(jdir, 0700);
	snprintf(path, sizeof path, "%s/mxgate.lua", dir);
	snprintf(text, sizeof text, "state_dir = \"%s\"\nlog_file = \"%s\"\nstdlib = \"%s/stdlib\"\n"
	    "rules = \"%s/rules.d\"\nhostname = \"mx.test\"\n", dir, logp, cwd, cwd);
	append(path, text);
	append(logp, "ts=2026-12-01T10:02:00.000Z pid=1 event=reject sid=S1 dir=inbound "
	    "client=192.0.2.4 stage=rcpt cmd=RCPT code=550 enhanced=5.7.1 reason=xbl "
	    "rule=rules.d/50-dnsbl.lua:20 text=\"XBL: 192.0.2.4 is listed <script>alert(1)</script>\" "
	    "from=x@spam.example rcpt=\"bob&<b>@customer.example\"\n");
	append(logp, "ts=2026-12-01T10:03:00.000Z pid=1 event=accepted sid=S2 qid=Q2 dir=inbound "
	    "client=192.0.2.5 from=a@good.example rcpts=1 size=10\n");
	append(logp, "ts=2026-12-01T10:03:01.000Z pid=2 event=delivered qid=Q2 rcpt=carol@customer.example "
	    "from=a@good.example relay=127.0.0.1:25 reply=\"250 2.0.0 ok\" delay=1 attempts=1 tls=none\n");
	snprintf(path, sizeof path, "%s/2026-12-01.jsonl", jdir);
	append(path, "{\"v\":1,\"sid\":\"S2\",\"direction\":\"inbound\",\"listener\":\"127.0.0.1:25\","
	    "\"client\":{\"ip\":\"192.0.2.5\",\"port\":1},\"events\":[{\"e\":\"cmd\",\"line\":\"EHLO <x>\"},"
	    "{\"e\":\"hook\",\"stage\":\"rcpt\",\"rcpt\":\"carol@customer.example\"},"
	    "{\"e\":\"call\",\"p\":\"dns\",\"a\":[\"5.2.0.192.zen.test\",\"A\"],\"r\":[null,\"NXDOMAIN\"]},"
	    "{\"e\":\"verdict\",\"stage\":\"rcpt\",\"action\":\"accept\",\"where\":\"rules.d/99-accept.lua:3\"},"
	    "{\"e\":\"reply\",\"code\":250,\"text\":\"2.1.5 Ok\"}]}\n");
	snprintf(path, sizeof path, "%s/mxgate.lua", dir);
	if (conf_load(&conf, path, err, sizeof err) < 0) {
		fprintf(stderr, "  %s\n", err);
		return -1;
	}
	if (!(portal = portal_open(&conf, err, sizeof err))) {
		fprintf(stderr, "  %s\n", err);
		return -1;
	}
	return 0;
}

/* GET path with the arguments k1, v1, k2, v2..., NULL: the status; the body in *body. */
static int
get(char **body, const char *path, ...)
{
	struct portal_reply r = { 0, NULL, BUF_INIT(16u << 20) };
	struct args a = { .n = 0 };
	va_list ap;
	const char *k;

	va_start(ap, path);
	while ((k = va_arg(ap, const char *)) && a.n < 8) {
		a.k[a.n] = k;
		a.v[a.n++] = va_arg(ap, const char *);
	}
	va_end(ap);
	portal_handle(portal, path, arg, &a, &r);
	*body = buf_take(&r.body, NULL);
	return r.status;
}

TEST(the_table_counts_the_log_and_escapes_what_clients_wrote)
{
	char *b;

	CHECK(setup() == 0);
	CHECK_INT(get(&b, "/", "window", "all", NULL), 200);
	CHECK(strstr(b, "<span id=\"total\">1</span>"));
	CHECK(strstr(b, "data-reason=\"xbl\" data-dir=\"inbound\"><td>Inbound</td><td class=\"text\">XBL</td>"));
	CHECK(strstr(b, "<span id=\"delivered\">1</span>"));
	CHECK(strstr(b, "&lt;script&gt;alert(1)&lt;/script&gt;"));
	CHECK(!strstr(b, "<script>"));
	CHECK(strstr(b, "bob&amp;&lt;b&gt;@customer.example"));
	free(b);
	CHECK_INT(get(&b, "/", "window", "hour", NULL), 200);   /* 2026-12-01 is not the last hour */
	CHECK(strstr(b, "<span id=\"total\">0</span>"));
	free(b);
}

TEST(a_search_by_recipient_domain_shows_the_reply_and_the_rule)
{
	char *b;

	CHECK(setup() == 0);
	CHECK_INT(get(&b, "/search", "field", "domain", "q", "@Customer.Example", "window", "all", NULL), 200);
	CHECK(strstr(b, "<p id=\"found\">2 records."));
	CHECK(strstr(b, "550 5.7.1 XBL: 192.0.2.4 is listed &lt;script&gt;"));
	CHECK(strstr(b, "rules.d/50-dnsbl.lua:20"));
	CHECK(strstr(b, "<a href=\"/trace?id=S1\">S1</a>"));
	free(b);
	CHECK_INT(get(&b, "/search", "field", "client", "q", "192.0.2.99", "window", "all", NULL), 200);
	CHECK(strstr(b, "<p id=\"found\">0 records."));
	free(b);
}

TEST(a_queue_id_shows_its_session_trace_from_the_journal)
{
	char *b;

	CHECK(setup() == 0);
	CHECK_INT(get(&b, "/trace", "id", "Q2", NULL), 200);
	CHECK(strstr(b, "<h2>Session S2</h2>"));
	CHECK(strstr(b, "EHLO &lt;x&gt;"));
	CHECK(strstr(b, "dns([&quot;5.2.0.192.zen.test&quot;,&quot;A&quot;]) → [null,&quot;NXDOMAIN&quot;]"));
	CHECK(strstr(b, "rules.d/99-accept.lua:3"));
	free(b);
	CHECK_INT(get(&b, "/trace", "id", "S1", NULL), 200);
	CHECK(strstr(b, "No journal record of this session"));
	free(b);
}

TEST(bad_input_gets_a_clear_http_error)
{
	char *b, huge[PORTAL_ARG_MAX + 2];

	CHECK(setup() == 0);
	memset(huge, 'a', sizeof huge - 1);
	huge[sizeof huge - 1] = '\0';
	CHECK_INT(get(&b, "/../../etc/passwd", NULL), 404);
	free(b);
	CHECK_INT(get(&b, "/search/../", NULL), 404);
	free(b);
	CHECK_INT(get(&b, "/search", "q", huge, NULL), 414);
	CHECK(strstr(b, "longer than"));
	free(b);
	CHECK_INT(get(&b, "/search", "q", "a\r\nSet-Cookie: x", NULL), 400);
	free(b);
	CHECK_INT(get(&b, "/search", "field", "body", "q", "x", NULL), 400);
	free(b);
	CHECK_INT(get(&b, "/search", "q", "x", "before", "-1", NULL), 400);
	free(b);
	CHECK_INT(get(&b, "/", "window", "fortnight", NULL), 400);
	free(b);
	CHECK_INT(get(&b, "/", "since", "yesterday", NULL), 400);
	free(b);
	CHECK_INT(get(&b, "/", "since", "2026-12-02", "until", "2026-12-01", NULL), 400);
	free(b);
	CHECK_INT(get(&b, "/trace", NULL), 400);
	free(b);
	CHECK_INT(get(&b, "/trace", "id", "<nope>", NULL), 200);
	CHECK(strstr(b, "&lt;nope&gt;"));
	free(b);
}

TEST(a_custom_window_counts_only_its_records)
{
	char *b;

	CHECK(setup() == 0);
	CHECK_INT(get(&b, "/", "window", "custom", "since", "2026-12-01T10:02:30", "until",
	    "2026-12-01T11:00", NULL), 200);
	CHECK(strstr(b, "<span id=\"total\">0</span>"));
	CHECK(strstr(b, "<span id=\"delivered\">1</span>"));
	free(b);
}

TEST(cleanup)
{
	char cmd[128];

	portal_close(portal);
	conf_free(&conf);
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
}

UNIT_MAIN()
