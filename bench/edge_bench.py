#!/usr/bin/env python3
"""Edge benchmark (issue 3, acceptance 6). Prints figures; it is not a test and always exits 0.

    sh scripts/build.sh && python3 bench/edge_bench.py        # about 20 minutes with the defaults

Servers, each pinned to one core (taskset -c --server-cpu), all on 127.0.0.1:
  shortwave   shortwave-edge --workers 1: HTTP/1.1 and h2c on one port, HTTP/2 over TLS on another
  nginx       proxy_cache (worker_processes 1, proxy_cache_lock on): HTTP/1.1, h2c, TLS ports
  varnish     malloc storage, one thread pool, +http2 (h2c by prior knowledge); it has no TLS
  h2o         serving the same files from disk (num-threads 1): it cannot cache, a ceiling
The load generators (wrk and h2load --h1 for HTTP/1.1, h2load for h2c and TLS) run pinned to
--client-cpu.

Phases:
1. Hot objects: a 730 KB segment and a small playlist, fetched twice to warm each cache, then
   --seconds of load per (server, protocol, object), --rounds times with the servers taking turns
   within a round, so that a slow spell of the machine falls on all of them. Figures, from the
   median run: GB/s (wrk's Transfer/sec, h2load's traffic rate; the range over the rounds beside
   it), requests/s, p99 latency (the median over the rounds of wrk --latency's, or, for h2load, of
   one more run in each round with its per-request log, which slows h2load itself too much to
   count throughput in the same run), the server's CPU (all its
   processes; 100 % is the one core it may use) and the TLS cipher h2load negotiated; then ratios
   of shortwave to each peer (median and range of the per-round ratios). Peak RSS (VmHWM of all
   the server's processes) at the end.
   For the h2load figures, latency at one load as well: --paced (0.25) times the lower rate of
   shortwave and the fastest peer, the same for every server, p50 and p99 over --rounds logged
   runs (h2load --rps).
2. Collapsing: --waiters clients (HTTP/1.1, one request each, all at once) ask for a new segment
   that the origin streams over --origin-ms (as a live origin does while the segment is written).
   Figures: origin requests for it (goal: 1), and the wait each client had beyond the origin's
   own time to send the object (p50, max).

The origin is a Python server in this process (one thread per request). Every child runs in its own
process group and is killed at the end; the temp folder is removed.
"""
import argparse
import http.server
import os
import re
import shutil
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HOST = "127.0.0.1"
SEG_BYTES = 730_000

PLAYLIST = "".join(
    ["#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:100\n"
     '#EXT-X-MAP:URI="v/init-0.mp4"\n']
    + [f"#EXT-X-PROGRAM-DATE-TIME:2026-11-28T10:00:{2 * i:02d}.000Z\n#EXTINF:2.000,\nv/{100 + i}.m4s\n"
       for i in range(6)])


# ---- the origin ----------------------------------------------------------------------------

class Origin(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def make_origin(port, seg, origin_ms):
    counts = {}
    lock = threading.Lock()
    spans = {}

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def send(self, body, ctype):
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "public, max-age=600")
            self.end_headers()
            return body

        def do_HEAD(self):
            self.do_GET(head=True)

        def do_GET(self, head=False):
            path = self.path.split("?")[0]
            with lock:
                counts[path] = counts.get(path, 0) + 1
            if path.startswith("/cold/"):
                # Streamed over origin_ms in 20 pieces, like a segment being written.
                self.send_response(200)
                self.send_header("Content-Type", "video/iso.segment")
                self.send_header("Content-Length", str(len(seg)))
                self.send_header("Cache-Control", "public, max-age=600")
                self.end_headers()
                t0 = time.time()
                step = len(seg) // 20 + 1
                for i in range(0, len(seg), step):
                    if i:
                        time.sleep(origin_ms / 1000 / 20)
                    self.wfile.write(seg[i:i + step])
                    self.wfile.flush()
                with lock:
                    spans[path] = (t0, time.time())
                return
            if path.endswith(".m3u8"):
                body = self.send(PLAYLIST.encode(), "application/vnd.apple.mpegurl")
            elif path.endswith(".m4s"):
                body = self.send(seg, "video/iso.segment")
            else:
                body = self.send(b"ok\n", "text/plain")
            if not head:
                self.wfile.write(body)

    srv = Origin((HOST, port), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, counts, spans


# ---- processes -------------------------------------------------------------------------------

PROCS = []


def spawn(cmd, cpu=None, **kw):
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu)] + cmd
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=kw.pop("stderr", subprocess.DEVNULL),
                         start_new_session=True, **kw)
    PROCS.append(p)
    return p


