/*
 * conf.h - the configuration: one Lua file (-c FILE) read into this struct.
 *
 * The file runs in an empty sandbox; its globals are the keys. Every key
 * has a default (README.md lists them). conf_load() reports the first
 * error as "file:line: message", the line being where the offending key
 * was assigned, so `mxgate -t` points at it.
 */
#ifndef MXGATE_CONF_H
#define MXGATE_CONF_H

#include <stddef.h>
#include <netinet/in.h>
#include <sys/socket.h>

enum direction { DIR_INBOUND = 0, DIR_OUTBOUND = 1 };

#define CONF_MAX_LISTEN 8
#define CONF_NAME       256

#define CONF_MAX_PROXY_FROM 16

struct conf_net {
	int           family;   /* AF_INET, AF_INET6 */
	unsigned char addr[16];
	int           prefix;
};

struct conf_listener {
	int                     index;          /* in conf->listen: the metrics' label */
	char                    address[64];
	int                     port;
	enum direction          direction;
	struct sockaddr_storage sa;
	socklen_t               salen;
	/* PROXY protocol (v1/v2): every connection starts with a header from a
	 * load balancer in proxy_from, naming the real client. Held by value:
	 * workers copy listeners. */
	int                     proxy_protocol;
	struct conf_net         proxy_from[CONF_MAX_PROXY_FROM];
	int                     nproxy_from;
};

struct conf_domain {
	char name[CONF_NAME];   /* lower case */
	char route[CONF_NAME];  /* "host[:port]" or "mx:domain" */
	char tls[16];           /* delivery: "" (opportunistic), "require", "verify" */
};

struct conf {
	char  *path;            /* the file read; owned */
	char   hostname[CONF_NAME];
	char **host_names;      /* our other names (row 10), NULL-terminated */
	struct conf_listener listen[CONF_MAX_LISTEN];
	int    nlisten;
	int    workers;         /* 0 = one per core */
	char   user[64];        /* privileges dropped to this user when root */
	int    allow_user_nobody;  /* user = "nobody" only when this says so */
	char   state_dir[512];
	char   spool_dir[512];
	char   log_file[512];   /* "" = stderr */
	char   tls_cert[512];   /* "" = self-signed under state_dir/tls */
	char   tls_key[512];
	char   rules[512];      /* rules directory; "" = built-in C policy */
	char   postmaster[320]; /* where a bare RCPT TO:<postmaster> goes (RFC 5321 4.5.1) */
	char   stdlib[512];     /* stdlib directory */

	struct conf_domain *domains;
	int    ndomains;
	struct conf_net *relay_nets;
	int    nrelay_nets;

