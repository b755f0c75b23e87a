"""Helpers for Shortwave's integration tests: free ports, real daemons, real publishers.

Every daemon is started in a fresh temporary folder with its own config file, waited for with a
deadline, and stopped with TERM then KILL; a daemon that died of a signal other than the one we
sent fails the test (h2o's t/Util.pm spawn_server does the same). Every loop here is bounded.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

BIN = os.environ.get("SW_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "build", "bin"))
TEST_BIN = os.environ.get("SW_TEST_BIN", os.path.join(BIN, "..", "tests"))

_failures = []
_checks = 0


def log(msg):
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def check(cond, what):
    """Records one assertion; the test goes on so that one run shows every failure."""
    global _checks
    _checks += 1
    if cond:
        log("ok   " + what)
    else:
        log("FAIL " + what)
        _failures.append(what)
    return cond


def finish():
    """Prints the tally and exits non-zero on any failure (or if nothing was checked)."""
    cleanup_all()
    passed = _checks - len(_failures)
    print(f"{passed} passed, {len(_failures)} failed", flush=True)
    if _failures or _checks == 0:
        for f in _failures:
            print("  failed:", f)
        sys.exit(1)
    sys.exit(0)


def run(main):
    """Runs a test's main(); an exception is one more failure, and daemons are always stopped."""
    try:
        main()
    except Exception as e:  # report it as a failed check, with the daemons' output
        import traceback
        traceback.print_exc()
        check(False, f"test raised {type(e).__name__}: {e}")
        for pr in _procs:
            if pr.name.startswith("origin") or pr.name.startswith("edge"):
                print(f"--- {pr.name} output (last 3000 bytes) ---\n{pr.output()[-3000:]}")
    finish()


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def free_udp_port():
    return free_port(socket.SOCK_DGRAM)


_procs = []
_tmpdirs = []


def tmpdir(prefix="sw-test-"):
    d = tempfile.mkdtemp(prefix=prefix)
    _tmpdirs.append(d)
    return d


class Proc:
    """A child process in its own process group, with its output in a log file."""

    def __init__(self, argv, name, cwd=None, stdin=None, env=None):
        self.name = name
        self.logdir = tmpdir(f"sw-{name}-")
        self.logpath = os.path.join(self.logdir, "output.log")
        self.logf = open(self.logpath, "wb")
        self.sent_signal = None
        self.argv = argv
        self.p = subprocess.Popen(argv, stdout=self.logf, stderr=subprocess.STDOUT, cwd=cwd,
                                  stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                  env=env, start_new_session=True)
        _procs.append(self)

    def alive(self):
        return self.p.poll() is None

    def output(self):
        self.logf.flush()
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def signal(self, sig):
        if self.alive():
            self.sent_signal = sig
            try:
                os.killpg(self.p.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, timeout=10):
        """TERM, then KILL after `timeout`. Returns the exit status."""
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"{self.name} ignored SIGTERM for {timeout}s; killing")
                self.signal(signal.SIGKILL)
                self.p.wait(5)
        return self.p.returncode

    def stop_clean(self, timeout=20):
        """Stops it and says whether it exited 0 by itself after SIGTERM; on anything else the
        tail of its output is printed, since that is where a sanitizer report or a crash shows."""
        killed_before = self.sent_signal
        rc = self.stop(timeout)
        if rc == 0:
            return True
        why = "killed after ignoring SIGTERM" if self.sent_signal == signal.SIGKILL else f"exit status {rc}"
        print(f"--- {self.name}: {why}; last 6000 bytes of its output ---\n{self.output()[-6000:]}",
              flush=True)
        return False

    def died_badly(self):
        """True if it exited through a signal we did not send (a crash, an abort, ASan)."""
        rc = self.p.poll()
        if rc is None:
            return False
        if rc < 0 and -rc != (self.sent_signal or 0):
            return True
        return False


def cleanup_all():
    for pr in reversed(_procs):
        pr.stop()
    for pr in _procs:
        pr.logf.close()
    if os.environ.get("SW_KEEP_TMP") is None:
        for d in _tmpdirs:
            shutil.rmtree(d, ignore_errors=True)


