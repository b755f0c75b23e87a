#!/usr/bin/env python3
"""Overlay websockets at the edge (issue 4, acceptance 1, 2 and 5; docs/overlay-protocol.md).

A real redis-server, a real shortwave-edge (with a stub origin) and real websocket clients (node's
`ws`, tests/overlay/ws_client.mjs):
  1. 200 viewers join a room; a pin XADDed to Redis reaches every one of them within 50 ms
     (XADD to client, p50/p99/max printed); add_to_cart is acknowledged with the cart entry id,
     which XRANGE shows with the viewer, sku and qty.
  2. a viewer disconnected while 10 events happen reconnects with its last id and gets exactly
     those 10, in order, then the live tail once; an id older than the stream's first entry gets
     a resync and the state.
  5. bad input: invalid JSON, unknown types, bad fields, repeated garbage, binary frames, an
     oversized message, a flood of fragments, 10k add_to_cart in a second, a viewer that stops
     reading: the right error or close code; a bystander keeps receiving; the edge does not crash.
Plus: wss:// on the TLS port, the viewer token and the Origin list at the upgrade, HTTP/2 and
non-upgrade requests refused with a 4xx, and the metrics.
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "overlay"))

import swtest  # noqa: E402
from swtest import check, http_get, log, redis_cli, redis_server, run  # noqa: E402
from overlay_fixture import (Edge, Viewer, make_cert, mint_token, node,  # noqa: E402
                             stub_origin)


def test_fanout(edge, rport):
    r = node("fanout", f"{edge.ws}/overlay/fan", rport, "fan", 200)
    log(f"fan-out to 200 viewers, XADD to client: p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
        f"max {r['max_ms']:.1f} ms (joined in {r['join_ms']} ms)")
    check(r["live"] == 200, f"200 viewers joined and got viewer_count ({r['live']})")
    check(r["received"] == 200 and r["wrong"] == 0,
          f"every viewer got the pin with its id, sku and media_time ({r['received']}, wrong {r['wrong']})")
    check(r["max_ms"] is not None and r["max_ms"] < 50, f"the slowest viewer got it within 50 ms ({r['max_ms']})")
    ack = r["ack"] or {}
    entry = r["cart_entry"] or {}
    check(ack.get("type") == "cart_ack" and ack.get("req") == "r1" and "-" in ack.get("id", ""),
          f"add_to_cart acknowledged with the entry id and the req echoed ({ack})")
    check(entry.get("sku") == "SKU-FAN" and entry.get("qty") == "2" and entry.get("edge") == "edge-a"
          and entry.get("viewer", "").startswith("edge-a-"),
          f"XRANGE room:fan:cart has that entry: viewer, sku, qty, edge ({entry})")
    check(r["closed_early"] == 0, "no viewer was closed")
    m = edge.metrics()
    n = m.get("shortwave_edge_overlay_fanout_seconds_count", 0)
    le1 = m.get('shortwave_edge_overlay_fanout_seconds_bucket{le="0.001"}', 0)
    log(f"edge side, reading the event to queueing it on all 200: {n:.0f} event(s), mean "
        f"{1000 * m.get('shortwave_edge_overlay_fanout_seconds_sum', 0) / max(n, 1):.2f} ms, "
        f"{le1:.0f} within 1 ms")


def test_resume(edge, rport):
    r = node("resume", f"{edge.ws}/overlay/res", rport, "res", 10)
    got, missed = r["got"], r["missed"]
    log(f"missed {len(missed)}, got after the hello: {len(got)}")
    check(got[:10] == missed, "the reconnecting viewer got exactly the 10 missed events, in order")
    check(got[10:] == [r["after"]], "then the next live event, once (no gap, no duplicate)")
    check(len(set(got)) == len(got), "no id twice")
    t = r["trimmed_types"]
    check(t[:1] == ["resync"] and "product_pinned" in t and t[-1] == "viewer_count",
          f"an id older than the stream's first entry: resync, the state, viewer_count ({t})")


def test_abuse(edge, rport):
    r = node("abuse", f"{edge.ws}/overlay/bad", rport, "bad", timeout=150)
    for name in ("invalid_json", "unknown_type", "bad_qty", "long_sku"):
        c = r[name]
        check(c["codes"] == ["bad_message"] and c["close"] is None,
              f"{name}: error bad_message, connection kept ({c['first_error']})")
    check(r["unknown_type"]["first_error"]["req"] == 7, "the error echoes the req")
    c = r["repeated_bad"]
    check(c["close"] and c["close"]["code"] == 1008 and c["errors"] == 10,
          f"20 bad messages: 10 errors, then close 1008 ({c['close']}, {c['errors']} errors)")
    check(r["binary"]["close"] and r["binary"]["close"]["code"] == 1003, f"binary frame: 1003 ({r['binary']['close']})")
    check(r["oversized"]["close"] and r["oversized"]["close"]["code"] == 1009,
          f"8 KB message: 1009 ({r['oversized']['close']})")
    check(r["fragment_flood"]["close"] and r["fragment_flood"]["close"]["code"] == 1009,
          f"10000 one-byte fragments: 1009 ({r['fragment_flood']['close']})")
    c = r["cart_flood"]
    check(c["acks"] == 10 and c["codes"] == ["rate_limited"] and c["close"] and c["close"]["code"] == 1008,
          f"10k add_to_cart/s: 10 acks (the burst), rate_limited errors, then 1008 ({c})")
    check(r["cart_entries"] == 10, f"only the acknowledged ones are in the cart stream ({r['cart_entries']})")
    check(r["bystander"]["got_event"] and r["bystander"]["closed"] is None,
          "a bystander in the same room kept its connection and got the next event")


def test_slow(edge, rport):
    r = node("slow", f"{edge.ws}/overlay/slow", rport, "slow", 3000, timeout=150)
    log(f"slow viewer: {r}")
    check(r["close"] and r["close"]["code"] == 1013,
          f"a viewer that stopped reading is closed with 1013 ({r['close']})")
    # Over TLS the backpressure crosses the tunnel: the edge stops reading the socketpair while
    # the TLS connection's output is over its limit, and the viewer's queue fills the same way.
    r = node("slow", f"{edge.wss}/overlay/slowtls", rport, "slowtls", 3000, timeout=150)
    log(f"slow viewer over wss: {r}")
    check(r["close"] and r["close"]["code"] == 1013,
          f"wss://: a viewer that stopped reading is closed with 1013 ({r['close']})")
    # Pins instead: the full queue drops superseded pins, the viewer stays, and ends on the last.
    c0 = edge.metrics().get("shortwave_edge_overlay_dropped_coalesced_total", 0)
    r = node("slow", f"{edge.ws}/overlay/slowpins", rport, "slowpins", 3000, "product_pinned", timeout=150)
    c1 = edge.metrics().get("shortwave_edge_overlay_dropped_coalesced_total", 0)
    log(f"slow viewer, pins: received {r['received']} of {r['sent']}, coalesced {c1 - c0:.0f}")
    check(r["close"] is None and r["last_received"] == r["last_sent"] and r["in_order"],
          "a slow viewer of pins is not closed: superseded pins are dropped, the latest arrives, in order")
    check(c1 - c0 > 0 and r["received"] < r["sent"], "metric dropped_coalesced_total counts the dropped pins")


def test_wss(edge, rport):
    v = Viewer(f"{edge.wss}/overlay/tls")
    try:
        v.send({"type": "hello"})
        check(v.msg(lambda m: m.get("type") == "viewer_count") is not None, "wss://: hello, then viewer_count")
        eid = redis_cli(rport, "XADD", "room:tls:events", "*", "type", "product_pinned", "data",
                        json.dumps({"sku": "SKU-TLS", "title": "T", "price": "1.00", "currency": "EUR",
                                    "image": "https://i/x.png", "stock": 3}))
        m = v.msg(lambda m: m.get("id") == eid)
        check(m is not None and m.get("sku") == "SKU-TLS", f"wss://: the pin arrived ({m})")
        v.send({"type": "add_to_cart", "sku": "SKU-TLS", "qty": 1, "req": 5})
        a = v.msg(lambda m: m.get("req") == 5)
        check(a is not None and a["type"] == "cart_ack", f"wss://: add_to_cart acknowledged ({a})")
        # A second viewer joining the live room gets the pin at once, with its original id.
        v2 = Viewer(f"{edge.wss}/overlay/tls")
        try:
            v2.send({"type": "hello", "last_event_id": None})
            m = v2.msg(lambda m: m.get("type") == "product_pinned")
            check(m is not None and m.get("id") == eid,
                  f"wss://: a joining viewer gets the current pin at once, same id ({m and m.get('id')})")
            c = v.msg(lambda m: m.get("type") == "viewer_count" and m.get("count") == 2, timeout=3)
            check(c is not None, "the first viewer is told viewer_count 2 within the next second")
        finally:
            v2.close()
    finally:
        v.close()


def test_bad_entries(edge, rport):
    """What others write into Redis is input too: bad entries are skipped, a key of the wrong
    type stops only its own room."""
    redis_cli(rport, "SET", "room:wrongtype:events", "not a stream")
    bad = Viewer(f"{edge.ws}/overlay/wrongtype")
    v = Viewer(f"{edge.ws}/overlay/entries")
    try:
        bad.send({"type": "hello"})
        v.send({"type": "hello"})
        check(v.msg(lambda m: m.get("type") == "viewer_count") is not None, "a viewer in a good room is live")
        skipped0 = edge.metrics().get("shortwave_edge_overlay_events_skipped_total", 0)
        redis_cli(rport, "XADD", "room:entries:events", "*", "type", "bogus", "data", "{}")
        redis_cli(rport, "XADD", "room:entries:events", "*", "type", "product_pinned", "data", "not json")
        redis_cli(rport, "XADD", "room:entries:events", "*", "type", "stock_update", "data", "[1,2]")
        redis_cli(rport, "XADD", "room:entries:events", "*", "data", "{}")
        good = redis_cli(rport, "XADD", "room:entries:events", "*", "type", "stock_update", "data",
                         json.dumps({"sku": "S", "stock": 4}))
        m = v.msg(lambda m: m.get("id") == good)
        check(m is not None, "after four malformed entries the next good one arrives")
        ids = [e["m"].get("id") for e in v.events if e["ev"] == "msg" and e["m"].get("id")]
        check(ids == [good], f"only the good entry was sent ({ids})")
        skipped = edge.metrics().get("shortwave_edge_overlay_events_skipped_total", 0) - skipped0
        check(skipped == 4, f"the four malformed entries are counted as skipped ({skipped})")
        check(bad.wait(lambda e: e["ev"] == "msg", 1) is None,
              "a room whose events key is not a stream gets nothing (and does not stop the others)")
    finally:
        v.close()
        bad.close()


def test_silent_client(edge):
    v = Viewer(f"{edge.ws}/overlay/silent")
    try:
        t0 = time.monotonic()
        c = v.msg(lambda m: m.get("type") == "viewer_count", timeout=5)
        dt = time.monotonic() - t0
        check(c is not None and 1.5 < dt < 4, f"a client that never says hello is served after 2 s ({dt:.1f} s)")
    finally:
        v.close()


def test_upgrade_checks(edge):
    st, _, body = http_get(edge.base + "/overlay/room1", timeout=3)
    check(st == 426, f"GET /overlay/room1 without Upgrade: 426 ({st})")
    st, _, _ = http_get(edge.base + "/overlay/bad%20room", timeout=3)
    check(st == 404, f"a bad room id: 404 ({st})")
    r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                        "--http2-prior-knowledge", "-H", "Upgrade: websocket", edge.base + "/overlay/room1"],
                       capture_output=True, timeout=20)
    out = r.stdout.decode()
    check(out.startswith("426 2"), f"a websocket request over HTTP/2: a clear 4xx ({out})")
    r = subprocess.run(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                        "--http2", "-H", "Upgrade: websocket", edge.wss.replace("wss", "https") +
                        "/overlay/room1"], capture_output=True, timeout=20)
    out = r.stdout.decode()
    check(out.startswith("426 2"), f"the same over TLS with ALPN h2: 426 ({out})")
    st, _, body = http_get(edge.base + "/live/x/index.m3u8", timeout=3)
    check(st == 200 and body.startswith(b"#EXTM3U"), "video requests go through as before")


def test_token_origin(origin, redis_url):
    e = Edge(origin, redis_url, name="edge-b",
             conf="overlay_token_key = k1:s3cret\noverlay_allowed_origins = https://shop.example\n")
    try:
        v = Viewer(f"{e.ws}/overlay/room9", origin="https://shop.example")
        ev = v.wait(lambda x: x["ev"] == "close", 5)
        check(ev is not None and ev["code"] == 1008 and "token" in ev["reason"],
              f"no token: the websocket opens and closes with 1008 and the reason ({ev})")
        v.close()
        tok = mint_token("s3cret", "/live/room9/", int(time.time()) + 300, kid="k1")
        v = Viewer(f"{e.ws}/overlay/room9?{tok}", origin="https://shop.example")
        v.send({"type": "hello"})
        check(v.msg(lambda m: m.get("type") == "viewer_count") is not None,
              "a token for /live/room9/ and an allowed Origin: live")
        v.close()
        v = Viewer(f"{e.ws}/overlay/room8?{tok}", origin="https://shop.example")
        ev = v.wait(lambda x: x["ev"] == "close", 5)
        check(ev is not None and ev["code"] == 1008, f"the same token for another room: 1008 ({ev})")
        v.close()
        v = Viewer(f"{e.ws}/overlay/room9?{tok}", origin="https://evil.example")
        ev = v.wait(lambda x: x["ev"] == "http", 5)
        check(ev is not None and ev["status"] == 403, f"an Origin not in the list: 403 ({ev})")
        v.close()
        check(e.stop_clean(), "edge-b exits 0 on SIGTERM")
    finally:
        e.stop()


def main():
    srv, origin = stub_origin()
    rp, rurl, rport = redis_server()
    d = swtest.tmpdir("sw-ov-cert-")
    cert = make_cert(d)
    edge = Edge(origin, rurl, name="edge-a", tls=cert, conf="overlay_send_queue = 32\n")
    test_fanout(edge, rport)
    test_resume(edge, rport)
    test_abuse(edge, rport)
    test_slow(edge, rport)
    test_wss(edge, rport)
    test_bad_entries(edge, rport)
    test_silent_client(edge)
    test_upgrade_checks(edge)
    m = edge.metrics()
    for k in ("shortwave_edge_overlay_messages_in_total", "shortwave_edge_overlay_messages_out_total",
              "shortwave_edge_overlay_fanout_seconds_count", "shortwave_edge_overlay_cart_acks_total"):
        check(m.get(k, 0) > 0, f"metric {k} = {m.get(k)}")
    for code in ("1003", "1008", "1009", "1013"):
        check(m.get(f'shortwave_edge_overlay_closed_total{{code="{code}"}}', 0) >= 1,
              f"metric closed_total{{code={code}}} counted")
    check(m.get("shortwave_edge_overlay_redis_up") == 1, "metric redis_up = 1")
    test_token_origin(origin, rurl)
    check(not edge.died_badly() and edge.alive(), "the edge survived all of it")
    check(edge.stop_clean(), "edge-a exits 0 on SIGTERM (no sanitizer report)")
    srv.shutdown()


if __name__ == "__main__":
    run(main)
