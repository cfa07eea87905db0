"""Writes a synthetic mxgate log (log.c's logfmt lines) for the portal bench.

    python3 bench/gen_log.py OUT [--lines 1000000] [--days 7] [--seed 1]

Sessions over the last DAYS: connect, then either one or more rejections
(the portal's reasons, inbound and outbound) or accepted + delivery events
(delivered, sometimes deferred first, sometimes bounced), then close. 1,000
customer domains, 50,000 recipients, 20,000 client addresses. Prints the
names the bench searches for (a domain, a recipient, a client, a queue id)
as JSON on stdout.
"""
import argparse
import json
import random
import time

REASONS = [
    ("not_hosted", "inbound", 550, "5.7.1", "Your domain is not configured to use this MX host."),
    ("xbl", "inbound", 550, "5.7.1", "XBL: {ip} is listed at zen.spamhaus.org (127.0.0.4)"),
    ("pbl", "inbound", 550, "5.7.1", "PBL: {ip} is listed at zen.spamhaus.org (127.0.0.10)"),
    ("greylisted", "inbound", 451, "4.7.1", "Greylisted: please retry in 60 seconds"),
    ("rbl", "inbound", 550, "5.7.1", "RBL Reject: {ip} is listed at bl.example (127.0.0.2)"),
    ("invalid_mailbox", "inbound", 550, "5.1.1", "Invalid Mailbox (Call FWD)"),
    ("relay_denied", "outbound", 550, "5.7.1", "Relay Denied: {ip} is not in the outbound relay networks"),
    ("sender_rate", "outbound", 451, "4.7.1", "Sender Rate Exceeded"),
]


def ts(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--lines", type=int, default=1000000)
    ap.add_argument("--days", type=float, default=7)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    domains = ["customer%d.example" % i for i in range(1000)]
    rcpts = ["user%d@%s" % (i, domains[i % 1000]) for i in range(50000)]
    clients = ["10.%d.%d.%d" % (i >> 16 & 255, i >> 8 & 255, i & 255) for i in range(20000)]
    end = time.time()
    t = end - a.days * 86400
    n = 0
    step = a.days * 86400 / (a.lines / 4.0)
    picks = {}
    with open(a.out, "w") as f:
        s = 0
        while n < a.lines:
            s += 1
            t += rnd.random() * 2 * step
            sid = "%08x%05x%06x" % (int(t), s & 0xfffff, s)
            ip = rnd.choice(clients)
            out = []
            out.append("ts=%s pid=%d event=connect sid=%s dir=inbound client=%s listener=0.0.0.0"
                       % (ts(t), 100 + s % 4, sid, ip))
            sender = "sender%d@mail%d.example" % (rnd.randrange(5000), rnd.randrange(500))
            rcpt = rnd.choice(rcpts)
            if rnd.random() < 0.6:
                key, d, code, enh, text = rnd.choice(REASONS)
                stage = "mail" if key == "sender_rate" else "rcpt"
                out.append('ts=%s pid=%d event=reject sid=%s dir=%s client=%s stage=%s cmd=%s code=%d '
                           'enhanced=%s reason=%s rule=rules.d/50-dnsbl.lua:%d text="%s" from=%s rcpt=%s'
                           % (ts(t + 0.01), 100 + s % 4, sid, d, ip, stage, stage.upper(), code, enh, key,
                              20 + len(key), text.format(ip=ip), sender, rcpt))
                picks.setdefault("client", ip)
            else:
                qid = "1K%014X" % s
                out.append("ts=%s pid=%d event=accepted sid=%s qid=%s dir=inbound client=%s from=%s rcpts=1 size=%d"
                           % (ts(t + 0.02), 100 + s % 4, sid, qid, ip, sender, rnd.randrange(500, 50000)))
                r = rnd.random()
                events = ["deferred", "delivered"] if r < 0.1 else ["bounced"] if r < 0.13 else ["delivered"]
                for i, ev in enumerate(events):
                    reply = "250 2.0.0 Ok" if ev == "delivered" else "451 4.4.1 try later" if ev == "deferred" \
                        else "550 5.1.1 no such user"
                    out.append('ts=%s pid=90 event=%s qid=%s rcpt=%s from=%s relay=127.0.0.1:2626 '
                               'reply="%s" delay=%.3f attempts=%d tls=none'
                               % (ts(t + 0.5 + i * 60), ev, qid, rcpt, sender, reply, 0.5 + i * 60, i + 1))
                picks["qid"] = qid
            out.append("ts=%s pid=%d event=close sid=%s why=quit" % (ts(t + 1), 100 + s % 4, sid))
            picks["rcpt"], picks["domain"] = rcpt, rcpt.split("@")[1]
            f.write("\n".join(out) + "\n")
            n += len(out)
    picks["lines"] = n
    print(json.dumps(picks))


if __name__ == "__main__":
    main()
