#!/usr/bin/env python3
"""Origin benchmark (issue acceptance 6). Prints figures; it is not a test and always exits 0.

    python3 bench/origin_bench.py            # after sh scripts/build.sh

What it runs, in one invocation, on 127.0.0.1 with ports 20000-20999 only:

1. Test media, made once into --cache-dir: 60 s of 1280x720 30 fps testsrc2, libx264 3000k CBR-ish
   (maxrate/bufsize 3000k, GOP 60, no B-frames) plus AAC 128k, in MPEG-TS. bench/srt_load.c is
   compiled there too (cc + pkg-config srt). The file is long enough that no run loops it.
2. Ratio run, for each N in --ratio-streams (default 1 and 8):
     A: shortwave-origin with N publishers (srt_load, paced at the file's bitrate);
     B: N `ffmpeg -i srt://...?mode=listener -c copy -f hls` receivers, one port each, fed by the
        same srt_load.
   After a --warmup, CPU (utime+stime of all threads, /proc/PID/stat) is measured over --seconds for
   the origin (A) and for the sum of the ffmpeg processes (B); srt_load's own CPU is excluded (shown
   for information). Figure: % of one core per stream, and the ratio origin/ffmpeg (goal <= 0.7).
3. Scale run, for each N in --scale-streams (default 150 and 200): one origin, N publishers. Reports
   origin CPU (% of all cores), /api/latency p50/p99/max (polled every second; the origin keeps the
   last 8192 frames, so each poll covers under a second at this load), the latency histogram of the
   whole window (/metrics), parts produced per stream versus expected, the gaps between
   consecutive video parts' ready times on --probe-streams streams (blocking playlist reloads and
   the origin's x-sw-part-ready-us header), SRT losses, and peak RSS (VmHWM).

4. Capacity run (--capacity, instead of 2 and 3): the generator runs under `taskset -c
   --gen-cpu` (with this script) and the origin under `taskset -c --origin-cpu`, so that the
   origin has one core of its own. It runs N = --capacity-latency (1 and 60) for /api/latency,
   then searches for the largest N whose every part is on time with no loss: every stream has its
   parts (as in 3), no probed video part later than one part + 50 ms after the one before, no SRT
   packet lost or dropped at the origin, no discontinuity or dropped sample, the generator never
   behind its schedule. Each N prints the origin's CPU by thread (/proc/PID/task/*/stat, grouped
   by name: the loop, libuv's pool, SRT:RcvQ, SRT:TsbPd x N, sw-demux x N), each core's load (so
   that a generator at the end of its core shows), and the ingest's hand-offs to the loop
   (/metrics). A time budget (--capacity-budget) bounds the search.

Every wait is bounded; every child runs in its own process group and is killed at the end; the temp
folder (origin DVR data, ffmpeg HLS output) is removed. The media cache is kept for the next run.
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1
HOST = "127.0.0.1"
PART_S = 0.334  # origin default [hls] part_duration
SEG_S = 2.0  # origin default [hls] segment_duration
LAT_GOAL_MS = PART_S * 1000 + 50

children = []  # every Popen we started, for the final cleanup


def log(msg):
    print(msg, flush=True)


def goal(ok):
    return "goal met" if ok else "goal missed"


# ---- processes ---------------------------------------------------------------------------------


def spawn(cmd, **kw):
    p = subprocess.Popen(cmd, start_new_session=True, stdin=subprocess.DEVNULL, **kw)
    children.append(p)
    return p


def stop(p, sig=signal.SIGTERM, grace=5.0):
    """Signals p's process group, then KILLs it after `grace` seconds. Returns the exit status."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout=5)
    return p.returncode


def cleanup():
    for p in children:
        try:
            stop(p, grace=2.0)
        except Exception:
            pass


