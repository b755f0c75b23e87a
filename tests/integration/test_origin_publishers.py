#!/usr/bin/env python3
"""Origin acceptance 3: two publishers on different names at once, one with a passphrase; a wrong
passphrase is rejected; a second publisher on a live name is refused with a reason; srt-live-transmit
works as a publisher as well as ffmpeg. Also the control API, the metrics and DELETE."""
import json
import subprocess
import time

from swtest import run, Origin, Proc, check, ffmpeg_publish, log, wait_for

PASS = "correct-horse-battery"


def served(o, name):
    return all(o.get(f"/live/{name}/{f}", timeout=2)[0] == 200 for f in ("index.m3u8", "v.m3u8"))


def main():
    o = Origin(extra_conf=f"[prefix live/vip]\npassphrase = {PASS}\nkey_length = 32\n")
    a = ffmpeg_publish(o.srt_url("live/one"), seconds=60, size="640x360", name="pub-one")
    b = ffmpeg_publish(o.srt_url("live/vip-two", passphrase=PASS, extra="&pbkeylen=32"),
                       seconds=60, size="640x360", name="pub-two")
    check(wait_for(lambda: served(o, "one") and served(o, "vip-two"), 15),
          "two publishers on different names are served at once")

    # Wrong passphrase, and none at all, on a protected prefix: refused, never served.
    c = ffmpeg_publish(o.srt_url("live/vip-three", passphrase="wrong-passphrase-1", extra="&pbkeylen=32"),
                       seconds=20, size="320x240", name="pub-wrong")
    d = ffmpeg_publish(o.srt_url("live/vip-four"), seconds=20, size="320x240", name="pub-none")
    check(wait_for(lambda: not c.alive(), 15) and c.p.returncode != 0,
          "publisher with a wrong passphrase is rejected (ffmpeg fails)")
    check(wait_for(lambda: not d.alive(), 15) and d.p.returncode != 0,
          "publisher without the passphrase is rejected")
    check(o.get("/api/streams/vip-three")[0] == 404 and o.get("/api/streams/vip-four")[0] == 404,
          "rejected publishers never become streams")

    # A refused handshake frees its name at once: a wrong passphrase, then 0.3 s later (well
    # inside the 3 s a reservation whose handshake never completes is kept) the right one.
    w = ffmpeg_publish(o.srt_url("live/vip-five", passphrase="wrong-passphrase-2", extra="&pbkeylen=32"),
                       seconds=20, size="320x240", name="pub-wrong-5")
    time.sleep(0.3)
    t = time.monotonic()
    r5 = ffmpeg_publish(o.srt_url("live/vip-five", passphrase=PASS, extra="&pbkeylen=32"),
                        seconds=30, size="320x240", name="pub-right-5")
    ok = wait_for(lambda: served(o, "vip-five") or not r5.alive(), 15) and r5.alive()
    check(ok, f"the right passphrase right after a wrong one is not refused: served "
          f"{time.monotonic() - t:.2f} s after it started (alive {r5.alive()})")
    check(wait_for(lambda: not w.alive(), 15) and w.p.returncode != 0, "the wrong one was refused")
    check("vip-five is already publishing" not in o.output(),
          "the name was not held for the refused handshake")
    r5.stop()

    # A second publisher on a live name: refused in the handshake with a reason.
    e = ffmpeg_publish(o.srt_url("live/one"), seconds=20, size="320x240", name="pub-dup")
    check(wait_for(lambda: not e.alive(), 15) and e.p.returncode != 0,
          "second publisher on a live name is refused")
    out = o.output()
    check("one" in out and ("conflict" in out.lower() or "already" in out.lower()),
          "the origin logs the refusal with its reason")
    check(a.alive(), "the first publisher on that name is undisturbed")

    # srt-live-transmit as a publisher, fed TS on its stdin by ffmpeg.
    enc = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-f", "lavfi", "-i",
         "testsrc2=size=640x360:rate=25", "-f", "lavfi", "-i", "sine", "-t", "40", "-c:v", "libx264",
         "-preset", "veryfast", "-g", "50", "-c:a", "aac", "-f", "mpegts", "-"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    slt = Proc(["srt-live-transmit", "-q", "file://con",
                f"srt://127.0.0.1:{o.srt_port}?streamid=live/slt"], "slt", stdin=enc.stdout)
    enc.stdout.close()
    check(wait_for(lambda: served(o, "slt"), 15), "srt-live-transmit publisher is served")
    if served(o, "slt"):
        r = subprocess.run(["ffmpeg", "-hide_banner", "-v", "error", "-nostdin", "-i",
                            o.base + "/live/slt/index.m3u8", "-t", "4", "-f", "null", "-"],
                           capture_output=True, timeout=60)
        check(r.returncode == 0, f"its stream decodes ({r.stderr.decode()[:200]})")

    # The API and metrics.
    st, _, body = o.get("/api/streams")
    names = sorted(s["name"] for s in json.loads(body)["streams"]) if st == 200 else []
    check(names == ["one", "slt", "vip-five", "vip-two"],
          f"/api/streams lists the streams, vip-five offline by now ({names})")
    st, _, body = o.get("/api/streams/one")
    one = json.loads(body) if st == 200 else {}
    log(f"/api/streams/one: {body.decode()[:600]}")
    check(one.get("live") is True and one.get("video", {}).get("width") == 640 and
          one.get("video", {}).get("codecs", "").startswith("avc1") and
          one.get("audio", {}).get("codecs") == "mp4a.40.2" and one.get("publisher", "").startswith("127.0.0.1:"),
          "stream entry: codecs, resolution, publisher address")
    srt = one.get("srt", {})
    check(srt.get("packets", 0) > 0 and "rtt_ms" in srt and "lost" in srt and "retransmitted" in srt
          and "dropped" in srt and "buffer_ms" in srt and srt.get("recv_mbps", 0) > 0,
          f"stream entry carries SRT statistics ({srt})")
    st, _, body = o.get("/metrics")
    m = body.decode()
    for metric in ('shortwave_srt_rtt_ms{stream="one"}', 'shortwave_srt_packets_received_total{stream="vip-two"}',
                   'shortwave_srt_packets_lost_total{stream="one"}', 'shortwave_srt_receive_mbps{stream="slt"}',
                   'shortwave_stream_parts_total{stream="one"}', "shortwave_origin_part_latency_ms_bucket"):
        check(metric in m, f"/metrics has {metric}")

    # DELETE drops the publisher; the stream stays, offline.
    st, _, body = o.get("/api/streams/one", method="DELETE")
    check(st == 200, f"DELETE /api/streams/one ({st} {body[:80]!r})")
    check(wait_for(lambda: not a.alive(), 15), "the dropped publisher's ffmpeg ends")
    st, _, body = o.get("/api/streams/one")
    check(st == 200 and json.loads(body).get("live") is False, "the stream stays, offline")
    check(o.get("/api/streams/nope", method="DELETE")[0] == 404, "DELETE of an unknown stream is 404")

    for p in (b, slt):
        p.stop()
    enc.kill()
    check(o.alive() and not o.died_badly(), "origin still running")
    check(o.stop_clean(), "origin exits 0 on SIGTERM")


if __name__ == "__main__":
    run(main)
