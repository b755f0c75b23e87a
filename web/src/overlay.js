// The overlay client (docs/overlay-protocol.md): room events from the edge's websocket and from
// the media's timed metadata (EXT-X-DATERANGE, MPD EventStream), deduplicated by event id and
// applied when PLAYBACK reaches each event's media time, so that a viewer 10 s behind live sees a
// pin 10 s after one at the live edge does.

const EVENT_TYPES = new Set([
  'product_pinned', 'product_unpinned', 'price_update', 'stock_update', 'flash_sale', 'short_ready',
]);
const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 4000; // a restarted edge is back well within the 10 s a viewer tolerates
const CART_TIMEOUT_MS = 5000;

// Event ids are Redis stream ids, "MS-SEQ": compare them as two integers.
export function compareIds(a, b) {
  const [am, as] = String(a).split('-').map(Number);
  const [bm, bs] = String(b).split('-').map(Number);
  return am !== bm ? am - bm : (as || 0) - (bs || 0);
}

// The media time in Unix ms: the message's own, or the millisecond part of its id.
export function mediaTimeMs(msg) {
  const t = Date.parse(msg.media_time);
  if (Number.isFinite(t)) return t;
  const ms = Number(String(msg.id || '').split('-')[0]);
  return Number.isFinite(ms) && ms > 0 ? ms : NaN;
}

export class Overlay {
  // `room`: the room id; `ui`: { onEvent(msg, via), onViewers(n), onCart(kind, text),
  // onSocket(state) }; `playbackDateMs()`: the program date time of the frame on screen, or NaN
  // before playback starts; `state`: window.__sw.overlay; `query`: "" or "?sw_..." (a signed URL's
  // parameters, edge/README.md).
  constructor(room, ui, playbackDateMs, state, query = '') {
    this.room = room;
    this.query = query;
    this.ui = ui;
    this.playbackDateMs = playbackDateMs;
    this.state = state;
    this.seen = new Set(); // event ids queued or applied
    this.pending = []; // { msg, at (media time, ms), via } sorted by `at`
    this.lastId = null; // the newest id the websocket delivered: resume point
    this.backoff = BACKOFF_MIN_MS;
    this.cartWaits = new Map(); // req -> timeout
    this.nextReq = 1;
    this.ws = null;
    this.timer = setInterval(() => this.flush(), 100);
  }

  connect() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = `${scheme}//${location.host}/overlay/${encodeURIComponent(this.room)}${this.query}`;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (e) {
      this.retry();
      return;
    }
    this.ws = ws;
    this.state.socket = 'connecting';
    this.ui.onSocket('connecting');
    ws.onopen = () => {
      // The backoff restarts only once the edge has said something: a full edge opens the
      // websocket and closes it at once with 1013, and a reset here would retry every 250 ms.
      this.state.socket = 'open';
      this.state.connects++;
      this.ui.onSocket('open');
      const hello = { type: 'hello' };
      if (this.lastId) hello.last_event_id = this.lastId;
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (ev) => {
      this.backoff = BACKOFF_MIN_MS;
      if (typeof ev.data !== 'string') return;
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (_) {
        return;
      }
      if (msg && typeof msg === 'object') this.onMessage(msg);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.state.socket = 'closed';
      this.state.closes.push(ev.code);
      this.ui.onSocket('closed');
      for (const [id, t] of this.cartWaits) {
        clearTimeout(t);
        this.ui.onCart('error', 'Connection lost: not added');
        this.cartWaits.delete(id);
      }
      this.retry();
    };
  }

  retry() {
    const delay = this.backoff * (0.5 + Math.random() / 2);
    this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
    setTimeout(() => this.connect(), delay);
  }

  onMessage(msg) {
    switch (msg.type) {
      case 'viewer_count':
        if (Number.isFinite(msg.count)) this.ui.onViewers(msg.count);
        return;
      case 'cart_ack':
        this.cartDone(msg, 'ok', 'Added to your cart');
        return;
      case 'error':
        // An error naming one of our add_to_cart requests answers it; others (a bad hello, a
        // rate limit on nothing pending) are only recorded.
        this.state.errors.push(msg);
        if (msg.req !== null && msg.req !== undefined)
          this.cartDone(msg, 'error', `Not added: ${msg.message || msg.code || 'error'}`);
        return;
    }
    if (!EVENT_TYPES.has(msg.type) || typeof msg.id !== 'string') return;
    if (!this.lastId || compareIds(msg.id, this.lastId) > 0) this.lastId = msg.id;
    this.state.lastEventId = this.lastId;
    this.enqueue(msg, 'ws');
  }

  // Timed metadata from the player. `data` is the JSON message (X-SW-DATA decoded); the tag's own
  // attributes fill in what it lacks.
  onCue(id, type, startMs, data) {
    let msg;
    try {
      msg = typeof data === 'string' ? JSON.parse(data) : data;
    } catch (_) {
      return;
    }
    if (!msg || typeof msg !== 'object') return;
    msg = { ...msg };
    if (!msg.type) msg.type = type;
    if (!msg.id) msg.id = id;
    if (!msg.media_time && Number.isFinite(startMs)) msg.media_time = new Date(startMs).toISOString();
    if (!EVENT_TYPES.has(msg.type) || typeof msg.id !== 'string') return;
    this.enqueue(msg, 'cue');
  }

  enqueue(msg, via) {
    if (this.seen.has(msg.id)) return;
    this.seen.add(msg.id);
    const at = mediaTimeMs(msg);
    this.state.received.push({ id: msg.id, type: msg.type, via, arrivedWall: Date.now(), mediaTime: at });
    this.pending.push({ msg, at, via });
    this.pending.sort((a, b) => (a.at || 0) - (b.at || 0) || compareIds(a.msg.id, b.msg.id));
    this.flush();
  }

  // Applies every queued event whose media time the playback has reached.
  flush() {
    if (this.pending.length === 0) return;
    const now = this.playbackDateMs();
    while (this.pending.length > 0) {
      const head = this.pending[0];
      if (Number.isFinite(head.at) && !(now >= head.at)) break;
      this.pending.shift();
      this.ui.onEvent(head.msg, head.via, now);
    }
  }

  addToCart(sku, qty = 1) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
      this.ui.onCart('error', 'Not connected: try again in a moment');
      return;
    }
    const req = this.nextReq++;
    this.ws.send(JSON.stringify({ type: 'add_to_cart', sku, qty, req }));
    this.ui.onCart('pending', 'Adding…');
    this.cartWaits.set(req, setTimeout(() => {
      this.cartWaits.delete(req);
      this.ui.onCart('error', 'No answer: not added');
    }, CART_TIMEOUT_MS));
  }

  // The edge echoes `req` in its cart_ack or error.
  cartDone(msg, kind, text) {
    const req = msg.req;
    if (!this.cartWaits.has(req)) return;
    clearTimeout(this.cartWaits.get(req));
    this.cartWaits.delete(req);
    this.state.cart.push({ kind, msg });
    this.ui.onCart(kind, text);
  }
}