def wait_for(fn, timeout, interval=0.05):
    """Calls fn until it returns a true value or `timeout` seconds pass. Returns the value or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(interval)
    return None


def http_get(url, timeout=10, headers=None, method="GET"):
    """Returns (status, headers dict with lower-case names, body bytes); status 0 on a connection error."""
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()
    except (urllib.error.URLError, ConnectionError, socket.timeout, OSError):
        return 0, {}, b""


class Origin(Proc):
    def __init__(self, extra_conf="", data=None, redis=None, name="origin", srt_port=None,
                 http_port=None, log_level="info"):
        self.srt_port = srt_port or free_udp_port()
        self.http_port = http_port or free_port()
        self.data = data or tmpdir("sw-data-")
        self.base = f"http://127.0.0.1:{self.http_port}"
        confdir = tmpdir("sw-conf-")
        self.conf = os.path.join(confdir, "origin.conf")
        with open(self.conf, "w") as f:
            f.write(f"srt = 127.0.0.1:{self.srt_port}\nhttp = 127.0.0.1:{self.http_port}\n"
                    f"data = {self.data}\nlog_level = {log_level}\n")
            if redis:
                f.write(f"redis = {redis}\n")
            f.write(extra_conf)
        super().__init__([os.path.join(BIN, "shortwave-origin"), "-c", self.conf], name)
        ok = wait_for(lambda: http_get(self.base + "/healthz", timeout=1)[0] == 200 or not self.alive(), 10)
        if not ok or not self.alive():
            raise RuntimeError(f"origin did not start:\n{self.output()}")

    def srt_url(self, resource, passphrase=None, extra=""):
        u = f"srt://127.0.0.1:{self.srt_port}?streamid=#!::r={resource},m=publish"
        if passphrase:
            u += f"&passphrase={passphrase}"
        return u + extra

    def get(self, path, **kw):
        return http_get(self.base + path, **kw)


def ffmpeg_publish(url, seconds=None, size="1280x720", rate=30, gop=60, vcodec="libx264",
                   acodec="aac", audio=True, video=True, extra_in=(), extra_out=(), name="ffmpeg",
                   bitrate="2500k"):
    """An ffmpeg publisher of lavfi test media over SRT. `seconds` None runs until stopped."""
    argv = ["ffmpeg", "-hide_banner", "-loglevel", "warning", "-nostdin", "-re"]
    argv += list(extra_in)
    if video:
        argv += ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}"]
    if audio:
        argv += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    if seconds is not None:
        argv += ["-t", str(seconds)]
    if video:
        argv += ["-c:v", vcodec, "-g", str(gop), "-b:v", bitrate, "-pix_fmt", "yuv420p"]
        if vcodec == "libx264":
            argv += ["-preset", "veryfast", "-tune", "zerolatency", "-bf", "0"]
        elif vcodec == "libx265":
            argv += ["-preset", "ultrafast", "-x265-params", "log-level=error:bframes=0"]
    if audio:
        argv += ["-c:a", acodec, "-b:a", "128k"]
        if acodec == "libopus":
            argv += ["-ar", "48000"]
    argv += list(extra_out)
    argv += ["-f", "mpegts", url]
    return Proc(argv, name)


class PacedSender:
    """Sends raw bytes (an MPEG-TS file, random bytes, a corrupted stream) over SRT unchanged,
    paced at `bitrate`, through srt-live-transmit reading its stdin. ffmpeg would remux and so
    repair what a test wants to send broken."""

    def __init__(self, data, url, bitrate=2_000_000, name="slt"):
        import threading
        self.proc = Proc(["srt-live-transmit", "-q", "-chunk:1316", "file://con", url], name,
                         stdin=subprocess.PIPE)
        self.stopped = False
        self.thread = threading.Thread(target=self._pump, args=(data, bitrate), daemon=True)
        self.thread.start()

    def _pump(self, data, bitrate):
        step = 1316 * 10
        t0 = time.monotonic()
        try:
            for off in range(0, len(data), step):
                if self.stopped or not self.proc.alive():
                    break
                self.proc.p.stdin.write(data[off:off + step])
                self.proc.p.stdin.flush()
                due = t0 + (off + step) * 8 / bitrate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        except (BrokenPipeError, OSError):
            pass

    def done(self, timeout):
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def stop(self):
        self.stopped = True
        self.thread.join(5)
        return self.proc.stop()


def make_ts(path, seconds, size="320x240", rate=30, gop=30, extra=(), audio=True, video=True,
            vcodec="libx264"):
    """Writes a test MPEG-TS file with ffmpeg's lavfi sources. Returns its bytes."""
    argv = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
    if video:
        argv += ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}"]
    if audio:
        argv += ["-f", "lavfi", "-i", "sine=sample_rate=48000"]
    argv += ["-t", str(seconds)]
    if video:
        argv += ["-c:v", vcodec, "-g", str(gop), "-bf", "0", "-pix_fmt", "yuv420p"]
        if vcodec == "libx264":
            argv += ["-preset", "veryfast"]
    if audio:
        argv += ["-c:a", "aac"]
    argv += list(extra) + ["-f", "mpegts", path]
    subprocess.run(argv, check=True, timeout=120)
    with open(path, "rb") as f:
        return f.read()


