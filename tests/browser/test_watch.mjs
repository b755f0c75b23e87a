// Browser acceptance 1 and 2: node test_watch.mjs hls|dash
//
// redis-server, origin and edge on loopback, an ffmpeg publisher over SRT; headless Chromium opens
// /watch/ROOM (?player=dash for 2) on the edge. Playback must start within 3 s of page load (time
// to first frame from navigation start, as the page measures it), currentTime must advance for
// 15 s without a stall, and the latency behind live (hls.js: the clock minus the program date
// time of the frame on screen, from EXT-X-PROGRAM-DATE-TIME; dash.js: its live latency) must stay
// at most 3 s in steady state; dash.js must run in its low-latency mode (the origin's MPD turns it
// on). Prints the figures; saves a screenshot. SW_DASH_TARGET=S opens the DASH page with
// ?dash_target=S, to measure other targets.
import { browser, check, log, run, sample, screenshot, stack, stats, waitSegments, waitFor } from './lib.mjs';

const kind = process.argv[2] === 'dash' ? 'dash' : 'hls';
const room = `bw${kind}`;

run(async () => {
  const s = await stack(room);
  check(await waitSegments(s.edge.base, room, 2, 30000), 'the stream has two segments through the edge');

  const ctx = await browser();
  const page = await ctx.newPage();
  page.on('pageerror', (e) => log(`page error: ${e.message}`));
  const url = `${s.edge.base}/watch/${room}${kind === 'dash' ? '?player=dash' + (process.env.SW_DASH_TARGET ? '&dash_target=' + process.env.SW_DASH_TARGET : '') : ''}`;
  const t0 = Date.now();
  const resp = await page.goto(url, { waitUntil: 'load' });
  const loaded = Date.now() - t0;
  check(resp && resp.status() === 200, `GET /watch/${room} is 200 (${resp && resp.status()})`);

  const ttff = await waitFor(() => page.evaluate(() => (Number.isFinite(window.__sw.ttff) ? window.__sw.ttff : 0)), 10000);
  check(ttff && ttff <= 3000, `${kind}: first frame ${ttff} ms after navigation (page loaded in ${loaded} ms), at most 3000`);

  // The page reports latency from half a second of playback on (web/src/watch.js says why).
  check(await waitFor(() => page.evaluate(() => Number.isFinite(window.__sw.latency)), 3000),
    `${kind}: the page reports its latency`);
  // 15 s of playback, sampled every 500 ms: currentTime strictly advancing, no 'waiting'.
  const before = await page.evaluate(() => window.__sw.stalls);
  const samples = await sample(page, 15000, 500, () => ({
    t: document.querySelector('video').currentTime,
    paused: document.querySelector('video').paused,
    latency: window.__sw.latency,
    stalls: window.__sw.stalls,
    now: Date.now(),
  }));
  let advancing = true;
  for (let i = 1; i < samples.length; i++) if (!(samples[i].t > samples[i - 1].t)) advancing = false;
  const played = samples[samples.length - 1].t - samples[0].t;
  const wall = (samples[samples.length - 1].now - samples[0].now) / 1000;
  check(advancing && played > wall * 0.9,
    `${kind}: currentTime advanced at every one of ${samples.length} samples: ${played.toFixed(2)} s of media in ${wall.toFixed(2)} s`);
  const stalls = samples[samples.length - 1].stalls - before;
  check(stalls === 0, `${kind}: no stall during the 15 s (${stalls})`);
  log(`${kind}: samples (currentTime/latency): ${samples.map((x) => `${x.t.toFixed(2)}/${Number(x.latency).toFixed(2)}`).join(" ")}`);
  const lat = stats(samples.map((x) => x.latency));
  log(`${kind}: latency behind live over 15 s: min ${lat.min.toFixed(2)} s, median ${lat.median.toFixed(2)} s, max ${lat.max.toFixed(2)} s (${lat.n} samples)`);
  // Steady state: the player starts a little further back than its target (the time between
  // picking its start position and the first frame) and closes the gap at up to 1.25x; the last
  // 10 s of the window must all be within 3 s, and the whole window's median too.
  const steady = stats(samples.slice(-20).map((x) => x.latency));
  check(lat.n === samples.length && steady.max <= 3 && lat.median <= 3,
    `${kind}: latency behind live at most 3 s in steady state (last 10 s: max ${steady.max.toFixed(2)} s; whole window: median ${lat.median.toFixed(2)} s, max ${lat.max.toFixed(2)} s)`);
  if (kind === 'dash') {
    // availabilityTimeComplete="false" in the MPD is what puts dash.js 5 in low-latency mode.
    const ll = await page.evaluate(() => window.__dash.getLowLatencyModeEnabled());
    check(ll === true, `dash: dash.js runs in its low-latency mode (${ll})`);
  }
  const shown = await page.locator('.sw-latency').textContent();
  check(/behind live/.test(shown), `${kind}: the page shows the latency ("${shown}")`);
  const stallLog = await page.evaluate(() => window.__sw.stallLog);
  if (stallLog.length) log(`${kind}: stalls: ${JSON.stringify(stallLog)}`);
  const errors = await page.evaluate(() => window.__sw.errors);
  if (errors.length) log(`${kind}: player errors: ${errors.join(', ')}`);
  console.log(`FIGURES ${kind}: ttff_ms=${ttff} latency_median_s=${lat.median.toFixed(2)} latency_max_s=${lat.max.toFixed(2)} stalls=${stalls}`);
  await screenshot(page, `watch-${kind}`);
  if (kind === 'hls') {
    // A phone held upright: the video spans the width and the card column floats over it.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(500);
    const lay = await page.evaluate(() => {
      const v = document.querySelector('video').getBoundingClientRect();
      const side = document.querySelector('.sw-side');
      const sb = side.getBoundingClientRect();
      return { vw: Math.round(v.width), vl: v.left, pos: getComputedStyle(side).position, right: sb.right, left: sb.left };
    });
    check(lay.vw >= 350 && lay.vw <= 390 && lay.vl >= 0 && lay.pos === 'absolute' && lay.left >= 0 && lay.right <= 390,
      `phone layout: the video is ${lay.vw} px of 390, the card column is ${lay.pos} within the screen (${lay.left}-${lay.right})`);
    await screenshot(page, 'watch-phone');
  }

  check(await s.edge.stopClean(), 'edge exits 0 on SIGTERM');
  check(await s.origin.stopClean(), 'origin exits 0 on SIGTERM');
});
