#!/usr/bin/env python3
"""chat_rate room events are for the origin's moment detector, not for viewers: an edge passes
them over quietly (no websocket message, no log line, not counted as a skipped event) and goes on
delivering the events after them."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "overlay"))

from swtest import check, redis_cli, redis_server, run  # noqa: E402
from overlay_fixture import Edge, Viewer, stub_origin  # noqa: E402


def main():
    rproc, rurl, rport = redis_server()
    srv, origin = stub_origin()
    edge = Edge(origin, rurl)
    v = Viewer(f"{edge.ws}/overlay/chatroom")
    try:
        check(v.msg(lambda m: m.get("type") == "viewer_count", 10) is not None, "viewer joined")
        for n in range(3):
            redis_cli(rport, "XADD", "room:chatroom:events", "*", "type", "chat_rate", "data",
                      json.dumps({"count": 40 + n, "window_s": 5}))
        pin = {"sku": "S1", "title": "Kettle", "price": "19.99", "currency": "EUR"}
        redis_cli(rport, "XADD", "room:chatroom:events", "*", "type", "product_pinned", "data",
                  json.dumps(pin))
        got = v.msg(lambda m: m.get("type") == "product_pinned", 10)
        check(got is not None and got.get("sku") == "S1", "the pin after three chat_rate arrives")
        msgs = [e["m"] for e in v.events if e.get("ev") == "msg"]
        check(not any(m.get("type") == "chat_rate" for m in msgs), "no chat_rate reached the viewer")
        check("skipping event" not in edge.output(), "no log line for chat_rate")
        skipped = edge.metrics().get("shortwave_edge_overlay_events_skipped_total")
        check(skipped == 0, f"not counted as skipped ({skipped})")
        # A type the edge does not know is still skipped with a line and a count.
        redis_cli(rport, "XADD", "room:chatroom:events", "*", "type", "bogus", "data", "{}")
        redis_cli(rport, "XADD", "room:chatroom:events", "*", "type", "product_unpinned", "data",
                  json.dumps({"sku": "S1"}))
        check(v.msg(lambda m: m.get("type") == "product_unpinned", 10) is not None,
              "the event after an unknown one arrives")
        check("skipping event" in edge.output() and
              edge.metrics().get("shortwave_edge_overlay_events_skipped_total") == 1,
              "an unknown type is still logged and counted")
    finally:
        v.close()
        edge.stop_clean()
        srv.shutdown()
        rproc.stop()


run(main)
