#!/usr/bin/env python3
"""Overlay websockets through a Redis restart (issue 4, acceptance 3; docs/overlay-protocol.md).

A viewer is live in a room on a real shortwave-edge; the real redis-server is stopped: add_to_cart
gets an error (redis_unavailable), never an ack, and video requests through the edge keep working
(a cached object and a new one). Redis comes back on the same port: the edge reconnects both of
its connections by itself (the reconnects counter moves), resubscribes the room without the viewer
doing anything, a new pin reaches the same viewer, and add_to_cart is acknowledged and in XRANGE.
The edge never crashes and exits 0 on SIGTERM.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "overlay"))

import swtest  # noqa: E402
from swtest import Proc, check, http_get, log, redis_cli, run, wait_for  # noqa: E402
from overlay_fixture import Edge, Viewer, stub_origin  # noqa: E402


def start_redis(port, d):
    pr = Proc(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", d], "redis")
    if not wait_for(lambda: redis_cli(port, "PING") == "PONG", 10):
        raise RuntimeError("redis-server did not start:\n" + pr.output())
    return pr


def pin(port, room, sku):
    data = json.dumps({"sku": sku, "title": "Kettle", "price": "19.99", "currency": "EUR",
                       "image": "https://img.example/k.png", "stock": 5})
    return redis_cli(port, "XADD", f"room:{room}:events", "*", "type", "product_pinned", "data", data)


def main():
    srv, origin = stub_origin()
    port = swtest.free_port()
    d = swtest.tmpdir("sw-redis-")
    rd = start_redis(port, d)
    edge = Edge(origin, f"redis://127.0.0.1:{port}", name="edge-r")
    v = Viewer(f"{edge.ws}/overlay/r1")
    v.send({"type": "hello"})
    check(v.msg(lambda m: m.get("type") == "viewer_count") is not None, "the viewer is live")
    e1 = pin(port, "r1", "SKU-1")
    check(v.msg(lambda m: m.get("id") == e1) is not None, "a pin before the restart arrives")
    st, _, _ = http_get(edge.base + "/live/r1/index.m3u8", timeout=3)
    check(st == 200, "a playlist through the edge before the outage")
    before = edge.metrics()
    check(before.get('shortwave_edge_overlay_connections{room="r1"}') == 1,
          "metric connections{room=\"r1\"} = 1")

    log("stopping redis")
    rd.stop()
    v.send({"type": "add_to_cart", "sku": "SKU-1", "qty": 1, "req": "down-1"})
    m = v.msg(lambda m: m.get("req") == "down-1", timeout=5)
    check(m is not None and m["type"] == "error" and m["code"] == "redis_unavailable",
          f"add_to_cart while Redis is down: error redis_unavailable, not an ack ({m})")
    time.sleep(1.5)
    v.send({"type": "add_to_cart", "sku": "SKU-1", "qty": 1, "req": "down-2"})
    m = v.msg(lambda m: m.get("req") == "down-2", timeout=5)
    check(m is not None and m["type"] == "error", f"and again 1.5 s into the outage ({m})")
    st, _, body = http_get(edge.base + "/live/r1/index.m3u8", timeout=3)
    check(st == 200 and body.startswith(b"#EXTM3U"), f"video keeps working during the outage ({st})")
    st, _, body = http_get(edge.base + "/live/r1/seg7.m4s", timeout=3)
    check(st == 200 and len(body) == 65536, f"a segment not cached before, during the outage ({st})")
    mid = edge.metrics()
    check(mid.get("shortwave_edge_overlay_redis_up") == 0, "metric redis_up = 0 during the outage")

    log("starting redis again on the same port")
    rd = start_redis(port, d)
    ok = wait_for(lambda: edge.metrics().get("shortwave_edge_overlay_redis_up") == 1, 10)
    check(ok, "the edge reconnected by itself")
    after = edge.metrics()
    for conn in ("command", "reader"):
        k = f'shortwave_edge_overlay_redis_reconnects_total{{conn="{conn}"}}'
        check(after.get(k, 0) > before.get(k, 0), f"{conn} reconnects counted ({before.get(k)} -> {after.get(k)})")
    t0 = time.monotonic()
    e2 = pin(port, "r1", "SKU-2")
    m = v.msg(lambda m: m.get("id") == e2, timeout=5)
    check(m is not None and m.get("sku") == "SKU-2",
          f"a pin after the restart reaches the same viewer, not reconnected ({m and m.get('id')}, "
          f"{(time.monotonic() - t0) * 1000:.0f} ms)")
    check(not any(e["ev"] == "close" for e in v.events), "the viewer's websocket stayed open throughout")
    v.send({"type": "add_to_cart", "sku": "SKU-2", "qty": 3, "req": "up-1"})
    m = v.msg(lambda m: m.get("req") == "up-1", timeout=5)
    check(m is not None and m["type"] == "cart_ack", f"add_to_cart after the restart: ack ({m})")
    cart = redis_cli(port, "XRANGE", "room:r1:cart", "-", "+")
    n = redis_cli(port, "XLEN", "room:r1:cart")
    check(m is not None and m.get("id", "?") in cart and "SKU-2" in cart and n == "1",
          f"XRANGE has the acknowledged entry and only it: nothing from the outage (XLEN {n})")
    # A viewer joining now gets the new pin as the room's state.
    v2 = Viewer(f"{edge.ws}/overlay/r1")
    v2.send({"type": "hello"})
    m = v2.msg(lambda m: m.get("type") == "product_pinned")
    check(m is not None and m.get("id") == e2, f"a new viewer gets the pin from after the restart ({m and m.get('id')})")
    v2.close()
    v.close()
    check(edge.alive() and not edge.died_badly(), "the edge never crashed")
    check(edge.stop_clean(), "the edge exits 0 on SIGTERM (no sanitizer report)")
    srv.shutdown()


if __name__ == "__main__":
    run(main)
