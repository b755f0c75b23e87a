#!/usr/bin/env python3
"""The origin registers live streams in Redis with a heartbeat TTL and removes them on unpublish;
without Redis, or when Redis goes away, it keeps ingesting and serving and reconnects later."""
import time

from swtest import (run, Origin, Proc, check, ffmpeg_publish, free_port, log,
                    parse_media_playlist, redis_cli, redis_server, tmpdir, wait_for)


def last_msn(o):
    st, _, body = o.get("/live/rd/v.m3u8", timeout=2)
    return parse_media_playlist(body.decode())["next_msn"] if st == 200 else -1


def main():
    rs, url, port = redis_server()
    o = Origin(redis=url, extra_conf="public_url = http://origin-1.test:8080\n[redis]\nttl = 3s\n")
    pub = ffmpeg_publish(o.srt_url("live/rd"), seconds=None, size="320x240", name="pub")
    check(wait_for(lambda: redis_cli(port, "HGET", "sw:stream:rd", "origin") == "http://origin-1.test:8080", 10),
          "stream registered in Redis with the origin's public URL")
    check(wait_for(lambda: redis_cli(port, "HGET", "sw:stream:rd", "video").startswith("avc1."), 10),
          "registration carries the codecs")
    ttl = int(redis_cli(port, "PTTL", "sw:stream:rd") or -2)
    check(0 < ttl <= 3000, f"registration has a heartbeat TTL ({ttl} ms)")
    time.sleep(3.5)
    check(redis_cli(port, "EXISTS", "sw:stream:rd") == "1", "heartbeat keeps it alive past one TTL")
    check("rd" in redis_cli(port, "SMEMBERS", "sw:streams").split(), "listed in sw:streams")

    # Redis goes away: ingest and serving go on.
    rs.stop()
    before = last_msn(o)
    time.sleep(5)
    after = last_msn(o)
    check(after > before >= 0, f"still packaging and serving without Redis (msn {before} -> {after})")
    m = o.get("/metrics")[2].decode()
    check("shortwave_redis_connected 0" in m, "metrics say Redis is disconnected")

    # Redis comes back on the same port, empty: the origin reconnects and announces again.
    d = tmpdir("sw-redis2-")
    rs2 = Proc(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", d], "redis2")
    check(wait_for(lambda: redis_cli(port, "HGET", "sw:stream:rd", "origin") != "", 10),
          "origin reconnects by itself and registers the stream again")
    check("shortwave_redis_connected 1" in o.get("/metrics")[2].decode(), "metrics say connected again")

    pub.stop()
    check(wait_for(lambda: redis_cli(port, "EXISTS", "sw:stream:rd") == "0", 10),
          "unpublish removes the registration")
    check("rd" not in redis_cli(port, "SMEMBERS", "sw:streams").split(), "and the set entry")
    check(o.alive() and not o.died_badly(), "origin still running")
    check(o.stop_clean(), "origin exits 0 on SIGTERM")

    # An origin whose Redis is not there at all starts and serves.
    o2 = Origin(redis=f"redis://127.0.0.1:{free_port()}", name="origin-noredis")
    pub2 = ffmpeg_publish(o2.srt_url("live/rd"), seconds=None, size="320x240", name="pub2")
    check(wait_for(lambda: last_msn(o2) >= 0, 15), "origin without a reachable Redis serves")
    pub2.stop()
    check(o2.stop_clean(), "and exits 0")
    rs2.stop()


if __name__ == "__main__":
    run(main)
