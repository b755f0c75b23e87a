// Overlay websocket clients for tests/integration/test_overlay*.py (node's `ws` package).
//
//   node ws_client.mjs interactive URL [ORIGIN]
//       one client; stdin lines: "send JSON", "binary", "close"; every event goes to stdout as
//       one JSON line: {"ev":"open"|"msg"|"close"|"error", "t": ms, ...}.
//   node ws_client.mjs fanout URL REDIS_PORT ROOM N
//       N clients join ROOM; once all are live, XADDs one pin and measures XADD-to-client
//       latency on every client; then one client adds to the cart. Prints one JSON summary.
//   node ws_client.mjs resume URL REDIS_PORT ROOM COUNT
//       a client goes live, disconnects, COUNT events are XADDed, it reconnects with its last
//       id; prints the ids XADD returned and the ids the client received after the hello.
//   node ws_client.mjs abuse URL REDIS_PORT ROOM
//       bad input on separate connections, beside a bystander that must keep getting events.
//   node ws_client.mjs slow URL REDIS_PORT ROOM COUNT
//       a viewer stops reading while COUNT 4 KB events are XADDed, then reads again: it should
//       have been closed with 1013.
//   node ws_client.mjs join BASE_URL ROOM*N[,ROOM*N...]
//       batch after batch, N clients join ROOM at once (BASE_URL/overlay/ROOM) and are kept
//       open; each batch waits until every client of it is live or closed. Prints, per batch,
//       how many went live and the close codes and reasons of the others.
//
// Every wait is bounded; a timeout is reported in the output, never hidden.
import net from 'node:net';
import readline from 'node:readline';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'package.json'));
const WebSocket = require('ws');

const now = () => Number(process.hrtime.bigint()) / 1e6;

// A minimal RESP client: one connection, commands answered in order.
class Redis {
  constructor(port) {
    this.sock = net.connect(port, '127.0.0.1');
    this.buf = Buffer.alloc(0);
    this.waiters = [];
    this.sock.on('data', (d) => { this.buf = Buffer.concat([this.buf, d]); this.drain(); });
    this.sock.on('error', (e) => { for (const w of this.waiters.splice(0)) w.reject(e); });
  }
  cmd(...args) {
    let s = `*${args.length}\r\n`;
    for (const a of args) { const b = Buffer.from(String(a)); s += `$${b.length}\r\n${b}\r\n`; }
    return new Promise((resolve, reject) => { this.waiters.push({ resolve, reject }); this.sock.write(s); });
  }
  parse(off) {
    const eol = this.buf.indexOf('\r\n', off);
    if (eol < 0) return null;
    const t = String.fromCharCode(this.buf[off]);
    const line = this.buf.toString('utf8', off + 1, eol);
    if (t === '+' ) return [line, eol + 2];
    if (t === '-') return [new Error(line), eol + 2];
    if (t === ':') return [Number(line), eol + 2];
    if (t === '$') {
      const n = Number(line);
      if (n < 0) return [null, eol + 2];
      if (this.buf.length < eol + 2 + n + 2) return null;
      return [this.buf.toString('utf8', eol + 2, eol + 2 + n), eol + 4 + n];
    }
    if (t === '*') {
      const n = Number(line);
      if (n < 0) return [null, eol + 2];
      const out = [];
      let p = eol + 2;
      for (let i = 0; i < n; i++) { const r = this.parse(p); if (!r) return null; out.push(r[0]); p = r[1]; }
      return [out, p];
    }
    throw new Error('bad RESP');
  }
  drain() {
    for (;;) {
      if (this.buf.length === 0 || this.waiters.length === 0) return;
      const r = this.parse(0);
      if (!r) return;
      this.buf = this.buf.subarray(r[1]);
      const w = this.waiters.shift();
      if (r[0] instanceof Error) w.reject(r[0]); else w.resolve(r[0]);
    }
  }
  close() { this.sock.destroy(); }
}

// A writer as docs/overlay-protocol.md describes it: XADD the event, then update the state hash
// with the id Redis returned (the pin as its server-to-client message).
async function publish(redis, room, type, data) {
  const id = await redis.cmd('XADD', `room:${room}:events`, '*', 'type', type, 'data', data);
  if (type === 'product_pinned') {
    const msg = { type, id, media_time: new Date(Number(id.split('-')[0])).toISOString(), ...JSON.parse(data) };
    await redis.cmd('HSET', `room:${room}:state`, 'pinned', JSON.stringify(msg), 'last_id', id);
  } else {
    await redis.cmd('HSET', `room:${room}:state`, 'last_id', id);
  }
  return id;
}

