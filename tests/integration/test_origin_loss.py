#!/usr/bin/env python3
"""A publisher on a lossy link loses nothing: the same 8 s MPEG-TS file is published once directly
and once through a UDP relay that drops 5 % of the SRT data packets on their way to the origin.
SRT retransmits them within the latency and the origin hands them to the demuxer in order, and
both runs give byte-identical CMAF segments (all but the last, which a publisher's disconnect may
cut short), no packet without timestamps, no dropped sample, no discontinuity. Run with TSBPD on
(the default, 120 ms) and off ([srt] tsbpd = no)."""
import hashlib
import json
import os
import random
import select
import socket
import threading

from swtest import run, Origin, Proc, check, log, make_ts, parse_metrics, tmpdir, wait_for


class LossyRelay:
    """127.0.0.1:port -> target, dropping `loss` of the data packets (first bit 0) that go
    towards the target; control packets and the way back pass untouched."""

    def __init__(self, target, loss, seed=7):
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.port = self.front.getsockname()[1]
        self.target, self.loss, self.rng = target, loss, random.Random(seed)
        self.dropped = self.passed = 0
        self.stopping = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        backs, peers = {}, {}
        while not self.stopping:
            r, _, _ = select.select([self.front] + list(backs), [], [], 0.2)
            for s in r:
                data, addr = s.recvfrom(2048)
                if s is self.front:
                    b = peers.get(addr)
                    if b is None:
                        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                        b.bind(("127.0.0.1", 0))
                        peers[addr], backs[b] = b, addr
                    if not data[0] & 0x80 and self.rng.random() < self.loss:
                        self.dropped += 1
                        continue
                    self.passed += 1
                    b.sendto(data, ("127.0.0.1", self.target))
                else:
                    self.front.sendto(data, backs[s])

    def stop(self):
        self.stopping = True
        self.t.join(5)


def publish(o, media, name, relay=None):
    """Publishes the file `media` as `name` at its own pace; returns (stream stats once it has
    ended, SRT losses seen, {track: [sha256 of each segment]})."""
    url = o.srt_url(f"live/{name}")
    if relay is not None:
        url = url.replace(f":{o.srt_port}?", f":{relay.port}?")
    pub = Proc(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-i", media,
                "-c", "copy", "-f", "mpegts", url], f"pub-{name}")
    lost = 0

    def stream():
        st, _, body = o.get("/api/streams")
        found = [s for s in json.loads(body)["streams"] if s["name"] == name] if st == 200 else []
        return found[0] if found else None

    def ended():
        nonlocal lost
        m = parse_metrics(o.get("/metrics")[2])
        lost = max(lost, m.get(f'shortwave_srt_packets_lost_total{{stream="{name}"}}', 0))
        s = stream()
        return s if s is not None and not s["live"] else None
    s = wait_for(ended, 30, 0.2)
    pub.stop()
    hashes = {}
    for track in ("v", "a"):  # segments 0, 1, ... as long as the origin has them
        hashes[track] = []
        while s is not None:
            st, _, body = o.get(f"/live/{name}/{track}/{len(hashes[track])}.m4s")
            if st != 200:
                break
            hashes[track].append(hashlib.sha256(body).hexdigest()[:12])
    return s, lost, hashes


def one_mode(media, conf, what):
    o = Origin(extra_conf=conf)
    clean, _, want = publish(o, media, "direct")
    relay = LossyRelay(o.srt_port, 0.05)
    lossy, lost, got = publish(o, media, "lossy", relay)
    relay.stop()
    log(f"{what}: relay: {relay.passed} data and control packets passed, {relay.dropped} data packets "
        f"dropped; the origin counted {lost:.0f} lost")
    check(clean is not None and lossy is not None, f"{what}: both publishers came and went")
    if clean is None or lossy is None:
        return
    check(relay.dropped > 50 and lost > 0,
          f"{what}: the relay dropped packets ({relay.dropped}) and SRT saw losses ({lost:.0f})")
    for s in (clean, lossy):
        log(f"{what}: {s['name']}: packets {s['packets']}, segments {s['segments']}, parts {s['parts']}, "
            f"dropped samples {s['dropped_samples']}, discontinuities {s['discontinuities']}")
    for track in ("v", "a"):
        # 8 s of media make four 2 s segments; the last may end where the disconnect cut it.
        same = want[track][:-1] == got[track][:-1] and len(want[track]) >= 4
        check(same, f"{what}: the {track} segments are byte for byte the direct run's "
                    f"({len(want[track])} segments{'' if same else f': {want[track]} and {got[track]}'})")
    check(lossy["dropped_samples"] == 0 and lossy["discontinuities"] <= 1,
          f"{what}: no sample dropped and no discontinuity but the publisher's end")
    check("without timestamps" not in o.output(), f"{what}: no packet came out of the demuxer without timestamps")
    check(o.stop_clean(), f"{what}: origin exits 0 on SIGTERM")


def main():
    media = os.path.join(tmpdir(), "in.ts")
    make_ts(media, 8, size="640x360", gop=60, extra=["-b:v", "1500k"])
    one_mode(media, "", "TSBPD on")
    one_mode(media, "[srt]\ntsbpd = no\n", "TSBPD off")

if __name__ == "__main__":
    run(main)
