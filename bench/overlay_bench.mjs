#!/usr/bin/env node
// Overlay fan-out benchmark (issue 4): many websocket viewers in one room on one edge, pins
// XADDed to Redis, the time from XADD to every viewer's message. Prints figures; exits 0.
//
//   sh scripts/build.sh && node bench/overlay_bench.mjs [--viewers 10000] [--pins 5] [--procs 2]
//
// It starts redis-server and shortwave-edge (build/bin, or --bin DIR) on 127.0.0.1, opens the
// viewers from --procs node processes (each holds viewers/procs websockets; they share the
// machine with the edge, so the last viewer's figure includes the clients' own time to read
// every message), and reports per pin p50/p99/max over all viewers, the edge's RSS and its CPU
// time. Every wait is bounded; everything it started is killed at the end.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(HERE);
const require = createRequire(path.join(ROOT, 'package.json'));
const now = () => Number(process.hrtime.bigint()) / 1e6; // CLOCK_MONOTONIC: same in every process
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- a viewer process: node overlay_bench.mjs --child URL N --------------------------------
if (process.argv[2] === '--child') {
  const WebSocket = require('ws');
  const [url, n] = [process.argv[3], Number(process.argv[4])];
  const socks = [];
  let live = 0, closed = 0;
  const seen = new Map(); // sku -> arrival times
  const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
  for (let i = 0; i < n; i++) {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    let isLive = false;
    ws.on('open', () => ws.send('{"type":"hello"}'));
    ws.on('message', (data) => {
      const t = now();
      const m = JSON.parse(data.toString());
      if (!isLive && m.type === 'viewer_count') { isLive = true; live++; }
      if (m.type === 'product_pinned' && m.sku.startsWith('BENCH-')) {
        if (!seen.has(m.sku)) seen.set(m.sku, []);
        seen.get(m.sku).push(t);
      }
    });
    ws.on('close', () => { closed++; });
    ws.on('error', () => {});
    socks.push(ws);
    if (i % 250 === 249) await sleep(50); // a gentle ramp: the edge accepts, it is not a SYN flood
  }
  const report = setInterval(() => out({ live, closed }), 250);
  readline.createInterface({ input: process.stdin }).on('line', (line) => {
    const cmd = JSON.parse(line);
    if (cmd.get) out({ sku: cmd.get, times: seen.get(cmd.get) || [] });
    if (cmd.quit) { clearInterval(report); for (const s of socks) s.terminate(); process.exit(0); }
  });
} else {
  main().then(() => process.exit(0), (e) => { console.log(`bench failed: ${e.stack || e}`); cleanup(); process.exit(0); });
}

function arg(name, def) {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : def;
}

const procs = [];
function cleanup() {
  for (const p of procs) try { process.kill(p.pid, 'SIGKILL'); } catch {}
}

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

async function until(fn, ms) {
  const end = now() + ms;
  while (now() < end) { if (await fn()) return true; await sleep(20); }
  return false;
}

