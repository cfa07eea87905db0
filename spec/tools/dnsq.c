/*
 * dnsq - drives engine/net/dns.c against a real server, for spec/e2e.
 *
 *   dnsq [options] SERVER NAME TYPE [NAME TYPE ...]
 *   dnsq [options] --stdin SERVER
 *   dnsq --reverse IP
 *
 * All queries of a batch are issued at once, so identical ones coalesce.
 * One line per answer, in callback order:
 *
 *   NAME TYPE STATUS ttl=N|- RR... [cached]
 *
 * MX records print as pref:host, TXT records double-quoted; "cached" means
 * the callback ran inside dns_query(). SERVER is dns_conf.servers, or "-"
 * for /etc/resolv.conf. With --stdin each input line is one batch (or
 * "stats"), and "done" follows its last answer.
 *
 * Options: --twice (repeat the batch once it completes), --timeout SECS,
 * --tries N, --cache N, --max-ttl N, --neg-ttl N, --stats (print counters
 * at exit), --abandon (dns_free with the batch in flight),
 * --free-in-callback (dns_free from the first callback).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ev.h>

#include "dns.h"

#define MAX_BATCH 128
#define INBUF_MAX 8192

struct query {
	char          name[DNS_RR_TEXT];
	enum dns_type type;
};

static struct ev_loop *loop;
static struct dns     *dns;
static struct query    batch[MAX_BATCH];
static int             nbatch, outstanding, rounds, in_query;
static int             opt_twice, opt_stdin, opt_stats, opt_abandon,
                       opt_free_in_cb;
static ev_io           in_w;
static ev_idle         next_w;
static char            inbuf[INBUF_MAX];
static size_t          inlen;
static int             in_eof;

static const struct {
	const char   *name;
	enum dns_type type;
} types[] = {
	{ "A", DNS_A }, { "AAAA", DNS_AAAA }, { "MX", DNS_MX },
	{ "PTR", DNS_PTR }, { "TXT", DNS_TXT },
};

static const char *
type_str(enum dns_type t)
{
	size_t i;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (types[i].type == t)
			return types[i].name;
	return "?";
}

static int
type_parse(const char *s, enum dns_type *t)
{
	size_t i;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcasecmp(types[i].name, s) == 0) {
			*t = types[i].type;
			return 0;
		}
	return -1;
}

static void
print_stats(void)
{
	struct dns_stats st;

	if (dns == NULL)
		return;
	dns_get_stats(dns, &st);
	printf("stats queries=%llu cache_hits=%llu coalesced=%llu "
	    "upstream=%llu timeouts=%llu failures=%llu evictions=%llu "
	    "cached=%zu inflight=%zu\n",
	    (unsigned long long)st.queries, (unsigned long long)st.cache_hits,
	    (unsigned long long)st.coalesced, (unsigned long long)st.upstream,
	    (unsigned long long)st.timeouts, (unsigned long long)st.failures,
	    (unsigned long long)st.evictions, st.cached, st.inflight);
}

static void
answer_cb(void *arg, const struct dns_answer *ans)
{
	const struct query *q = arg;
	uint32_t            ttl = 0;
	int                 i;

	for (i = 0; i < ans->n; i++)
		if (i == 0 || ans->rr[i].ttl < ttl)
			ttl = ans->rr[i].ttl;
	printf("%s %s %s ", q->name, type_str(q->type),
	    dns_status_str(ans->status));
	if (ans->n > 0)
		printf("ttl=%u", ttl);
	else
		printf("ttl=-");
	for (i = 0; i < ans->n; i++) {
		if (q->type == DNS_MX)
			printf(" %d:%s", ans->rr[i].pref, ans->rr[i].text);
		else if (q->type == DNS_TXT) {
			const char *s;

			putchar(' ');
			putchar('"');
			for (s = ans->rr[i].text; *s != '\0'; s++) {
				if (*s == '"' || *s == '\\')
					putchar('\\');
				putchar(*s);
			}
			putchar('"');
		} else
			printf(" %s", ans->rr[i].text);
	}
	printf("%s\n", in_query ? " cached" : "");
	fflush(stdout);

	if (opt_free_in_cb && dns != NULL) {
		/* Deferred by dns.c: we are inside its callback. */
		dns_free(dns);
		dns = NULL;
	}
	if (--outstanding == 0)
		ev_idle_start(loop, &next_w);
}

static void
run_batch(void)
{
	int i, n = nbatch;

	outstanding += n;
	for (i = 0; i < n; i++) {
		if (dns == NULL) {
			/* Freed from a callback: nothing left to ask. */
			printf("%s %s FREED ttl=-\n", batch[i].name,
			    type_str(batch[i].type));
			outstanding--;
			continue;
		}
		in_query = 1;
		dns_query(dns, batch[i].name, batch[i].type, answer_cb,
		    &batch[i]);
		in_query = 0;
	}
	if (opt_abandon && dns != NULL) {
		dns_free(dns);
		dns = NULL;
	}
	if (outstanding == 0)
		ev_idle_start(loop, &next_w);
}

static int
batch_add(const char *name, const char *type)
{
	if (nbatch == MAX_BATCH || strlen(name) >= sizeof(batch[0].name) ||
	    type_parse(type, &batch[nbatch].type) == -1) {
		fprintf(stderr, "dnsq: bad query: %s %s\n", name, type);
		return -1;
	}
	strcpy(batch[nbatch].name, name);
	nbatch++;
	return 0;
}

