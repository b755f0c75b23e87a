#!/usr/bin/env python3
"""The parent tier (issue 3): child edges -> parent edges -> origin, real daemons throughout.

1. Origin (debug log: one line per request it answered), two parent edges P1 and P2, two child
   edges A and B with parents P1 and P2, two streams whose names hash (rendezvous, computed here
   the way edge/src/edge_upstream.c does) one to P1 and one to P2. 20 clients on A and 20 on B ask
   at once for a segment not yet written and a blocking playlist of each stream: the origin answers
   each object exactly once, and each stream's objects went through its own parent only (the
   parents' access logs), which fetched them from the origin (their metrics).
2. P1 SIGKILLed: A and B keep serving both streams (through P2), the bytes equal the origin's.
3. Loops: a request carrying the hop marker (x-sw-hop) to a child is fetched from its origin, not
   its parents, whatever the marker says; an edge that is its own parent answers its own hop with
   508 (counted) and its client still gets the object from the origin.
4. ffmpeg decodes 6 s of a stream through a child edge over HTTPS.
5. Stream location from Redis: origins O1 and O2 register their streams; s1 is published to O2
   only. An edge with origins O1, O2 (in that order) and one with O1 only both serve s1, through
   the registry (O1 never sees s1). A bad registry value is ignored. With Redis stopped and O1
   killed, the configured failover order still serves s1 from O2, without waiting on Redis.
"""
import concurrent.futures
import os
import re
import signal
import subprocess
import time

import swtest
from swtest import (run, parse_metrics, Origin, Proc, check, ffmpeg_publish, free_port, http_get, log,
                    parse_media_playlist, tmpdir, wait_for)
from test_edge_collapse import origin_hits

M64 = (1 << 64) - 1
CLIENTS = 20
HOPS = "shortwave_edge_hop_requests_total"
ATT_O = 'shortwave_edge_upstream_attempts_total{kind="origin"}'
ATT_P = 'shortwave_edge_upstream_attempts_total{kind="parent"}'
ANS_O = 'shortwave_edge_upstream_answers_total{kind="origin"}'
ANS_P = 'shortwave_edge_upstream_answers_total{kind="parent"}'
ANS_L = 'shortwave_edge_upstream_answers_total{kind="located"}'


def fmix64(k):
    k ^= k >> 33
    k = (k * 0xff51afd7ed558ccd) & M64
    k ^= k >> 33
    k = (k * 0xc4ceb9fe1a85ec53) & M64
    k ^= k >> 33
    return k


def hrw_hash(s):
    h = 0xcbf29ce484222325
    for c in s.encode():
        h = ((h ^ c) * 0x100000001b3) & M64
    return fmix64(h)


def hrw_pick(key, bases):
    """The parent (index into `bases`) edge_upstream.c picks for `key`."""
    kh = hrw_hash(key)
    scores = [(fmix64(kh ^ fmix64((hrw_hash(b) + 0x9e3779b97f4a7c15) & M64)), -hrw_hash(b), i)
              for i, b in enumerate(bases)]
    return max(scores)[2]


