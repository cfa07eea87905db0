/*
 * fuzz_config.c - libFuzzer target: random bytes as the config file into
 * conf_load(), the loader the master runs on every SIGHUP.
 *
 * Whatever the file holds, conf_load() must return (a loop or a huge
 * allocation runs into its budget), never abort the process, and either
 * report one readable error or yield a config whose every number is finite
 * and inside the range its key allows. The input is a memfd, so nothing
 * touches the disk.
 *
 *     make fuzz FUZZ_SECONDS=120
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "conf.h"

static int fd = -1;
static char path[64];

static void
in_range(double v, double lo, double hi)
{
	if (!isfinite(v) || v < lo || v > hi)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf c;
	char err[1024];

	if (fd < 0) {
		if ((fd = memfd_create("mxgate.lua", 0)) < 0)
			abort();
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	err[0] = '\0';
	if (conf_load(&c, path, err, sizeof err) < 0) {
		/* One message, and a real one (error({}) once printed just "(null)"). */
		if (!err[0] || memchr(err, '\0', sizeof err) == NULL || strncmp(err, "(null)", 6) == 0)
			abort();
	} else {
		if (c.nlisten < 1 || c.nlisten > CONF_MAX_LISTEN)
			abort();
		in_range(c.limits.max_connections, 1, 1e6);
		in_range(c.limits.max_per_ip, 1, 1e6);
		in_range((double)c.limits.max_message_size, 1024, 4e9);
		in_range(c.timeouts.greeting_delay, 0, 60);
		in_range(c.timeouts.command, 0.1, 3600);
		in_range(c.timeouts.data, 0.1, 3600);
		in_range(c.timeouts.rule, 0.1, 3600);
		in_range(c.timeouts.shutdown, 0, 3600);
		in_range(c.dns.timeout, 0.05, 60);
		in_range(c.journal.sample, 0, 1);
		in_range(c.callout.connect_timeout, 0.05, 600);
		in_range(c.callout.command_timeout, 0.05, 600);
		in_range(c.callout.positive_ttl, -1, 1e8);
		in_range(c.callout.negative_ttl, -1, 1e8);
		if (strcmp(c.user, "nobody") == 0 && !c.allow_user_nobody)
			abort();
	}
	conf_free(&c);
	return 0;
}