	struct {
		int    max_connections;
		int    max_per_ip;
		int    max_recipients;
		size_t max_message_size;
		int    max_errors;
		int    command_line;   /* RFC 5321 4.5.3.1.4: 512 */
		int    text_line;      /* RFC 5321 4.5.3.1.6: 1000 */
	} limits;
	struct {
		double greeting_delay; /* postscreen-style pregreet wait; 0 = off */
		double command;        /* a whole command line, once we wait for it
		                          (RFC 5321 4.5.3.2.7: 5 min); reads do not extend it */
		double data;           /* waiting for a data block (4.5.3.2.6: 3 min) */
		double message;        /* the whole message, 354 to the final dot */
		double session;        /* the whole session, however busy */
		double rule;           /* a rule waiting on I/O */
		double shutdown;       /* SIGTERM: sessions get this long to finish */
	} timeouts;
	char   bare_lf[16];        /* "normalize" or "reject" */
	struct {
		char   servers[256];   /* "127.0.0.1:5353,[::1]:53"; "" = resolv.conf */
		double timeout;        /* per try */
		int    tries;
		int    cache;          /* entries */
	} dns;
	struct {
		double sample;         /* 0 = off, 1 = every session, 0.1 = one in ten */
		char   dir[512];       /* "" = state_dir/journal */
		double max_record;     /* bytes per session */
		double max_file;       /* bytes per file */
		double max_headers;    /* header bytes kept of each message (0: none) */
	} journal;
	struct {
		int    port;           /* callouts and sender verification (25) */
		double connect_timeout;
		double command_timeout;
		char   mail_from[320]; /* "" = <> */
		int    starttls;
		double positive_ttl, negative_ttl;
		int    max_per_host;
		/* networks sender verification may reach although they are
		 * loopback, private, link-local or ours (SSRF guard) */
		struct conf_net *allow_nets;
		int    nallow_nets;
	} callout;
	struct {
		char   backend[16];       /* "lmdb" (state_dir/state) or "redis" */
		char   server[256];       /* redis: "127.0.0.1:6379", "[::1]:6379", "unix:/path" */
		int    db;                /* redis: SELECT */
		char   user[64];          /* redis: ACL user, "" = password alone */
		char   password[256];
		char   prefix[64];        /* redis: before every key */
		double timeout;           /* redis: seconds a call may take */
		char   fail_greylist[8];  /* store failed: "pass" or "defer" */
		char   fail_ratelimit[8]; /* store failed: "allow" or "defer" */
	} state;
	struct {
		int    enabled;        /* the delivery process runs (default true) */
		int    port;           /* next hop port for MX routes (25) */
		int    per_destination;/* sessions per destination at once (20) */
		int    max_sessions;   /* sessions at once in all (100) */
		double retry_min;      /* first retry after (300 s), doubling ... */
		double retry_max;      /* ... up to (3600 s) */
		double max_lifetime;   /* then bounce (5 days) */
		double connect_timeout;
		double command_timeout;
		double idle_time;      /* a connection with nothing to send waits this long for more (2 s) */
		char   tls[16];        /* "" opportunistic, "require", "verify" */
		char   ca_file[512];   /* the CAs "verify" trusts ("": the system's) */
		double delay_warning;  /* one "delayed" DSN after this long queued (0: never) */
	} delivery;
	struct {
		int    enabled;        /* `http` is set: the HTTP process runs */
		char   address[64];    /* "127.0.0.1" */
		int    port;           /* 8025 */
		struct sockaddr_storage sa;
		socklen_t salen;
		char   token[256];     /* bearer token; "" = none */
		char   user[64];       /* basic auth, with password; "" = none */
		char   password[256];
		/* Limits (libmicrohttpd's, and the portal's): every one has a key. */
		int    max_connections;   /* at once, all clients (64) */
		int    max_per_ip;        /* at once, one client address (16) */
		int    timeout;           /* seconds a connection may sit idle (10) */
		size_t connection_memory; /* a request's headers and buffers must fit (32 KiB) */
		size_t max_page;          /* a page's body, at most (16 MiB) */
		size_t index_max_size;    /* the portal's index, at most (16 GiB) */
		double index_retention;   /* days the index keeps a record (30) */
	} http;
	long   rule_instructions;  /* per hook run, then 451 4.3.0 */
	size_t rule_memory;        /* per generation (Lua state) */
	size_t rule_session_memory; /* what one session's rules may hold of it */
	int    refs;               /* sessions using it (smtp_server.c) */
};

/* 0 on success; -1 with "file:line: why" in err. */
int  conf_load(struct conf *c, const char *path, char *err, size_t errlen);
/*
 * Runs the file at path in L and pushes the table of its keys: the same
 * sandbox conf_load() uses (data-building functions only), so the rules'
 * `config` means what the server read. Raises on error: call it protected,
 * under the state's own budget.
 */
struct lua_State;
void conf_run(struct lua_State *L, const char *path);
void conf_free(struct conf *c);

const struct conf_domain *conf_domain(const struct conf *c, const char *domain);
int  conf_net_match(const struct conf_net *nets, int n, const struct sockaddr *sa);
int  conf_parse_net(const char *text, struct conf_net *out);
const char *direction_str(enum direction d);

#endif
