#!/usr/bin/env python3
"""The low-latency MPD (issue 5 acceptance 2, the origin's half): a dynamic MPD whose timeline ends
with the segment in progress and the next one, availabilityTimeComplete="false" and an
availabilityTimeOffset of the segment target minus one part, a ServiceDescription, UTCTiming and
well-formed XML. The segments it lists ahead of time exist as it says: the next one is held until
it begins (not 404) and streamed part by part, and its first bytes come about one part after the
start the MPD gave it; what a client streamed is byte for byte the finished segment; numbers past
what the origin could hold are 404 at once."""
import datetime
import http.client
import os
import subprocess
import threading
import time
import xml.etree.ElementTree as ET

from swtest import Origin, check, ffmpeg_publish, log, run, tmpdir, wait_for

NS = {"d": "urn:mpeg:dash:schema:mpd:2011"}


def iso_s(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def timeline(adaptation):
    """[(number, start, duration)] of an AdaptationSet's SegmentTimeline."""
    tpl = adaptation.find("d:Representation/d:SegmentTemplate", NS)
    n = int(tpl.get("startNumber"))
    out, t = [], 0
    for s in tpl.find("d:SegmentTimeline", NS).findall("d:S", NS):
        t = int(s.get("t", t))
        for _ in range(int(s.get("r", "0")) + 1):
            out.append((n, t, int(s.get("d"))))
            n += 1
            t += int(s.get("d"))
    return tpl, out


def fetch_streamed(port, path, timeout=15):
    """GET over one connection: (status, seconds until the headers, body, chunked)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    t0 = time.time()
    c.request("GET", path)
    r = c.getresponse()
    t_head = time.time()
    body = r.read()
    chunked = r.getheader("transfer-encoding", "") == "chunked"
    c.close()
    return r.status, t_head, t0, body, chunked


def main():
    o = Origin()
    pub = ffmpeg_publish(o.srt_url("live/ll"), seconds=None, size="320x240", bitrate="600k")
    check(wait_for(lambda: o.get("/live/ll/manifest.mpd", timeout=2)[0] == 200, 15), "MPD served")
    wait_for(lambda: o.get("/live/ll/v/2.m4s", timeout=1)[0] == 200, 20, 0.25)

    st, hdr, body = o.get("/live/ll/manifest.mpd")
    path = os.path.join(tmpdir("sw-dash-"), "live.mpd")
    with open(path, "wb") as f:
        f.write(body)
    r = subprocess.run(["xmllint", "--noout", path], capture_output=True, timeout=30)
    check(st == 200 and r.returncode == 0, f"the MPD is well-formed XML ({r.stderr[:200]!r})")
    mpd = ET.fromstring(body)
    check(mpd.get("type") == "dynamic" and mpd.get("minimumUpdatePeriod") is not None,
          "dynamic, with minimumUpdatePeriod")
    lat = mpd.find("d:ServiceDescription/d:Latency", NS)
    check(lat is not None and 1000 <= int(lat.get("target")) <= 3000,
          f"a ServiceDescription latency target within 1 to 3 s ({lat is not None and lat.get('target')})")
    check(mpd.find("d:UTCTiming", NS) is not None, "UTCTiming")
    v = next(a for a in mpd.iter(f"{{{NS['d']}}}AdaptationSet") if a.get("contentType") == "video")
    tpl, segs = timeline(v)
    check(tpl.get("availabilityTimeComplete") == "false" and
          abs(float(tpl.get("availabilityTimeOffset")) - (2.0 - 0.334)) < 0.002,
          f"availabilityTimeComplete false, availabilityTimeOffset a part short of 2 s "
          f"({tpl.get('availabilityTimeOffset')})")

    # The timeline ends one past the segment in progress: the last S is a segment not begun yet.
    ts = int(tpl.get("timescale"))
    ast = iso_s(mpd.get("availabilityStartTime"))
    last_n, last_t, last_d = segs[-1]
    st_prev = o.get(f"/live/ll/v/{last_n - 1}.m4s", timeout=0.2)[0]
    log(f"MPD lists video up to {last_n}, expected to start at {ast + last_t / ts:.3f} "
        f"(now {time.time():.3f})")
    check(st_prev in (0, 200), f"the one before it is in progress or done, not 404 ({st_prev})")

    # The next segment is held until it begins, then streamed as its parts arrive.
    st, t_head, t_req, seg, chunked = fetch_streamed(o.http_port, f"/live/ll/v/{last_n}.m4s")
    ahead = ast + last_t / ts
    log(f"segment {last_n}: headers {t_head - t_req:.3f} s after the request, "
        f"{t_head - ahead:+.3f} s from the start the MPD gave it; {len(seg)} bytes")
    check(st == 200 and chunked and seg[4:8] == b"moof",
          f"the next segment, asked for early, is held and streamed chunked ({st}, {len(seg)} bytes)")
    # Its first part is written about one part (0.33 s) after its start; the MPD's start is the
    # wall clock of its first sample at the origin, so the first bytes come a part after it.
    check(-0.2 <= t_head - ahead <= 1.2,
          f"its first bytes came {t_head - ahead:+.3f} s from the start the MPD gave it (0 to 1.2 s)")
    st, _, full = o.get(f"/live/ll/v/{last_n}.m4s")
    check(st == 200 and full == seg, f"what was streamed is the finished segment, byte for byte "
          f"({len(seg)} and {len(full)} bytes)")

    # The segment after the next one is held too (audio behind video's cut lists it); past that,
    # 404 at once; and a garbage number is 404.
    mpd = ET.fromstring(o.get("/live/ll/manifest.mpd")[2])
    v = next(a for a in mpd.iter(f"{{{NS['d']}}}AdaptationSet") if a.get("contentType") == "video")
    _, segs = timeline(v)
    far = segs[-1][0] + 2
    t = time.time()
    st = o.get(f"/live/ll/v/{far}.m4s", timeout=5)[0]
    check(st == 404 and time.time() - t < 1, f"a segment two past the MPD's last is 404 at once ({st})")
    for bad in ("v/99999999999999999999999.m4s", "v/-1.m4s", "v/1x.m4s", "a/18446744073709551615.m4s"):
        st = o.get(f"/live/ll/{bad}", timeout=5)[0]
        check(st == 404, f"{bad}: 404 ({st})")

    # Audio lists the same numbers, ahead of time as well.
    a = next(a for a in mpd.iter(f"{{{NS['d']}}}AdaptationSet") if a.get("contentType") == "audio")
    _, asegs = timeline(a)
    check(asegs[-1][0] == segs[-1][0], f"audio's timeline ends at the same number ({asegs[-1][0]}, "
          f"video {segs[-1][0]})")

    r = subprocess.run(["ffmpeg", "-hide_banner", "-v", "error", "-nostdin", "-i",
                        o.base + "/live/ll/manifest.mpd", "-t", "6", "-f", "null", "-"],
                       capture_output=True, timeout=90)
    err = r.stderr.decode().strip()
    check(r.returncode == 0 and err == "", f"ffmpeg decodes 6 s of the MPD ({r.returncode}) {err[:300]}")

    # A segment held before it began, when the publisher leaves: 404 at once (the next
    # publisher's first segment will take that number, in a new Period), not 503 after 7 s.
    mpd = ET.fromstring(o.get("/live/ll/manifest.mpd")[2])
    v = next(a for a in mpd.iter(f"{{{NS['d']}}}AdaptationSet") if a.get("contentType") == "video")
    held = timeline(v)[1][-1][0] + 1
    got = {}
    th = threading.Thread(target=lambda: got.update(r=fetch_streamed(o.http_port, f"/live/ll/v/{held}.m4s")))
    th.start()
    time.sleep(0.3)
    check(th.is_alive(), f"segment {held}, two past the one in progress, is held")
    t = time.time()
    pub.stop()
    th.join(20)
    st = got.get("r", (0,))[0]
    check(st == 404 and time.time() - t < 4,
          f"segment {held}, held, is 404 when the publisher leaves ({st} after {time.time() - t:.2f} s)")
    time.sleep(1)
    # Without a publisher nothing is in progress: the timeline ends with complete segments.
    st, _, body = o.get("/live/ll/manifest.mpd")
    mpd = ET.fromstring(body)
    v = next(a for a in mpd.iter(f"{{{NS['d']}}}AdaptationSet") if a.get("contentType") == "video")
    _, segs = timeline(v)
    st_last = o.get(f"/live/ll/v/{segs[-1][0]}.m4s", timeout=5)[0]
    check(st == 200 and st_last == 200, f"after the publisher left the MPD lists only what exists ({st_last})")
    check(o.alive() and not o.died_badly(), "origin still running")
    check(o.stop_clean(), "origin exits 0 on SIGTERM")


if __name__ == "__main__":
    run(main)
