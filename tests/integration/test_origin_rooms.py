#!/usr/bin/env python3
"""Room events at the origin (issue 4, acceptance 4): POST /api/rooms/ROOM/events stamps the live
edge's media time and writes the event and the room's state to Redis in one script; every event of
the room (also one a backend XADDs straight to Redis) appears as EXT-X-DATERANGE in the media
playlists and as an Event in the MPD, which players still read. Bad requests get 4xx with a reason;
without Redis the API says 503; after a restart the origin reads the room's events back from Redis.
"""
import base64
import datetime
import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request

from swtest import (run, Origin, Proc, check, ffmpeg_publish, http_get, log,
                    parse_media_playlist, redis_cli, redis_server, tmpdir, wait_for)

ROOM = "room42"


def post(o, path, body, headers=None, timeout=10):
    """POSTs bytes or a JSON-able object. Returns (status, parsed JSON or None, raw body)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    h = {"content-type": "application/json"}
    h.update(headers or {})
    req = urllib.request.Request(o.base + path, data=data, headers=h, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            st, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        st, raw = e.code, e.read()
    except (urllib.error.URLError, ConnectionError, OSError):
        return 0, None, b""
    try:
        return st, json.loads(raw), raw
    except ValueError:
        return st, None, raw


def post_event(o, typ, data, room=ROOM, **kw):
    return post(o, f"/api/rooms/{room}/events", {"type": typ, "data": data}, **kw)


def iso_ms(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp() * 1000


def dateranges(text):
    """Every EXT-X-DATERANGE as a dict of its attributes, with its line number."""
    out = []
    for n, ln in enumerate(text.splitlines()):
        if ln.startswith("#EXT-X-DATERANGE:"):
            attrs = dict(re.findall(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)', ln[len("#EXT-X-DATERANGE:"):]))
            d = {k: v.strip('"') for k, v in attrs.items()}
            d["line"] = n
            out.append(d)
    return out


def playlist(o, name, query=""):
    st, _, body = o.get(f"/live/{ROOM}/{name}{query}", timeout=5)
    return body.decode() if st == 200 else ""


def find_range(o, name, event_id, query=""):
    text = playlist(o, name, query)
    for d in dateranges(text):
        if d.get("ID") == event_id:
            return d, text
    return None


def pdt_span(text):
    """(first PDT, end of the last listed media, every PDT) in unix ms, from the playlist's tags:
    the end is the last EXT-X-PROGRAM-DATE-TIME plus what follows it (its EXTINF, or the parts of
    the segment in progress)."""
    lines = text.splitlines()
    pdts = [(i, iso_ms(ln.split(":", 1)[1])) for i, ln in enumerate(lines)
            if ln.startswith("#EXT-X-PROGRAM-DATE-TIME:")]
    last_i, last = pdts[-1]
    extinf = [float(ln.split(":", 1)[1].split(",")[0]) for ln in lines[last_i:] if ln.startswith("#EXTINF:")]
    parts = [float(re.search(r"DURATION=([0-9.]+)", ln).group(1)) for ln in lines[last_i:]
             if ln.startswith("#EXT-X-PART:")]
    end = last + (extinf[0] if extinf else sum(parts)) * 1000
    return pdts[0][1], end, [p for _, p in pdts]


def check_range_line(o, name, event_id, media_time, want):
    """The DATERANGE of event_id in playlist `name`: id, start date, class, data, placement."""
    got = wait_for(lambda: find_range(o, name, event_id), 15)
    check(got is not None, f"{name} carries EXT-X-DATERANGE ID={event_id}")
    if got is None:
        return
    d, text = got
    check(d["START-DATE"] == media_time, f"{name}: START-DATE {d['START-DATE']} == media_time {media_time}")
    check(d["CLASS"] == "com.shortwave.commerce", f"{name}: CLASS com.shortwave.commerce")
    msg = json.loads(base64.b64decode(d["X-SW-DATA"]))
    check(msg.get("id") == event_id and msg.get("media_time") == media_time and
          all(msg.get(k) == v for k, v in want.items()) and msg.get("type") == d["X-SW-TYPE"],
          f"{name}: X-SW-DATA is the client message ({msg})")
    first, end, pdts = pdt_span(text)
    mt = iso_ms(media_time)
    check(first <= mt <= end, f"{name}: media_time lies within the playlist's PDT span ({first} <= {mt} <= {end})")
    check(mt >= pdts[-3] if len(pdts) >= 3 else True,
          f"{name}: ... in its last segments (the live edge when it was posted)")
    # Placed after the PDT of the segment that holds it (the one in progress counts).
    lines = text.splitlines()
    pdt_lines = [i for i, ln in enumerate(lines) if ln.startswith("#EXT-X-PROGRAM-DATE-TIME:")]
    pdt_vals = [iso_ms(lines[i].split(":", 1)[1]) for i in pdt_lines]
    holder = max(i for i, p in enumerate(pdt_vals) if p <= mt)
    check(pdt_lines[holder] < d["line"] and
          (holder + 1 >= len(pdt_lines) or d["line"] < pdt_lines[holder + 1]),
          f"{name}: the DATERANGE stands in the segment whose PDT span holds it")


# hls.js's own playlist parser (node_modules/hls.js/src), bundled for node with esbuild: what a
# browser player makes of our EXT-X-DATERANGE tags.
HLSJS_PARSE = r"""
import M3U8Parser from 'hls.js/src/loader/m3u8-parser';
import { PlaylistLevelType } from 'hls.js/src/types/loader';
const text = require('fs').readFileSync(0, 'utf8');
const d = M3U8Parser.parseLevelPlaylist(text, 'http://127.0.0.1/live/r/v.m3u8', 0,
                                        PlaylistLevelType.MAIN, 0, null);