/* One input line: "stats", or NAME TYPE pairs issued as one batch. */
static int
run_line(char *line)
{
	char *tok[2 * MAX_BATCH + 1], *save, *t;
	int   n = 0, i;

	for (t = strtok_r(line, " \t\r", &save); t != NULL;
	    t = strtok_r(NULL, " \t\r", &save)) {
		if (n == 2 * MAX_BATCH)
			return -1;
		tok[n++] = t;
	}
	if (n == 1 && strcmp(tok[0], "stats") == 0) {
		print_stats();
		printf("done\n");
		fflush(stdout);
		return 0;
	}
	if (n == 0 || n % 2 != 0)
		return -1;
	nbatch = 0;
	for (i = 0; i < n; i += 2)
		if (batch_add(tok[i], tok[i + 1]) == -1)
			return -1;
	run_batch();
	return 1;
}

/* Runs the next buffered line once the previous batch has completed. */
static void
pump(void)
{
	char  *nl;
	size_t used;
	int    rc;

	while (outstanding == 0 &&
	    (nl = memchr(inbuf, '\n', inlen)) != NULL) {
		*nl = '\0';
		used = (size_t)(nl - inbuf) + 1;
		rc = run_line(inbuf);
		memmove(inbuf, inbuf + used, inlen - used);
		inlen -= used;
		if (rc == -1) {
			printf("error\ndone\n");
			fflush(stdout);
		}
		if (rc == 1) {
			/* "done" and the next line wait for next_cb. */
			ev_io_stop(loop, &in_w);
			return;
		}
	}
	if (outstanding == 0 && inlen == sizeof(inbuf)) {
		fprintf(stderr, "dnsq: line too long\n");
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	if (outstanding == 0 && in_eof)
		ev_break(loop, EVBREAK_ALL);
	else if (outstanding == 0 && !in_eof)
		ev_io_start(loop, &in_w);
	else
		ev_io_stop(loop, &in_w);
}

static void
in_cb(struct ev_loop *l, ev_io *w, int revents)
{
	ssize_t n;

	n = read(0, inbuf + inlen, sizeof(inbuf) - inlen);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		in_eof = 1;
		ev_io_stop(l, w);
	} else
		inlen += (size_t)n;
	pump();
}

/* A batch completed: outside any dns.c frame, decide what is next. */
static void
next_cb(struct ev_loop *l, ev_idle *w, int revents)
{
	ev_idle_stop(l, w);
	if (outstanding > 0)
		return;
	rounds++;
	if (opt_stdin) {
		printf("done\n");
		fflush(stdout);
		pump();
		return;
	}
	if (opt_twice && rounds == 1 && dns != NULL) {
		run_batch();
		return;
	}
	ev_break(l, EVBREAK_ALL);
}

static void
usage(void)
{
	fprintf(stderr, "usage: dnsq [options] SERVER NAME TYPE [NAME TYPE ...]\n"
	    "       dnsq [options] --stdin SERVER\n"
	    "       dnsq --reverse IP\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct dns_conf conf = {
		.servers = NULL, .timeout = 2.0, .tries = 2,
		.cache_entries = 10000, .max_ttl = 86400, .neg_ttl = 300,
	};
	char            err[256], rev[80];
	int             i;

	for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(o, "--twice") == 0)
			opt_twice = 1;
		else if (strcmp(o, "--stdin") == 0)
			opt_stdin = 1;
		else if (strcmp(o, "--stats") == 0)
			opt_stats = 1;
		else if (strcmp(o, "--abandon") == 0)
			opt_abandon = 1;
		else if (strcmp(o, "--free-in-callback") == 0)
			opt_free_in_cb = 1;
		else if (v == NULL)
			usage();
		else if (strcmp(o, "--reverse") == 0) {
			if (dns_reverse_name(v, rev, sizeof(rev)) == -1) {
				printf("invalid\n");
				return 1;
			}
			printf("%s\n", rev);
			return 0;
		} else if (strcmp(o, "--timeout") == 0)
			conf.timeout = atof(argv[++i]);
		else if (strcmp(o, "--tries") == 0)
			conf.tries = atoi(argv[++i]);
		else if (strcmp(o, "--cache") == 0)
			conf.cache_entries = strtoul(argv[++i], NULL, 10);
		else if (strcmp(o, "--max-ttl") == 0)
			conf.max_ttl = strtoul(argv[++i], NULL, 10);
		else if (strcmp(o, "--neg-ttl") == 0)
			conf.neg_ttl = strtoul(argv[++i], NULL, 10);
		else
			usage();
	}
	if (i >= argc)
		usage();
	if (strcmp(argv[i], "-") != 0)
		conf.servers = argv[i];
	i++;
	if (opt_stdin ? i != argc : (i == argc || (argc - i) % 2 != 0))
		usage();
	for (; i < argc; i += 2)
		if (batch_add(argv[i], argv[i + 1]) == -1)
			return 2;

	loop = ev_loop_new(EVFLAG_AUTO);
	if ((dns = dns_new(loop, &conf, err, sizeof(err))) == NULL) {
		fprintf(stderr, "dnsq: %s\n", err);
		return 1;
	}
	ev_idle_init(&next_w, next_cb);
	ev_io_init(&in_w, in_cb, 0, EV_READ);
	if (opt_stdin)
		ev_io_start(loop, &in_w);
	else
		run_batch();
	ev_run(loop, 0);

	if (opt_stats)
		print_stats();
	dns_free(dns);
	ev_io_stop(loop, &in_w);
	ev_idle_stop(loop, &next_w);
	ev_loop_destroy(loop);
	return 0;
}
