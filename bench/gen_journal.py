#!/usr/bin/python3
"""Writes a session journal (engine/smtp/journal.h, v1) of N sessions, as mxgate
running the default rules.d/ with CONFIG below would have recorded them,
for bench/replay_bench.py. The mix:

  70%  inbound, clean client: EHLO, MAIL, 1-3 RCPT (one in ten for a domain
       we do not host: 550), DATA, QUIT; three DNSBL lookups per hosted RCPT
  10%  inbound, client on Spamhaus XBL: every RCPT 550 XBL, DATA 503
   5%  inbound, client on Spamhaus PBL
  15%  outbound from a relay network: MAIL asks ratelimit(), RCPT accepted

    gen_journal.py N OUT.jsonl [CONFIG_OUT]

Replaying it with the same rules changes nothing (replay_bench.py checks).
"""
import json
import random
import sys

HOST = "mx.bench.test"
CONFIG = """\
hostname = "mx.bench.test"
listen = { { address = "127.0.0.1", port = 2525, direction = "inbound" },
           { address = "127.0.0.1", port = 2587, direction = "outbound" } }
state_dir = "/tmp/mxgate-replay-bench/var"
hosted_domains = { ["bench.test"] = { route = "127.0.0.1:1", callout = false, greylist = false } }
relay_networks = { "10.0.0.0/8" }
dnsbl = { { zone = "zen.spamhaus.org" } }
greylist = { delay = 60 }
ratelimit = { sender = { limit = 100, period = 3600, mode = "leaky" } }
verify_sender = { enabled = false }
tls_enforced_senders = { "secure.example" }
"""
EHLO = HOST + "\nPIPELINING\nSIZE 26214400\n8BITMIME\nSTARTTLS\nENHANCEDSTATUSCODES\nSMTPUTF8"


def session(i, rnd):
    kind = rnd.random()
    outbound = kind >= 0.85
    if outbound:
        ip = "10.%d.%d.%d" % (rnd.randrange(256), rnd.randrange(256), rnd.randrange(1, 255))
    else:
        ip = "198.51.%d.%d" % (rnd.randrange(100), rnd.randrange(1, 255))
    listed = None
    if not outbound and kind >= 0.70:
        listed = "127.0.0.4" if kind < 0.80 else "127.0.0.10"
    rev = ".".join(reversed(ip.split("."))) + ".zen.spamhaus.org"
    ev = []

    def cmd(line):
        ev.append({"e": "cmd", "line": line})

    def hook(stage, **facts):
        d = {"e": "hook", "stage": stage}
        d.update(facts)
        ev.append(d)

    def verdict(stage, action="none", **kw):
        d = {"e": "verdict", "stage": stage, "action": action}
        d.update(kw)
        ev.append(d)

    def reply(code, text):
        ev.append({"e": "reply", "code": code, "text": text})

    def dns(result):
        ev.append({"e": "call", "p": "dns", "a": [rev, "a"], "r": result})

    hook("connect")
    verdict("connect")
    reply(220, HOST + " ESMTP mxgate")
    helo = "mail%d.example.org" % rnd.randrange(1000)
    cmd("EHLO " + helo)
    hook("helo", helo=helo, esmtp=True)
    verdict("helo")
    reply(250, EHLO)
    sender = "user%d@sender%d.example" % (rnd.randrange(10000), rnd.randrange(300))
    cmd("MAIL FROM:<%s>" % sender)
    hook("mail", sender=sender)
    if outbound:
        ev.append({"e": "call", "p": "ratelimit", "a": ["sender:" + sender, 100, 3600, {"mode": "leaky"}],
                   "r": [{"over": False, "rate": round(rnd.random() * 20, 3)}]})
    verdict("mail")
    reply(250, "2.1.0 Ok")
    accepted = 0
    for r in range(rnd.choice((1, 1, 2, 3))):
        hosted = outbound or rnd.random() >= 0.1
        domain = "bench.test" if hosted and not outbound else ("far%d.example" % r if outbound else "other.example")
        rcpt = "rcpt%d@%s" % (rnd.randrange(5000), domain)
        cmd("RCPT TO:<%s>" % rcpt)
        hook("rcpt", rcpt=rcpt)
        if not outbound and not hosted:
            verdict("rcpt", "deny", code=550, enhanced="5.7.1",
                    text="Your domain is not configured to use this MX host.", reason="not_hosted",
                    where="rules.d/30-hosted.lua:3")
            reply(550, "5.7.1 Your domain is not configured to use this MX host.")
            continue
        if not outbound:
            if listed == "127.0.0.4":
                dns([["127.0.0.4"], "ok"])
                text = "XBL: %s is listed at zen.spamhaus.org (127.0.0.4)" % ip
                verdict("rcpt", "deny", code=550, enhanced="5.7.1", text=text, reason="xbl",
                        where="rules.d/50-dnsbl.lua:38")
                reply(550, "5.7.1 " + text)
                continue
            if listed == "127.0.0.10":
                dns([["127.0.0.10"], "ok"])
                dns([["127.0.0.10"], "ok"])
                text = "PBL: %s is listed at zen.spamhaus.org (127.0.0.10)" % ip
                verdict("rcpt", "deny", code=550, enhanced="5.7.1", text=text, reason="pbl",
                        where="rules.d/50-dnsbl.lua:42")
                reply(550, "5.7.1 " + text)
                continue
            for _ in range(3):
                dns([None, "nxdomain"])
        verdict("rcpt", "accept", where="rules.d/99-accept.lua:5")
        reply(250, "2.1.5 Ok")
        accepted += 1
    cmd("DATA")
    if accepted:
        hook("predata")
        verdict("predata")
        reply(354, "End data with <CR><LF>.<CR><LF>")
        qid = "1K%015X" % i
        hook("data", size=rnd.randrange(800, 60000), qid=qid)
        verdict("data")
        reply(250, "2.0.0 Ok: queued as " + qid)
    else:
        reply(503, "5.5.1 Error: need RCPT command")
    cmd("QUIT")
    hook("quit")
    verdict("quit")
    reply(221, "2.0.0 Bye")
    port = 2587 if outbound else 2525
    return {"v": 1, "sid": "6650a1b2%05x%06x" % (1234, i), "time": 1717000000.0 + i * 0.01,
            "direction": "outbound" if outbound else "inbound", "listener": "127.0.0.1:%d" % port,
            "client": {"ip": ip, "port": 30000 + i % 30000}, "local": {"ip": "127.0.0.1", "port": port},
            "hostname": HOST, "events": ev}


def generate(n, path, seed=7):
    rnd = random.Random(seed)
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps(session(i, rnd), separators=(",", ":")) + "\n")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    generate(int(sys.argv[1]), sys.argv[2])
    if len(sys.argv) > 3:
        with open(sys.argv[3], "w") as f:
            f.write(CONFIG)


if __name__ == "__main__":
    main()