def kill_all():
    for p in PROCS:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def session_pids(p):
    """Every process in p's session (nginx and varnish fork workers)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[3]) == p.pid:  # session id
                    out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


def peak_rss_mb(p):
    total = 0
    for pid in session_pids(p):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def cpu_seconds(p):
    """utime + stime of every process in p's session, in seconds."""
    ticks = 0
    for pid in session_pids(p):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


def median_run(runs):
    """The run with the median throughput (its own p99 and CPU with it)."""
    if not runs:
        return None
    return sorted(runs, key=lambda r: r["Bps"])[len(runs) // 2]


def paired_ratios(mine, theirs):
    """Throughput and throughput-per-CPU ratios of runs of the same round (taken one after the
    other, so a slow spell of the VM falls on both): "median [min-max]" of each."""
    by_round = {r["round"]: r for r in theirs}
    thr, eff = [], []
    for m in mine:
        t = by_round.get(m["round"])
        if t is None:
            continue
        thr.append(m["Bps"] / t["Bps"])
        if m["cpu"] > 0 and t["cpu"] > 0:
            eff.append((m["Bps"] / m["cpu"]) / (t["Bps"] / t["cpu"]))

    def show(v):
        if not v:
            return "n/a"
        v.sort()
        return f"{v[len(v) // 2]:.2f}x" + (f" [{v[0]:.2f}-{v[-1]:.2f}]" if len(v) > 1 else "")
    return show(thr), show(eff)


def wait_port(port, timeout=10):
    import socket
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def curl_ok(url, h2c=False):
    cmd = ["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", url]
    if h2c:
        cmd.insert(1, "--http2-prior-knowledge")
    r = subprocess.run(cmd, capture_output=True, text=True)
    return r.stdout.strip() == "200"


# ---- servers under test ------------------------------------------------------------------------

def start_shortwave(a, tmp, ports, origin_port):
    # The origin here serves /hot/ and /cold/: forward those, two prefixes like the default
    # (/live/, /shorts/), so that the prefix check costs what it costs in production.
    with open(f"{tmp}/shortwave-edge.conf", "w") as f:
        f.write("forward_prefixes = /hot/, /cold/\n")
    p = spawn([os.path.join(a.bin, "shortwave-edge"), "-c", f"{tmp}/shortwave-edge.conf",
               "--listen", f"{HOST}:{ports[0]}",
               "--tls-listen", f"{HOST}:{ports[1]}", "--tls-cert", f"{tmp}/cert.pem",
               "--tls-key", f"{tmp}/key.pem", "--origin", f"http://{HOST}:{origin_port}",
               "--cache-size", "512000000", "--log-level", "warn"]
              + (["--workers", "1"] if a.workers_flag else []), cpu=a.server_cpu)
    return p, {"h1": f"http://{HOST}:{ports[0]}", "h2c": f"http://{HOST}:{ports[0]}",
               "tls": f"https://{HOST}:{ports[1]}"}


def start_nginx(a, tmp, ports, origin_port):
    d = f"{tmp}/nginx"
    os.makedirs(f"{d}/cache", exist_ok=True)
    conf = f"""
user root;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  http2_max_requests 10000000;
  proxy_cache_path {d}/cache keys_zone=c:64m max_size=1g inactive=1h use_temp_path=off;
  upstream origin {{ server {HOST}:{origin_port}; keepalive 16; }}
  server {{
    listen {HOST}:{ports[0]};
    listen {HOST}:{ports[1]} http2;
    listen {HOST}:{ports[2]} ssl http2;
    ssl_certificate {tmp}/cert.pem;
    ssl_certificate_key {tmp}/key.pem;
    location / {{
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache c;
      proxy_cache_lock on;
      proxy_cache_lock_timeout 10s;
      proxy_cache_valid 200 10m;
    }}
  }}
}}
"""
    with open(f"{d}/nginx.conf", "w") as f:
        f.write(conf)
    p = spawn(["nginx", "-p", d, "-c", f"{d}/nginx.conf", "-g", "daemon off;"], cpu=a.server_cpu)
    return p, {"h1": f"http://{HOST}:{ports[0]}", "h2c": f"http://{HOST}:{ports[1]}",
               "tls": f"https://{HOST}:{ports[2]}"}


def start_varnish(a, tmp, ports, origin_port):
    d = f"{tmp}/varnish"
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
    p = spawn(["varnishd", "-F", "-n", d, "-a", f"{HOST}:{ports[0]}", "-b", f"{HOST}:{origin_port}",
               "-s", "malloc,1g", "-p", "feature=+http2", "-p", "thread_pools=1",
               "-p", "default_ttl=600"], cpu=a.server_cpu)
    return p, {"h1": f"http://{HOST}:{ports[0]}", "h2c": f"http://{HOST}:{ports[0]}"}


def start_h2o(a, tmp, ports, origin_port):
    d = f"{tmp}/h2o"
    os.makedirs(f"{d}/root/hot", exist_ok=True)
    shutil.copy(f"{tmp}/seg.m4s", f"{d}/root/hot/seg.m4s")
    with open(f"{d}/root/hot/index.m3u8", "w") as f:
        f.write(PLAYLIST)
    conf = f"""
num-threads: 1
user: root
listen:
  host: {HOST}
  port: {ports[0]}
listen:
  host: {HOST}
  port: {ports[1]}
  ssl:
    certificate-file: {tmp}/cert.pem
    key-file: {tmp}/key.pem
    ocsp-update-interval: 0
hosts:
  default:
    paths:
      /:
        file.dir: {d}/root
"""
    with open(f"{d}/h2o.conf", "w") as f:
        f.write(conf)
    p = spawn(["h2o", "-c", f"{d}/h2o.conf"], cpu=a.server_cpu,
              stderr=open(f"{d}/stderr.log", "w"))
    return p, {"h1": f"http://{HOST}:{ports[0]}", "h2c": f"http://{HOST}:{ports[0]}",
               "tls": f"https://{HOST}:{ports[1]}"}


SERVERS = [("shortwave", start_shortwave), ("nginx", start_nginx), ("varnish", start_varnish),
           ("h2o", start_h2o)]


# ---- load ------------------------------------------------------------------------------------

def unit_bytes(v, u):
    return float(v) * {"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "KiB": 1024,
                       "MiB": 1024 ** 2, "GiB": 1024 ** 3}.get(u, 1)


def run_wrk(a, url):
    r = subprocess.run(["taskset", "-c", str(a.client_cpu), "wrk", "-t1", f"-c{a.conns}",
                        f"-d{a.seconds}s", "--latency", url], capture_output=True, text=True,
                       timeout=a.seconds + 30)
    out = r.stdout
    m = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if not m or not rps:
        return None
    lat = None
    if p99:
        lat = float(p99.group(1)) * {"us": 1e-3, "ms": 1, "s": 1e3}[p99.group(2)]
    return {"Bps": unit_bytes(m.group(1), m.group(2)),
            "rps": float(rps.group(1)), "p99_ms": lat, "errors": int(errs.group(1)) if errs else 0}


def quantile(sorted_values, f):
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * f))]


