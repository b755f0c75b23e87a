#!/usr/bin/env python3
"""Who may publish (issue 12, items 1 and 2).

1. One name, one rule: with "[prefix live/vip]" and a passphrase, every resource that names the
   stream vip-room42 (live/vip/room42, live/vip-room42, other/vip/room42, vip-room42) needs the
   passphrase, and the open live/room42 is another stream, room42, which cannot take the protected
   one's name, viewers or room. A configured pull's name cannot be taken by a listener publisher.
2. Limits: max_per_source and max_publishers refuse with SRT_REJX_OVERLOAD (1402), an allow list
   with SRT_REJX_FORBIDDEN (1403), require_passphrase with SRT_REJX_UNAUTHORIZED (1401); each with
   a log line and a count in /metrics.

Publishers are srt-live-transmit sending a prepared MPEG-TS file (cheap: no encoder per
publisher). The limits' origin listens on [::] (dual-stack), so that 127.0.0.1 (as
::ffff:127.0.0.1) and ::1 are two source addresses: libsrt 1.5.1 here completes no handshake from
a caller bound to 127.0.0.2 (srt-live-transmit's adapter=).
"""
import os
import signal
import time

from swtest import (run, Origin, PacedSender, check, free_udp_port, log, make_ts, parse_metrics,
                    tmpdir, wait_for)

PASS = "correct-horse-battery"


class Pub:
    """One srt-live-transmit publisher of `data`, from source address `src`."""

    def __init__(self, o, data, sid, passphrase=None, host="127.0.0.1"):
        url = f"srt://{host}:{o.srt_port}?streamid={sid}"
        if passphrase:
            url += f"&passphrase={passphrase}"
        self.sid = sid
        self.s = PacedSender(data, url, bitrate=600_000, name="slt-" + sid.replace("/", "_"))

    def stop(self):
        # srt-live-transmit ignores SIGTERM while it is still connecting (a refused one retries).
        self.s.stopped = True
        self.s.proc.signal(signal.SIGKILL)
        self.s.thread.join(5)


def live(o, name):
    st, _, body = o.get(f"/api/streams/{name}", timeout=2)
    return st == 200 and b'"live":true' in body


def refused(o, sid, code):
    """Waits for the origin's refusal line of `sid` with SRT reject reason `code`."""
    return wait_for(lambda: any(f'streamid "{sid}"' in l and f"({code})" in l
                                for l in o.output().splitlines()), 10)


def refused_total(o, reason):
    st, _, body = o.get("/metrics")
    m = parse_metrics(body) if st == 200 else {}
    return m.get(f'shortwave_srt_refused_total{{reason="{reason}"}}', -1)


def routes(data):
    o = Origin(extra_conf=f"[srt]\nmax_per_source = 0\n"
                          f"[prefix live/vip]\npassphrase = {PASS}\n"
                          f"[pull studio]\nurl = srt://127.0.0.1:9?latency=200\n")
    pubs = []
    try:
        # Every route to vip-room42 without the passphrase: SRT refuses the handshake (the rule's
        # passphrase is set on the socket), so the name never goes live.
        for i, sid in enumerate(("live/vip/room42", "live/vip-room42", "other/vip/room42",
                                 "vip-room42", "#!::r=x/vip/room42,m=publish")):
            p = Pub(o, data, sid)
            pubs.append(p)
            check(wait_for(lambda: refused_total(o, "handshake") == i + 1, 10),
                  f"{sid} without the passphrase: handshake refused "
                  f"(shortwave_srt_refused_total{{reason=\"handshake\"}} = "
                  f"{refused_total(o, 'handshake')})")
            check(not live(o, "vip-room42"), f"{sid} without the passphrase does not go live")
            p.stop()

        # The open route is another stream: it does not take the protected name, and the real
        # host is not refused with 1409 afterwards.
        squat = Pub(o, data, "live/room42")
        pubs.append(squat)
        check(wait_for(lambda: live(o, "room42"), 10), "live/room42 goes live as room42")
        host = Pub(o, data, "live/vip/room42", passphrase=PASS)
        pubs.append(host)
        check(wait_for(lambda: live(o, "vip-room42"), 10),
              "live/vip/room42 with the passphrase goes live as vip-room42 while room42 is live")
        check("vip-room42 is already publishing" not in o.output() and
              "SRT_REJX_CONFLICT" not in o.output(), "no conflict between the two names")
        check(wait_for(lambda: o.get("/live/vip-room42/v.m3u8")[0] == 200, 10),
              "the protected stream is served under /live/vip-room42/")

        # The same name by its other route, with the passphrase, while it is live: 1409.
        dup = Pub(o, data, "live/vip-room42", passphrase=PASS)
        pubs.append(dup)
        check(refused(o, "live/vip-room42", 1409), "live/vip-room42 while vip-room42 is live: 1409")

        # A configured pull's name is the pull's alone.
        p = Pub(o, data, "live/studio")
        pubs.append(p)
        check(refused(o, "live/studio", 1403), "a pull's name from the listener: 1403")
        check("published by the configured pull" in o.output(), "the log line says why")
        check(not live(o, "studio"), "the pull's name is not taken")
        # The same refusal again and again (srt-live-transmit may retry several times a second):
        # one line, not one per attempt.
        for _ in range(3):
            again = Pub(o, data, "live/studio")
            pubs.append(again)
            time.sleep(0.3)
        wait_for(lambda: refused_total(o, "forbidden") >= 4, 10)
        n = sum('streamid "live/studio"' in l for l in o.output().splitlines())
        check(n == 1 and refused_total(o, "forbidden") >= 4,
              f"a refusal repeated {refused_total(o, 'forbidden'):.0f} times is logged once ({n})")
    finally:
        for p in pubs:
            p.stop()
        o.stop_clean()


