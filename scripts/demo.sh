#!/bin/sh
# The demo: installs dependencies, builds, starts redis-server, shortwave-origin and shortwave-edge
# on loopback, publishes a test stream over SRT with ffmpeg, and prints the URLs to open. Ctrl-C
# stops it all.
#
# Ports (override with the environment): SW_HTTP_PORT 8080 (origin), SW_EDGE_PORT 8081 (edge),
# SW_SRT_PORT 9000, SW_REDIS_PORT 6390.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)

sh scripts/deps.sh
sh scripts/build.sh

http_port=${SW_HTTP_PORT:-8080}
edge_port=${SW_EDGE_PORT:-8081}
srt_port=${SW_SRT_PORT:-9000}
redis_port=${SW_REDIS_PORT:-6390}
run=$(mktemp -d /tmp/shortwave-demo.XXXXXX)
pids=""

stop() {
    trap - INT TERM EXIT
    echo
    echo "stopping..."
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo "logs were in $run"
}
trap stop INT TERM EXIT

redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$run" \
    >"$run/redis.log" 2>&1 &
pids="$pids $!"

"$top/build/bin/shortwave-origin" --srt "127.0.0.1:$srt_port" --http "127.0.0.1:$http_port" \
    --data "$run/data" --redis "redis://127.0.0.1:$redis_port" >"$run/origin.log" 2>&1 &
pids="$pids $!"

i=0
until curl -fs "http://127.0.0.1:$http_port/healthz" >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -gt 100 ] && { echo "origin did not start:"; cat "$run/origin.log"; exit 1; }
    sleep 0.1
done

"$top/build/bin/shortwave-edge" --listen "127.0.0.1:$edge_port" \
    --origin "http://127.0.0.1:$http_port" --redis "redis://127.0.0.1:$redis_port" \
    >"$run/edge.log" 2>&1 &
pids="$pids $!"

# A looping test pattern with a tone, H.264 + AAC, 2 s GOP, published as live/demo.
ffmpeg -hide_banner -loglevel error -nostdin -re \
    -f lavfi -i "testsrc2=size=1280x720:rate=30" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
    -c:v libx264 -preset veryfast -tune zerolatency -g 60 -b:v 2500k -pix_fmt yuv420p \
    -c:a aac -b:a 128k -f mpegts \
    "srt://127.0.0.1:$srt_port?streamid=#!::r=live/demo,m=publish" >"$run/ffmpeg.log" 2>&1 &
pids="$pids $!"

i=0
until curl -fs "http://127.0.0.1:$edge_port/live/demo/index.m3u8" >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -gt 100 ] && { echo "the stream did not come up:"; tail -n 20 "$run/origin.log" "$run/edge.log" "$run/ffmpeg.log"; exit 1; }
    sleep 0.1
done

cat <<MSG

Shortwave is running. Open, through the edge:
  player   http://127.0.0.1:$edge_port/watch/demo            (dash.js: ?player=dash)
  shorts   http://127.0.0.1:$edge_port/shorts
  LL-HLS   http://127.0.0.1:$edge_port/live/demo/index.m3u8
  DASH     http://127.0.0.1:$edge_port/live/demo/manifest.mpd
  metrics  http://127.0.0.1:$edge_port/metrics
and on the origin:
  LL-HLS   http://127.0.0.1:$http_port/live/demo/index.m3u8
  API      http://127.0.0.1:$http_port/api/streams
  metrics  http://127.0.0.1:$http_port/metrics

Pin a product on the player (the card shows when playback reaches that moment):
  curl -X POST http://127.0.0.1:$http_port/api/rooms/demo/events -H 'content-type: application/json' -d '{"type":"product_pinned",
    "data":{"sku":"KTL-1","title":"Enamel kettle","price":"39.00","currency":"EUR",
    "image":"https://shop.example/kettle.jpg","stock":12}}'

Publish your own stream from OBS or ffmpeg to
  srt://127.0.0.1:$srt_port?streamid=#!::r=live/NAME,m=publish
and watch it at http://127.0.0.1:$edge_port/live/NAME/index.m3u8

Logs: $run   (Ctrl-C stops everything)
MSG
if [ -n "${SW_DEMO_SECONDS:-}" ]; then
    sleep "$SW_DEMO_SECONDS"
else
    wait
fi