def run_h2load(a, url, log=None, h1=False, rate=None):
    """One h2load run. With `log`, h2load writes a line per request, from which p99 comes; that
    costs the load generator about half its rate on small objects, so throughput is taken from
    runs without it. With `h1`, HTTP/1.1 on --conns connections, one request at a time each. With
    `rate`, h2load sends that many requests per second in all (--rps per connection)."""
    conns = ["--h1", f"-c{a.conns}", "-m1"] if h1 else [f"-c{a.h2_conns}", f"-m{a.h2_streams}"]
    rps = ["--rps", f"{rate / (a.conns if h1 else a.h2_conns):.3f}"] if rate else []
    r = subprocess.run(["taskset", "-c", str(a.client_cpu), "h2load", "-t1"] + conns + rps
                       + ["-D", str(a.seconds)]
                       + (["--log-file", log] if log else []) + [url],
                       capture_output=True, text=True, timeout=a.seconds + 60)
    out = r.stdout
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s, ([\d.]+)(\w+)/s", out)
    ok = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed", out)
    if not m or not ok or int(ok.group(1)) == 0:
        return None
    durs = []
    try:
        with open(log or os.devnull) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[1] == "200":
                    durs.append(int(parts[2]) / 1000)
    except OSError:
        pass
    durs.sort()
    cipher = re.search(r"Cipher: (\S+)", out)
    return {"Bps": unit_bytes(m.group(2), m.group(3)), "rps": float(m.group(1)),
            "p99_ms": quantile(durs, 0.99), "p50_ms": quantile(durs, 0.5),
            "errors": int(ok.group(2)), "cipher": cipher.group(1) if cipher else None}