class TEdge(Proc):
    """An edge with a config file: origins, parents, an access log, optionally TLS. `self_parent`
    adds the edge's own address to its parents."""

    def __init__(self, name, origins, parents=(), self_parent=False, tls_dir=None, redis=None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        d = tmpdir("sw-tier-")
        self.alog = os.path.join(d, "access.log")
        conf = [f"listen = 127.0.0.1:{self.port}", "cache_size = 64M", "workers = 2",
                f"access_log = {self.alog}"]
        conf += [f"origin = {o}" for o in origins]
        conf += [f"parent = {p}" for p in parents]
        if self_parent:
            conf.append(f"parent = {self.base}")
        if redis:
            conf.append(f"redis = {redis}")
        if tls_dir:
            self.tls_port = free_port()
            conf += [f"tls_listen = 127.0.0.1:{self.tls_port}",
                     f"tls_cert = {os.path.join(tls_dir, 'c.pem')}",
                     f"tls_key = {os.path.join(tls_dir, 'k.pem')}"]
        self.conf = os.path.join(d, "edge.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(conf) + "\n")
        super().__init__([os.path.join(swtest.BIN, "shortwave-edge"), "-c", self.conf], name)
        ok = wait_for(lambda: http_get(self.base + "/healthz", timeout=1)[0] == 200
                      or not self.alive(), 10)
        if not ok or not self.alive():
            raise RuntimeError(f"{name} did not start:\n{self.output()}")

    def get(self, path, **kw):
        return http_get(self.base + path, **kw)

    def metrics(self):
        return parse_metrics(self.get("/metrics", timeout=3)[2])

    def logged(self, needle):
        """Access-log lines whose path contains `needle`."""
        try:
            with open(self.alog) as f:
                return [ln for ln in f if needle in ln]
        except FileNotFoundError:
            return []


def playlist(get, stream):
    st, _, body = get(f"/live/{stream}/v.m3u8", timeout=3)
    if st != 200:
        return None
    pl = parse_media_playlist(body.decode())
    return pl if len(pl["segments"]) >= 2 else None


def pick_names(parents):
    """Two stream names, the first hashing to parents[0], the second to parents[1]."""
    bases = [p.base for p in parents]
    names = {}
    for i in range(1000):
        n = f"tier{i}"
        names.setdefault(hrw_pick(n, bases), n)
        if len(names) == 2:
            return names[0], names[1]
    raise RuntimeError("no names")


def fanout(jobs):
    """Runs (edge, path) GETs all at once; returns [(edge, path, status, body)]."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(jobs)) as ex:
        futs = [(e, p, ex.submit(e.get, p, timeout=30)) for e, p in jobs]
        return [(e, p) + f.result()[0:1] + f.result()[2:3] for e, p, f in futs]


def fleet(o, parents, children, streams):
    objs = []
    for s in streams:
        pl = wait_for(lambda: playlist(o.get, s), 30, interval=0.2)
        check(pl is not None, f"origin has segments of {s}")
        msn = pl["next_msn"] + 1  # not begun yet: cold everywhere
        objs.append((s, f"/live/{s}/v/{msn}.m4s"))
        objs.append((s, f"/live/{s}/v.m3u8?_HLS_msn={msn}&_HLS_part=0"))
    log(f"{CLIENTS} clients on each child for {[p for _, p in objs]}")
    jobs = [(c, p) for _, p in objs for c in children for _ in range(CLIENTS)]
    res = fanout(jobs)
    for _, p in objs:
        st = [r[2] for r in res if r[1] == p]
        check(st == [200] * len(st) and len(st) == CLIENTS * len(children),
              f"{p}: {len(st)} answers, statuses {sorted(set(st))}")
    time.sleep(0.5)  # the origin's log line is written after its answer
    for _, p in objs:
        path, _, q = p.partition("?")
        hits = origin_hits(o, re.escape(path) + (r"\?[^\" ]*" if q else ""))
        check(len(hits) == 1, f"the origin answered {p} exactly once ({len(hits)})")
    seg_bodies = {r[3] for r in res if r[1] == objs[0][1]}  # after counting: this asks the origin
    check(len(seg_bodies) == 1 and seg_bodies == {o.get(objs[0][1])[2]},
          "every client got the origin's bytes of the segment")
    for i, s in enumerate(streams):
        mine, other = parents[i], parents[1 - i]
        check(len(mine.logged(f"/live/{s}/")) >= 2 and not other.logged(f"/live/{s}/"),
              f"{s} went through {mine.name} only ({len(mine.logged(f'/live/{s}/'))} lines "
              f"there, {len(other.logged(f'/live/{s}/'))} on {other.name})")
    for p in parents:
        m = p.metrics()
        check(m.get(HOPS, 0) >= 2 and m.get(ANS_O, 0) >= 2 and m.get(ATT_P, -1) == 0,
              f"{p.name}: hop requests {m.get(HOPS)}, answers from the origin {m.get(ANS_O)}, "
              f"attempts on parents {m.get(ATT_P)}")
    for c in children:
        m = c.metrics()
        check(m.get(ANS_P, 0) >= 4 and m.get(ATT_O, -1) == 0,
              f"{c.name}: answers from parents {m.get(ANS_P)}, attempts on the origin "
              f"{m.get(ATT_O)}")


def parent_dies(o, parents, children, streams):
    p1, p2 = parents
    log("SIGKILL to P1")
    p1.signal(signal.SIGKILL)
    p1.p.wait(5)
    for s in streams:
        pl = wait_for(lambda: playlist(o.get, s), 10, interval=0.2)
        seg = f"/live/{s}/" + pl["segments"][-1]["uri"]
        want = o.get(seg)[2]
        for c in children:
            st, _, body = c.get(seg, timeout=20)
            check(st == 200 and body == want, f"{c.name} {seg} with P1 dead: {st}, "
                  f"{'same bytes' if body == want else 'other bytes'}")
            st, _, _ = c.get(f"/live/{s}/v.m3u8", timeout=20)
            check(st == 200, f"{c.name} playlist of {s} with P1 dead: {st}")
    check(len(p2.logged(f"/live/{streams[0]}/")) > 0,
          f"{streams[0]} (hashed to P1) now goes through P2")

    # The operator drops P1 from A's parents: SIGHUP applies it, and A keeps serving through P2.
    a = children[0]
    with open(a.conf) as f:
        text = f.read().replace(f"parent = {p1.base}\n", "")
    with open(a.conf, "w") as f:
        f.write(text)
    a.signal(signal.SIGHUP)
    a.sent_signal = None
    check(wait_for(lambda: f"reload: parents now {p2.base}\n" in a.output(), 10),
          "edge-a reloads its parents: P2 only")
    path = f"/live/{streams[0]}/v.m3u8"
    seen = len(p2.logged(path))
    # edge-a's copy of the playlist (max-age=1) goes stale within a second, and P2 writes its
    # access-log line after its answer: ask again until P2 has logged a new request.
    statuses = []

    def through_p2():
        statuses.append(a.get(path, timeout=20)[0])
        return statuses[-1] == 200 and len(p2.logged(path)) > seen
    ok = wait_for(through_p2, 10, interval=0.5)
    check(ok and "needs a restart" not in a.output(),
          f"edge-a {path} after the reload: {statuses[-5:]}, through P2")
    for c in children:
        check(c.alive() and not c.died_badly(), f"{c.name} alive")


def no_loops(o, children, stream):
    a = children[0]
    pl = wait_for(lambda: playlist(o.get, stream), 10, interval=0.2)
    m0 = a.metrics()
    for i, hop in enumerate(("abc", "", "x" * 2000)):
        seg = f"/live/{stream}/v/{pl['next_msn'] + 1 + i}.m4s"  # not in any cache yet
        st, _, body = a.get(seg, headers={"x-sw-hop": hop}, timeout=20)
        check(st == 200 and body == o.get(seg)[2],
              f"hop-marked ({len(hop)} chars) {seg} answered from the origin: {st}")
    m1 = a.metrics()
    check(m1[ATT_O] - m0[ATT_O] == 3 and m1[ATT_P] == m0[ATT_P],
          f"A's fetches for 3 hop-marked requests: origin +{m1[ATT_O] - m0[ATT_O]:.0f}, "
          f"parents +{m1[ATT_P] - m0[ATT_P]:.0f}")
    check(m1[HOPS] - m0[HOPS] == 3, f"A counted them ({m1[HOPS] - m0[HOPS]:.0f})")

    log("an edge that is its own parent")
    s = TEdge("edge-self", [o.base], self_parent=True)
    seg = f"/live/{stream}/" + pl["segments"][-1]["uri"]
    t0 = time.monotonic()
    st, _, body = s.get(seg, timeout=20)
    dt = time.monotonic() - t0
    check(st == 200 and body == o.get(seg)[2] and dt < 3,
          f"self-parented edge serves {seg}: {st} in {dt * 1000:.0f} ms")
    m = s.metrics()
    check(m.get("shortwave_edge_loops_refused_total", 0) >= 1 and m.get(ANS_O, 0) >= 1,
          f"it refused its own hop ({m.get('shortwave_edge_loops_refused_total')}) and fetched "
          "from the origin")
    check(s.alive() and s.stop_clean(), "self-parented edge exits 0")


def ffmpeg_tls(edge, stream):
    url = f"https://127.0.0.1:{edge.tls_port}/live/{stream}/index.m3u8"
    r = subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-i", url,
                        "-t", "6", "-f", "null", "-"], capture_output=True, timeout=90)
    check(r.returncode == 0, f"ffmpeg decodes {url}: rc {r.returncode} {r.stderr[-300:]!r}")
    n = len(edge.logged(f"/live/{stream}/"))
    check(n >= 3, f"{edge.name} served {n} requests of {stream} (TLS included)")


def registry():
    rp, rurl, rport = swtest.redis_server()
    o1 = Origin(redis=rurl, name="origin-1", log_level="debug")
    o2 = Origin(redis=rurl, name="origin-2")
    pub = ffmpeg_publish(o2.srt_url("live/s1"), seconds=90, size="320x240", name="ffmpeg-s1")
    check(wait_for(lambda: swtest.redis_cli(rport, "HGET", "sw:stream:s1", "origin") == o2.base,
                   20), f"O2 registered s1 at {o2.base}")
    check(wait_for(lambda: playlist(o2.get, "s1"), 30, interval=0.2) is not None, "O2 has s1")
    check(o1.get("/live/s1/v.m3u8")[0] == 404, "O1 does not have s1 (404)")
    both = TEdge("edge-r12", [o1.base, o2.base], redis=rurl)
    only1 = TEdge("edge-r1", [o1.base], redis=rurl)
    time.sleep(1)  # the registry connections
    for e in (both, only1):
        st, _, body = e.get("/live/s1/v.m3u8", timeout=10)
        check(st == 200 and body.startswith(b"#EXTM3U"), f"{e.name} serves s1's playlist: {st}")
        pl = parse_media_playlist(body.decode()) if st == 200 else {"segments": []}
        if pl["segments"]:
            seg = "/live/s1/" + pl["segments"][-1]["uri"]
            st, _, b = e.get(seg, timeout=10)
            check(st == 200 and b == o2.get(seg)[2], f"{e.name} {seg} equals O2's: {st}")
        m = e.metrics()
        check(m.get(ANS_L, 0) >= 1, f"{e.name}: answers from the located origin {m.get(ANS_L)}")
    time.sleep(0.3)
    hits = origin_hits(o1, r"/live/s1/[^\" ]*")
    check(len(hits) == 1, f"O1 was asked for s1 by this test only ({hits})")

    for i, bad in enumerate(("javascript:alert(1)", "http://", "http://a/b", "ftp://x",
                             "http://x y", "http://" + "h" * 300, "")):
        swtest.redis_cli(rport, "HSET", f"sw:stream:bad{i}", "origin", bad)
        st, _, _ = only1.get(f"/live/bad{i}/v.m3u8", timeout=10)
        check(st == 404 and only1.alive(), f"bad registry value {bad[:24]!r}: the configured "
              f"origin answers ({st})")
    time.sleep(0.3)
    check(len(origin_hits(o1, r"/live/bad\d/v\.m3u8")) == 7, "O1 was asked for each of them")

    log("Redis frozen (SIGSTOP): lookups give up after 250 ms")
    rp.signal(signal.SIGSTOP)
    t0 = time.monotonic()
    st, _, _ = only1.get("/live/frozen/v.m3u8", timeout=10)
    dt = time.monotonic() - t0
    check(st == 404 and dt < 1.5, f"a frozen Redis delays a miss, never fails it: {st} in "
          f"{dt * 1000:.0f} ms")
    rp.signal(signal.SIGCONT)

    log("Redis stopped, O1 killed")
    rp.stop()
    o1.signal(signal.SIGKILL)
    o1.p.wait(5)
    time.sleep(3.5)  # the cached location expires
    t0 = time.monotonic()
    st, hdr, body = both.get("/live/s1/v.m3u8", timeout=15)
    dt = time.monotonic() - t0
    check(st == 200 and body.startswith(b"#EXTM3U") and hdr.get("x-cache") == "MISS" and dt < 3,
          f"without Redis, failover O1 -> O2 serves s1: {st} ({hdr.get('x-cache')}) in "
          f"{dt * 1000:.0f} ms")
    for e in (both, only1):
        check(e.alive() and e.stop_clean(), f"{e.name} exits 0 on SIGTERM")
    pub.stop()
    check(o2.stop_clean(), "O2 exits 0 on SIGTERM")


def main():
    o = Origin(log_level="debug")
    parents = [TEdge("edge-p1", [o.base]), TEdge("edge-p2", [o.base])]
    streams = pick_names(parents)
    log(f"streams {streams[0]} -> P1, {streams[1]} -> P2")
    pubs = [ffmpeg_publish(o.srt_url(f"live/{s}"), seconds=150, size="320x240", name=f"ffmpeg-{s}")
            for s in streams]
    certs = tmpdir("sw-tier-cert-")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj",
                    "/CN=localhost", "-days", "1", "-keyout", os.path.join(certs, "k.pem"),
                    "-out", os.path.join(certs, "c.pem")], check=True, timeout=60,
                   capture_output=True)
    pb = [p.base for p in parents]
    children = [TEdge("edge-a", [o.base], pb, tls_dir=certs), TEdge("edge-b", [o.base], pb)]
    fleet(o, parents, children, streams)
    no_loops(o, children, streams[1])
    ffmpeg_tls(children[0], streams[0])
    parent_dies(o, parents, children, streams)
    for c in children + [parents[1]]:
        check(c.stop_clean(), f"{c.name} exits 0 on SIGTERM")
    for p in pubs:
        p.stop()
    check(o.stop_clean(), "origin exits 0 on SIGTERM")
    registry()


if __name__ == "__main__":
    run(main)
