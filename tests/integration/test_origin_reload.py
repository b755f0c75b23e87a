#!/usr/bin/env python3
"""SIGHUP reloads the origin without dropping a publisher (issue 12, item 12).

What a reload applies: passphrase rules, [srt] limits, the log level, the access log (reopened
after logrotate moved it) and the pulls (one added goes live, one removed is dropped with a
reason); a live publisher stays through all of it, even one the new rules would refuse. A key that needs a restart is named and keeps its value; a file
that does not load keeps the running configuration.
"""
import os
import signal
import time

from swtest import (run, Origin, PacedSender, Proc, check, free_udp_port, log, make_ts,
                    parse_metrics, tmpdir, wait_for)

PASS_A = "first-passphrase-123"
PASS_B = "second-passphrase-456"


def live(o, name):
    st, _, body = o.get(f"/api/streams/{name}", timeout=2)
    return st == 200 and b'"live":true' in body


def refused(o, sid, code, since=0):
    return wait_for(lambda: any(f'streamid "{sid}"' in l and f"({code})" in l
                                for l in o.output()[since:].splitlines()), 10)


class Pub:
    def __init__(self, o, data, sid, passphrase=None):
        url = f"srt://127.0.0.1:{o.srt_port}?streamid={sid}"
        if passphrase:
            url += f"&passphrase={passphrase}"
        self.s = PacedSender(data, url, bitrate=600_000, name="slt-" + sid.replace("/", "_"))

    def stop(self):
        self.s.stopped = True
        self.s.proc.signal(signal.SIGKILL)
        self.s.thread.join(5)


def rewrite(o, base, extra):
    with open(o.conf, "w") as f:
        f.write(base + extra)


def hup(o, what):
    n = len(o.output())
    o.signal(signal.SIGHUP)
    ok = wait_for(lambda: "reload" in o.output()[n:], 5)
    o.sent_signal = None  # a HUP is not a stop
    log(f"reload ({what}): {o.output()[n:].strip()[:400]}")
    return ok, n