# h1: HTTP/1.1 with wrk; h1l: HTTP/1.1 with h2load --h1, a lighter client (wrk reads 8 KB at a
# time and is the limit on segments for every server); h2c; tls: HTTP/2 over TLS.
PROTOS = ("h1", "h1l", "h2c", "tls")


def url_of(urls, proto):
    return urls.get("h1" if proto == "h1l" else proto)


def paced(a, running, results, obj, proto, path):
    """Latency at one load for every server: --paced times the lower of shortwave's median rate
    on this figure and the fastest peer's, so that neither is saturated (a slower peer may be);
    p50 and p99 are the medians over --rounds runs with h2load's per-request log, the servers
    taking turns. h2load sends paced requests in bursts, so latency here is higher than at
    full load: compare servers, not the two figures."""
    rate_of = {n: results[n][(obj, proto)]["rps"] for n, _, _ in running
               if results[n].get((obj, proto))}
    peers = [r for n, r in rate_of.items() if n != "shortwave"]
    if "shortwave" not in rate_of or not peers:
        return
    rate = max(1.0, a.paced * min(rate_of["shortwave"], max(peers)))
    runs = {name: [] for name, _, _ in running}
    for rnd in range(a.rounds):
        for name, p, urls in running:
            if url_of(urls, proto) is None:
                continue
            r = run_h2load(a, url_of(urls, proto) + path,
                           f"{a.tmp}/{name}-{proto}-{obj}-paced-{rnd}.log", h1=proto == "h1l",
                           rate=rate)
            if r is not None and r["p99_ms"] is not None:
                runs[name].append(r)
    for name, _, _ in running:
        rs = runs[name]
        if not rs:
            continue
        p50 = quantile(sorted(x["p50_ms"] for x in rs), 0.5)
        p99s = sorted(x["p99_ms"] for x in rs)
        p99 = quantile(p99s, 0.5)
        results[name][(obj, proto, "paced")] = {"rate": rate, "p50_ms": p50, "p99_ms": p99}
        print(f"  {name:9} {obj:8} {proto:4}  paced at {rate:,.0f} req/s: p50 {p50:.2f} ms, "
              f"p99 {p99:.2f} ms [{p99s[0]:.2f}-{p99s[-1]:.2f}]", flush=True)


def paced_cell(mine, theirs, obj, proto):
    m, t = mine.get((obj, proto, "paced")), theirs.get((obj, proto, "paced"))
    if not m or not t:
        return ""
    return f"; at {m['rate']:,.0f} req/s {m['p99_ms']:.2f} vs {t['p99_ms']:.2f} ms"


# ---- the run ---------------------------------------------------------------------------------

def fmt(r, key):
    if r is None:
        return "n/a"
    if key == "Bps":
        return f"{r['Bps'] / 1e9:.2f} GB/s"
    if key == "rps":
        return f"{r['rps']:.0f} req/s"
    return f"{r['p99_ms']:.2f} ms" if r.get("p99_ms") is not None else "n/a"


