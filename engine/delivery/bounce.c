/*
 * bounce.c - the DSN: a multipart/report (RFC 6522) with a human part, a
 * message/delivery-status part (RFC 3464: one block per failed recipient,
 * merged into one message) and the original headers (text/rfc822-headers),
 * for recipients that failed or (the delay warning) are still being tried,
 * from the null sender (RFC 5321 4.5.5), queued through the spool like any
 * accepted message, so the same runner delivers it.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bounce.h"
#include "buf.h"
#include "json.h"
#include "conf.h"
#include "spool.h"

#define HEADERS_MAX (64 * 1024)

/* The enhanced status (RFC 3463) in a reply, or one made from its code. */
static void
status_of(const char *reply, int code, char *out, size_t len)
{
	const char *p = reply ? reply : "";
	int a, b, c, n = 0;

	if (isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1]) &&
	    isdigit((unsigned char)p[2]) && p[3] == ' ')
		p += 4;
	if (sscanf(p, "%1d.%3d.%3d%n", &a, &b, &c, &n) == 3 && (a == 2 || a == 4 || a == 5) &&
	    (p[n] == ' ' || p[n] == '\0' || p[n] == ';')) {
		snprintf(out, len, "%d.%d.%d", a, b, c);
		return;
	}
	snprintf(out, len, "%d.0.0", code / 100 == 4 ? 4 : 5);
}

/* "mx.example[192.0.2.1]:25" -> "mx.example"; "192.0.2.1:25" -> "192.0.2.1". */
static void
mta_of(const char *relay, char *out, size_t len)
{
	size_t n = strcspn(relay, "[");

	if (n == 0) {
		n = strcspn(relay, "]");
		snprintf(out, len, "%.*s", (int)(n - (relay[0] == '[')), relay + (relay[0] == '['));
		return;
	}
	if (relay[n] == '\0') {
		const char *colon = strrchr(relay, ':');
		if (colon && !strchr(relay, ']') && strchr(relay, ':') == colon)
			n = (size_t)(colon - relay);
	}
	snprintf(out, len, "%.*s", (int)n, relay);
}

/* The original header section, CRLF, cut at HEADERS_MAX. */
static void
original_headers(struct buf *o, const char *spool_dir, const struct qenv *e)
{
	char *buf = malloc(HEADERS_MAX + 1);
	int fd = queue_open(spool_dir, e->qid);
	ssize_t n = -1;
	char *end;

	if (buf && fd >= 0)
		n = pread(fd, buf, HEADERS_MAX, (off_t)e->body_off);
	if (fd >= 0)
		close(fd);
	if (n > 0) {
		buf[n] = '\0';
		if (strncmp(buf, "\r\n", 2) == 0)
			n = 0;
		else if ((end = strstr(buf, "\r\n\r\n")) != NULL)
			n = end - buf + 2;
		else if ((end = strrchr(buf, '\n')) != NULL)
			n = end - buf + 1;      /* cut: whole lines only */
		if (n > 0)
			buf_printf(o, "%.*s", (int)n, buf);
	}
	free(buf);
}

/* Is r one this kind of DSN reports? A delay warning names the recipients
 * still pending that have been tried (they carry the last reply). */
static int
reported(const struct qrcpt *r, enum dsn_kind kind)
{
	return kind == DSN_FAILED ? r->state == R_FAILED : r->state == R_PENDING && r->reply;
}