// One RESP command on a fresh socket; resolves with the raw reply. tx is taken as it is written.
function xadd(port, room, sku) {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify({ sku, title: 'Bench kettle', price: '19.99', currency: 'EUR',
      image: 'https://shop.example/k.jpg', stock: 5 });
    const args = ['XADD', `room:${room}:events`, '*', 'type', 'product_pinned', 'data', data];
    let s = `*${args.length}\r\n`;
    for (const a of args) s += `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
    const c = net.connect(port, '127.0.0.1', () => { const tx = now(); c.write(s); c.once('data', (d) => { c.end(); resolve({ tx, reply: d.toString() }); }); });
    c.on('error', reject);
  });
}

function stat(pid) {
  const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number((status.match(new RegExp(`${k}:\\s+(\\d+)`)) || [0, 0])[1]);
  return { cpu_s: (Number(st[11]) + Number(st[12])) / 100, rss_mb: kb('VmRSS') / 1024, hwm_mb: kb('VmHWM') / 1024 };
}

const pct = (a, p) => a[Math.min(a.length - 1, Math.floor(p * a.length))];

async function main() {
  const viewers = Number(arg('--viewers', 10000));
  const pins = Number(arg('--pins', 5));
  const nprocs = Number(arg('--procs', 2));
  const bin = arg('--bin', path.join(ROOT, 'build', 'bin'));
  const rport = await freePort(), eport = await freePort();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-overlay-bench-'));

  procs.push(spawn('redis-server', ['--port', String(rport), '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'no', '--dir', tmp], { stdio: 'ignore' }));
  await sleep(300);
  const edge = spawn(path.join(bin, 'shortwave-edge'), ['--listen', `127.0.0.1:${eport}`,
    '--origin', 'http://127.0.0.1:9', '--redis', `redis://127.0.0.1:${rport}`, '--log-level', 'warn'],
  { stdio: ['ignore', 'ignore', 'inherit'] });
  procs.push(edge);
  if (!await until(() => new Promise((r) => { const c = net.connect(eport, '127.0.0.1', () => { c.end(); r(true); }); c.on('error', () => r(false)); }), 10000))
    throw new Error('the edge did not start');

  console.log(`overlay benchmark: ${viewers} viewers from ${nprocs} node processes, ${pins} pins, ` +
    `${os.cpus().length} cores shared by edge, redis and clients`);
  const room = 'bench';
  const kids = [];
  const t0 = now();
  for (let i = 0; i < nprocs; i++) {
    const n = Math.floor(viewers / nprocs) + (i < viewers % nprocs ? 1 : 0);
    const k = spawn(process.execPath, [fileURLToPath(import.meta.url), '--child',
      `ws://127.0.0.1:${eport}/overlay/${room}`, String(n)], { stdio: ['pipe', 'pipe', 'inherit'] });
    procs.push(k);
    const kid = { k, live: 0, closed: 0, pending: null };
    readline.createInterface({ input: k.stdout }).on('line', (line) => {
      const m = JSON.parse(line);
      if (m.live !== undefined) { kid.live = m.live; kid.closed = m.closed; }
      if (m.sku && kid.pending) { kid.pending(m.times); kid.pending = null; }
    });
    kids.push(kid);
  }
  const allLive = await until(() => kids.reduce((a, k) => a + k.live, 0) >= viewers, 120000);
  const live = kids.reduce((a, k) => a + k.live, 0);
  console.log(`  joined: ${live}/${viewers} viewers live in ${((now() - t0) / 1000).toFixed(1)} s` +
    (allLive ? '' : ' (timed out)'));
  const before = stat(edge.pid);
  console.log(`  edge with ${live} viewers: RSS ${before.rss_mb.toFixed(1)} MB`);

  for (let p = 0; p < pins; p++) {
    await sleep(500);
    const sku = `BENCH-${p}`;
    const c0 = stat(edge.pid);
    const { tx } = await xadd(rport, room, sku);
    await sleep(200);
    await until(async () => {
      const got = await Promise.all(kids.map((kid) => new Promise((r) => { kid.pending = r; kid.k.stdin.write(JSON.stringify({ get: sku }) + '\n'); })));
      return got.reduce((a, t) => a + t.length, 0) >= live;
    }, 10000);
    const times = (await Promise.all(kids.map((kid) => new Promise((r) => { kid.pending = r; kid.k.stdin.write(JSON.stringify({ get: sku }) + '\n'); })))).flat();
    const lat = times.map((t) => t - tx).sort((a, b) => a - b);
    const c1 = stat(edge.pid);
    console.log(`  pin ${p}: ${lat.length}/${live} viewers, XADD to viewer p50 ${pct(lat, 0.5).toFixed(1)} ms, ` +
      `p99 ${pct(lat, 0.99).toFixed(1)} ms, max ${lat[lat.length - 1].toFixed(1)} ms; edge CPU ${((c1.cpu_s - c0.cpu_s) * 1000).toFixed(0)} ms (incl. polling)`);
  }
  const after = stat(edge.pid);
  console.log(`  edge peak RSS ${after.hwm_mb.toFixed(1)} MB; ${kids.reduce((a, k) => a + k.closed, 0)} viewers were closed by the edge`);
  for (const kid of kids) kid.k.stdin.write('{"quit":true}\n');
  await sleep(500);
  cleanup();
  fs.rmSync(tmp, { recursive: true, force: true });
}
