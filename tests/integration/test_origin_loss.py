#!/usr/bin/env python3
"""A publisher on a lossy link loses nothing: the same 8 s of media is published once directly
and once through a UDP relay that drops 5 % of the SRT data packets on their way to the origin.
SRT retransmits them within the latency and the origin hands them to the demuxer in order, and
both runs give the same frames: no packet without timestamps, no dropped sample, no
discontinuity. Run with TSBPD on (the default, 120 ms) and off ([srt] tsbpd = no)."""
import json
import random
import select
import socket
import threading

from swtest import run, Origin, check, ffmpeg_publish, log, parse_metrics, wait_for


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


def publish(o, name, relay=None):
    """Publishes 8 s of lavfi media as `name`; returns (stream stats, SRT losses seen, log)."""
    url = o.srt_url(f"live/{name}")
    if relay is not None:
        url = url.replace(f":{o.srt_port}?", f":{relay.port}?")
    pub = ffmpeg_publish(url, seconds=8, size="640x360", bitrate="1500k", name=f"pub-{name}")
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
    return s, lost


def one_mode(conf, what):
    o = Origin(extra_conf=conf)
    clean, _ = publish(o, "direct")
    relay = LossyRelay(o.srt_port, 0.05)
    lossy, lost = publish(o, "lossy", relay)
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
    # ffmpeg's -t cuts the audio at a slightly different frame from run to run: one or two.
    check(abs(lossy["packets"] - clean["packets"]) <= 2,
          f"{what}: the lossy run demuxed as many frames as the direct one ({lossy['packets']} and "
          f"{clean['packets']}, give or take the audio frame where ffmpeg's -t cuts)")
    check(lossy["dropped_samples"] == 0 and lossy["discontinuities"] <= 1,
          f"{what}: no sample dropped and no discontinuity but the publisher's end")
    check(abs(lossy["parts"] - clean["parts"]) <= 1, f"{what}: the same parts ({lossy['parts']} and {clean['parts']})")
    check("without timestamps" not in o.output(), f"{what}: no packet came out of the demuxer without timestamps")
    check(o.stop_clean(), f"{what}: origin exits 0 on SIGTERM")


def main():
    one_mode("", "TSBPD on")
    one_mode("[srt]\ntsbpd = no\n", "TSBPD off")

if __name__ == "__main__":
    run(main)