def collapse(a, name, urls, counts, spans, n_run):
    """--waiters HTTP/1.1 clients at once on a cold segment; returns (origin requests, waits)."""
    path = f"/cold/{name}-{n_run}.m4s"
    log = f"{a.tmp}/collapse-{name}.log"
    r = subprocess.run(["taskset", "-c", str(a.client_cpu), "h2load", "--h1", "-t1",
                        f"-c{a.waiters}", f"-n{a.waiters}", "--log-file", log, urls["h1"] + path],
                       capture_output=True, text=True, timeout=120)
    ok = re.search(r"(\d+) succeeded", r.stdout)
    ends = []
    time.sleep(0.2)  # the origin thread records its span just after its last write
    with open(log) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[1] == "200":
                ends.append((int(parts[0]) + int(parts[2])) / 1e6)
    span = spans.get(path)
    if not span or not ends:
        return counts.get(path, 0), None, int(ok.group(1)) if ok else 0
    waits = sorted(max(0.0, e - span[1]) * 1000 for e in ends)
    return counts.get(path, 0), waits, int(ok.group(1)) if ok else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--seconds", type=int, default=5, help="load per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="measurements per figure (median kept)")
    ap.add_argument("--conns", type=int, default=32, help="wrk connections")
    ap.add_argument("--h2-conns", type=int, default=8)
    ap.add_argument("--h2-streams", type=int, default=8)
    ap.add_argument("--waiters", type=int, default=200, help="clients in the collapsing case")
    ap.add_argument("--origin-ms", type=int, default=1000, help="origin's time to send a cold segment")
    ap.add_argument("--server-cpu", type=int, default=1)
    ap.add_argument("--client-cpu", type=int, default=0)
    ap.add_argument("--servers", default="shortwave,nginx,varnish,h2o")
    ap.add_argument("--base-port", type=int, default=21000)
    ap.add_argument("--paced", type=float, default=0.25,
                    help="latency at one load for all servers: this fraction of the lower rate of "
                    "shortwave and the fastest peer on the figure (h2load figures only; 0: skip)")
    ap.add_argument("--figures", default="",
                    help="only these, e.g. segment:h1,playlist:tls (objects segment and playlist, "
                    "protocols h1, h1l, h2c and tls; default all); 'none' skips to the collapsing case")
    a = ap.parse_args()
    wanted = set(a.figures.split(",")) if a.figures else None

    need = ["wrk", "h2load", "nginx", "varnishd", "h2o", "taskset", "openssl", "curl"]
    missing = [t for t in need if shutil.which(t) is None and not os.path.exists(f"/usr/sbin/{t}")]
    if missing:
        print(f"missing tools: {' '.join(missing)} (apt-get install wrk nghttp2-client nginx-light "
              "varnish h2o util-linux openssl curl)")
        return 0
    help_out = subprocess.run([os.path.join(a.bin, "shortwave-edge"), "--help"], capture_output=True,
                              text=True).stdout
    a.workers_flag = "--workers" in help_out
    a.tmp = tempfile.mkdtemp(prefix="sw-edge-bench-")
    tmp = a.tmp
    try:
        seg = os.urandom(SEG_BYTES)
        with open(f"{tmp}/seg.m4s", "wb") as f:
            f.write(seg)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                        "/CN=127.0.0.1", "-keyout", f"{tmp}/key.pem", "-out", f"{tmp}/cert.pem"],
                       capture_output=True, check=True)
        origin_port = a.base_port
        origin, counts, spans = make_origin(origin_port, seg, a.origin_ms)
        print(f"edge benchmark: server on cpu {a.server_cpu}, load on cpu {a.client_cpu}, "
              f"{a.seconds} s per figure, hot segment {SEG_BYTES} B, playlist {len(PLAYLIST)} B")
        results = {}
        running = []  # (name, process, urls)
        port = a.base_port + 10
        for name, start in SERVERS:
            if name not in a.servers.split(","):
                continue
            ports = [port, port + 1, port + 2]
            port += 10
            p, urls = start(a, tmp, ports, origin_port)
            if not all(wait_port(int(u.rsplit(":", 1)[1])) for u in urls.values()):
                print(f"{name}: did not start")
                continue
            running.append((name, p, urls))
            results[name] = {}
        # Every figure is taken --rounds times, the servers in turn within a round, so that a
        # slow spell of the machine falls on all of them; the median is kept.
        for obj, path in (("segment", "/hot/seg.m4s"), ("playlist", "/hot/index.m3u8")):
            for proto in PROTOS:
                if wanted is not None and f"{obj}:{proto}" not in wanted:
                    continue
                runs = {name: [] for name, _, _ in running}
                for name, p, urls in running:
                    if url_of(urls, proto) is None:
                        continue
                    # Warm the cache (twice: Varnish and nginx keep the second copy).
                    for _ in range(2):
                        curl_ok(url_of(urls, proto) + path, h2c=proto == "h2c")
                for rnd in range(a.rounds):
                    for name, p, urls in running:
                        if url_of(urls, proto) is None:
                            continue
                        u = url_of(urls, proto) + path
                        t0 = cpu_seconds(p)
                        if proto == "h1":
                            r = run_wrk(a, u)
                        else:
                            r = run_h2load(a, u, h1=proto == "h1l")
                        if r is not None:
                            r["cpu"] = (cpu_seconds(p) - t0) / a.seconds
                            r["round"] = rnd
                            if proto != "h1":  # p99 from a run with h2load's log, in every round
                                lat = run_h2load(a, u, f"{tmp}/{name}-{proto}-{obj}-{rnd}.log",
                                                 h1=proto == "h1l")
                                r["p99_ms"] = lat["p99_ms"] if lat else None
                            runs[name].append(r)
                for name, _, urls in running:
                    r = median_run(runs[name])
                    if r is not None:
                        # p99: the median over the rounds (a single run's moves by half on this
                        # kind of VM), its range kept for the table.
                        r = dict(r, runs=runs[name])
                        p99s = sorted(x["p99_ms"] for x in runs[name] if x.get("p99_ms") is not None)
                        r["p99_ms"] = quantile(p99s, 0.5)
                        r["p99_range"] = (p99s[0], p99s[-1]) if p99s else None
                    results[name][(obj, proto)] = r
                    if r is None:
                        continue
                    spread = (f"  [{min(x['Bps'] for x in runs[name]) / 1e9:.2f}-"
                              f"{max(x['Bps'] for x in runs[name]) / 1e9:.2f}]")
                    p99r = (f" [{r['p99_range'][0]:.2f}-{r['p99_range'][1]:.2f}]"
                            if r.get("p99_range") else "")
                    print(f"  {name:9} {obj:8} {proto:4}  {fmt(r, 'Bps'):>11}{spread:14} "
                          f"{fmt(r, 'rps'):>13}  p99 {fmt(r, 'p99'):>9}{p99r:16}  "
                          f"server {r['cpu'] * 100:3.0f}% cpu"
                          + (f"  {r['cipher']}" if r.get("cipher") else "")
                          + (f"  errors {r['errors']}" if r["errors"] else ""), flush=True)
                if proto != "h1" and a.paced > 0:
                    paced(a, running, results, obj, proto, path)
        for name, p, urls in running:
            res = results[name]
            if name != "h2o":
                n, waits, okc = collapse(a, name, urls, counts, spans, 0)
                res["collapse"] = (n, waits, okc)
                if waits:
                    print(f"  {name:9} collapsing: {a.waiters} waiters ({okc} ok), origin requests {n}, "
                          f"added wait p50 {waits[len(waits) // 2]:.0f} ms, max {waits[-1]:.0f} ms",
                          flush=True)
                else:
                    print(f"  {name:9} collapsing: origin requests {n}, {okc} ok, no timing", flush=True)
            res["rss"] = peak_rss_mb(p)
            print(f"  {name:9} peak RSS {res['rss']:.1f} MB", flush=True)
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()

        sw = results.get("shortwave")
        if sw:
            print("\nratios, shortwave / peer, of runs of the same round, median [range] (throughput, "
                  ">1 is faster; then\nthroughput per second of server CPU, which counts for a "
                  "server that did not fill its core: the\nload generator was the limit), and p99 "
                  "latency:")
            for obj in ("segment", "playlist"):
                for proto in PROTOS:
                    if wanted is not None and f"{obj}:{proto}" not in wanted:
                        continue
                    mine = sw.get((obj, proto))
                    cells = []
                    for peer in ("nginx", "varnish", "h2o"):
                        theirs = results.get(peer, {}).get((obj, proto))
                        if mine and theirs:
                            thr, eff = paired_ratios(mine["runs"], theirs["runs"])
                            cells.append(f"{peer} {thr}, per CPU {eff} "
                                         f"(p99 {fmt(mine, 'p99')} vs {fmt(theirs, 'p99')}"
                                         + paced_cell(sw, results.get(peer, {}), obj, proto) + ")")
                    print(f"  {obj:8} {proto:4}  " + ("; ".join(cells) if cells else "n/a"))
        origin.shutdown()
    finally:
        kill_all()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
