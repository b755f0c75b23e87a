// Helpers for the browser tests: free ports, real daemons (redis-server, shortwave-origin,
// shortwave-edge) and an ffmpeg SRT publisher on loopback, headless Chromium through
// playwright-core, checks with a final "N passed, N failed" line. The node twin of
// tests/integration/swtest.py: every process in its own group, stopped with TERM then KILL on
// every exit path; every wait bounded.
import { spawn, execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { mkdtempSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const BIN = resolve(process.env.SW_BIN || join(here, '..', '..', 'build', 'bin'));
export const WEB_ROOT = resolve(process.env.SW_WEB_ROOT || join(BIN, '..', 'web'));
export const ARTIFACTS = resolve(process.env.SW_ARTIFACTS || join(BIN, '..', 'tests', 'browser-artifacts'));

// The flags tests/README.md and the issue name; autoplay lets the muted player start unaided.
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
];

const failures = [];
let checks = 0;
const procs = [];
const dirs = [];
const browsers = [];

export function log(msg) {
  console.log(`${new Date().toISOString().slice(11, 19)} ${msg}`);
}

export function check(cond, what) {
  checks++;
  log(`${cond ? 'ok  ' : 'FAIL'} ${what}`);
  if (!cond) failures.push(what);
  return cond;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(fn, timeoutMs, intervalMs = 100) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await fn();
    if (v) return v;
    await sleep(intervalMs);
  }
  return null;
}