def redis_server():
    """A private redis-server on a free port. Returns (Proc, url)."""
    port = free_port()
    d = tmpdir("sw-redis-")
    pr = Proc(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", d], "redis")
    ok = wait_for(lambda: _redis_ping(port), 10)
    if not ok:
        raise RuntimeError("redis-server did not start:\n" + pr.output())
    return pr, f"redis://127.0.0.1:{port}", port


def _redis_ping(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def redis_cli(port, *args):
    r = subprocess.run(["redis-cli", "-p", str(port), "--raw", *args], capture_output=True,
                       timeout=10)
    return r.stdout.decode("utf-8", "replace").strip()


def parse_metrics(body):
    """Prometheus text (bytes) as {"name{labels}": value}; a name seen twice is summed."""
    out = {}
    for ln in body.decode("utf-8", "replace").splitlines():
        if ln.startswith("#") or not ln.strip():
            continue
        k, _, v = ln.rpartition(" ")
        try:
            out[k] = out.get(k, 0) + float(v)
        except ValueError:
            pass
    return out


def parse_media_playlist(text):
    """A small LL-HLS media playlist reader, close to what hls.js does. Returns a dict."""
    out = {"segments": [], "parts": [], "tags": {}, "media_sequence": 0, "skipped": 0,
           "discontinuity_sequence": 0, "preload_hint": None}
    lines = text.splitlines()
    if not lines or lines[0].strip() != "#EXTM3U":
        raise ValueError("not an m3u8 playlist")
    msn = None
    pending = {"parts": [], "discontinuity": False, "pdt": None, "duration": None, "map": None}
    cur_map = None
    for ln in lines[1:]:
        ln = ln.strip()
        if not ln:
            continue
        if ln.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            out["media_sequence"] = int(ln.split(":", 1)[1])
            msn = out["media_sequence"]
        elif ln.startswith("#EXT-X-DISCONTINUITY-SEQUENCE:"):
            out["discontinuity_sequence"] = int(ln.split(":", 1)[1])
        elif ln.startswith("#EXT-X-SKIP:"):
            m = re.search(r"SKIPPED-SEGMENTS=(\d+)", ln)
            out["skipped"] = int(m.group(1))
            msn += out["skipped"]
        elif ln.startswith("#EXT-X-MAP:"):
            cur_map = re.search(r'URI="([^"]+)"', ln).group(1)
        elif ln == "#EXT-X-DISCONTINUITY":
            pending["discontinuity"] = True
        elif ln.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            pending["pdt"] = ln.split(":", 1)[1]
        elif ln.startswith("#EXT-X-PART:"):
            d = float(re.search(r"DURATION=([0-9.]+)", ln).group(1))
            uri = re.search(r'URI="([^"]+)"', ln).group(1)
            part = {"msn": msn, "duration": d, "uri": uri, "independent": "INDEPENDENT=YES" in ln}
            pending["parts"].append(part)
            out["parts"].append(part)
        elif ln.startswith("#EXT-X-PRELOAD-HINT:"):
            out["preload_hint"] = re.search(r'URI="([^"]+)"', ln).group(1)
        elif ln.startswith("#EXTINF:"):
            pending["duration"] = float(ln.split(":", 1)[1].split(",")[0])
        elif ln.startswith("#"):
            k, _, v = ln[1:].partition(":")
            out["tags"][k] = v
        else:
            if msn is None:
                raise ValueError("segment before EXT-X-MEDIA-SEQUENCE")
            out["segments"].append({"msn": msn, "uri": ln, "duration": pending["duration"],
                                    "parts": pending["parts"], "pdt": pending["pdt"],
                                    "discontinuity": pending["discontinuity"], "map": cur_map})
            msn += 1
            pending = {"parts": [], "discontinuity": False, "pdt": None, "duration": None}
    out["next_msn"] = msn
    out["open_parts"] = pending["parts"]  # parts of the segment being written
    return out


def ffprobe_duration(path):
    r = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of",
                        "default=nw=1:nk=1", path], capture_output=True, timeout=30)
    try:
        return float(r.stdout.decode().strip())
    except ValueError:
        return None
