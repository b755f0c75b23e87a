// The watch page, /watch/{room}: the live stream through this edge (hls.js with LL-HLS, or
// dash.js with ?player=dash), the latency behind live, and the product card of the overlay.
// ?delay=S holds the player S seconds behind live (a viewer on a slow link, or a test).
//
// window.__sw is the page's state for people and tests: player, latency (s), ttff (ms from
// navigation to the first frame), stalls, cards (each with the playback date at which it
// appeared), the overlay socket and cart answers.
import Hls from 'hls.js/light';
import { el, productCard } from './card.js';
import { Overlay } from './overlay.js';
import './watch.css';

const room = decodeURIComponent(location.pathname.split('/')[2] || '');
const params = new URLSearchParams(location.search);
const kind = params.get('player') === 'dash' ? 'dash' : 'hls';
const delay = Math.max(0, Math.min(60, Number(params.get('delay')) || 0));
const HLS_TARGET_S = 2;
const DASH_TARGET_S = Number(params.get('dash_target')) || 1.5;
// Signed-URL parameters (edge/README.md) ride along on every URL the page derives.
const token = [...params].filter(([k]) => k.startsWith('sw_'));
const tokenQuery = token.length ? `?${new URLSearchParams(token)}` : '';

const sw = (window.__sw = {
  room,
  player: kind,
  delay,
  latency: NaN,
  latencies: [],
  ttff: NaN,
  stalls: 0,
  stallLog: [],
  recoveries: 0,
  errors: [],
  cards: [],
  viewers: NaN,
  overlay: { socket: 'idle', connects: 0, closes: [], lastEventId: null, received: [], errors: [], cart: [] },
});

const video = el('video', 'sw-video');
video.muted = true; // autoplay without a gesture; the viewer unmutes
video.autoplay = true;
video.playsInline = true;
video.controls = true;
const badge = el('div', 'sw-latency', 'connecting…');
const viewers = el('div', 'sw-viewers');
const banner = el('div', 'sw-banner');
banner.hidden = true;
const stage = el('div', 'sw-stage');
const side = el('aside', 'sw-side');
const title = el('h1', 'sw-title', room);
stage.append(video, badge, viewers, banner);
document.getElementById('app').append(stage, side);
side.append(title);
document.title = `${room} · Shortwave`;

let playbackDate = () => NaN; // ms of the frame on screen, from the player
let liveLatency = () => NaN; // seconds behind live, from the player

const card = productCard((sku) => overlay.addToCart(sku));
card.root.hidden = true;
side.append(card.root);

function showBanner(text) {
  banner.textContent = text;
  banner.hidden = !text;
}

const overlay = new Overlay(room, {
  onEvent(msg, via, playbackMs) {
    switch (msg.type) {
      case 'product_pinned':
        card.update(msg);
        card.root.hidden = false;
        sw.cards.push({
          id: msg.id, sku: msg.sku, via, mediaTime: Date.parse(msg.media_time),
          playbackDate: playbackMs, shownWall: Date.now(), currentTime: video.currentTime,
        });
        break;
      case 'product_unpinned':
        if (card.sku === msg.sku) card.root.hidden = true;
        break;
      case 'price_update':
      case 'stock_update':
        if (card.sku === msg.sku) card.update(msg);
        break;
      case 'flash_sale':
        card.setSale(msg);
        break;
    }
  },
  onViewers(n) {
    sw.viewers = n;
    viewers.textContent = `${n} watching`;
  },
  onCart(k, text) {
    card.setCartState(k, text);
  },
  onSocket(state) {
    stage.dataset.socket = state;
  },
}, () => playbackDate(), sw.overlay, tokenQuery);

// ---- players -----------------------------------------------------------------------------

