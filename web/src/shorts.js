// The shorts feed, /shorts and /shorts?room=ROOM: ready shorts from the catalog (/api/shorts,
// fetched through this edge; its JSON is in web/README.md), one per screen, swiped vertically
// (CSS scroll snap), each with its product cards. Only the short on screen plays.
//
// window.__sw: { state: 'loading' | 'empty' | 'ready' | 'error', status (HTTP), count, playing }.
import Hls from 'hls.js/light';
import { el, productCard } from './card.js';
import './shorts.css';

const params = new URLSearchParams(location.search);
const room = params.get('room') || '';
const sw = (window.__sw = { page: 'shorts', room, state: 'loading', status: 0, count: 0, playing: null });
const app = document.getElementById('app');
document.title = room ? `Shorts from ${room} · Shortwave` : 'Shorts · Shortwave';

function emptyState(title, text) {
  const box = el('div', 'sw-empty');
  box.append(el('h1', null, title), el('p', null, text));
  if (room) {
    const a = el('a', null, `Watch ${room} live`);
    a.href = `/watch/${encodeURIComponent(room)}`;
    box.append(a);
  }
  app.replaceChildren(box);
}

// A short's URL must stay on http(s); relative URLs resolve against this edge.
function mediaUrl(u) {
  try {
    const url = new URL(String(u), location.href);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : '';
  } catch (_) {
    return '';
  }
}

function attach(video, url) {
  if (/\.m3u8(\?|$)/.test(url) && !video.canPlayType('application/vnd.apple.mpegurl') && Hls.isSupported()) {
    const hls = new Hls({ maxBufferLength: 10 });
    hls.loadSource(url);
    hls.attachMedia(video);
    return () => hls.destroy();
  }
  video.src = url;
  return () => video.removeAttribute('src');
}

function render(shorts) {
  const feed = el('main', 'sw-feed');
  const players = new Map();
  const observer = new IntersectionObserver((entries) => {
    for (const e of entries) {
      const video = e.target.querySelector('video');
      if (e.isIntersecting && e.intersectionRatio >= 0.6) {
        if (!players.has(video)) players.set(video, attach(video, video.dataset.url));
        video.play().catch(() => {});
        sw.playing = e.target.dataset.id;
      } else {
        video.pause();
      }
    }
  }, { root: feed, threshold: [0, 0.6] });
  for (const s of shorts) {
    const url = mediaUrl(s.url);
    if (!url) continue;
    const item = el('article', 'sw-short');
    item.dataset.id = String(s.id);
    const video = el('video');
    video.muted = true;
    video.loop = true;
    video.playsInline = true;
    video.preload = 'none';
    video.dataset.url = url;
    const poster = s.poster ? mediaUrl(s.poster) : '';
    if (poster) video.poster = poster;
    const meta = el('div', 'sw-short-meta');
    meta.append(el('div', 'sw-short-title', s.title || ''));
    for (const p of Array.isArray(s.products) ? s.products.slice(0, 3) : []) {
      // Adding to the cart belongs to a live room's socket; from a short it opens the room.
      const card = productCard(() => {
        location.href = `/watch/${encodeURIComponent(s.room || room)}`;
      });
      card.update(p);
      meta.append(card.root);
    }
    item.append(video, meta);
    feed.append(item);
    observer.observe(item);
  }
  sw.count = feed.children.length;
  if (sw.count === 0) return false;
  app.replaceChildren(feed);
  return true;
}

async function main() {
  const q = room ? `?room=${encodeURIComponent(room)}` : '';
  let res;
  try {
    res = await fetch(`/api/shorts${q}`, { headers: { accept: 'application/json' } });
  } catch (e) {
    sw.state = 'error';
    emptyState('Shorts are unavailable', 'The catalog could not be reached. Try again in a moment.');
    return;
  }
  sw.status = res.status;
  // 404: no catalog is served yet (or none for this room): that is an empty feed, not a fault.
  if (res.status === 404) {
    sw.state = 'empty';
    emptyState('No shorts yet', room ? `${room} has no shorts yet. They appear here once the live stream has made some.` : 'Shorts appear here once live streams have made some.');
    return;
  }
  let body = null;
  try {
    body = res.ok ? await res.json() : null;
  } catch (_) {
    body = null;
  }
  if (!body || !Array.isArray(body.shorts)) {
    sw.state = 'error';
    emptyState('Shorts are unavailable', `The catalog answered ${res.status}${body ? ' without a list' : ''}.`);
    return;
  }
  const ready = body.shorts.filter((s) => s && typeof s === 'object' && (s.status === undefined || s.status === 'ready'));
  if (!render(ready)) {
    sw.state = 'empty';
    emptyState('No shorts yet', room ? `${room} has no shorts yet.` : 'No live stream has made shorts yet.');
    return;
  }
  sw.state = 'ready';
}

main();