def limits(data):
    port = free_udp_port()
    o = Origin(srt_port=port, extra_conf=f"srt = [::]:{port}\n"
                                         "[srt]\nmax_publishers = 3\nmax_per_source = 2\n")
    pubs = []
    try:
        pubs += [Pub(o, data, "live/a0"), Pub(o, data, "live/a1")]
        check(wait_for(lambda: live(o, "a0") and live(o, "a1"), 10), "two publishers from 127.0.0.1")
        pubs.append(Pub(o, data, "live/a2"))
        check(refused(o, "live/a2", 1402), "a third from 127.0.0.1: 1402 (max_per_source = 2)")
        check("max_per_source (2) reached for [::ffff:127.0.0.1]" in o.output(),
              "logged with the limit and the address")
        pubs.append(Pub(o, data, "live/b0", host="[::1]"))
        check(wait_for(lambda: live(o, "b0"), 10), "one from ::1 goes live (3 in all)")
        pubs.append(Pub(o, data, "live/b1", host="[::1]"))
        check(refused(o, "live/b1", 1402), "a fourth publisher: 1402 (max_publishers = 3)")
        check("max_publishers (3) reached" in o.output(), "logged with the limit")
        check(refused_total(o, "overload") >= 2,
              "overload refusals in /metrics (both senders retry: two at least)")
        check(not live(o, "a2") and not live(o, "b1"), "the refused names never go live")
        # A slot freed is a slot again. The refused senders retry on their own: stopped first, so
        # that only the next one contends for the slot.
        for p in pubs[2:]:
            if p.sid in ("live/a2", "live/b1"):
                p.stop()
        pubs[0].stop()
        check(wait_for(lambda: b'"live":true' not in o.get("/api/streams/a0")[2], 15), "a0 gone")
        pubs.append(Pub(o, data, "live/b2", host="[::1]"))
        if not check(wait_for(lambda: live(o, "b2"), 10), "after one left, another goes live"):
            log(o.output()[-3000:])
    finally:
        for p in pubs:
            p.stop()
        o.stop_clean()


def closed_ingest(data):
    o = Origin(extra_conf=f"[srt]\nallow = live/shop-, live/guest-\nrequire_passphrase = yes\n"
                          f"[prefix live/shop/vip]\npassphrase = {PASS}\n")
    pubs = []
    try:
        pubs.append(Pub(o, data, "live/other"))
        check(refused(o, "live/other", 1403), "outside the allow list: 1403")
        pubs.append(Pub(o, data, "live/guest-1"))
        check(refused(o, "live/guest-1", 1401), "allowed, but no passphrase covers it: 1401")
        pubs.append(Pub(o, data, "live/shop/vip/x", passphrase=PASS))
        check(wait_for(lambda: live(o, "shop-vip-x"), 10),
              "live/shop/vip/x with the passphrase goes live as shop-vip-x")
        check(refused_total(o, "forbidden") >= 1 and refused_total(o, "unauthorized") >= 1,
              "forbidden and unauthorized counted (each sender retries: once at least)")
    finally:
        for p in pubs:
            p.stop()
        o.stop_clean()


def main():
    ts = os.path.join(tmpdir(), "in.ts")
    data = make_ts(ts, 40, size="160x90", gop=30)
    log(f"test media: {len(data)} bytes")
    routes(data)
    limits(data)
    closed_ingest(data)


run(main)
