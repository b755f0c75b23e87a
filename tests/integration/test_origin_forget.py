#!/usr/bin/env python3
"""Streams gone longer than the DVR window are forgotten (issue 12, item 2): their memory, their
DVR folder, their API entry; at start, a folder whose media is all older than the window does not
come back. A stream that stays live longer than the window is kept, and a forgotten name can be
published again.
"""
import os
import signal
import time

from swtest import (run, Origin, PacedSender, check, log, make_ts, parse_metrics, tmpdir,
                    wait_for)

WINDOW_S = 10


def known(o, name):
    return o.get(f"/api/streams/{name}", timeout=2)[0] == 200


def live(o, name):
    st, _, body = o.get(f"/api/streams/{name}", timeout=2)
    return st == 200 and b'"live":true' in body


def pub(o, data, name):
    return PacedSender(data, f"srt://127.0.0.1:{o.srt_port}?streamid=live/{name}",
                       bitrate=600_000, name="slt-" + name)


def kill(p):
    p.stopped = True
    p.proc.signal(signal.SIGKILL)
    p.thread.join(5)


def main():
    tmp = tmpdir()
    long_ts = make_ts(os.path.join(tmp, "long.ts"), 45, size="160x90", gop=30)
    short_ts = make_ts(os.path.join(tmp, "short.ts"), 4, size="160x90", gop=30)
    data = tmpdir("sw-data-")
    conf = f"[hls]\ndvr_window = {WINDOW_S}s\nsegment_duration = 1s\n"
    o = Origin(data=data, extra_conf=conf)
    keep = pub(o, long_ts, "keep")
    gone = pub(o, short_ts, "gone")
    try:
        check(wait_for(lambda: live(o, "keep") and live(o, "gone"), 10), "two streams live")
        check(wait_for(lambda: known(o, "gone") and not live(o, "gone"), 15), "gone goes offline")
        t_off = time.monotonic()
        check(os.path.isdir(os.path.join(data, "gone")), "its DVR folder is there")
        check(wait_for(lambda: not known(o, "gone"), WINDOW_S + 15), "gone is forgotten")
        after = time.monotonic() - t_off
        check(after >= WINDOW_S - 2, f"not before its media left the window ({after:.1f} s)")
        check(wait_for(lambda: not os.path.exists(os.path.join(data, "gone")), 5),
              "its DVR folder is removed")
        check(not any(n.startswith(".gone-") for n in os.listdir(data)), "nothing left behind")
        check("gone: offline for" in o.output() and "forgotten" in o.output(), "logged")
        m = parse_metrics(o.get("/metrics")[2])
        check(m.get("shortwave_origin_streams_forgotten_total") == 1,
              "shortwave_origin_streams_forgotten_total = 1")
        check(live(o, "keep"), "a stream live for longer than the window is kept")
        st, _, _ = o.get("/live/keep/v.m3u8")
        check(st == 200, "and served")

        # The name is free: published again, it starts afresh.
        again = pub(o, short_ts, "gone")
        check(wait_for(lambda: live(o, "gone"), 10), "a forgotten name can be published again")
        check(wait_for(lambda: known(o, "gone") and not live(o, "gone"), 15), "offline again")
        kill(keep)
        check(wait_for(lambda: not live(o, "keep"), 15), "keep offline")
        o.stop_clean()

        # At start, folders whose media is all older than the window are not restored.
        time.sleep(WINDOW_S + 2)
        o2 = Origin(data=data, extra_conf=conf, name="origin-2")
        # Restored first (their index writes finish on the thread pool), then forgotten.
        check(wait_for(lambda: not known(o2, "gone") and not known(o2, "keep"), 3),
              "after a restart past the window, neither stream comes back")
        if known(o2, "keep"):
            log(o2.output()[-1500:])
        check(wait_for(lambda: not os.path.exists(os.path.join(data, "gone")) and
                       not os.path.exists(os.path.join(data, "keep")), 5), "their folders go")
        o2.stop_clean()
    finally:
        kill(keep)
        kill(gone)


run(main)
