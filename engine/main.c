/*
 * main.c - command line: the server, the config check, and the operators'
 * subcommands. Run as `ruletest`, the same binary is the dry-run tool.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "master.h"
#include "policy.h"
#include "queue_cli.h"
#include "ruletest.h"
#include "report.h"
#include "state.h"
#include "state_cli.h"
#include "tls.h"
#include "version.h"
#include "worker.h"
#include "world.h"

/* The convention of every command and subcommand: --help prints the usage on
 * stdout and exits 0; a usage error prints it on stderr and exits 2. */
static void
usage(int code)
{
	fprintf(code ? stderr : stdout,
	    "usage: mxgate [-c FILE]         run the server (default etc/mxgate.lua)\n"
	    "       mxgate -t [-c FILE]      check the config and the rules, exit 0 or 1\n"
	    "       mxgate state ...         list, look up, add, delete greylist/rate-limit records\n"
	    "       mxgate report [...]      the portal's rejection table from the log\n"
	    "       mxgate queue ...         list, show, flush, hold, release, delete queued mail\n"
	    "       mxgate --help | --version\n"
	    "Each subcommand takes --help. See mxgate(8).\n");
	exit(code);
}

/*
 * The state store the config names, asked before anything starts: one
 * that refuses us (a wrong Redis password) is an error; one that cannot
 * be reached now is a warning (the fail modes answer until it comes).
 */
static int
check_store(const struct conf *c, int quiet)
{
	struct state_conf sc;
	char err[1024];
	int rc;

	if (!c->rules[0])
		return 0;                       /* the built-in policy has no store */
	world_state_conf(c, &sc);
	rc = state_probe(&sc, err, sizeof err);
	if (rc < 0) {
		fprintf(stderr, "mxgate: %s\n", err);
		return -1;
	}
	if (rc > 0 && !quiet)
		fprintf(stderr, "mxgate: warning: %s (greylist and ratelimit answer with "
		    "their fail modes until it is reachable)\n", err);
	if (rc > 0)
		log_event("state_error", "backend", sc.backend, "error", err, NULL);
	return 0;
}

/* The same check SIGHUP runs: config, then a full load of the rules; and
 * whether the state store lets us in. */
static int
check(struct conf *c)
{
	struct policy p;
	char err[1024];

	/* The files named in `tls` are read at start only: check them now. */
	if (c->tls_cert[0]) {
		SSL_CTX *ctx = tls_server_ctx(c->tls_cert, c->tls_key, "", c->hostname, err, sizeof err);
		if (!ctx) {
			fprintf(stderr, "%s: tls: %s\n", c->path, err);
			return 1;
		}
		SSL_CTX_free(ctx);
	}
	if (c->delivery.ca_file[0]) {
		SSL_CTX *ctx = tls_client_ctx(err, sizeof err);
		int bad = !ctx || tls_client_trust(ctx, c->delivery.ca_file, err, sizeof err) < 0;

		SSL_CTX_free(ctx);
		if (bad) {
			fprintf(stderr, "%s: delivery.ca_file: %s\n", c->path, err);
			return 1;
		}
	}
	if (check_store(c, 0) < 0)
		return 1;
	if (policy_open(&p, c, NULL, err, sizeof err) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	p.ops->free(p.self);
	printf("%s: ok (%s policy)\n", c->path, p.ops->name);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = "etc/mxgate.lua", *prog = basename(argv[0]);
	struct conf *c;
	char err[1024];
	int opt, test = 0;

	if (strcmp(prog, "ruletest") == 0)
		return ruletest_main(argc, argv);       /* tools/ruletest.c */
	if (argc > 1 && strcmp(argv[1], "state") == 0) {
		/* `mxgate state -c FILE ...`: the store of that config. */
		if (argc > 3 && strcmp(argv[2], "-c") == 0 && argv[3][0] != '-') {
			struct conf cf;
			struct state_conf sc;
			if (conf_load(&cf, argv[3], err, sizeof err) < 0) {
				fprintf(stderr, "%s\n", err);
				return 2;
			}
			/* The store is the user's: root would create files there that
			 * the workers cannot open, through links that user planted. */
			if (master_run_as(&cf, err, sizeof err) < 0) {
				fprintf(stderr, "mxgate: %s\n", err);
				return 2;
			}
			world_state_conf(&cf, &sc);
			conf_free(&cf);
			argv[3] = argv[1];
			return state_cli_main(argc - 3, argv + 3, &sc);
		}
		return state_cli_main(argc - 1, argv + 1, NULL);
	}
	if (argc > 1 && strcmp(argv[1], "report") == 0)
		return report_main(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "queue") == 0)
		return queue_cli_main(argc - 1, argv + 1);
	while ((opt = getopt_long(argc, argv, "c:th", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case 't': test = 1; break;
		case 'h': usage(0); break;
		case 'V': printf("mxgate %s\n", MXGATE_VERSION); return 0;
		default: usage(2);
		}
	}
	if (optind != argc) {
		fprintf(stderr, "mxgate: unexpected argument: %s\n", argv[optind]);
		usage(2);
	}
	if (!(c = calloc(1, sizeof *c)))
		return 1;
	if (conf_load(c, path, err, sizeof err) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (test) {
		int rc = check(c);
		conf_free(c);
		free(c);
		return rc;
	}
	if (log_open(c->log_file) < 0) {
		fprintf(stderr, "mxgate: cannot open log file %s: %s (it must be a plain file, "
		    "not a link)\n", c->log_file, strerror(errno));
		return 1;
	}
	if (check_store(c, 1) < 0)
		return 1;
	c->refs = 1;
	return master_main(c);
}