def main():
    data = make_ts(os.path.join(tmpdir(), "in.ts"), 60, size="160x90", gop=30)
    alog = os.path.join(tmpdir(), "access.log")
    o = Origin(extra_conf=f"access_log = {alog}\n[prefix live/vip]\npassphrase = {PASS_A}\n")
    with open(o.conf) as f:
        base = f.read().split("[prefix")[0]
    pubs = []
    feeder = None
    try:
        a = Pub(o, data, "live/vip/a", PASS_A)
        pubs.append(a)
        check(wait_for(lambda: live(o, "vip-a"), 10), "vip-a live with passphrase A")

        # New passphrase: new handshakes need it, the live publisher stays.
        rewrite(o, base, f"[srt]\nmax_publishers = 2\n[prefix live/vip]\npassphrase = {PASS_B}\n")
        ok, n = hup(o, "passphrase B, max_publishers 2")
        check(ok and "reload: applied" in o.output()[n:], "the reload is applied and logged")
        pubs.append(Pub(o, data, "live/vip/b", PASS_A))
        check(wait_for(lambda: "handshake did not complete" in o.output()[n:], 10) and
              not live(o, "vip-b"), "passphrase A is refused after the reload")
        pubs.append(Pub(o, data, "live/vip/c", PASS_B))
        check(wait_for(lambda: live(o, "vip-c"), 10), "passphrase B is taken")
        check(live(o, "vip-a"), "the publisher that came in with A is still live")
        pubs.append(Pub(o, data, "live/d"))
        check(refused(o, "live/d", 1402, n), "max_publishers = 2 from the reload refuses a third")

        # A pull added by a reload goes live; removed, it is dropped with a reason.
        port = free_udp_port()
        feeder = Proc(["srt-live-transmit", "-q", "-chunk:1316", "file://con",
                       f"srt://127.0.0.1:{port}?mode=listener"], "slt-feeder",
                      stdin=__import__("subprocess").PIPE)
        import threading

        def pump():
            try:
                for off in range(0, len(data), 13160):
                    feeder.p.stdin.write(data[off:off + 13160])
                    feeder.p.stdin.flush()
                    time.sleep(13160 * 8 / 600_000)
            except (BrokenPipeError, OSError, ValueError):
                pass
        threading.Thread(target=pump, daemon=True).start()
        extra = (f"[srt]\nmax_publishers = 2\n[prefix live/vip]\npassphrase = {PASS_B}\n"
                 f"[pull studio]\nurl = srt://127.0.0.1:{port}?latency=200\n")
        rewrite(o, base, extra)
        ok, n = hup(o, "pull added")
        check(wait_for(lambda: live(o, "studio"), 15), "the pull added by the reload goes live")
        check("reload: pull studio" in o.output()[n:] and "added" in o.output()[n:],
              "the added pull is logged")
        pubs.append(Pub(o, data, "live/studio"))
        check(refused(o, "live/studio", 1403, n), "its name is the pull's")

        # Log level, a restart-only key, and the pull removed.
        rewrite(o, base.replace("log_level = info", "log_level = debug").replace(
            f"http = 127.0.0.1:{o.http_port}", "http = 127.0.0.1:1"),
            f"[srt]\nmax_publishers = 2\n[prefix live/vip]\npassphrase = {PASS_B}\n")
        ok, n = hup(o, "debug, http changed, pull removed")
        check(wait_for(lambda: not live(o, "studio"), 15), "the removed pull is dropped")
        check("pull removed by a reload" in o.output()[n:], "with its reason")
        check("http changed: needs a restart" in o.output()[n:], "a restart-only key is named")
        check(o.get("/healthz")[0] == 200, "the origin still serves on its running http address")
        m = len(o.output())
        o.get("/healthz")
        check(wait_for(lambda: " debug " in o.output()[m:], 5), "log_level = debug applies")

        # The access log: a line per request with what the core knows; moved away (logrotate),
        # a reload reopens it.
        wait_for(lambda: o.get("/live/vip-a/v.m3u8")[0] == 200, 10)
        o.get("/live/nosuch/index.m3u8?x=\"y")
        lines = open(alog).read().splitlines() if os.path.exists(alog) else []
        pl = [l for l in lines if 'path="/live/vip-a/v.m3u8"' in l]
        check(pl and " status=200 " in pl[-1] and " method=GET " in pl[-1] and "proto=HTTP/1.1" in
              pl[-1] and "bytes=" in pl[-1] and "duration_ms=" in pl[-1],
              f"access log line for a playlist: {pl[-1:] or lines[-2:]}")
        bad = [l for l in lines if "/live/nosuch/" in l]
        check(bad and " status=404 " in bad[-1] and '?x=\\"y"' in bad[-1],
              f"a 404 with its query, quote escaped: {bad[-1:]}")
        os.rename(alog, alog + ".1")
        rewrite(o, f"access_log = {alog}\n" + base.replace(f"access_log = {alog}\n", "")
                .replace("log_level = info", "log_level = debug"),
                f"[srt]\nmax_publishers = 2\n[prefix live/vip]\npassphrase = {PASS_B}\n")
        ok, n = hup(o, "access log moved")
        o.get("/healthz")
        check(wait_for(lambda: os.path.exists(alog) and 'path="/healthz"' in open(alog).read(), 5),
              "after the reload, lines go to a new file at the configured path")

        # A file that does not load keeps everything.
        rewrite(o, base, "[prefix live/vip]\npassphrase = short\n")
        ok, n = hup(o, "bad file")
        check("reload failed, keeping the running configuration" in o.output()[n:] and
              "10 to 79" in o.output()[n:], "a bad file is refused with its reason")
        check(live(o, "vip-a") and live(o, "vip-c"), "both publishers live through every reload")
        check(o.alive(), "the origin is still running")
    finally:
        for p in pubs:
            p.stop()
        if feeder:
            feeder.signal(signal.SIGKILL)
        o.stop_clean()


run(main)
