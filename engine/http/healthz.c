/*
 * healthz.c - /healthz for load balancers and systemd: 200 when every
 * worker serves its rules, else 503; the rule generation and uptime.
 */
#include <stdio.h>

#include "clock.h"
#include "http.h"
#include "json.h"
#include "metrics.h"

int
page_healthz(struct http_req *req, struct buf *out)
{
	const struct metrics *m = metrics_shared();
	struct metrics_health h = { 0, 0, 0 };

	req->content_type = "application/json";
	if (m)
		metrics_health(m, clock_wall(), &h);
	jsonw_open(out, '{');
	jsonw_key(out, "ready");
	jsonw_bool(out, h.ready);
	jsonw_key(out, "generation");
	jsonw_int(out, h.generation);
	jsonw_key(out, "uptime");
	{
		char up[32];
		int n = snprintf(up, sizeof up, "%.3f", h.uptime);
		jsonw_raw(out, up, (size_t)n);
	}
	jsonw_close(out, '}');
	buf_addc(out, '\n');
	return h.ready ? 200 : 503;
}