def cpu_s(pid):
    """utime + stime of every thread of pid (living and exited ones), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def thread_groups(pid):
    """{thread name without its trailing digits: (threads, CPU seconds, voluntary switches)} of
    pid's living threads (libsrt names its threads SRT:RcvQ:w1, SRT:TsbPd...; the origin's demux
    threads are sw-demux)."""
    out = {}
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                st = f.read()
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                vol = [int(l.split()[1]) for l in f if l.startswith("voluntary_ctxt_switches")]
        except OSError:
            continue
        name = st[st.index("(") + 1:st.rindex(")")].rstrip("0123456789")
        if tid == str(pid):
            name = "(main: the loop)"  # libuv's pool threads keep the process's name
        fields = st.rsplit(")", 1)[1].split()
        n, cpu, sw = out.get(name, (0, 0.0, 0))
        out[name] = (n + 1, cpu + (int(fields[11]) + int(fields[12])) / CLK_TCK,
                     sw + (vol[0] if vol else 0))
    return out


def machine_snap():
    """(busy, total) jiffies of the whole machine and the CPU seconds of every process now."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    total = sum(v[:8])
    busy = total - v[3] - v[4]
    procs = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                procs[int(d)] = cpu_s(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return busy, total, procs


def core_snap():
    """{cpu index: (busy, total) jiffies} from /proc/stat's per-core lines."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            m = re.match(r"cpu(\d+) (.*)", line)
            if m:
                v = [int(x) for x in m.group(2).split()]
                out[int(m.group(1))] = (sum(v[:8]) - v[3] - v[4], sum(v[:8]))
    return out


def core_busy(c0, c1):
    """{cpu index: percent busy} between two core_snap()s."""
    return {k: (c1[k][0] - c0[k][0]) * 100.0 / max(1, c1[k][1] - c0[k][1]) for k in c1 if k in c0}


def net_rx_snap():
    """NET_RX softirqs per core so far (/proc/softirqs): where the kernel received the packets."""
    try:
        with open("/proc/softirqs") as f:
            for line in f:
                if line.strip().startswith("NET_RX:"):
                    return [int(x) for x in line.split()[1:]]
    except OSError:
        pass
    return []


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def machine_report(m0, m1, ours, seconds):
    """How busy the machine was in the window (% of one core) and how much of that was not the
    processes in `ours`: other processes, ones that came and went, and unattributed kernel work."""
    busy = (m1[0] - m0[0]) / max(1, m1[1] - m0[1]) * 100 * NCPU
    mine = sum(m1[2][pid] - m0[2][pid] for pid in ours if pid in m0[2] and pid in m1[2])
    return busy, max(0.0, busy - mine / seconds * 100)


def vm_hwm_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def udp_listening(port):
    want = ":%04X" % port
    for path in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(path) as f:
                for line in f.readlines()[1:]:
                    if line.split()[1].endswith(want):
                        return True
        except OSError:
            pass
    return False


def port_free(port):
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


class Ports:
    """Hands out free ports from 20000-20999, never the same one twice in a run."""

    def __init__(self, base):
        self.next = base

    def take(self, n=1):
        while self.next + n <= 21000:
            first, self.next = self.next, self.next + n
            if all(port_free(first + i) for i in range(n)):
                return first
        raise RuntimeError("no free ports left in 20000-20999")


# ---- HTTP --------------------------------------------------------------------------------------


def http_get(port, path, timeout=5.0):
    c = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        c.close()


def api_json(port, path):
    try:
        st, _, body = http_get(port, path)
        return json.loads(body) if st == 200 else None
    except (OSError, ValueError, http.client.HTTPException):
        return None


def latency_hist(port):
    """The cumulative latency histogram from /metrics: {le: count}."""
    try:
        st, _, body = http_get(port, "/metrics")
    except (OSError, http.client.HTTPException):
        return {}
    out = {}
    for m in re.finditer(r'shortwave_origin_part_latency_ms_bucket\{le="([^"]+)"\} (\d+)',
                         body.decode()):
        out[m.group(1)] = int(m.group(2))
    return out


# ---- setup -------------------------------------------------------------------------------------


def make_media(cache, seconds):
    path = os.path.join(cache, "bench_%ds.ts" % seconds)
    if not os.path.exists(path):
        log("making %s (%d s, 720p30 x264 3000k + AAC 128k) ..." % (path, seconds))
        tmp = path + ".part"
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y",
                        "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
                        "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000",
                        "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast",
                        "-b:v", "3000k", "-maxrate", "3000k", "-bufsize", "3000k", "-g", "60",
                        "-bf", "0", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k",
                        "-f", "mpegts", tmp], check=True, timeout=600)
        os.rename(tmp, path)
    return path


def remux_pes(path, payload):
    """The same media with ffmpeg's mpegts `-pes_payload_size PAYLOAD` (0: one AAC frame per PES
    packet; ffmpeg's default, 2930 bytes, puts 8 in one, 171 ms of audio), made once beside it."""
    out = path[:-3] + "_pes%d.ts" % payload
    if not os.path.exists(out):
        tmp = out + ".part"
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", path, "-c", "copy",
                        "-pes_payload_size", str(payload), "-f", "mpegts", tmp], check=True,
                       timeout=120)
        os.rename(tmp, out)
    return out


def build_load(cache):
    src = os.path.join(HERE, "srt_load.c")
    exe = os.path.join(cache, "srt_load")
    if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(src):
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "srt"], check=True,
                               capture_output=True, text=True, timeout=30).stdout.split()
        subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-o", exe, src] + flags, check=True,
                       timeout=120)
    return exe


