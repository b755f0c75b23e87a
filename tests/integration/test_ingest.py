#!/usr/bin/env python3
"""Integration test of origin's SRT ingest (origin_srt.c, origin_demux.c, origin_ingest.c).

Runs $SW_TEST_BIN/ingest_probe on 127.0.0.1 and real publishers against it: ffmpeg (H.264+AAC,
HEVC+Opus, audio only), srt-live-transmit, random bytes, a conflicting publisher, a wrong
passphrase and a stalled (SIGSTOPped) publisher. Checks the probe's event lines (stdout) and its
log lines (stderr). Python 3 stdlib only; every wait has a deadline.
"""
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

BIN = os.environ.get("SW_TEST_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "build", "tests"))
PROBE = os.path.join(BIN, "ingest_probe")
PASS = "secretpass123"
FAILURES = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


class Probe:
    def __init__(self, port, tmp):
        self.lines = []
        self.lock = threading.Lock()
        self.err_path = os.path.join(tmp, "probe.stderr")
        self.err = open(self.err_path, "w")
        self.p = subprocess.Popen(
            [PROBE, "--listen", "127.0.0.1:%d" % port, "--latency", "120", "--stall", "2000",
             "--probe", "4000", "--rule", "live/vip=" + PASS],
            stdout=subprocess.PIPE, stderr=self.err, text=True)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            with self.lock:
                self.lines.append(line.rstrip("\n"))

    def snapshot(self):
        with self.lock:
            return list(self.lines)

    def wait(self, pred, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.snapshot():
                if pred(line):
                    return line
            if self.p.poll() is not None:
                return None
            time.sleep(0.1)
        return None

    def stderr(self):
        if not self.err.closed:
            self.err.flush()
        with open(self.err_path) as f:
            return f.read()

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
                check(False, "probe stops within 20 s of SIGTERM")
        self.t.join(5)
        self.err.close()
        return self.p.returncode


def lines_for(probe, kind, name):
    return [l for l in probe.snapshot() if l.startswith(kind + " " + name + " ")]


def last_packets(probe, name):
    """The totals of the first session published as `name`: its last PACKET line before its
    first UNPUBLISH (srt-live-transmit reconnects by itself after it is dropped, and the counts of
    that second, empty session must not stand in for the first)."""
    last = None
    for l in probe.snapshot():
        if l.startswith("PACKET " + name + " "):
            last = l
        elif l.startswith("UNPUBLISH " + name + " "):
            break
    if last is None:
        return {}
    return dict(kv.split("=") for kv in last.split()[2:])


def ffmpeg(url, video=("libx264", "640x360"), audio="aac", seconds=6, extra=(), **kw):
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re"]
    if video:
        cmd += ["-f", "lavfi", "-i", "testsrc2=size=%s:rate=30" % video[1]]
    if audio:
        cmd += ["-f", "lavfi", "-i", "sine"]
    if video:
        cmd += ["-c:v", video[0], "-g", "60"]
        if video[0] == "libx265":
            cmd += ["-preset", "ultrafast", "-x265-params", "log-level=error"]
        else:
            cmd += ["-preset", "veryfast"]
    if audio:
        cmd += ["-c:a", audio]
    cmd += list(extra) + ["-t", str(seconds), "-f", "mpegts", url]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kw)


def kill(p):
    """Kills a process and, for shell pipelines (own session), its whole group."""
    try:
        os.killpg(p.pid, signal.SIGCONT)
        os.killpg(p.pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        p.kill()
    except OSError:
        pass


def finish(p, timeout):
    try:
        _, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill(p)
        try:
            _, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            err = ""
    return p.returncode, err or ""


def pipeline(cmd):
    """A shell pipeline in its own session, so that kill() reaches srt-live-transmit too (it does
    not always exit when its input ends)."""
    return subprocess.Popen(cmd, shell=True, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def main():
    # scripts/deps.sh installs them: missing is a failure, never a silent pass.
    for tool in ("ffmpeg", "srt-live-transmit"):
        if shutil.which(tool) is None:
            print("FAIL: %s not installed" % tool)
            return 1
    if not os.path.exists(PROBE):
        print("FAIL: %s missing (build the ingest_probe target)" % PROBE)
        return 1
    port = random.randint(19000, 19499)
    tmp = tempfile.mkdtemp(prefix="sw-ingest-")
    srt = "srt://127.0.0.1:%d" % port
    probe = Probe(port, tmp)
    procs = []
    try:
        check(probe.wait(lambda l: l.startswith("READY"), 10) is not None, "probe ready")

        # Group 1: two publishers at once, a conflict, passphrases, srt-live-transmit.
        demo = ffmpeg(srt + "?streamid=#!::r=live/demo,m=publish", seconds=6)
        demo2 = ffmpeg(srt + "?streamid=live/demo2", video=("libx264", "320x180"), seconds=6)
        procs += [demo, demo2]
        check(probe.wait(lambda l: l.startswith("PUBLISH demo "), 10) is not None, "PUBLISH demo")
        check(probe.wait(lambda l: l.startswith("PUBLISH demo2 "), 10) is not None, "PUBLISH demo2")
        dup = ffmpeg(srt + "?streamid=#!::r=live/demo,m=publish", seconds=2)
        rc, _ = finish(dup, 20)
        check(rc != 0, "second publisher on live/demo fails (ffmpeg rc=%s)" % rc)
        check("SRT_REJX_CONFLICT" in probe.stderr(), "probe logs the refusal with SRT_REJX_CONFLICT")
        req = ffmpeg(srt + "?streamid=#!::r=live/play,m=request", seconds=2)
        rc, _ = finish(req, 20)
        check(rc != 0 and "SRT_REJX_BAD_MODE" in probe.stderr(), "m=request refused with SRT_REJX_BAD_MODE")
        bad = ffmpeg(srt + "?streamid=live/vip/cam&passphrase=wrongpass999", video=("libx264", "160x90"),
                     audio=None, seconds=2)
        rc, _ = finish(bad, 20)
        check(rc != 0, "wrong passphrase refused (ffmpeg rc=%s)" % rc)
        good = ffmpeg(srt + "?streamid=live/vip/ok&passphrase=" + PASS, video=("libx264", "160x90"),
                      audio=None, seconds=3)
        procs.append(good)
        check(probe.wait(lambda l: l.startswith("TRACK vip-ok video h264"), 15) is not None,
              "right passphrase on live/vip accepted (as the stream vip-ok)")
        slt = pipeline(
            "ffmpeg -hide_banner -loglevel error -nostdin -re -f lavfi -i testsrc2=size=320x180:rate=30 "
            "-f lavfi -i sine -c:v libx264 -preset veryfast -g 60 -c:a aac -t 5 -f mpegts - | "
            "srt-live-transmit -q file://con '%s?streamid=live/slt'" % srt)
        procs.append(slt)

        for name in ("demo", "demo2", "slt"):
            check(probe.wait(lambda l, n=name: l.startswith("TRACK %s video h264 " % n), 15) is not None,
                  "TRACK %s video h264" % name)
            check(probe.wait(lambda l, n=name: l.startswith("TRACK %s audio aac 44100 1 " % n), 15) is not None,
                  "TRACK %s audio aac 44100 1" % name)
        for name in ("demo", "demo2", "slt", "vip-ok"):
            u = probe.wait(lambda l, n=name: l.startswith("UNPUBLISH %s " % n), 30)
            # srt-live-transmit keeps the connection open after its input ends: stall_ms drops it.
            check(u is not None and ("peer closed" in u or (name == "slt" and "stalled" in u)),
                  "UNPUBLISH %s: %s" % (name, u))
            pk = last_packets(probe, name)
            check(int(pk.get("video", 0)) > 60 and int(pk.get("keys", 0)) >= 1,
                  "%s video packets and keyframes: %s" % (name, pk))
            if name != "vip-ok":
                check(int(pk.get("audio", 0)) > 60, "%s audio packets: %s" % (name, pk))
        check("handshake did not complete" in probe.stderr(), "probe logs the refused wrong passphrase")
        for p in (demo, demo2, good):
            finish(p, 20)
        kill(slt)
        finish(slt, 5)

        # Group 2: random bytes, audio only, HEVC + Opus.
        # Paced (one 1316-byte message every 10 ms for 4 s), like a real sender: a burst of
        # random bytes can arrive too late for TSBPD on a loaded machine and be dropped whole.
        rnd = pipeline("%s -c 'import os, sys, time\n"
                       "for _ in range(400):\n"
                       "    sys.stdout.buffer.write(os.urandom(1316)); sys.stdout.flush(); time.sleep(0.01)' | "
                       "srt-live-transmit -q file://con '%s?streamid=live/rnd'" % (sys.executable, srt))
        aud = ffmpeg(srt + "?streamid=live/aud", video=None, audio="aac", seconds=4)
        hevc = ffmpeg(srt + "?streamid=live/hevc", video=("libx265", "320x180"), audio="libopus",
                      seconds=5)
        procs += [rnd, aud, hevc]
        u = probe.wait(lambda l: l.startswith("UNPUBLISH rnd "), 20)
        check(u is not None and "not MPEG-TS" in u, "random bytes: %s" % u)
        u = probe.wait(lambda l: l.startswith("UNPUBLISH aud "), 30)
        check(u is not None, "UNPUBLISH aud: %s" % u)
        tr = lines_for(probe, "TRACK", "aud")
        check(len(tr) == 1 and tr[0].startswith("TRACK aud audio aac 44100 1"), "audio only: %s" % tr)
        check(int(last_packets(probe, "aud").get("audio", 0)) > 60, "audio-only packets flow")
        check(probe.wait(lambda l: l.startswith("TRACK hevc video hevc "), 30) is not None, "TRACK hevc video hevc")
        t = probe.wait(lambda l: l.startswith("TRACK hevc audio "), 30)
        check(t is not None and t.startswith("TRACK hevc audio opus 48000 1 "), "Opus track: %s" % t)
        check(probe.wait(lambda l: l.startswith("UNPUBLISH hevc "), 40) is not None, "UNPUBLISH hevc")
        check(int(last_packets(probe, "hevc").get("audio", 0)) > 100, "opus packets flow: %s" % last_packets(probe, "hevc"))
        for p in (aud, hevc):
            finish(p, 20)
        kill(rnd)
        finish(rnd, 5)

        # Group 3: a stalled publisher (SIGSTOP for longer than stall_ms = 2 s).
        st = ffmpeg(srt + "?streamid=live/stall", video=("libx264", "320x180"), seconds=60)
        procs.append(st)
        check(probe.wait(lambda l: l.startswith("TRACK stall video"), 15) is not None, "TRACK stall video")
        time.sleep(1)
        os.kill(st.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        u = probe.wait(lambda l: l.startswith("UNPUBLISH stall "), 15)
        dt = time.monotonic() - t0
        check(u is not None and ("stalled" in u or "timed out" in u), "stalled publisher: %s after %.1f s" % (u, dt))
        os.kill(st.pid, signal.SIGCONT)
        st.terminate()
        finish(st, 10)
    finally:
        for p in procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGCONT)
                except OSError:
                    pass
                kill(p)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    pass
        rc = probe.stop()
        err = probe.stderr()
        check(rc == 0, "probe exit code %s (not a signal)" % rc)
        check("AddressSanitizer" not in err and "runtime error" not in err, "no sanitizer report")
        check(any(l.startswith("BYE") for l in probe.snapshot()), "probe freed the ingest and exited")
        order = [l for l in probe.snapshot() if l.startswith("ORDER")]
        check(not order, "every publisher's events in order (on_publish, tracks before their "
              "packets, dts increasing per track, on_unpublish last): %s" % order[:5])
        print("---- probe stdout (first lines, no PACKET/STATS)")
        for l in [l for l in probe.snapshot() if not l.startswith(("PACKET", "STATS"))][:80]:
            print("  " + l)
        print("---- probe stderr (info lines)")
        for l in err.splitlines()[:80]:
            print("  " + l)
        shutil.rmtree(tmp, ignore_errors=True)
    if FAILURES:
        print("%d checks failed" % len(FAILURES))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