static int
utf8(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

int
bounce_queue(struct spool *sp, const struct conf *c, const struct qenv *e,
    enum dsn_kind kind, spool_done_cb *done, void *arg)
{
	struct buf o = BUF_INIT(0);
	char qid[QID_LEN], date[64], arrival[64], until[64], status[32], mta[300];
	time_t expiry = e->arrived + (time_t)c->delivery.max_lifetime;
	int delayed = kind == DSN_DELAYED;
	struct buf to = BUF_INIT(0);
	time_t now = time(NULL);
	struct tm tm;
	struct spool_msg *m;
	int eight = e->smtputf8, global = utf8(e->sender);

	if (jsonw_strz(&to, e->sender) < 0) {
		buf_free(&to);
		return -1;
	}
	qid_new(qid);
	localtime_r(&now, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm);
	localtime_r(&e->arrived, &tm);
	strftime(arrival, sizeof arrival, "%a, %d %b %Y %H:%M:%S %z", &tm);
	localtime_r(&expiry, &tm);
	strftime(until, sizeof until, "%a, %d %b %Y %H:%M:%S %z", &tm);

	/* The envelope line: spool_create() wrote its "length". */
	buf_printf(&o, "\"v\":1,\"qid\":\"%s\",\"time\":%lld,\"direction\":\"outbound\",\"listener\":\"dsn\","
	    "\"client\":\"127.0.0.1\",\"client_port\":0,\"helo\":\"\",\"tls\":false,\"sid\":\"dsn-%s\","
	    "\"sender\":\"\",\"body\":\"%s\",\"smtputf8\":%s,\"rcpts\":[%s],\"dsn_for\":\"%s\"}\n",
	    qid, (long long)now, e->qid, eight ? "8BITMIME" : "7BIT", eight ? "true" : "false", buf_str(&to),
	    e->qid);
	buf_free(&to);
	buf_printf(&o, "Received: by %s (mxgate) id %s;\r\n\t%s\r\n", c->hostname, qid, date);
	buf_printf(&o, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", c->hostname);
	buf_printf(&o, "To: <%s>\r\n", e->sender);
	buf_printf(&o, "Subject: %s\r\n", delayed ? "Delayed Mail (still being retried)" :
	    "Undelivered Mail Returned to Sender");
	buf_printf(&o, "Date: %s\r\n", date);
	buf_printf(&o, "Message-ID: <%s@%s>\r\n", qid, c->hostname);
	buf_printf(&o, "Auto-Submitted: auto-replied\r\n");
	buf_printf(&o, "MIME-Version: 1.0\r\n");
	buf_printf(&o, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	    "\tboundary=\"%s/%s\"\r\n\r\n", qid, c->hostname);
	buf_printf(&o, "This is a MIME-encapsulated message.\r\n\r\n");

	buf_printf(&o, "--%s/%s\r\n", qid, c->hostname);
	buf_printf(&o, "Content-Description: Notification\r\nContent-Type: text/plain; charset=%s\r\n\r\n",
	    eight ? "utf-8" : "us-ascii");
	buf_printf(&o, "This is the mail system at host %s.\r\n\r\n", c->hostname);
	if (delayed)
		buf_printf(&o, "Your message could not be delivered yet to one or more recipients.\r\n"
		    "It will be tried again until %s; you need not send it again.\r\n\r\n", until);
	else
		buf_printf(&o, "Your message could not be delivered to one or more recipients.\r\n\r\n");
	for (int i = 0; i < e->nrcpt; i++) {
		const struct qrcpt *r = &e->rcpt[i];

		if (reported(r, kind))
			buf_printf(&o, "<%s>: %s%s%s\r\n", r->addr, r->relay && r->relay[0] ? r->relay : "",
			    r->relay && r->relay[0] ? " said: " : "", r->reply ? r->reply : "");
	}
	buf_printf(&o, "\r\n--%s/%s\r\n", qid, c->hostname);
	for (int i = 0; i < e->nrcpt; i++)
		global |= reported(&e->rcpt[i], kind) && utf8(e->rcpt[i].addr);
	/* RFC 6533: the global types only when an address needs UTF-8. */
	buf_printf(&o, "Content-Description: Delivery report\r\nContent-Type: %s\r\n\r\n",
	    global ? "message/global-delivery-status" : "message/delivery-status");
	buf_printf(&o, "Reporting-MTA: dns; %s\r\nX-Mxgate-Queue-ID: %s\r\nArrival-Date: %s\r\n",
	    c->hostname, e->qid, arrival);
	for (int i = 0; i < e->nrcpt; i++) {
		const struct qrcpt *r = &e->rcpt[i];

		if (!reported(r, kind))
			continue;
		/* A delay is 4.x.x even when no reply said so (a refused connection). */
		status_of(r->reply, delayed && !r->code ? 400 : r->code, status, sizeof status);
		buf_printf(&o, "\r\nFinal-Recipient: rfc822; %s\r\nAction: %s\r\nStatus: %s\r\n",
		    r->addr, delayed ? "delayed" : "failed", status);
		if (r->relay && r->relay[0]) {
			mta_of(r->relay, mta, sizeof mta);
			buf_printf(&o, "Remote-MTA: dns; %s\r\n", mta);
		}
		if (r->code)
			buf_printf(&o, "Diagnostic-Code: smtp; %s\r\n", r->reply ? r->reply : "");
		else
			buf_printf(&o, "Diagnostic-Code: X-mxgate; %s\r\n", r->reply ? r->reply : "");
		if (delayed)    /* RFC 3464 2.3.9 */
			buf_printf(&o, "Will-Retry-Until: %s\r\n", until);
	}
	buf_printf(&o, "\r\n--%s/%s\r\n", qid, c->hostname);
	buf_printf(&o, "Content-Description: %s Message Headers\r\nContent-Type: %s\r\n\r\n",
	    delayed ? "Delayed" : "Undelivered", eight ? "message/global-headers" : "text/rfc822-headers");
	original_headers(&o, c->spool_dir, e);
	buf_printf(&o, "\r\n--%s/%s--\r\n", qid, c->hostname);
	if (o.err || !(m = spool_create(sp, qid))) {
		buf_free(&o);
		return -1;
	}
	if (spool_write(m, o.p, o.len) < 0) {
		spool_abort(m);
		buf_free(&o);
		return -1;
	}
	buf_free(&o);
	spool_commit(m, done, arg);
	return 0;
}