class Load:
    """srt_load in the background; its stdout is collected by a thread."""

    def __init__(self, exe, media, port, n, seconds, per_port=False, spread_ms=2000, cpu=None):
        cmd = [exe, "--file", media, "--port", str(port), "--streams", str(n),
               "--seconds", str(seconds), "--spread-ms", str(spread_ms)]
        if cpu is not None:
            cmd = ["taskset", "-c", str(cpu)] + cmd
        if per_port:
            cmd.append("--per-port")
        self.lines = []
        self.p = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_connected(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.p.poll() is None:
            for line in self.lines:
                m = re.match(r"connected (\d+)/(\d+)", line)
                if m:
                    return int(m.group(1))
            time.sleep(0.1)
        return -1

    def finish(self):
        stop(self.p, signal.SIGINT, grace=10)
        self.t.join(timeout=5)
        res = {}
        for line in self.lines:
            if line.startswith("RESULT "):
                res = dict(kv.split("=", 1) for kv in line.split()[1:])
        self.problems = [ln for ln in self.lines if ln.startswith("stream ")]
        return res


def start_origin(binary, tmp, tag, ports, cpu=None):
    srt_port = ports.take(2)
    http_port = srt_port + 1
    data = os.path.join(tmp, "origin-" + tag)
    os.makedirs(data)
    logf = open(os.path.join(tmp, "origin-%s.log" % tag), "w")
    # Every publisher comes from one address here: lift the ingest limits.
    conf = os.path.join(tmp, "origin-%s.conf" % tag)
    with open(conf, "w") as f:
        f.write("[srt]\nmax_publishers = 0\nmax_per_source = 0\n")
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    p = spawn(pin + [binary, "-c", conf, "--srt", "%s:%d" % (HOST, srt_port),
                     "--http", "%s:%d" % (HOST, http_port), "--data", data, "--log-level", "warn"],
              stdout=logf, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and p.poll() is None:
        if api_json(http_port, "/api/streams") is not None and udp_listening(srt_port):
            return p, srt_port, http_port, logf.name
        time.sleep(0.1)
    raise RuntimeError("origin did not become ready; see " + logf.name)


def wait_live(http_port, n, timeout):
    """Waits until n streams are live with parts; returns how many are."""
    deadline = time.monotonic() + timeout
    live = 0
    while time.monotonic() < deadline:
        js = api_json(http_port, "/api/streams") or {}
        live = sum(1 for s in js.get("streams", []) if s.get("live") and s.get("parts", 0) > 0)
        if live >= n:
            break
        time.sleep(0.5)
    return live


def origin_log_tail(path, n=15):
    try:
        with open(path) as f:
            lines = f.readlines()
    except OSError:
        return []
    return [ln.rstrip() for ln in lines[-n:]]


# ---- ratio run ---------------------------------------------------------------------------------


def ratio_origin(a, exe, media, tmp, ports, n):
    origin, srt_port, http_port, logname = start_origin(a.origin, tmp, "ratio%d" % n, ports)
    load = Load(exe, media, srt_port, n, a.warmup + a.seconds + 30)
    out = {"n": n}
    try:
        if load.wait_connected(30) != n or wait_live(http_port, n, 20) != n:
            out["error"] = "not all %d publishers went live" % n
            return out
        time.sleep(a.warmup)
        m0 = machine_snap()
        c0, l0, t0 = cpu_s(origin.pid), cpu_s(load.p.pid), time.monotonic()
        time.sleep(a.seconds)
        c1, l1, t1 = cpu_s(origin.pid), cpu_s(load.p.pid), time.monotonic()
        m1 = machine_snap()
        out["machine"] = machine_report(m0, m1, {origin.pid, load.p.pid}, t1 - t0)
        out["cpu_pct"] = (c1 - c0) / (t1 - t0) * 100
        out["load_pct"] = (l1 - l0) / (t1 - t0) * 100
        out["latency"] = api_json(http_port, "/api/latency") or {}
        out["alive"] = origin.poll() is None
    finally:
        out["load"] = load.finish()
        rc = stop(origin)
        if rc not in (0, -signal.SIGTERM):
            out["error"] = "origin exited with %s; log: %s" % (rc, origin_log_tail(logname))
    return out


def ratio_ffmpeg(a, exe, media, tmp, ports, n):
    base = ports.take(n)
    procs, dirs = [], []
    out = {"n": n}
    load = None
    try:
        for k in range(n):
            d = os.path.join(tmp, "ffmpeg%d-%d" % (n, k))
            os.makedirs(d)
            dirs.append(d)
            url = "srt://%s:%d?mode=listener&latency=120000" % (HOST, base + k)
            procs.append(spawn(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", url,
                                "-c", "copy", "-f", "hls", "-hls_time", "2", "-hls_list_size",
                                "6", "-hls_flags", "delete_segments",
                                os.path.join(d, "index.m3u8")],
                               stdout=subprocess.DEVNULL,
                               stderr=open(os.path.join(d, "ffmpeg.log"), "w")))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(udp_listening(base + k) for k in range(n)):
            time.sleep(0.1)
        load = Load(exe, media, base, n, a.warmup + a.seconds + 30, per_port=True)
        if load.wait_connected(30) != n:
            out["error"] = "not all %d ffmpeg receivers connected" % n
            return out
        time.sleep(a.warmup)
        m0 = machine_snap()
        c0 = sum(cpu_s(p.pid) for p in procs)
        l0, t0 = cpu_s(load.p.pid), time.monotonic()
        time.sleep(a.seconds)
        c1 = sum(cpu_s(p.pid) for p in procs)
        l1, t1 = cpu_s(load.p.pid), time.monotonic()
        m1 = machine_snap()
        out["machine"] = machine_report(m0, m1, {p.pid for p in procs} | {load.p.pid}, t1 - t0)
        out["cpu_pct"] = (c1 - c0) / (t1 - t0) * 100
        out["load_pct"] = (l1 - l0) / (t1 - t0) * 100
        out["alive"] = sum(1 for p in procs if p.poll() is None)
        out["segments"] = sum(len([f for f in os.listdir(d) if f.endswith(".ts")]) for d in dirs)
    finally:
        if load is not None:
            out["load"] = load.finish()
        for p in procs:
            stop(p)
    return out


def ratio_run(a, exe, media, tmp, ports):
    log("\n== Ratio run: CPU per ingested stream, origin (SRT+demux+CMAF+LL-HLS+DASH+DVR) vs "
        "ffmpeg -c copy -f hls; %d s window after %d s warm-up" % (a.seconds, a.warmup))
    rows = []
    for n in a.ratio_streams:
        o = ratio_origin(a, exe, media, tmp, ports, n)
        f = ratio_ffmpeg(a, exe, media, tmp, ports, n)
        rows.append((n, o, f))
        for tag, r in (("origin", o), ("ffmpeg", f)):
            if "error" in r:
                log("  N=%d %s: %s" % (n, tag, r["error"]))
            ld = r.get("load", {})
            if ld.get("failed", "0") != "0" or ld.get("broken", "0") != "0":
                log("  N=%d %s: srt_load %s" % (n, tag, ld))
    log("")
    log("  %3s | %14s %14s | %14s %14s | %7s | %s" % (
        "N", "origin %core", "per stream", "ffmpeg %core", "per stream", "ratio", "goal <= 0.7x"))
    for n, o, f in rows:
        if "cpu_pct" not in o or "cpu_pct" not in f:
            log("  %3d | (incomplete)" % n)
            continue
        po, pf = o["cpu_pct"] / n, f["cpu_pct"] / n
        ratio = po / pf if pf > 0 else float("inf")
        log("  %3d | %13.2f%% %13.2f%% | %13.2f%% %13.2f%% | %6.2fx | %s" % (
            n, o["cpu_pct"], po, f["cpu_pct"], pf, ratio, goal(ratio <= 0.7)))
    for n, o, f in rows:
        lat = o.get("latency", {})
        log("  N=%d: origin /api/latency p50 %s ms, p99 %s ms, max %s ms (%s samples); srt_load "
            "CPU %.2f%% / %.2f%% (A/B, excluded); ffmpeg wrote %s segments, %s/%d alive" % (
                n, lat.get("p50_ms"), lat.get("p99_ms"), lat.get("max_ms"), lat.get("samples"),
                o.get("load_pct", 0), f.get("load_pct", 0), f.get("segments"), f.get("alive"), n))
        for tag, r in (("origin", o), ("ffmpeg", f)):
            if "machine" in r:
                log("  N=%d %s window: machine busy %.0f%% of one core (of %d); the rest of the "
                    "machine (busy minus the measured processes and srt_load) %.1f%%" % (
                        n, tag, r["machine"][0], NCPU * 100, r["machine"][1]))


# ---- scale run ---------------------------------------------------------------------------------


def parse_hint(body):
    m = re.search(rb'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="[^"]*?(\d+)\.(\d+)\.m4s"', body)
    return (int(m.group(1)), int(m.group(2))) if m else None


def last_part(body):
    found = re.findall(rb'#EXT-X-PART:[^\n]*URI="[^"]*?(\d+)\.(\d+)\.m4s"', body)
    return (int(found[-1][0]), int(found[-1][1])) if found else None


def probe_parts(http_port, name, deadline, out):
    """Follows one stream's video parts with blocking playlist reloads until deadline, recording
    the origin's ready time (x-sw-part-ready-us) of each part that was the awaited one."""
    c = None
    hint, prev_ready = None, None
    while time.monotonic() < deadline:
        try:
            if c is None:
                c = http.client.HTTPConnection(HOST, http_port, timeout=5)
            path = "/live/%s/v.m3u8" % name
            if hint is not None:
                path += "?_HLS_msn=%d&_HLS_part=%d" % hint
            c.request("GET", path)
            r = c.getresponse()
            body = r.read()
            if r.status != 200:
                out["errors"] = out.get("errors", 0) + 1
                out["why"] = "HTTP %d on %s, %.1f s before the end" % (
                    r.status, path, deadline - time.monotonic())
                time.sleep(0.1)
                continue
            ready = int(r.getheader("x-sw-part-ready-us", "0"))
            new = parse_hint(body)
            last = last_part(body)
            # The hint after a segment's last part names part P+1 of that segment; the part that
            # answers it is part 0 of the next segment, which starts on a keyframe.
            if hint is not None and last is not None and prev_ready is not None:
                if last == hint or last == (hint[0] + 1, 0):
                    out["gaps"].append((ready - prev_ready) / 1000.0)
                else:
                    out["skipped"] = out.get("skipped", 0) + 1
            hint, prev_ready = new, ready
        except (OSError, http.client.HTTPException, ValueError) as e:
            out["errors"] = out.get("errors", 0) + 1
            out["why"] = repr(e)
            if c is not None:
                c.close()
            c = None
            time.sleep(0.1)
    if c is not None:
        c.close()


def pct(sorted_vals, q):
    if not sorted_vals:
        return float("nan")
    return sorted_vals[min(len(sorted_vals) - 1, int(q * len(sorted_vals)))]


def hist_quantile(h0, h1, q):
    """The upper bound of the histogram bucket holding quantile q of the window's samples."""
    keys = sorted((k for k in h1 if k != "+Inf"), key=float) + ["+Inf"]
    total = h1.get("+Inf", 0) - h0.get("+Inf", 0)
    if total <= 0:
        return None, 0
    for k in keys:
        if h1.get(k, 0) - h0.get(k, 0) >= q * total:
            return k, total
    return "+Inf", total


def ingest_counts(port):
    """The ingest's hand-off counters from /metrics: {events, handoffs, wakeups} (empty for an
    origin without them)."""
    try:
        st, _, body = http_get(port, "/metrics")
    except (OSError, http.client.HTTPException):
        return {}
    out = {}
    for k in ("events", "handoffs", "wakeups"):
        m = re.search(r"^shortwave_origin_ingest_%s_total (\d+)" % k, body.decode(), re.M)
        if m:
            out[k] = int(m.group(1))
    return out


def trial(a, exe, media, tmp, ports, n, pin=None):
    """One origin, n publishers, one window. With pin = (generator core, origin core) the
    generator runs under `taskset -c` on one core and the origin on the other. Prints the figures
    and returns them; r["held"] is the old scale-run test (every stream has its parts), r["failed"]
    lists every way the run fell short of "every stream has its parts, no loss", and r["late"]
    says how many probed video parts came more than one part + 50 ms after the one before."""
    where = "%d cores shared" % NCPU if pin is None else \
        "generator on core %d, origin on core %d (taskset)" % pin
    log("\n== %d publishers x %.2f Mbit/s, one origin, %s; %d s window; load average %s" % (
        n, a.bitrate / 1e6, where, a.seconds, loadavg()))
    gen_cpu, origin_cpu = pin if pin is not None else (None, None)
    origin, srt_port, http_port, logname = start_origin(a.origin, tmp, "n%d-%d" % (
        n, ports.next), ports, cpu=origin_cpu)
    load = Load(exe, media, srt_port, n, a.warmup + a.seconds + 60, cpu=gen_cpu)
    r = {"n": n, "failed": []}
    ok = True
    try:
        connected = load.wait_connected(60)
        live = wait_live(http_port, n, 30)
        log("  connected %d/%d, live with parts %d/%d" % (connected, n, live, n))
        if connected != n or live != n:
            r["failed"].append("only %d of %d connected and %d live" % (connected, n, live))
        time.sleep(a.warmup)
        names = ["bench%d" % k for k in range(n)]
        probes = {}
        threads = []
        t_start = time.monotonic()
        deadline = t_start + a.seconds
        step = max(1, n // max(1, a.probe_streams))
        for name in names[::step][: a.probe_streams]:
            probes[name] = {"gaps": []}
            t = threading.Thread(target=probe_parts, args=(http_port, name, deadline,
                                                          probes[name]), daemon=True)
            t.start()
            threads.append(t)
        s0 = api_json(http_port, "/api/streams") or {}
        h0 = latency_hist(http_port)
        i0 = ingest_counts(http_port)
        m0, k0, n0 = machine_snap(), core_snap(), net_rx_snap()
        g0 = thread_groups(origin.pid)
        c0, l0, t0 = cpu_s(origin.pid), cpu_s(load.p.pid), time.monotonic()
        polls, last_parts, stall = [], {}, {}
        last_change = {}
        while time.monotonic() < deadline and origin.poll() is None:
            time.sleep(1.0)
            lat = api_json(http_port, "/api/latency")
            if lat and "p99_ms" in lat:
                polls.append(lat)
            js = api_json(http_port, "/api/streams") or {}
            now = time.monotonic()
            for s in js.get("streams", []):
                nm, parts = s["name"], s.get("parts", 0)
                if last_parts.get(nm) != parts:
                    if nm in last_change:
                        stall[nm] = max(stall.get(nm, 0), now - last_change[nm])
                    last_parts[nm], last_change[nm] = parts, now
        c1, l1, t1 = cpu_s(origin.pid), cpu_s(load.p.pid), time.monotonic()
        g1 = thread_groups(origin.pid)
        m1, k1, n1 = machine_snap(), core_snap(), net_rx_snap()
        i1 = ingest_counts(http_port)
        busy, other = machine_report(m0, m1, {origin.pid, load.p.pid, os.getpid()}, t1 - t0)
        s1 = api_json(http_port, "/api/streams") or {}
        h1 = latency_hist(http_port)
        for t in threads:
            t.join(timeout=10)
        alive = origin.poll() is None
        hwm = vm_hwm_mb(origin.pid) if alive else float("nan")
        srt_lost = srt_drop = srt_seen = 0
        if alive:
            # One /metrics request for every stream's SRT totals: one request per stream would
            # take minutes from an origin too busy to answer quickly.
            try:
                _, _, body = http_get(http_port, "/metrics", timeout=15)
                text = body.decode()
                srt_seen = len(re.findall(r'^shortwave_srt_packets_lost_total\{', text, re.M))
                srt_lost = sum(int(v) for v in re.findall(
                    r'^shortwave_srt_packets_lost_total\{stream="bench\d+"\} (\d+)', text, re.M))
                srt_drop = sum(int(v) for v in re.findall(
                    r'^shortwave_srt_packets_dropped_total\{stream="bench\d+"\} (\d+)', text,
                    re.M))
            except (OSError, http.client.HTTPException) as e:
                log("  /metrics failed: %r" % e)
    finally:
        res = load.finish()
        rc = stop(origin)
    window = t1 - t0
    cpu = (c1 - c0) / window * 100
    lcpu = (l1 - l0) / window * 100
    r.update(cpu=cpu, load_cpu=lcpu, window=window, busy=busy, other=other,
             cores=core_busy(k0, k1))
    log("  origin CPU %.1f%% of one core = %.1f%% of %d cores (%.2f%% per stream); srt_load "
        "CPU %.1f%% (not counted)" % (cpu, cpu / NCPU, NCPU, cpu / n, lcpu))
    log("  machine busy %.0f%% of one core (of %d); by core: %s; the rest of the machine (busy "
        "minus origin, srt_load and this script) %.1f%%" % (
            busy, NCPU * 100, ", ".join("cpu%d %.0f%%" % kv for kv in sorted(r["cores"].items())),
            other))
    if len(n0) == len(n1) and n1:
        log("  NET_RX softirqs per second by core (the kernel's side of receiving; on loopback it "
            "mostly runs on the sender's core): %s" % ", ".join(
                "cpu%d %.0f" % (k, (n1[k] - n0[k]) / window) for k in range(len(n1))))
    if pin is not None and r["cores"].get(gen_cpu, 0) >= 95:
        log("  the generator's core was %.0f%% busy: the generator may be the limit here" %
            r["cores"][gen_cpu])
    rows = []
    for name, (nthreads, cpu1, sw1) in g1.items():
        _, cpu0, sw0 = g0.get(name, (0, 0.0, 0))
        rows.append((name, nthreads, (cpu1 - cpu0) / window * 100, (sw1 - sw0) / window))
    rows.sort(key=lambda row: -row[2])
    r["threads"] = rows
    log("  origin CPU by thread (living threads, digits dropped from names):")
    log("    %-20s %7s %10s %12s %14s" % ("thread", "threads", "% of core", "per thread",
                                          "wake-ups/s"))
    for name, nthreads, pcore, wk in rows:
        if pcore >= 0.05 or wk >= 1:
            log("    %-20s %7d %9.1f%% %11.2f%% %14.0f" % (name, nthreads, pcore,
                                                         pcore / nthreads, wk))
    log("    %-20s %7d %9.1f%% %11s %14.0f" % ("all", sum(x[1] for x in rows),
                                               sum(x[2] for x in rows), "",
                                               sum(x[3] for x in rows)))
    if i0 and i1:
        rates = {k: (i1[k] - i0[k]) / window for k in i1 if k in i0}
        r["ingest"] = rates
        log("  ingest hand-offs to the loop: %.0f events/s, %.0f hand-offs/s (lock + "
            "uv_async_send), %.0f loop wake-ups/s" % (
                rates.get("events", 0), rates.get("handoffs", 0), rates.get("wakeups", 0)))
    log("  origin peak RSS (VmHWM) %.0f MB; origin %s" % (
        hwm, "alive" if alive else "DIED (rc %s), log: %s" % (rc, origin_log_tail(logname))))
    log("  srt_load: %s" % " ".join("%s=%s" % kv for kv in sorted(res.items())))
    for line in load.problems[:10]:
        log("  srt_load: " + line)
    log("  origin SRT receiver stats summed over %d streams: lost %d, dropped %d" % (
        srt_seen, srt_lost, srt_drop))
    r.update(srt_lost=srt_lost, srt_drop=srt_drop)
    if alive and srt_seen < n:
        r["failed"].append("SRT statistics of only %d of %d streams" % (srt_seen, n))
    if srt_lost or srt_drop:
        r["failed"].append("SRT lost %d / dropped %d packets at the origin" % (srt_lost, srt_drop))
    if res.get("snd_drop", "0") != "0" or res.get("broken", "0") != "0":
        r["failed"].append("generator: %s sender drops, %s broken connections" % (
            res.get("snd_drop"), res.get("broken")))
    if res.get("skips", "0") != "0":
        r["failed"].append("the generator fell behind its schedule %s times (its own limit)" %
                           res.get("skips"))
    if rc not in (0, -signal.SIGTERM):
        ok = False
        log("  origin exit status %s" % rc)
    if not alive or not ok:
        r["failed"].append("origin died or exited with %s" % rc)
    log_lines = origin_log_tail(logname, 10)
    if log_lines:
        log("  origin log (last lines, warn level):")
        for ln in log_lines:
            log("    " + ln)

    # Parts produced per stream (video + audio tracks) over the window versus expected.
    p0 = {s["name"]: s for s in s0.get("streams", [])}
    p1 = {s["name"]: s for s in s1.get("streams", [])}
    # Video: 6 parts per 2 s segment (5 x 0.334 s and a short one). Audio: parts of 15 AAC frames
    # (0.32 s at 48 kHz), 7 per segment (the last short), as the origin's a.m3u8 shows.
    video_per_seg = -(-SEG_S // PART_S)
    aac_frame = 1024 / 48000.0
    audio_part = int(PART_S / aac_frame) * aac_frame
    audio_per_seg = -(-SEG_S // audio_part)
    expected = window * (video_per_seg + audio_per_seg) / SEG_S
    produced, short, disc, dropped = [], [], 0, 0
    for name in names:
        if name not in p0 or name not in p1 or not p1[name].get("live"):
            short.append(name)
            produced.append(0)
            continue
        d = p1[name]["parts"] - p0[name]["parts"]
        produced.append(d)
        disc += p1[name].get("discontinuities", 0) - p0[name].get("discontinuities", 0)
        dropped += p1[name].get("dropped_samples", 0) - p0[name].get("dropped_samples", 0)
        if d < expected - 2:
            short.append(name)
    ps = sorted(produced)
    log("  parts per stream in %.1f s (video+audio): expected %.1f, min %d, median %d, max %d; "
        "streams short by more than 2: %d/%d %s" % (
            window, expected, ps[0], pct(ps, 0.5), ps[-1], len(short), n,
            goal(not short and alive)))
    log("  discontinuities during the window %d, dropped samples %d" % (disc, dropped))
    if short:
        r["failed"].append("%d of %d streams short of parts" % (len(short), n))
    if disc or dropped:
        r["failed"].append("%d discontinuities, %d dropped samples" % (disc, dropped))
    stalls = sorted(stall.values())
    if stalls:
        log("  longest time without a new part, any stream (1 s polls of /api/streams): %.1f s "
            "(median stream %.1f s)" % (stalls[-1], pct(stalls, 0.5)))

    gaps = sorted(g for p in probes.values() for g in p["gaps"])
    errs = sum(p.get("errors", 0) for p in probes.values())
    skipped = sum(p.get("skipped", 0) for p in probes.values())
    whys = sorted(set(p["why"] for p in probes.values() if "why" in p))
    if whys:
        log("  probe errors (last of each probe): " + "; ".join(whys[:4]))
    if gaps:
        late = sum(1 for g in gaps if g > PART_S * 1000 + 50)
        r["gaps"] = (pct(gaps, 0.5), pct(gaps, 0.99), gaps[-1], late, len(gaps))
        log("  video part ready-time gaps on %d probed streams (%d gaps, %d skipped, %d errors): "
            "p50 %.0f ms, p99 %.0f ms, max %.0f ms; gaps > %.0f ms: %d  %s" % (
                len(probes), len(gaps), skipped, errs, pct(gaps, 0.5), pct(gaps, 0.99), gaps[-1],
                PART_S * 1000 + 50, late, goal(late == 0)))
        if late:
            r["late"] = "%d of %d probed video parts late (gap > %.0f ms, max %.0f ms)" % (
                late, len(gaps), PART_S * 1000 + 50, gaps[-1])
    else:
        log("  video part probes: no gaps measured (%d errors)" % errs)
        r["failed"].append("no part gaps measured")

    if polls:
        p50s = sorted(p["p50_ms"] for p in polls)
        p99s = sorted(p["p99_ms"] for p in polls)
        mx = max(p["max_ms"] for p in polls)
        r["latency"] = (pct(p50s, 0.5), pct(p99s, 0.5), p99s[-1], mx)
        log("  /api/latency over %d polls (each: last 8192 frames): p50 median %.0f ms; p99 median "
            "%.0f ms, worst %.0f ms; max %.0f ms; goal p99 <= %.0f ms: %s" % (
                len(polls), pct(p50s, 0.5), pct(p99s, 0.5), p99s[-1], mx, LAT_GOAL_MS,
                goal(p99s[-1] <= LAT_GOAL_MS)))
        # By track, and for parts' last frames (the origin's own delay), when the origin has them.
        parts = []
        for key in ("video", "audio", "last_frame"):
            sub50 = sorted(p[key]["p50_ms"] for p in polls if "p50_ms" in p.get(key, {}))
            sub99 = sorted(p[key]["p99_ms"] for p in polls if "p99_ms" in p.get(key, {}))
            if sub99:
                r["latency_" + key] = (pct(sub50, 0.5), pct(sub99, 0.5), sub99[-1])
                parts.append("%s p50 %.0f, p99 %.0f (worst %.0f)" % (
                    key, pct(sub50, 0.5), pct(sub99, 0.5), sub99[-1]))
        if parts:
            log("  /api/latency by kind (medians of the polls, ms): " + "; ".join(parts))
    b50, total = hist_quantile(h0, h1, 0.5)
    b99, _ = hist_quantile(h0, h1, 0.99)
    if total:
        over350 = total - (h1.get("350", 0) - h0.get("350", 0))
        over500 = total - (h1.get("500", 0) - h0.get("500", 0))
        log("  latency histogram, whole window (%d frames): p50 <= %s ms, p99 <= %s ms bucket; "
            "frames > 350 ms %.2f%%, > 500 ms %.2f%%" % (
                total, b50, b99, over350 * 100 / total, over500 * 100 / total))
    r["held"] = ok and alive and not short
    log("  every stream has its parts, no loss: %s; every probed part on time: %s" % (
        "yes" if not r["failed"] else "no: " + "; ".join(r["failed"]),
        "no: " + r["late"] if r.get("late") else "yes"))
    return r


def scale_run(a, exe, media, tmp, ports):
    for n in a.scale_streams:
        try:
            held = trial(a, exe, media, tmp, ports, n)["held"]
        except Exception as e:  # a figure-printing script: report and go on
            log("  scale run N=%d failed: %r" % (n, e))
            held = False
        if not held and not a.keep_going:
            log("  (stopping the scale run: N=%d did not hold)" % n)
            break


# ---- capacity run ------------------------------------------------------------------------------


def capacity_run(a, exe, media, tmp, ports):
    """The generator on one core, the origin on the other: the largest N whose every stream has
    its parts with no loss (r["failed"] empty), searched within a time budget, plus the figures at
    --capacity-latency (default 1 and 60 publishers). The late video parts the probes saw are
    reported beside it but do not steer the search: on this media a part's gap also follows the
    generator's constant-rate pacing of variable-size frames (a part with a keyframe takes longer
    to arrive), so a few gaps just over one part + 50 ms occur at any N."""
    pin = (a.gen_cpu, a.origin_cpu)
    try:
        os.sched_setaffinity(0, {a.gen_cpu})  # this script's polls and probes stay off the origin's core
    except OSError as e:
        log("  cannot pin this script to core %d: %s" % (a.gen_cpu, e))
    log("\n== Capacity run: generator (srt_load) and this script on core %d, origin on core %d; "
        "%d s windows; budget %d s; load average %s" % (a.gen_cpu, a.origin_cpu, a.seconds,
                                                         a.capacity_budget, loadavg()))
    t_start = time.monotonic()
    results = {}

    def run_n(n):
        if n in results:
            return results[n]
        spent = time.monotonic() - t_start
        if spent + a.seconds + a.warmup + 20 > a.capacity_budget:
            log("  (time budget spent: N=%d not run)" % n)
            return None
        try:
            results[n] = trial(a, exe, media, tmp, ports, n, pin)
        except Exception as e:  # a figure-printing script: report and go on
            log("  N=%d failed: %r" % (n, e))
            results[n] = {"n": n, "failed": ["the run itself failed: %r" % e]}
        return results[n]

    def ok(n):
        return n in results and not results[n]["failed"]

    for n in a.capacity_latency:
        run_n(n)
    if a.capacity_at is not None:
        for n in a.capacity_at:
            run_n(n)
    else:
        # Up from the largest N that held, in steps of a quarter (at least --capacity-step), to
        # the first that does not; then halve the interval down to --capacity-step. At most
        # about 16 trials; the budget stops it sooner.
        lo = max([n for n in results if ok(n)], default=0)
        hi = min([n for n in results if not ok(n) and n > lo], default=None)
        for _ in range(16):
            if hi is None:
                n = min(a.capacity_max, max(lo + a.capacity_step,
                                            int(lo * 1.25 / a.capacity_step) * a.capacity_step))
                if lo >= a.capacity_max:
                    break
            else:
                if hi - lo <= a.capacity_step:
                    break
                n = (lo + hi) // 2
            if run_n(n) is None:
                break
            if ok(n):
                lo = n
            else:
                hi = n if hi is None else min(hi, n)
        log("\n  capacity (every stream has its parts, no loss): the largest N that held %d; the "
            "smallest that did not: %s (step %d, max %d)" % (
                lo, hi if hi is not None else "none tried", a.capacity_step, a.capacity_max))
        strict = [n for n in results if ok(n) and not results[n].get("late") and n <= lo]
        log("  of those, the largest N with no probed video part late too: %s" % (
            max(strict) if strict else "none"))
        goal_n = 75
        log("  goal: at least %d publishers on the origin's one core: %s" % (
            goal_n, goal(lo >= goal_n)))

    log("\n  summary (generator core %d, origin core %d; %d s windows):" % (pin + (a.seconds,)))
    log("  %4s | %6s | %9s | %9s | %9s | %13s | %14s | %s" % (
        "N", "origin", "per strm", "gen core", "orig core", "part gaps p99", "latency p50/99",
        "every stream has its parts, no loss | late parts"))
    for n in sorted(results):
        r = results[n]
        if "cpu" not in r:
            log("  %4d | %s" % (n, "; ".join(r["failed"])))
            continue
        g = r.get("gaps")
        lat = r.get("latency")
        log("  %4d | %5.1f%% | %8.2f%% | %8.0f%% | %8.0f%% | %13s | %14s | %s" % (
            n, r["cpu"], r["cpu"] / n, r["cores"].get(a.gen_cpu, 0),
            r["cores"].get(a.origin_cpu, 0), "%.0f ms" % g[1] if g else "-",
            "%.0f / %.0f ms" % (lat[0], lat[1]) if lat else "-",
            ("yes" if not r["failed"] else "no: " + "; ".join(r["failed"])) + " | " +
            r.get("late", "none")))
    for n in a.capacity_latency:
        r = results.get(n, {})
        lat = r.get("latency")
        if lat:
            log("  /api/latency at %d publishers: p50 %.0f ms, p99 %.0f ms (median of 1 s polls; "
                "worst poll %.0f ms); goal p99 <= %.0f ms: %s" % (
                    n, lat[0], lat[1], lat[2], LAT_GOAL_MS, goal(lat[1] <= LAT_GOAL_MS)))
        by = ["%s p50 %.0f / p99 %.0f ms" % (k, r["latency_" + k][0], r["latency_" + k][1])
              for k in ("video", "audio", "last_frame") if "latency_" + k in r]
        if by:
            log("    by kind: " + "; ".join(by))


# ---- main --------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--origin", default=os.path.join(ROOT, "build", "bin", "shortwave-origin"),
                    help="origin binary (default build/bin/shortwave-origin)")
    ap.add_argument("--cache-dir", default=os.path.join(tempfile.gettempdir(),
                                                        "shortwave-bench-cache"),
                    help="where the test media and srt_load are kept between runs")
    ap.add_argument("--seconds", type=int, default=30, help="measurement window (default 30)")
    ap.add_argument("--warmup", type=int, default=5, help="warm-up before each window (default 5)")
    ap.add_argument("--ratio-streams", type=int, nargs="*", default=[1, 8],
                    help="N for the ratio run (default 1 8; none to skip)")
    ap.add_argument("--scale-streams", type=int, nargs="*", default=[150, 200],
                    help="N for the scale run (default 150 200; none to skip)")
    ap.add_argument("--probe-streams", type=int, default=8,
                    help="streams followed part by part in the scale run (default 8)")
    ap.add_argument("--keep-going", action="store_true",
                    help="run larger scale sizes even if a smaller one did not hold")
    ap.add_argument("--port-base", type=int, default=20000, help="first port (20000-20999)")
    ap.add_argument("--pes-payload", type=int, default=None,
                    help="remux the media with this mpegts pes_payload_size (0: one AAC frame per "
                    "PES packet; default: ffmpeg's, 8 frames)")
    ap.add_argument("--capacity", action="store_true",
                    help="run the capacity search instead of the ratio and scale runs: the "
                    "generator under taskset on --gen-cpu, the origin on --origin-cpu")
    ap.add_argument("--gen-cpu", type=int, default=0, help="the generator's core (default 0)")
    ap.add_argument("--origin-cpu", type=int, default=1, help="the origin's core (default 1)")
    ap.add_argument("--capacity-latency", type=int, nargs="*", default=[1, 60],
                    help="N run first, for /api/latency (default 1 60)")
    ap.add_argument("--capacity-at", type=int, nargs="*", default=None,
                    help="run only these N after --capacity-latency (none: just those), no search")
    ap.add_argument("--capacity-step", type=int, default=5,
                    help="the search's resolution in publishers (default 5)")
    ap.add_argument("--capacity-max", type=int, default=150,
                    help="the largest N the search tries (default 150)")
    ap.add_argument("--capacity-budget", type=int, default=780,
                    help="no capacity trial starts after this many seconds (default 780)")
    a = ap.parse_args()

    if not os.access(a.origin, os.X_OK):
        log("origin binary %s not found: run sh scripts/build.sh first" % a.origin)
        return 0
    os.makedirs(a.cache_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="shortwave-bench-")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        media = make_media(a.cache_dir, 60)
        if a.pes_payload is not None:
            media = remux_pes(media, a.pes_payload)
        exe = build_load(a.cache_dir)
        size = os.path.getsize(media)
        probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration",
                                "-of", "csv=p=0", media], capture_output=True, text=True,
                               timeout=60).stdout.strip()
        dur = float(probe) if probe else 60.0
        a.bitrate = size * 8 / dur
        log("Shortwave origin benchmark, %s, %d cores (%s)" % (
            time.strftime("%Y-%m-%d %H:%M"), NCPU, cpu_model()))
        log("media: %s, %.1f s, %.2f Mbit/s total (video 3000k target + AAC 128k + TS overhead)"
            % (media, dur, a.bitrate / 1e6))
        ports = Ports(a.port_base)
        if a.capacity:
            if NCPU < 2 or shutil.which("taskset") is None:
                log("the capacity run needs two cores and taskset")
                return 0
            capacity_run(a, exe, media, tmp, ports)
            return 0
        if a.ratio_streams:
            ratio_run(a, exe, media, tmp, ports)
        if a.scale_streams:
            scale_run(a, exe, media, tmp, ports)
    finally:
        cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


if __name__ == "__main__":
    sys.exit(main())
