#!/usr/bin/env python3
"""User-space instructions per request of shortwave-edge and h2o, counted by callgrind.

    sh scripts/build.sh && python3 bench/edge_instructions.py      # about 3 minutes

Unlike requests per second on a shared VM, the count does not move from run to run (within
about 1 %), so it shows what a change to the request path costs. It leaves out the kernel
(syscalls, TCP) and cache misses, so it is not a figure of speed: h2o serves files, and its
open/read calls happen in the kernel.

Each server runs under `valgrind --tool=callgrind` with the content of edge_bench.py (the same
origin, playlist and h2o configuration), is warmed with 2,000 requests, has its counters zeroed
(callgrind_control -z), serves --requests requests of the playlist from h2load (8 connections x
8 streams; HTTP/1.1 with 8 connections pipelining 8 deep), and is dumped (callgrind_control -d).
The figure is the instructions of every thread of every process of the server, divided by the
requests that succeeded.
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import edge_bench as eb  # noqa: E402


ORIG_SPAWN = eb.spawn


def under_callgrind(out_dir):
    """A replacement for edge_bench's spawn(): the same server, under callgrind, not pinned."""
    def spawn(cmd, cpu=None, **kw):
        return ORIG_SPAWN(["valgrind", "--tool=callgrind", "--trace-children=yes",
                           f"--callgrind-out-file={out_dir}/cg.%p"] + cmd, None, **kw)
    return spawn


def valgrind_pids(p):
    return [pid for pid in eb.session_pids(p)
            if os.path.exists(f"/proc/{pid}/cmdline")
            and b"callgrind" in open(f"/proc/{pid}/cmdline", "rb").read()]


def h2load(url, n, proto):
    args = ["h2load", "-t1", "-c8", "-m8", "-n", str(n)] + (["--h1"] if proto == "h1" else [])
    out = subprocess.run(args + [url], capture_output=True, text=True, timeout=600).stdout
    m = re.search(r"(\d+) succeeded", out)
    return int(m.group(1)) if m else 0


def count(p, url, proto, n, out_dir):
    h2load(url, 2000, proto)
    for f in glob.glob(f"{out_dir}/cg.*"):
        os.remove(f)
    pids = valgrind_pids(p)
    for pid in pids:
        subprocess.run(["callgrind_control", "-z", str(pid)], capture_output=True)
    ok = h2load(url, n, proto)
    for pid in pids:
        subprocess.run(["callgrind_control", "-d", str(pid)], capture_output=True)
    time.sleep(1)
    ir = 0
    for f in glob.glob(f"{out_dir}/cg.*.*"):  # the dumps (cg.PID.N), not the files at exit
        with open(f) as fh:
            for line in fh:
                if line.startswith(("summary:", "totals:")):
                    ir += int(line.split()[1])
                    break
    return ir / ok if ok else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(eb.ROOT, "build", "bin"))
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--servers", default="shortwave,h2o")
    ap.add_argument("--base-port", type=int, default=21500)
    a = ap.parse_args()
    missing = [t for t in ("valgrind", "callgrind_control", "h2load", "h2o", "openssl")
               if shutil.which(t) is None]
    if missing:
        print(f"missing tools: {' '.join(missing)} (apt-get install valgrind nghttp2-client h2o)")
        return 0
    a.workers_flag = True
    a.server_cpu = None
    a.tmp = tmp = tempfile.mkdtemp(prefix="sw-edge-ir-")
    try:
        with open(f"{tmp}/seg.m4s", "wb") as f:
            f.write(os.urandom(eb.SEG_BYTES))
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                        "/CN=127.0.0.1", "-keyout", f"{tmp}/key.pem", "-out", f"{tmp}/cert.pem"],
                       capture_output=True, check=True)
        origin, _, _ = eb.make_origin(a.base_port, b"x", 0)
        starts = dict(eb.SERVERS)
        print(f"user-space instructions per playlist request (callgrind, {a.requests} requests, "
              "h2load -c8 -m8)")
        figures = {}
        port = a.base_port + 10
        for name in a.servers.split(","):
            d = f"{tmp}/{name}-cg"
            os.makedirs(d)
            eb.spawn = under_callgrind(d)
            p, urls = starts[name](a, tmp, [port, port + 1, port + 2], a.base_port)
            port += 10
            if not all(eb.wait_port(int(u.rsplit(":", 1)[1]), timeout=60) for u in urls.values()):
                print(f"{name}: did not start")
                continue
            for proto in ("h1", "h2c", "tls"):
                ir = count(p, urls[proto] + "/hot/index.m3u8", proto, a.requests, d)
                figures[(name, proto)] = ir
                print(f"  {name:9} {proto:3}  " + (f"{ir:8.0f}" if ir else "n/a"), flush=True)
            os.killpg(p.pid, 9)
            p.wait()
        sw = {k[1]: v for k, v in figures.items() if k[0] == "shortwave"}
        for (name, proto), v in figures.items():
            if name != "shortwave" and v and sw.get(proto):
                print(f"  shortwave / {name} {proto}: {sw[proto] / v:.2f}x the instructions")
        origin.shutdown()
    finally:
        eb.spawn = ORIG_SPAWN
        eb.kill_all()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
