/*
 * connlimit.c - lock-free connection counting across worker processes.
 */
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "connlimit.h"

#define BUCKETS 16384

struct slice {
	uint32_t total;
	uint16_t per_ip[BUCKETS];
};

struct connlimit {
	int          nworkers;
	struct slice slice[];
};

struct connlimit *
connlimit_new(int nworkers)
{
	size_t len = sizeof(struct connlimit) + (size_t)nworkers * sizeof(struct slice);
	struct connlimit *cl = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (cl == MAP_FAILED)
		return NULL;
	cl->nworkers = nworkers;
	return cl;
}

void
connlimit_reset(struct connlimit *cl, int worker)
{
	memset(&cl->slice[worker], 0, sizeof cl->slice[worker]);
}

/* FNV-1a over the address bytes (IPv4-mapped IPv6 counts as IPv4). */
static unsigned
bucket(const struct sockaddr *sa)
{
	const unsigned char *p;
	size_t n;
	uint32_t h = 2166136261u;

	if (sa->sa_family == AF_INET) {
		p = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
		n = 4;
	} else {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		p = a->s6_addr;
		n = 16;
		if (IN6_IS_ADDR_V4MAPPED(a)) {
			p += 12;
			n = 4;
		}
	}
	while (n--)
		h = (h ^ *p++) * 16777619u;
	return h % BUCKETS;
}

int
connlimit_enter(struct connlimit *cl, int worker, const struct sockaddr *sa,
    int max_total, int max_per_ip, const char **which)
{
	unsigned b = bucket(sa);
	long total = 0, ip = 0;

	for (int w = 0; w < cl->nworkers; w++) {
		total += __atomic_load_n(&cl->slice[w].total, __ATOMIC_RELAXED);
		ip += __atomic_load_n(&cl->slice[w].per_ip[b], __ATOMIC_RELAXED);
	}
	if (total >= max_total) {
		*which = "too many connections";
		return -1;
	}
	if (ip >= max_per_ip) {
		*which = "too many connections from your address";
		return -1;
	}
	__atomic_store_n(&cl->slice[worker].total, cl->slice[worker].total + 1, __ATOMIC_RELAXED);
	__atomic_store_n(&cl->slice[worker].per_ip[b], (uint16_t)(cl->slice[worker].per_ip[b] + 1), __ATOMIC_RELAXED);
	return 0;
}

void
connlimit_leave(struct connlimit *cl, int worker, const struct sockaddr *sa)
{
	unsigned b = bucket(sa);
	struct slice *s = &cl->slice[worker];

	if (s->total)
		__atomic_store_n(&s->total, s->total - 1, __ATOMIC_RELAXED);
	if (s->per_ip[b])
		__atomic_store_n(&s->per_ip[b], (uint16_t)(s->per_ip[b] - 1), __ATOMIC_RELAXED);
}