function startHls() {
  if (!Hls.isSupported()) {
    showBanner('This browser cannot play the stream (no Media Source Extensions).');
    return;
  }
  const retry = { maxNumRetry: 8, retryDelayMs: 250, maxRetryDelayMs: 1500, backoff: 'linear' };
  const policy = (ms) => ({
    default: { maxTimeToFirstByteMs: ms, maxLoadTimeMs: ms * 2, timeoutRetry: retry, errorRetry: retry },
  });
  const cfg = {
    lowLatencyMode: delay === 0,
    backBufferLength: 30,
    manifestLoadPolicy: policy(4000),
    playlistLoadPolicy: policy(4000),
    fragLoadPolicy: policy(8000),
  };
  if (delay > 0) {
    cfg.liveSyncDuration = delay;
    cfg.liveMaxLatencyDuration = delay + 6;
    cfg.maxLiveSyncPlaybackRate = 1;
  } else {
    // PART-HOLD-BACK (three parts, 1 s) is the least a server allows. At 1.5 s, playback ran dry
    // once or twice in 15 s on a machine loaded 5 to 8 (two cores, sanitizer builds); a second
    // more absorbs that and still leaves the viewer well within 3 s of live.
    cfg.liveSyncDuration = HLS_TARGET_S;
    // Back to the target after a stall at up to 1.25x (pitch kept): a 4 s outage leaves a viewer
    // about 4 s behind, which 1.1x took 10 s to bring under 3 s and 1.25x takes 4.
    cfg.maxLiveSyncPlaybackRate = 1.25;
    // After a long one (the edge restarted, the network went away for seconds), drifting back
    // would take too long: a viewer more than 5 s behind jumps back to the target.
    cfg.liveMaxLatencyDuration = HLS_TARGET_S + 3;
    // hls.js moves its target back by this much after every stall (at most a target duration, 2 s);
    // its default, a whole second, leaves a viewer 3 s behind after a single stall.
    cfg.liveSyncOnStallIncrease = 0.5;
  }
  const hls = new Hls(cfg);
  window.__hls = hls;
  playbackDate = () => (hls.playingDate ? hls.playingDate.getTime() : NaN);
  liveLatency = () => (hls.playingDate ? (Date.now() - hls.playingDate.getTime()) / 1000 : NaN);
  hls.on(Hls.Events.LEVEL_UPDATED, (_, data) => {
    const ranges = data.details && data.details.dateRanges;
    if (!ranges) return;
    for (const id of Object.keys(ranges)) {
      const r = ranges[id];
      if (r.class !== 'com.shortwave.commerce') continue;
      let json;
      try {
        json = atob(r.attr['X-SW-DATA'] || '');
        json = new TextDecoder().decode(Uint8Array.from(json, (c) => c.charCodeAt(0)));
      } catch (_) {
        continue;
      }
      overlay.onCue(id, r.attr['X-SW-TYPE'], r.startDate ? r.startDate.getTime() : NaN, json);
    }
  });
  hls.on(Hls.Events.ERROR, (_, data) => {
    sw.errors.push(`${data.type}:${data.details}${data.fatal ? ':fatal' : ''}`);
    if (!data.fatal) return;
    // A fatal error is one the retry policies gave up on: an edge restart longer than they
    // last, say. Keep trying; the stream is live and will be there again.
    sw.recoveries++;
    if (data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
    else setTimeout(() => hls.startLoad(-1), 1000);
  });
  hls.loadSource(`/live/${encodeURIComponent(room)}/index.m3u8${tokenQuery}`);
  hls.attachMedia(video);
}

async function startDash() {
  // dash.js is big and most viewers never need it: a chunk of its own, loaded on demand.
  const dashjs = await import('dashjs');
  const player = dashjs.MediaPlayer().create();
  window.__dash = player;
  // The origin's MPD is a low-latency one: its timeline ends with the segment in progress and
  // the next one, available one part after they start (availabilityTimeOffset) and streamed as
  // their parts are written (availabilityTimeComplete="false", which is what turns on dash.js
  // 5's low-latency mode: chunked fetches, its low-latency stall threshold and timeouts; there
  // is no setting for it any more). So the player can sit as close as the MPD's
  // ServiceDescription suggests (1.5 s, three parts and half a second). The page sets the target
  // itself rather than applying the ServiceDescription, so that ?dash_target=S and ?delay=S
  // apply; catch-up plays at up to ±10 % to hold it, as hls.js does, and never seeks.
  const settings = {
    streaming: {
      applyServiceDescription: false,
      delay: { liveDelay: delay > 0 ? delay : DASH_TARGET_S },
      liveCatchup: {
        enabled: true,
        mode: 'liveCatchupModeDefault',
        maxDrift: 0,
        playbackRate: { min: -0.1, max: delay > 0 ? 0 : 0.1 },
      },
      retryAttempts: { MPD: 20, MediaSegment: 10 },
      retryIntervals: { MPD: 500, MediaSegment: 500 },
    },
  };
  player.updateSettings(settings);
  player.initialize(video, `/live/${encodeURIComponent(room)}/manifest.mpd${tokenQuery}`, true);
  playbackDate = () => {
    const t = player.timeAsUTC();
    return Number.isFinite(t) && t > 0 ? t * 1000 : NaN;
  };
  liveLatency = () => {
    const l = player.getCurrentLiveLatency();
    return Number.isFinite(l) && l > 0 ? l : NaN;
  };
  player.on('urn:shortwave:commerce:2026', (e) => {
    // The Event's text is the JSON message, which carries its own media_time.
    const ev = e.event || {};
    let data = ev.messageData;
    if (data instanceof Uint8Array) data = new TextDecoder().decode(data);
    overlay.onCue(String(ev.id), undefined, NaN, data);
  }, null, { mode: dashjs.MediaPlayer.events.EVENT_MODE_ON_RECEIVE });
  player.on(dashjs.MediaPlayer.events.ERROR, (e) => {
    sw.errors.push(`dash:${e.error && (e.error.code || e.error.message)}`);
  });
}

// ---- figures -----------------------------------------------------------------------------

let firstFrameAt = NaN; // currentTime of the first frame
function firstFrame() {
  if (Number.isFinite(sw.ttff)) return;
  sw.ttff = Math.round(performance.now());
  firstFrameAt = video.currentTime;
}
if ('requestVideoFrameCallback' in video) video.requestVideoFrameCallback(firstFrame);
video.addEventListener('playing', firstFrame);
video.addEventListener('waiting', () => {
  if (!Number.isFinite(sw.ttff)) return;
  sw.stalls++;
  sw.stallLog.push({ at: Math.round(performance.now()), currentTime: video.currentTime, seeking: video.seeking });
});

setInterval(() => {
  // hls.js dates the frame on screen from the fragment it last saw playing, which for the first
  // few hundred milliseconds can still be an older one (seen: 6 s, then 1.9 s half a second
  // later while playback ran at 1x): the figure counts from half a second of playback on.
  if (!(video.currentTime >= firstFrameAt + 0.5)) return;
  const l = liveLatency();
  sw.latency = l;
  if (Number.isFinite(l)) {
    sw.latencies.push(Math.round(l * 1000) / 1000);
    if (sw.latencies.length > 600) sw.latencies.shift();
    badge.textContent = `${l.toFixed(1)} s behind live`;
    badge.classList.toggle('sw-late', l > 5);
  }
}, 250);

if (!room) {
  showBanner('No room in the address: /watch/ROOM');
} else {
  if (kind === 'dash') startDash().catch((e) => showBanner(`Player failed: ${e.message}`));
  else startHls();
  overlay.connect();
}