export function tmp(prefix) {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

export function freeUdpPort() {
  return new Promise((res, rej) => {
    const s = createSocket('udp4');
    s.once('error', rej);
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

// A child in its own process group with its output in a log file.
export class Proc {
  constructor(argv, name) {
    this.name = name;
    this.logPath = join(tmp(`sw-${name}-`), 'output.log');
    const fd = openSync(this.logPath, 'w');
    this.child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', fd, fd], detached: true });
    this.exit = new Promise((r) => this.child.once('exit', (code, sig) => r({ code, sig })));
    this.exited = null;
    this.exit.then((e) => (this.exited = e));
    this.sent = null;
    procs.push(this);
  }

  alive() {
    return this.exited === null;
  }

  output() {
    try {
      return readFileSync(this.logPath, 'utf8');
    } catch (_) {
      return '';
    }
  }

  signal(sig) {
    if (!this.alive()) return;
    this.sent = sig;
    try {
      process.kill(-this.child.pid, sig);
    } catch (_) { /* already gone */ }
  }

  // TERM, then KILL after `ms`. Resolves to { code, sig }.
  async stop(ms = 10000) {
    if (this.alive()) {
      this.signal('SIGTERM');
      const t = await Promise.race([this.exit, sleep(ms).then(() => null)]);
      if (t === null) {
        log(`${this.name} ignored SIGTERM for ${ms} ms; killing`);
        this.signal('SIGKILL');
        await Promise.race([this.exit, sleep(5000)]);
      }
    }
    return this.exited;
  }

  // Stops it and says whether it exited 0 after TERM; prints its tail otherwise.
  async stopClean() {
    const e = await this.stop(20000);
    if (e && e.code === 0) return true;
    console.log(`--- ${this.name}: ${JSON.stringify(e)}; end of its output ---\n${this.output().slice(-6000)}`);
    return false;
  }
}

async function httpOk(url) {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
    return r.status === 200;
  } catch (_) {
    return false;
  }
}

// A private redis-server; `port` to start one again where a stopped one was.
export async function redisServer(port = null) {
  port = port || (await freePort());
  const d = tmp('sw-redis-');
  const p = new Proc(['redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'no', '--dir', d], 'redis');
  p.port = port;
  p.url = `redis://127.0.0.1:${port}`;
  const ok = await waitFor(() => redisCli(port, 'PING') === 'PONG', 10000);
  if (!ok) throw new Error(`redis-server did not start:\n${p.output()}`);
  return p;
}

export function redisCli(port, ...args) {
  try {
    return execFileSync('redis-cli', ['-p', String(port), '--raw', ...args], { timeout: 10000, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString().trim();
  } catch (e) {
    return `ERR ${e.message}`;
  }
}

export async function origin({ redis = null, extra = '' } = {}) {
  const srtPort = await freeUdpPort();
  const httpPort = await freePort();
  const conf = join(tmp('sw-conf-'), 'origin.conf');
  writeFileSync(conf, `srt = 127.0.0.1:${srtPort}\nhttp = 127.0.0.1:${httpPort}\n` +
    `data = ${tmp('sw-data-')}\nlog_level = info\n${redis ? `redis = ${redis}\n` : ''}${extra}`);
  const p = new Proc([join(BIN, 'shortwave-origin'), '-c', conf], 'origin');
  p.base = `http://127.0.0.1:${httpPort}`;
  p.srtUrl = (resource) => `srt://127.0.0.1:${srtPort}?streamid=#!::r=${resource},m=publish`;
  if (!(await waitFor(() => httpOk(`${p.base}/healthz`) || !p.alive(), 10000)) || !p.alive())
    throw new Error(`origin did not start:\n${p.output()}`);
  return p;
}

// The edge has a --help that lists its keys: the tests use it to see what this build can do.
export function edgeHas(key) {
  try {
    return execFileSync(join(BIN, 'shortwave-edge'), ['--help']).toString().includes(key);
  } catch (_) {
    return false;
  }
}

export async function edge(originBase, { port = null, extra = [], name = 'edge' } = {}) {
  port = port || (await freePort());
  const argv = [join(BIN, 'shortwave-edge'), '--listen', `127.0.0.1:${port}`, '--origin', originBase,
    '--cache-size', '64M', '--web-root', WEB_ROOT, ...extra];
  const p = new Proc(argv, name);
  p.port = port;
  p.base = `http://127.0.0.1:${port}`;
  if (!(await waitFor(() => httpOk(`${p.base}/healthz`) || !p.alive(), 10000)) || !p.alive())
    throw new Error(`edge did not start:\n${p.output()}`);
  return p;
}

// swtest.ffmpeg_publish(): lavfi testsrc2 + sine, libx264 zerolatency without B-frames, a
// keyframe every `gop` frames, MPEG-TS over SRT.
export function ffmpegPublish(url, { size = '640x360', rate = 30, gop = 60, bitrate = '800k' } = {}) {
  return new Proc(['ffmpeg', '-hide_banner', '-loglevel', 'warning', '-nostdin', '-re',
    '-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=${rate}`,
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-c:v', 'libx264', '-g', String(gop), '-b:v', bitrate, '-pix_fmt', 'yuv420p',
    '-preset', 'veryfast', '-tune', 'zerolatency', '-bf', '0',
    '-c:a', 'aac', '-b:a', '128k', '-f', 'mpegts', url], 'ffmpeg');
}

// Waits until the stream's video playlist lists `n` segments through `base`.
export async function waitSegments(base, stream, n, timeoutMs) {
  return waitFor(async () => {
    try {
      const r = await fetch(`${base}/live/${stream}/v.m3u8`, { signal: AbortSignal.timeout(2000) });
      if (r.status !== 200) return false;
      const text = await r.text();
      return (text.match(/^#EXTINF:/gm) || []).length >= n;
    } catch (_) {
      return false;
    }
  }, timeoutMs, 250);
}

// Daemons, publisher and browser for one test. Everything is stopped by finish().
export async function stack(stream, { originExtra = '', edgeExtra = [], redis = null } = {}) {
  redis = redis || (await redisServer());
  const o = await origin({ redis: redis.url, extra: originExtra });
  const pub = ffmpegPublish(o.srtUrl(`live/${stream}`));
  const e = await edge(o.base, { extra: edgeExtra });
  return { redis, origin: o, pub, edge: e };
}

export async function browser(viewport = { width: 1280, height: 720 }) {
  const ctx = await chromium.launchPersistentContext(tmp('sw-chromium-'), {
    executablePath: '/usr/bin/chromium',
    headless: false, // --headless is in CHROMIUM_ARGS, as given
    args: CHROMIUM_ARGS,
    viewport,
  });
  browsers.push(ctx);
  return ctx;
}

export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path });
  log(`screenshot ${path}`);
  return path;
}

// Samples page state every `everyMs` for `ms`.
export async function sample(page, ms, everyMs, fn) {
  const out = [];
  const end = Date.now() + ms;
  while (Date.now() < end) {
    out.push(await page.evaluate(fn));
    await sleep(everyMs);
  }
  return out;
}

export function stats(xs) {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return { n: 0, min: NaN, median: NaN, max: NaN };
  return { n: v.length, min: v[0], median: v[Math.floor(v.length / 2)], max: v[v.length - 1] };
}

async function cleanup() {
  for (const b of browsers.splice(0)) await b.close().catch(() => {});
  for (const p of procs.slice().reverse()) await p.stop();
  if (!process.env.SW_KEEP_TMP) for (const d of dirs) rmSync(d, { recursive: true, force: true });
}

// Runs a test's main; an exception is one more failure; everything is stopped on every path.
export async function run(main) {
  const bail = async (sig) => {
    await cleanup();
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', bail);
  process.once('SIGTERM', bail);
  try {
    await main();
  } catch (e) {
    console.log(e && e.stack ? e.stack : e);
    check(false, `test raised ${e && e.message}`);
    for (const p of procs)
      if (/^(origin|edge)/.test(p.name)) console.log(`--- ${p.name} output (end) ---\n${p.output().slice(-3000)}`);
  }
  for (const p of procs)
    if (/^(origin|edge)/.test(p.name) && p.alive() === false && p.exited.sig && p.exited.sig !== p.sent)
      check(false, `${p.name} died of ${p.exited.sig}`);
  await cleanup();
  console.log(`${checks - failures.length} passed, ${failures.length} failed`);
  for (const f of failures) console.log(`  failed: ${f}`);
  process.exit(failures.length || checks === 0 ? 1 : 0);
}

