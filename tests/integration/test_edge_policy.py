#!/usr/bin/env python3
"""Edge hardening (issue 12, item 10): the daemon runs the cache policy its configuration names.

cache_policy = s3fifo makes the shared cache S3-FIFO, as /metrics (read from the cache itself)
says; the default is LRU (it hits more on the live-viewer trace of bench/policy_bench.c); a bad
value stops the edge at start with the file, line and key named; --help lists the key; a reload
that changes it is logged as needing a restart and keeps the running policy."""
import os
import re
import signal
import subprocess

import swtest
from swtest import run, check, parse_metrics, wait_for
from test_edge_http import Edge, Stub, body_for


def policy(e):
    m = parse_metrics(e.get("/metrics", timeout=3)[2])
    return sorted(k for k, v in m.items() if k.startswith("shortwave_edge_cache_policy{") and v == 1)


def main():
    exe = os.path.join(swtest.BIN, "shortwave-edge")
    h = subprocess.run([exe, "--help"], capture_output=True, timeout=10).stdout.decode()
    check(re.search(r"cache_policy\s+lru\s", h) is not None, "--help lists cache_policy, default lru")

    stub = Stub()
    e = Edge(stub.url, "cache_policy = s3fifo\n", name="edge-s3fifo")
    check(policy(e) == ['shortwave_edge_cache_policy{policy="s3fifo"}'],
          f"cache_policy = s3fifo: {policy(e)}")
    st, _, body = e.get("/obj/p1")
    check(st == 200 and body == body_for("p1") and e.get("/obj/p1")[1].get("x-cache") == "HIT",
          "S3-FIFO serves and caches")
    d = Edge(stub.url, name="edge-default")
    check(policy(d) == ['shortwave_edge_cache_policy{policy="lru"}'], f"default: {policy(d)}")

    # A reload cannot swap the policy of a cache full of objects: it says so and keeps it.
    with open(d.conf, "a") as f:
        f.write("cache_policy = s3fifo\n")
    n0 = d.output().count("reloaded")
    d.signal(signal.SIGHUP)
    d.sent_signal = None
    check(wait_for(lambda: "new cache_policy=s3fifo needs a restart" in d.output(), 10),
          "a reload to s3fifo is logged as needing a restart")
    check(policy(d) == ['shortwave_edge_cache_policy{policy="lru"}'] and d.alive(),
          f"and the running policy stays: {policy(d)} ({d.output().count('reloaded') - n0} reload)")

    conf = os.path.join(swtest.tmpdir("sw-edge-bad-"), "edge.conf")
    with open(conf, "w") as f:
        f.write("origin = http://127.0.0.1:9\ncache_policy = fifo\n")
    r = subprocess.run([exe, "-c", conf, "--check-config"], capture_output=True, timeout=10)
    err = (r.stdout + r.stderr).decode()
    check(r.returncode != 0 and f"{conf}:2" in err and "cache_policy" in err and
          "lru or s3fifo" in err, f"a bad value is refused: exit {r.returncode}, {err.strip()[:120]!r}")
    check(e.stop_clean() and d.stop_clean(), "edges exit 0 on SIGTERM")
    stub.close()


if __name__ == "__main__":
    run(main)