const ranges = {};
for (const [id, r] of Object.entries(d.dateRanges))
  ranges[id] = {valid: r.isValid, start: r.startDate.toISOString(), cls: r.class,
                type: r.attr['X-SW-TYPE'], data: r.attr['X-SW-DATA']};
console.log(JSON.stringify({fragments: d.fragments.length, skipped: d.skippedSegments, ranges}));
"""


def hlsjs_parser():
    """Path of the bundled parser, or None when node or esbuild is missing."""
    src = os.environ.get("SW_SOURCE", os.path.join(os.path.dirname(__file__), "..", ".."))
    nm = os.path.join(src, "node_modules")
    esbuild = os.path.join(nm, ".bin", "esbuild")
    if not os.path.exists(esbuild) or not os.path.isdir(os.path.join(nm, "hls.js", "src")):
        return None
    d = tmpdir("sw-hlsjs-")
    with open(os.path.join(d, "parse.ts"), "w") as f:
        f.write(HLSJS_PARSE.replace("'hls.js/src/", "'" + os.path.abspath(os.path.join(nm, "hls.js", "src")) + "/"))
    with open(os.path.join(d, "urltk.js"), "w") as f:
        f.write("export function buildAbsoluteURL(b, r) { return new URL(r, b).href; }\n")
    flags = [f"--define:{v}=true" for v in ("__USE_ALT_AUDIO__", "__USE_CMCD__",
             "__USE_CONTENT_STEERING__", "__USE_EME_DRM__", "__USE_IFRAMES__", "__USE_INTERSTITIALS__",
             "__USE_MEDIA_CAPABILITIES__", "__USE_SUBTITLES__", "__USE_VARIABLE_SUBSTITUTION__")]
    r = subprocess.run([esbuild, os.path.join(d, "parse.ts"), "--bundle", "--platform=node",
                        "--log-level=error", f"--alias:url-toolkit={os.path.join(d, 'urltk.js')}",
                        f"--outfile={os.path.join(d, 'parse.js')}", *flags],
                       capture_output=True, timeout=60)
    if r.returncode != 0:
        log(f"cannot bundle hls.js's parser: {r.stderr[-300:]!r}")
        return None
    return os.path.join(d, "parse.js")


def hlsjs_parse(parser, text):
    r = subprocess.run(["node", parser], input=text.encode(), capture_output=True, timeout=30)
    return json.loads(r.stdout) if r.returncode == 0 else {"error": r.stderr.decode()[-300:]}


def main():
    rs, url, rport = redis_server()
    data = tmpdir("sw-rooms-data-")
    o = Origin(redis=url, data=data)
    pub = ffmpeg_publish(o.srt_url(f"live/{ROOM}"), size="320x240", name="pub")
    check(wait_for(lambda: len(parse_media_playlist(playlist(o, "v.m3u8") or "#EXTM3U\n")["segments"]) >= 2
                   if playlist(o, "v.m3u8") else None, 30), "the room's stream is live with segments")

    # ---- bad input: a precise reason, nothing written ----
    pin = {"sku": "SKU-1", "title": "Kettle \"Deluxe\"\n2l", "price": "19.99", "currency": "EUR",
           "image": "https://shop.test/k.jpg", "stock": 12}
    bad = [
        (b"{not json", 400, "invalid JSON"),
        (b"[1,2]", 400, "expected a JSON object"),
        (json.dumps({"type": "product_teleported", "data": {}}).encode(), 400, "unknown event type"),
        (json.dumps({"type": "product_pinned"}).encode(), 400, "data: missing"),
        (json.dumps({"type": "product_pinned", "data": []}).encode(), 400, "data: expected a JSON object"),
        (json.dumps({"type": 7, "data": {}}).encode(), 400, "type: expected a string"),
        (json.dumps({"type": "product_pinned", "data": dict(pin, price=19.99)}).encode(), 400, "data.price"),
        (json.dumps({"type": "product_pinned", "data": dict(pin, stock="12")}).encode(), 400, "data.stock"),
        (json.dumps({"type": "product_pinned", "data": dict(pin, currency="euro")}).encode(), 400, "data.currency"),
        (json.dumps({"type": "product_pinned", "data": dict(pin, image="javascript:alert(1)")}).encode(), 400, "data.image"),
        (json.dumps({"type": "product_pinned", "data": {k: v for k, v in pin.items() if k != "title"}}).encode(), 400, "data.title: missing"),
        (json.dumps({"type": "product_pinned", "data": dict(pin, evil=1)}).encode(), 400, "data.evil: not a field"),
        (json.dumps({"type": "product_pinned", "data": pin, "media_time": "2020-01-01T00:00:00.000Z"}).encode(), 400, "unknown member"),
        (json.dumps({"type": "flash_sale", "data": {"sku": "S", "price": "1", "currency": "EUR", "ends_at": "tomorrow"}}).encode(), 400, "data.ends_at"),
        (b'{"type":"product_unpinned","type":"product_pinned","data":{"sku":"x"}}', 400, "invalid JSON"),
        (b'{"type":"product_unpinned","data":{"sku":"a\\u0000b"}}', 400, "invalid JSON"),
        (b"", 400, "invalid JSON"),
        (json.dumps({"type": "product_pinned", "data": dict(pin, title="x" * 5000)}).encode(), 413, "body over 4096 bytes"),
    ]
    for body, want, reason in bad:
        st, js, raw = post(o, f"/api/rooms/{ROOM}/events", body)
        check(st == want and js is not None and reason in js.get("error", ""),
              f"{body[:50]!r}: {st} {raw[:120]!r}")
    st, js, _ = post_event(o, "product_pinned", pin, room="bad$room")
    check(st == 400 and "bad room name" in js["error"], f"a bad room name gets 400 ({st})")
    st, js, _ = post_event(o, "product_pinned", pin, room="r" * 65)
    check(st == 400, f"a 65-character room name gets 400 ({st})")
    st, js, _ = post_event(o, "product_pinned", pin, room="nosuchroom")
    check(st == 409 and "not live" in js["error"], f"a room that is not live gets 409 ({st} {js})")
    st, _, _ = post(o, f"/api/rooms/{ROOM}/nothing", pin)
    check(st == 404, f"another path under the room gets 404 ({st})")
    st, _, _ = http_get(o.base + f"/api/rooms/{ROOM}/events", method="PUT")
    check(st == 405, f"PUT gets 405 ({st})")
    check(redis_cli(rport, "EXISTS", f"room:{ROOM}:events") == "0", "no bad request reached Redis")

    # ---- a pin through the API ----
    t0 = time.time() * 1000
    st, js, raw = post_event(o, "product_pinned", pin)
    check(st == 201 and js and re.fullmatch(r"\d+-\d+", js.get("id", "")) and "media_time" in js,
          f"POST a pin: 201 with id and media_time ({st} {raw!r})")
    pin_id, pin_mt = js["id"], js["media_time"]
    check(abs(iso_ms(pin_mt) - t0) < 10000, f"media_time {pin_mt} is near the wall clock")
    xr = redis_cli(rport, "XRANGE", f"room:{ROOM}:events", "-", "+").splitlines()
    check(xr[:1] == [pin_id] and "type" in xr and xr[xr.index("type") + 1] == "product_pinned" and
          xr[xr.index("media_time") + 1] == pin_mt and json.loads(xr[xr.index("data") + 1]) == pin,
          f"XRANGE shows the entry with type, data and media_time ({xr})")
    pinned = json.loads(redis_cli(rport, "HGET", f"room:{ROOM}:state", "pinned") or "{}")
    check(pinned.get("id") == pin_id and pinned.get("media_time") == pin_mt and
          pinned.get("sku") == "SKU-1" and pinned.get("type") == "product_pinned",
          f"the state hash has the pin as a client message ({pinned})")
    check(redis_cli(rport, "HGET", f"room:{ROOM}:state", "last_id") == pin_id, "state last_id is its id")
    for name in ("v.m3u8", "a.m3u8"):
        check_range_line(o, name, pin_id, pin_mt, {"sku": "SKU-1", "title": pin["title"], "stock": 12})
    check(find_range(o, "v.m3u8", pin_id, "?dvr=1") is not None, "the DVR playlist carries it too")
    # Delta updates keep it (no CAN-SKIP-DATERANGES).
    text = playlist(o, "v.m3u8", "?_HLS_skip=YES")
    check("CAN-SKIP-DATERANGES" not in playlist(o, "v.m3u8") and pin_id in text,
          "a delta update keeps the DATERANGE; the server offers no CAN-SKIP-DATERANGES")

    # hls.js's parser reads the playlists and finds valid date ranges with the right start.
    parser = hlsjs_parser()
    check(parser is not None, "hls.js's playlist parser is available (node_modules, esbuild)")
    if parser:
        for name, q in (("v.m3u8", ""), ("a.m3u8", ""), ("v.m3u8", "?dvr=1"), ("v.m3u8", "?_HLS_skip=YES")):
            got = hlsjs_parse(parser, playlist(o, name, q))
            r = got.get("ranges", {}).get(pin_id)
            check(got.get("fragments", 0) > 0 and r is not None and r["valid"] and
                  r["start"] == pin_mt and r["cls"] == "com.shortwave.commerce" and
                  json.loads(base64.b64decode(r["data"]))["id"] == pin_id,
                  f"hls.js parses {name}{q}: {got.get('fragments')} fragments, the pin's date range valid "
                  f"({({k: v for k, v in r.items() if k != 'data'} if r else got)})")

    # ---- an event a backend XADDs straight to Redis (no media_time: the id's time) ----
    xid = redis_cli(rport, "XADD", f"room:{ROOM}:events", "*", "type", "price_update", "data",
                    json.dumps({"sku": "SKU-1", "price": "17.49", "currency": "EUR"}))
    check(re.fullmatch(r"\d+-\d+", xid) is not None, f"XADD straight to Redis ({xid})")
    x_mt = datetime.datetime.fromtimestamp(int(xid.split("-")[0]) / 1000, datetime.timezone.utc)
    x_mt = x_mt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(xid.split('-')[0]) % 1000:03d}Z"
    for name in ("v.m3u8", "a.m3u8"):
        check_range_line(o, name, xid, x_mt, {"sku": "SKU-1", "price": "17.49", "type": "price_update"})
    # One with an explicit media_time, and one the origin must skip.
    redis_cli(rport, "XADD", f"room:{ROOM}:events", "*", "type", "nonsense", "data", "{}")
    yid = redis_cli(rport, "XADD", f"room:{ROOM}:events", "*", "type", "stock_update", "data",
                    json.dumps({"sku": "SKU-1", "stock": 3}), "media_time", pin_mt)
    check(wait_for(lambda: find_range(o, "v.m3u8", yid), 10) is not None,
          "a backend entry with media_time appears at that time")
    check(find_range(o, "v.m3u8", yid)[0]["START-DATE"] == pin_mt, "its START-DATE is its media_time")
    m = o.get("/metrics")[2].decode()
    check(re.search(r"shortwave_origin_room_events_skipped_total [1-9]", m) is not None,
          "an entry with an unknown type is skipped and counted")

    # ---- chat_rate: a signal for the shorts detector, written like any event, never in the media ----
    skipped = re.search(r"shortwave_origin_room_events_skipped_total (\d+)", m).group(1)
    st, js, raw = post_event(o, "chat_rate", {"count": 42, "window_s": 5})
    chat_id, chat_mt = (js or {}).get("id", ""), (js or {}).get("media_time", pin_mt)
    xr = redis_cli(rport, "XRANGE", f"room:{ROOM}:events", chat_id or "0", chat_id or "0").splitlines()
    check(st == 201 and xr[:1] == [chat_id] and xr[xr.index("type") + 1] == "chat_rate" and
          json.loads(xr[xr.index("data") + 1]) == {"count": 42, "window_s": 5},
          f"POST chat_rate: 201 and in room:{ROOM}:events ({st} {raw!r} {xr})")
    st, js, raw = post_event(o, "chat_rate", {"count": 42, "window_s": 0})
    check(st == 400 and "data.window_s" in js.get("error", ""), f"window_s 0: 400 ({st} {raw!r})")
    # A later event at the same media time, once it shows, proves that the reader went past the
    # chat_rate entry and that the playlists reach its time.
    zid = redis_cli(rport, "XADD", f"room:{ROOM}:events", "*", "type", "stock_update", "data",
                    json.dumps({"sku": "SKU-1", "stock": 2}), "media_time", chat_mt)
    check(wait_for(lambda: find_range(o, "v.m3u8", zid) and find_range(o, "a.m3u8", zid), 15)
          is not None, "a later event at the same media time shows")
    st, _, mpd = o.get(f"/live/{ROOM}/manifest.mpd")
    check(chat_id not in playlist(o, "v.m3u8") and chat_id not in playlist(o, "a.m3u8") and
          chat_id not in playlist(o, "v.m3u8", "?dvr=1") and chat_id.encode() not in mpd,
          "the chat_rate entry is in no playlist and not in the MPD")
    m = o.get("/metrics")[2].decode()
    check(re.search(r"shortwave_origin_room_events_skipped_total (\d+)", m).group(1) == skipped,
          "nor is it counted as skipped")

    # ---- players still read the playlists and the MPD ----
    r = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0",
                        o.base + f"/live/{ROOM}/index.m3u8"], capture_output=True, timeout=60)
    check(r.returncode == 0 and b"h264" in r.stdout, f"ffprobe reads the playlists ({r.stderr[-300:]!r})")
    r = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-i",
                        o.base + f"/live/{ROOM}/index.m3u8", "-t", "4", "-f", "null", "-"],
                       capture_output=True, timeout=90)
    check(r.returncode == 0, f"ffmpeg -i index.m3u8 -t 4 -f null - succeeds ({r.stderr[-300:]!r})")
    st, _, mpd = o.get(f"/live/{ROOM}/manifest.mpd")
    mpd = mpd.decode()
    check(st == 200 and f'id="{pin_id}"' in mpd and
          '<EventStream schemeIdUri="urn:shortwave:commerce:2026" timescale="1000">' in mpd,
          "the MPD has an EventStream with the pin's Event")
    ev = re.search(r'<Event presentationTime="(\d+)" id="' + re.escape(pin_id) + r'">([^<]*)</Event>', mpd)
    check(ev is not None and json.loads(ev.group(2).replace("&quot;", '"').replace("&lt;", "<")
                                        .replace("&gt;", ">").replace("&apos;", "'")
                                        .replace("&amp;", "&"))["id"] == pin_id,
          "the Event holds the client message as XML text")
    path = os.path.join(tmpdir("sw-mpd-"), "manifest.mpd")
    with open(path, "w") as f:
        f.write(mpd)
    r = subprocess.run(["xmllint", "--noout", path], capture_output=True, timeout=30)
    check(r.returncode == 0, f"xmllint: the MPD is well-formed XML ({r.stderr[-300:]!r})")
    r = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-i",
                        o.base + f"/live/{ROOM}/manifest.mpd", "-t", "2", "-f", "null", "-"],
                       capture_output=True, timeout=90)
    check(r.returncode == 0, f"ffmpeg still reads the MPD ({r.stderr[-300:]!r})")

    # ---- unpin: only the pinned sku clears the pin ----
    st, js, _ = post_event(o, "product_unpinned", {"sku": "OTHER"})
    check(st == 201 and redis_cli(rport, "HEXISTS", f"room:{ROOM}:state", "pinned") == "1",
          "unpinning another sku leaves the pin")
    st, js, _ = post_event(o, "product_unpinned", {"sku": "SKU-1"})
    check(st == 201 and redis_cli(rport, "HEXISTS", f"room:{ROOM}:state", "pinned") == "0" and
          redis_cli(rport, "HGET", f"room:{ROOM}:state", "last_id") == js["id"],
          "unpinning the pinned sku clears it; last_id follows")
    st, js, _ = post_event(o, "flash_sale", {"sku": "SKU-1", "price": "9.99", "currency": "EUR",
                                             "ends_at": "2030-01-01T00:00:00Z"})
    fs = json.loads(redis_cli(rport, "HGET", f"room:{ROOM}:state", "flash_sale") or "{}")
    check(st == 201 and fs.get("id") == js["id"] and fs.get("ends_at") == "2030-01-01T00:00:00Z",
          "a flash sale lands in the state hash")

    # A state key of the wrong type: the script fails before writing anything; 503, not 201.
    redis_cli(rport, "RENAME", f"room:{ROOM}:state", f"room:{ROOM}:state-saved")
    redis_cli(rport, "SET", f"room:{ROOM}:state", "not a hash")
    xlen = redis_cli(rport, "XLEN", f"room:{ROOM}:events")
    st, js, raw = post_event(o, "product_unpinned", {"sku": "SKU-1"})
    check(st == 503 and "not a hash" in js.get("error", "") and
          redis_cli(rport, "XLEN", f"room:{ROOM}:events") == xlen,
          f"a state key that is not a hash: 503 and no entry written ({st} {raw!r})")
    redis_cli(rport, "DEL", f"room:{ROOM}:state")
    redis_cli(rport, "RENAME", f"room:{ROOM}:state-saved", f"room:{ROOM}:state")

    m = o.get("/metrics")[2].decode()
    posted = int(re.search(r"shortwave_origin_room_events_posted_total (\d+)", m).group(1))
    refused = int(re.search(r'shortwave_origin_room_events_refused_total\{reason="bad_request"\} (\d+)', m).group(1))
    check(posted == 5 and refused >= len(bad), f"metrics count posts ({posted}) and refusals ({refused})")

    # ---- restart: the events come back from Redis (XREVRANGE at start) ----
    pub.stop()
    check(o.stop_clean(), "origin exits 0 on SIGTERM")
    o = Origin(redis=url, data=data, name="origin-2")
    def listed():
        st, _, body = o.get(f"/api/rooms/{ROOM}/events")
        return json.loads(body) if st == 200 else None
    got = wait_for(lambda: (listed() or {}).get("loaded") and listed(), 10)
    ids = [e["id"] for e in (got or {}).get("events", [])]
    check(pin_id in ids and xid in ids, f"after a restart the origin read the room's events back ({ids})")
    check([e["media_time"] for e in got["events"] if e["id"] == pin_id] == [pin_mt],
          "with the media time they had")
    pub = ffmpeg_publish(o.srt_url(f"live/{ROOM}"), size="320x240", name="pub2")
    check(wait_for(lambda: playlist(o, "v.m3u8"), 30), "the publisher is back")
    # The DVR playlists list the earlier run's segments again (restored from index.log after the
    # clean stop) and so the earlier events, which this origin only read from Redis. Both tracks:
    # audio that had not yet reached the video's last cut when the publisher stopped ends its
    # run with a gap segment of the same number (hls/README.md), so it is restored as well.
    def dvr_first(name):
        text = playlist(o, name, "?dvr=1")
        return parse_media_playlist(text)["media_sequence"] if text else None
    wait_for(lambda: dvr_first("a.m3u8") is not None, 10)
    vfirst, afirst = dvr_first("v.m3u8"), dvr_first("a.m3u8")
    check(afirst is not None and afirst == vfirst,
          f"after the restart the audio DVR timeline is restored like video's (first msn {afirst}, "
          f"video {vfirst})")
    for name in ("v.m3u8", "a.m3u8"):
        got = wait_for(lambda: find_range(o, name, pin_id, "?dvr=1"), 10)
        check(got is not None and got[0]["START-DATE"] == pin_mt,
              f"after the restart the DVR {name} still shows the earlier pin at its media time"
              + ("" if got else "\n" + playlist(o, name, "?dvr=1")[:1500]))
        if got is not None:
            first, end, _ = pdt_span(got[1])
            check(first <= iso_ms(pin_mt) <= end and "#EXT-X-DISCONTINUITY" in got[1],
                  f"... inside its PDT span, the restart a discontinuity")
    if parser:
        got = hlsjs_parse(parser, playlist(o, "v.m3u8", "?dvr=1"))
        r = got.get("ranges", {}).get(pin_id)
        check(r is not None and r["valid"] and r["start"] == pin_mt,
              f"hls.js parses the DVR playlist across the restart ({got.get('fragments')} fragments)")
    st, _, mpd = o.get(f"/live/{ROOM}/manifest.mpd?dvr=1")
    path = os.path.join(tmpdir("sw-mpd-"), "dvr.mpd")
    with open(path, "wb") as f:
        f.write(mpd)
    r = subprocess.run(["xmllint", "--noout", path], capture_output=True, timeout=30)
    check(st == 200 and f'id="{pin_id}"' in mpd.decode() and mpd.count(b"<Period ") >= 2 and r.returncode == 0,
          f"the DVR MPD after the restart: the earlier Event, a Period per run, well-formed ({st})")
    r = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-i",
                        o.base + f"/live/{ROOM}/index.m3u8?dvr=1", "-t", "3", "-f", "null", "-"],
                       capture_output=True, timeout=90)
    check(r.returncode == 0, f"ffmpeg reads the DVR playlists across the restart ({r.stderr[-300:]!r})")
    st, js, _ = post_event(o, "product_pinned", dict(pin, sku="SKU-2"))
    check(st == 201, "the restarted origin takes events")
    check_range_line(o, "v.m3u8", js["id"], js["media_time"], {"sku": "SKU-2"})

    # ---- Redis goes away: 503, never 201 ----
    rs.stop()
    time.sleep(0.5)
    st, js, raw = post_event(o, "product_pinned", pin)
    check(st == 503 and js and "redis" in js["error"], f"Redis stopped: 503, not 201 ({st} {raw!r})")
    m = o.get("/metrics")[2].decode()
    check(re.search(r"shortwave_origin_room_events_redis_errors_total [1-9]", m) is not None,
          "metrics count the Redis errors")
    check(playlist(o, "v.m3u8") != "", "the playlists are still served")
    check(o.alive() and not o.died_badly(), "origin still running")

    # ---- Redis comes back (empty): both connections return by themselves ----
    rs = Proc(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", tmpdir("sw-redis-again-")], "redis-again")
    check(wait_for(lambda: "shortwave_redis_events_reader_connected 1" in o.get("/metrics")[2].decode() and
                   "shortwave_redis_connected 1" in o.get("/metrics")[2].decode(), 15),
          "the origin reconnects both Redis connections")
    zid = redis_cli(rport, "XADD", f"room:{ROOM}:events", "*", "type", "stock_update", "data",
                    json.dumps({"sku": "SKU-2", "stock": 1}))
    check(wait_for(lambda: find_range(o, "v.m3u8", zid), 15) is not None,
          "an entry XADDed after the Redis restart reaches the playlist (the reader resubscribed)")
    st, js, _ = post_event(o, "product_unpinned", {"sku": "SKU-2"})
    check(st == 201, f"POST works again ({st})")

    # ---- api_token: a Bearer token when set ----
    o2 = Origin(extra_conf="api_token = s3cret-token\n", name="origin-token")
    st, js, _ = post_event(o2, "product_pinned", pin)
    check(st == 401, f"no token: 401 ({st})")
    st, js, _ = post_event(o2, "product_pinned", pin, headers={"authorization": "Bearer wrong"})
    check(st == 401, f"a wrong token: 401 ({st})")
    st, js, _ = post_event(o2, "product_pinned", pin, headers={"authorization": "Bearer s3cret-token"})
    check(st == 409, f"the right token passes (then 409: the room is not live) ({st} {js})")
    st, _, _ = http_get(o2.base + f"/api/streams/{ROOM}", method="DELETE")
    check(st in (401, 404), f"DELETE without the token is refused or unknown ({st})")
    check(o2.stop_clean(), "token origin exits 0")

    pub.stop()
    check(o.stop_clean(), "origin exits 0 on SIGTERM after Redis went away")


if __name__ == "__main__":
    run(main)