function pinData(sku, i = 0) {
  return JSON.stringify({ sku, title: `Kettle ${i}`, price: '19.99', currency: 'EUR',
    image: 'https://img.example/k.png', stock: 12 });
}

// A client that collects messages; `live` resolves at its first viewer_count.
function client(url, opts = {}) {
  const ws = new WebSocket(url, { headers: opts.headers || {}, rejectUnauthorized: false,
    perMessageDeflate: false });
  const c = { ws, msgs: [], closed: null, opened: false };
  c.live = new Promise((resolve) => { c._live = resolve; });
  c.done = new Promise((resolve) => { c._done = resolve; });
  ws.on('open', () => { c.opened = true; if (opts.hello !== false) ws.send(JSON.stringify({ type: 'hello', last_event_id: opts.last ?? null })); });
  ws.on('message', (data, isBinary) => {
    const t = now();
    let m;
    try { m = JSON.parse(data.toString()); } catch { m = { type: '_unparsable', raw: data.toString() }; }
    m._t = t;
    c.msgs.push(m);
    if (m.type === 'viewer_count') c._live();
    if (opts.onmsg) opts.onmsg(m);
  });
  ws.on('close', (code, reason) => { c.closed = { code, reason: reason.toString() }; c._live(); c._done(); });
  ws.on('error', (e) => { c.error = String(e.message || e); });
  return c;
}

const timeout = (ms) => new Promise((r) => setTimeout(() => r('timeout'), ms));
const until = async (fn, ms) => { const end = now() + ms; while (now() < end) { if (fn()) return true; await timeout(5); } return fn(); };
const pct = (a, p) => { const s = [...a].sort((x, y) => x - y); return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : null; };

async function fanout(url, port, room, n) {
  const redis = new Redis(port);
  const clients = [];
  for (let i = 0; i < n; i++) {
    clients.push(client(url));
    if (i % 50 === 49) await timeout(20);
  }
  const t0 = now();
  await Promise.race([Promise.all(clients.map((c) => c.live)), timeout(20000)]);
  const live = clients.filter((c) => c.msgs.some((m) => m.type === 'viewer_count')).length;
  const joinMs = now() - t0;
  await timeout(200);
  const tx = now();
  const id = await publish(redis, room, 'product_pinned', pinData('SKU-FAN'));
  await until(() => clients.every((c) => c.msgs.some((m) => m.id === id)), 5000);
  const lat = [];
  let wrong = 0;
  for (const c of clients) {
    const m = c.msgs.find((x) => x.id === id);
    if (m) { lat.push(m._t - tx); if (m.type !== 'product_pinned' || m.sku !== 'SKU-FAN' || !m.media_time) wrong++; }
  }
  // add_to_cart from one client: the ack carries the cart entry id, which XRANGE shows.
  const c0 = clients[0];
  c0.ws.send(JSON.stringify({ type: 'add_to_cart', sku: 'SKU-FAN', qty: 2, req: 'r1' }));
  await until(() => c0.msgs.some((m) => m.req === 'r1'), 5000);
  const ack = c0.msgs.find((m) => m.req === 'r1') || null;
  const cart = await redis.cmd('XRANGE', `room:${room}:cart`, '-', '+');
  const entry = ack && cart.find((e) => e[0] === ack.id);
  const fields = entry ? Object.fromEntries(entry[1].reduce((a, v, i, arr) => (i % 2 ? a : [...a, [v, arr[i + 1]]]), [])) : null;
  const closedEarly = clients.filter((c) => c.closed).length;
  for (const c of clients) c.ws.close();
  redis.close();
  return { n, live, join_ms: Math.round(joinMs), event_id: id, received: lat.length, wrong,
    p50_ms: pct(lat, 0.5), p99_ms: pct(lat, 0.99), max_ms: lat.length ? Math.max(...lat) : null,
    ack, cart_entry: fields, closed_early: closedEarly };
}

