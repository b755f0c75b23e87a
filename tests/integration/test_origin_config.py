#!/usr/bin/env python3
"""The origin's config file and flags: unknown keys and bad values stop it at start-up with the
file, the line and the key named; flags override the file; --check-config validates."""
import os
import subprocess

from swtest import BIN, Origin, check, free_port, free_udp_port, run, tmpdir

ORIGIN = os.path.join(BIN, "shortwave-origin")


def start(conf_text, *flags):
    d = tmpdir()
    path = os.path.join(d, "origin.conf")
    with open(path, "w") as f:
        f.write(conf_text)
    r = subprocess.run([ORIGIN, "-c", path, "--check-config", *flags], capture_output=True, timeout=20)
    return r.returncode, r.stdout.decode() + r.stderr.decode(), path


def main():
    data = tmpdir()
    good = f"srt = 127.0.0.1:{free_udp_port()}\nhttp = 127.0.0.1:{free_port()}\ndata = {data}\n"
    rc, out, _ = start(good + "[hls]\nsegment_duration = 4s\npart_duration = 500ms\n")
    check(rc == 0 and "configuration ok" in out, f"a good file passes --check-config ({out.strip()})")
    example = os.path.join(os.environ.get("SW_SOURCE", "."), "deploy", "origin.conf")
    # It listens on 0.0.0.0, so it needs an api_token, which it leaves to the environment.
    r = subprocess.run([ORIGIN, "-c", example, "--check-config"], capture_output=True, timeout=20,
                       env=dict(os.environ, SHORTWAVE_API_TOKEN="a-token-from-the-environment"))
    check(r.returncode == 0, f"deploy/origin.conf passes --check-config ({r.stderr.decode().strip()})")

    cases = [
        ("bogus = 1\n", 4, "bogus", "unknown key"),
        ("[hls]\nsegment_duration = 2\n", 5, "segment_duration", "unit"),
        ("[hls]\npart_duration = 20ms\n", 5, "part_duration", "range"),
        ("[srt]\nlatency = fast\n", 5, "latency", "duration"),
        ("log_level = loud\n", 4, "log_level", "error, warn, info or debug"),
        ("[prefix live/vip]\npassphrase = short\n", 5, "passphrase", "10 to 79"),
        ("[prefix live/vip]\nkey_length = 20\n", 5, "key_length", "16, 24 or 32"),
        ("[pull cam]\nurl = http://x\n", 5, "url", "srt://"),
        ("[pull a/b]\nurl = srt://h:1\n", 5, "url", "stream name"),
        ("[prefix studio/x]\npassphrase = correct-horse-battery\n", 5, "passphrase", "live/"),
        ("[srt]\nallow = live/ok, other/x\n", 5, "allow", "live/"),
        ("[srt]\nmax_publishers = -1\n", 5, "max_publishers", "range"),
        ("[nosuch]\nkey = 1\n", 5, "key", "unknown key"),
        ("this is not ini\n", 4, "", "syntax"),
        ("[http]\nmax_connections = -5\n", 5, "max_connections", "range"),
    ]
    for extra, line, key, words in cases:
        rc, out, path = start(good + extra)
        name = os.path.basename(path)
        check(rc == 2 and f"{name}:{line}:" in out and key in out and words in out,
              f"{extra.strip()!r} is refused naming line {line} and the key (rc {rc}: {out.strip()})")

    rc, out, _ = start(good, "--log-level", "loud")
    check(rc == 2 and "log_level" in out, f"a bad flag value is refused ({out.strip()})")
    r = subprocess.run([ORIGIN, "-c", "/nonexistent/origin.conf"], capture_output=True, timeout=20)
    check(r.returncode == 2 and b"/nonexistent/origin.conf" in r.stderr and b"cannot open" in r.stderr,
          f"a missing file is named ({r.stderr.decode().strip()})")
    r = subprocess.run([ORIGIN, "--help"], capture_output=True, timeout=20)
    check(r.returncode == 0 and b"segment_duration" in r.stdout and b"passphrase" in r.stdout,
          "--help lists the config keys")

    # Flags override the file: the file says one port, the flag another; the flag wins.
    port = free_port()
    o = Origin(extra_conf="", http_port=free_port())
    o.stop()
    d = tmpdir()
    path = os.path.join(d, "o.conf")
    with open(path, "w") as f:
        f.write(f"http = 127.0.0.1:1\nsrt = 127.0.0.1:{free_udp_port()}\ndata = {data}\n")
    from swtest import Proc, http_get, wait_for
    p = Proc([ORIGIN, "-c", path, "--http", f"127.0.0.1:{port}"], "origin-flags")
    check(wait_for(lambda: http_get(f"http://127.0.0.1:{port}/healthz", timeout=1)[0] == 200, 10),
          "--http overrides the file's http")
    check(p.stop_clean(), "and it exits 0 on SIGTERM")

    # An address that cannot be bound is a clear start-up error.
    r = subprocess.run([ORIGIN, "--srt", f"127.0.0.1:{free_udp_port()}", "--http", "256.1.1.1:80",
                        "--data", data], capture_output=True, timeout=20)
    check(r.returncode != 0 and b"http" in r.stderr, f"an unusable http address is refused ({r.stderr.decode().strip()})")
    r = subprocess.run([ORIGIN, "--srt", f"127.0.0.1:{free_udp_port()}", "--http", f"127.0.0.1:{free_port()}",
                        "--data", "/proc/nope"], capture_output=True, timeout=20)
    check(r.returncode != 0 and b"/proc/nope" in r.stderr, f"an unusable data folder is refused ({r.stderr.decode().strip()})")

    # [srt] tsbpd: on by default; off still ingests.
    from swtest import ffmpeg_publish
    import json
    for conf, said in (("[srt]\nlatency = 200ms\n", "TSBPD on, latency 200 ms"), ("[srt]\ntsbpd = no\n", "TSBPD off")):
        o = Origin(extra_conf=conf)
        pub = ffmpeg_publish(o.srt_url("live/tsbpd"), seconds=6, size="320x240", bitrate="400k")

        def parts():
            st, _, body = o.get("/api/streams")
            streams = json.loads(body).get("streams", []) if st == 200 else []
            return streams[0].get("parts", 0) if streams else 0
        ok = wait_for(lambda: parts() >= 6, 15)
        check(said in o.output() and ok,
              f"{conf.strip().replace(chr(10), '; ') or 'the default'}: the origin says \"{said}\" and makes parts ({parts()})")
        pub.stop()
        check(o.stop_clean(), "and exits 0 on SIGTERM")


if __name__ == "__main__":
    run(main)
