// Browser acceptance: the shorts feed's empty state, and the edge's page serving.
//
// redis-server, origin and edge on loopback with an ffmpeg publisher (the feed sits beside a live
// room). Until the shorts issue lands the origin has no /api/shorts (404 through the edge):
// /shorts and /shorts?room=ROOM must show the empty state, not an error. Before the browser,
// plain HTTP checks of what the edge serves from web_root: content types, cache lifetimes,
// ETag/304, and 404 for bad room ids and unknown assets.
import { browser, check, log, run, screenshot, stack, waitSegments } from './lib.mjs';

const room = 'bshorts';

async function get(base, path, headers = {}) {
  const r = await fetch(base + path, { headers, redirect: 'manual' });
  return { status: r.status, h: r.headers, body: await r.text() };
}

async function httpChecks(base) {
  const w = await get(base, `/watch/${room}`);
  check(w.status === 200 && w.h.get('content-type') === 'text/html; charset=utf-8' &&
    w.h.get('cache-control') === 'no-cache' && /^"[0-9a-f]{16}"$/.test(w.h.get('etag') || ''),
    `/watch/${room}: 200 text/html, no-cache, ETag (${w.status} ${w.h.get('content-type')} ${w.h.get('cache-control')} ${w.h.get('etag')})`);
  const again = await get(base, `/watch/${room}`, { 'if-none-match': w.h.get('etag') });
  check(again.status === 304 && again.body === '', `/watch/${room} with its ETag: 304, no body (${again.status})`);
  const other = await get(base, '/watch/room-2.b_c', { 'if-none-match': '"0000000000000000"' });
  check(other.status === 200 && other.body === w.body, 'another room, stale ETag: 200, the same page');
  const bad = await get(base, '/watch/a', { 'if-none-match': 'garbage' });
  check(bad.status === 200, 'a malformed If-None-Match is ignored (200)');

  const js = w.body.match(/src="(\/assets\/watch-[A-Z0-9]+\.js)"/);
  const css = w.body.match(/href="(\/assets\/watch-[A-Z0-9]+\.css)"/);
  check(js && css, 'the page references a hashed JS and CSS bundle');
  if (js && css) {
    const a = await get(base, js[1]);
    check(a.status === 200 && a.h.get('content-type') === 'text/javascript; charset=utf-8' &&
      a.h.get('cache-control') === 'public, max-age=31536000, immutable' && a.body.length > 1000,
      `${js[1]}: 200 text/javascript, immutable, ${a.body.length} bytes`);
    const c = await get(base, css[1]);
    check(c.status === 200 && c.h.get('content-type') === 'text/css; charset=utf-8' &&
      c.h.get('cache-control') === 'public, max-age=31536000, immutable', `${css[1]}: 200 text/css, immutable`);
    const head = await fetch(base + js[1], { method: 'HEAD' });
    check(head.status === 200 && Number(head.headers.get('content-length')) === a.body.length,
      `HEAD ${js[1]}: 200 with the GET's Content-Length`);
  }
  const s = await get(base, '/shorts');
  check(s.status === 200 && /\/assets\/shorts-[A-Z0-9]+\.js/.test(s.body), '/shorts: 200, its own bundle');

  // Bad input: each is a 404 from the edge itself, never a fetch to the origin or a file read.
  const long = 'r'.repeat(65);
  for (const p of ['/watch/', `/watch/${long}`, '/watch/a%2Fb', '/watch/a/b', '/watch/..', '/watch/a%00',
    '/watch/a b', '/assets/', '/assets/nope.js', '/assets/../watch.html', '/assets/.hidden',
    '/assets/%2e%2e%2fwatch.html', `/assets/${'x'.repeat(300)}.js`]) {
    const r = await get(base, p);
    check(r.status === 404 || r.status === 400, `${JSON.stringify(p)}: ${r.status}`);
  }
  const ok64 = await get(base, `/watch/${'r'.repeat(64)}`);
  check(ok64.status === 200, 'a 64-character room id: 200');
  const post = await fetch(`${base}/shorts`, { method: 'POST', body: 'x' });
  check(post.status === 405, `POST /shorts: ${post.status}`);
}

run(async () => {
  const s = await stack(room);
  await httpChecks(s.edge.base);
  check(await waitSegments(s.edge.base, room, 1, 30000), 'the room is live through the edge');

  const api = await get(s.edge.base, `/api/shorts?room=${room}`);
  log(`/api/shorts?room=${room} through the edge: ${api.status}`);

  // A phone held upright.
  const ctx = await browser({ width: 390, height: 844 });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => check(false, `page error: ${e.message}`));
  for (const path of ['/shorts', `/shorts?room=${room}`]) {
    const resp = await page.goto(s.edge.base + path, { waitUntil: 'load' });
    check(resp.status() === 200, `GET ${path}: 200`);
    await page.waitForFunction(() => window.__sw && window.__sw.state !== 'loading', null, { timeout: 10000 });
    const st = await page.evaluate(() => window.__sw);
    const text = await page.locator('.sw-empty').innerText().catch(() => '');
    if (api.status === 404) {
      check(st.state === 'empty' && st.status === 404 && /No shorts yet/.test(text),
        `${path}: the empty state (${st.state}, catalog ${st.status}): "${text.replace(/\n/g, ' / ')}"`);
    } else {
      check(st.state === 'ready' || st.state === 'empty', `${path}: the catalog answered ${api.status}: ${st.state}`);
    }
    if (path.includes('room=')) {
      const link = await page.locator('.sw-empty a').getAttribute('href').catch(() => null);
      check(link === `/watch/${room}`, `${path}: links to the live room (${link})`);
    }
    await screenshot(page, path.includes('room=') ? 'shorts-room-empty' : 'shorts-empty');
  }
  check(await s.edge.stopClean(), 'edge exits 0 on SIGTERM');
  check(await s.origin.stopClean(), 'origin exits 0 on SIGTERM');
});