async function resume(url, port, room, count) {
  const redis = new Redis(port);
  const a = client(url);
  await Promise.race([a.live, timeout(5000)]);
  const first = await publish(redis, room, 'product_pinned', pinData('SKU-R0'));
  await until(() => a.msgs.some((m) => m.id === first), 5000);
  const last = [...a.msgs].reverse().find((m) => m.id)?.id ?? null;
  a.ws.close();
  await Promise.race([a.done, timeout(5000)]);
  const ids = [];
  for (let i = 0; i < count; i++) {
    const type = i % 3 === 0 ? 'stock_update' : 'product_pinned';
    const data = type === 'stock_update' ? JSON.stringify({ sku: 'SKU-R0', stock: 100 - i }) : pinData(`SKU-R${i + 1}`, i);
    ids.push(await publish(redis, room, type, data));
  }
  // The live tail after the resume: one more event must follow the missed ones, exactly once.
  const b = client(url, { last });
  await until(() => b.msgs.some((m) => m.type === 'viewer_count'), 5000);
  const after = await publish(redis, room, 'stock_update', JSON.stringify({ sku: 'SKU-R0', stock: 1 }));
  await until(() => b.msgs.some((m) => m.id === after), 5000);
  await timeout(300);
  const got = b.msgs.filter((m) => m.id).map((m) => m.id);
  // A client whose id is older than what the stream keeps gets a resync and the state.
  await redis.cmd('XTRIM', `room:${room}:events`, 'MAXLEN', '3');
  const c = client(url, { last });
  await until(() => c.msgs.some((m) => m.type === 'viewer_count'), 5000);
  const trimmed = c.msgs.map((m) => m.type);
  for (const x of [b, c]) x.ws.close();
  redis.close();
  return { last_before: last, missed: ids, after, got, trimmed_types: trimmed };
}

async function abuse(url, port, room) {
  const redis = new Redis(port);
  const out = {};
  const by = client(url);
  await Promise.race([by.live, timeout(5000)]);
  const one = async (name, fn, waitMs = 3000) => {
    const c = client(url);
    await Promise.race([c.live, timeout(5000)]);
    const n0 = c.msgs.length;
    await fn(c);
    await Promise.race([c.done, timeout(waitMs)]);
    const errs = c.msgs.slice(n0).filter((m) => m.type === 'error');
    out[name] = { close: c.closed, errors: errs.length, codes: [...new Set(errs.map((e) => e.code))],
      acks: c.msgs.filter((m) => m.type === 'cart_ack').length, first_error: errs[0] || null };
    if (!c.closed) c.ws.terminate();
  };
  await one('invalid_json', async (c) => { c.ws.send('{"type": "hello",'); }, 500);
  await one('unknown_type', async (c) => { c.ws.send(JSON.stringify({ type: 'buy_everything', req: 7 })); }, 500);
  await one('bad_qty', async (c) => { c.ws.send(JSON.stringify({ type: 'add_to_cart', sku: 'S', qty: 100, req: 'q' })); }, 500);
  await one('long_sku', async (c) => { c.ws.send(JSON.stringify({ type: 'add_to_cart', sku: 'x'.repeat(65), qty: 1 })); }, 500);
  await one('repeated_bad', async (c) => { for (let i = 0; i < 20; i++) c.ws.send('nope'); });
  await one('binary', async (c) => { c.ws.send(Buffer.from([1, 2, 3]), { binary: true }); });
  await one('oversized', async (c) => { c.ws.send('{"type":"hello","pad":"' + 'x'.repeat(8000) + '"}'); });
  await one('fragment_flood', async (c) => {
    // 10000 one-byte continuation frames of one message: over the size bound long before the end.
    for (let i = 0; i < 10000 && c.ws.readyState === 1; i++) c.ws.send('x', { fin: false });
  });
  await one('cart_flood', async (c) => {
    // 10k add_to_cart in one second.
    const t0 = now();
    for (let i = 0; i < 10000 && c.ws.readyState === 1; i++) {
      c.ws.send(JSON.stringify({ type: 'add_to_cart', sku: 'SKU-F', qty: 1, req: i }));
      if (i % 1000 === 999) await timeout(Math.max(0, (t0 + (i + 1) / 10) - now()));
    }
  });
  // The bystander still gets events.
  const id = await redis.cmd('XADD', `room:${room}:events`, '*', 'type', 'product_pinned', 'data', pinData('SKU-BY'));
  await until(() => by.msgs.some((m) => m.id === id), 5000);
  out.bystander = { got_event: by.msgs.some((m) => m.id === id), closed: by.closed };
  out.cart_entries = (await redis.cmd('XRANGE', `room:${room}:cart`, '-', '+')).length;
  by.ws.close();
  redis.close();
  return out;
}

async function slow(url, port, room, count, kind = 'short_ready') {
  // A viewer that stops reading while COUNT large events go by: short_ready (never coalesced)
  // or product_pinned (the latest pin wins).
  const redis = new Redis(port);
  const c = client(url);
  await Promise.race([c.live, timeout(5000)]);
  c.ws._socket.pause();
  const title = 'x'.repeat(4000);
  const adds = [];
  for (let i = 0; i < count; i++) {
    const data = kind === 'short_ready'
      ? JSON.stringify({ url: `https://cdn.example/s${i}.m3u8`, title, duration: 15 })
      : JSON.stringify({ sku: `SKU-${i}`, title, price: '1.00', currency: 'EUR', image: 'https://i/x.png', stock: i });
    adds.push(redis.cmd('XADD', `room:${room}:events`, '*', 'type', kind, 'data', data));
  }
  const ids = await Promise.all(adds);
  await timeout(1000);
  c.ws._socket.resume();
  if (kind === 'short_ready') await Promise.race([c.done, timeout(10000)]);
  else await until(() => c.closed || c.msgs.some((m) => m.id === ids[ids.length - 1]), 10000);
  const got = c.msgs.filter((m) => m.type === kind);
  const order = got.every((m, i) => i === 0 || ids.indexOf(m.id) > ids.indexOf(got[i - 1].id));
  redis.close();
  const closed = c.closed;
  if (!c.closed) c.ws.terminate();
  return { close: closed, received: got.length, sent: count, last_received: got.length ? got[got.length - 1].id : null,
    last_sent: ids[ids.length - 1], in_order: order };
}

async function join(base, spec) {
  const all = [];
  const batches = [];
  for (const item of spec.split(',')) {
    const [room, n] = item.split('*');
    const cs = [];
    for (let i = 0; i < Number(n); i++) cs.push(client(`${base}/overlay/${room}`));
    all.push(...cs);
    await Promise.race([Promise.all(cs.map((c) => c.live)), timeout(10000)]);
    // A client closed right after its viewer_count would be counted live: give closes a moment.
    await timeout(100);
    const closed = cs.filter((c) => c.closed);
    batches.push({ room, n: Number(n),
      live: cs.filter((c) => !c.closed && c.msgs.some((m) => m.type === 'viewer_count')).length,
      closes: closed.map((c) => c.closed), pending: cs.filter((c) => !c.closed && !c.msgs.some((m) => m.type === 'viewer_count')).length });
  }
  for (const c of all) c.ws.close();
  await Promise.race([Promise.all(all.map((c) => c.done)), timeout(5000)]);
  return { batches };
}

function interactive(url, origin) {
  const headers = origin ? { Origin: origin } : {};
  const ws = new WebSocket(url, { headers, rejectUnauthorized: false, perMessageDeflate: false });
  const emit = (o) => process.stdout.write(JSON.stringify({ t: now(), ...o }) + '\n');
  ws.on('open', () => emit({ ev: 'open' }));
  ws.on('unexpected-response', (req, res) => { emit({ ev: 'http', status: res.statusCode }); ws.terminate(); });
  ws.on('message', (d) => { let m; try { m = JSON.parse(d.toString()); } catch { m = { raw: d.toString() }; } emit({ ev: 'msg', m }); });
  ws.on('close', (code, reason) => { emit({ ev: 'close', code, reason: reason.toString() }); process.exit(0); });
  ws.on('error', (e) => emit({ ev: 'error', error: String(e.message || e) }));
  // Lines that arrive before the handshake wait for it.
  const early = [];
  ws.on('open', () => { for (const l of early.splice(0)) run(l); });
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => { if (ws.readyState === 0) early.push(line); else run(line); });
  function run(line) {
    if (ws.readyState !== 1) return;
    const sp = line.indexOf(' ');
    const cmd = sp < 0 ? line : line.slice(0, sp);
    const arg = sp < 0 ? '' : line.slice(sp + 1);
    if (cmd === 'send') ws.send(arg);
    else if (cmd === 'binary') ws.send(Buffer.from(arg), { binary: true });
    else if (cmd === 'close') ws.close();
  }
  rl.on('close', () => { ws.terminate(); process.exit(0); });
}

const [mode, url, ...rest] = process.argv.slice(2);
const guard = setTimeout(() => { console.log(JSON.stringify({ error: 'script timeout' })); process.exit(3); }, 110000);
if (mode === 'interactive') {
  clearTimeout(guard);
  interactive(url, rest[0]);
} else {
  const fn = { fanout, resume, abuse, slow, join }[mode];
  const args = mode === 'join' ? rest : rest.map((x, i) => (i === 0 || (mode !== 'abuse' && i === 2) ? Number(x) : x));
  fn(url, ...args).then((r) => { console.log(JSON.stringify(r)); clearTimeout(guard); process.exit(0); },
    (e) => { console.log(JSON.stringify({ error: String(e && e.stack || e) })); process.exit(2); });
}
