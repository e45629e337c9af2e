// hyvve.js: a small client for the hyvve sidecar, Node 20 built-ins only.
//
//   const { Client, Subscriber } = require('./hyvve');
//   const client = new Client();                 // HYVVE_SIDECAR_URL, default http://127.0.0.1:4750
//   await client.publish({ type: 'approval.requested', data: { approvalId: 'a-1' } });
//
//   const sub = new Subscriber({ client });
//   sub.on('approval.granted', async (event, ctx) => {
//     await ctx.publish({ type: 'invoice.created', data: {} }); // same correlation id and trace
//   });
//   await sub.listen(3000);                      // the sidecar's --app-url http://127.0.0.1:3000
//
// The sidecar is reached over TCP (http://host:port) or its Unix socket
// (unix:///path/to.sock). The Subscriber answers GET /hyvve/subscriptions with
// one path per handler and routes each push to the handler whose pattern the
// sidecar chose, with the sidecar's own rules (see route).
'use strict';

const http = require('node:http');
const crypto = require('node:crypto');

const DEFAULT_SIDECAR_URL = 'http://127.0.0.1:4750';
const SUBSCRIPTIONS_PATH = '/hyvve/subscriptions';
const EVENTS_PATH = '/hyvve/events/';
const MAX_PATTERN_LEN = 128;
const MAX_PATTERN_SEGMENTS = 10;
const MAX_ANSWER_BYTES = 1 << 20;

// HyvveError is a publish the sidecar refused (status, code, field from its
// error body) or could not be reached (status 0, cause set).
class HyvveError extends Error {
  constructor(message, { status = 0, code = '', field = '', retryAfter = 0, cause } = {}) {
    super(message, cause ? { cause } : undefined);
    this.name = 'HyvveError';
    this.status = status;
    this.code = code;
    this.field = field;
    this.retryAfter = retryAfter; // seconds, from Retry-After (503 broker_unavailable)
  }
}

// parseSidecarUrl turns http://host:port or unix:///path.sock into the
// options of http.request.
function parseSidecarUrl(raw) {
  let u;
  try {
    u = new URL(raw);
  } catch (err) {
    throw new Error(`sidecar URL ${JSON.stringify(raw)}: want http://host:port or unix:///path/to.sock`, { cause: err });
  }
  if (u.protocol === 'unix:') {
    const socketPath = decodeURIComponent(u.pathname);
    if (u.host !== '' || !socketPath.startsWith('/')) {
      throw new Error(`sidecar URL ${JSON.stringify(raw)}: a socket URL needs an absolute path: unix:///path/to.sock`);
    }
    return { socketPath, host: 'sidecar' };
  }
  if (u.protocol !== 'http:' || u.username || u.search || u.hash || (u.pathname !== '/' && u.pathname !== '')) {
    throw new Error(`sidecar URL ${JSON.stringify(raw)}: want http://host:port or unix:///path/to.sock`);
  }
  return { hostname: u.hostname.replace(/^\[|\]$/g, ''), port: u.port || 80 };
}

// Client publishes events to the sidecar. Safe to share: every call is an
// independent request.
class Client {
  // sidecarUrl: http://host:port or unix:///path.sock (HYVVE_SIDECAR_URL).
  // apiToken: sent as Authorization: Bearer when the sidecar runs with
  // --api-token (HYVVE_API_TOKEN). timeoutMs bounds each request.
  constructor({
    sidecarUrl = process.env.HYVVE_SIDECAR_URL || DEFAULT_SIDECAR_URL,
    apiToken = process.env.HYVVE_API_TOKEN || '',
    timeoutMs = 10_000,
  } = {}) {
    this.sidecarUrl = sidecarUrl;
    this.target = parseSidecarUrl(sidecarUrl);
    this.apiToken = apiToken;
    this.timeoutMs = timeoutMs;
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  }

  // publish sends one event (an object with at least `type`) and resolves to
  // the sidecar's 202 answer {id, tenantId, correlationId, stream, streamId}
  // once Redis has it. headers are extra request headers, e.g.
  // X-Correlation-Id, X-Tenant-Id, traceparent, Idempotency-Key. It rejects
  // with a HyvveError on any other answer: a 503 may still have been
  // written, so retry with an Idempotency-Key.
  async publish(event, { headers = {} } = {}) {
    const body = JSON.stringify(event);
    const { status, headers: h, json } = await this.request('POST', '/v1/events', body, headers);
    if (status !== 202) {
      const e = (json && json.error) || {};
      throw new HyvveError(`publish ${event && event.type}: ${status} ${e.code || ''} ${e.message || ''}`.trim(), {
        status,
        code: e.code || '',
        field: e.field || '',
        retryAfter: Number(h['retry-after']) || 0,
      });
    }
    return json;
  }

  // ready resolves to true when GET /readyz answers 200, false otherwise
  // (including when the sidecar cannot be reached).
  async ready() {
    try {
      return (await this.request('GET', '/readyz')).status === 200;
    } catch {
      return false;
    }
  }

  // waitReady polls /readyz every 200 ms until it answers 200; it rejects
  // after timeoutMs.
  async waitReady({ timeoutMs = 30_000, intervalMs = 200 } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (await this.ready()) return;
      if (Date.now() >= deadline) {
        throw new HyvveError(`sidecar ${this.sidecarUrl} not ready after ${timeoutMs} ms`);
      }
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }

  // close releases kept-alive connections.
  close() {
    this.agent.destroy();
  }

  request(method, path, body, headers = {}) {
    const h = { ...headers };
    if (body !== undefined) {
      h['Content-Type'] = 'application/json';
      h['Content-Length'] = Buffer.byteLength(body);
    }
    if (this.apiToken) h.Authorization = `Bearer ${this.apiToken}`;
    return new Promise((resolve, reject) => {
      const req = http.request(
        { ...this.target, method, path, headers: h, agent: this.agent, timeout: this.timeoutMs },
        (res) => {
          const chunks = [];
          let size = 0;
          res.on('data', (c) => {
            size += c.length;
            if (size > MAX_ANSWER_BYTES) {
              req.destroy(new HyvveError(`${method} ${path}: answer larger than ${MAX_ANSWER_BYTES} bytes`));
              return;
            }
            chunks.push(c);
          });
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let json = null;
            if (text.startsWith('{') || text.startsWith('[')) {
              try {
                json = JSON.parse(text);
              } catch {
                json = null;
              }
            }
            resolve({ status: res.statusCode, headers: res.headers, text, json });
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new HyvveError(`${method} ${path}: no answer within ${this.timeoutMs} ms`)));
      req.on('error', (err) =>
        reject(err instanceof HyvveError ? err : new HyvveError(`${method} ${this.sidecarUrl}${path}: ${err.message}`, { cause: err })),
      );
      req.end(body);
    });
  }
}

// validatePattern throws unless p is a pattern the sidecar accepts: 1–10
// dot-separated segments of [a-z0-9_-], or a whole segment "*" or "**".
function validatePattern(p) {
  if (typeof p !== 'string' || p === '') throw new Error(`pattern ${JSON.stringify(p)}: empty`);
  if (p.length > MAX_PATTERN_LEN) throw new Error(`pattern ${JSON.stringify(p)}: longer than ${MAX_PATTERN_LEN} characters`);
  const segs = p.split('.');
  if (segs.length > MAX_PATTERN_SEGMENTS) throw new Error(`pattern ${JSON.stringify(p)}: more than ${MAX_PATTERN_SEGMENTS} segments`);
  segs.forEach((s, i) => {
    if (s !== '*' && s !== '**' && !/^[a-z0-9_-]+$/.test(s)) {
      throw new Error(
        `pattern ${JSON.stringify(p)}: segment ${i + 1} ${JSON.stringify(s)}: allowed are a-z, 0-9, '_', '-', or a whole segment "*" or "**"`,
      );
    }
  });
}

// match reports whether the event type matches the pattern: "*" matches
// exactly one segment, "**" zero or more.
function match(pattern, type) {
  const p = pattern.split('.');
  const t = type === '' ? [] : type.split('.');
  let pi = 0;
  let ti = 0;
  let starP = -1; // pattern index after the last "**", -1: none yet
  let starT = 0; // type index that "**" was last tried at
  while (ti < t.length) {
    if (pi < p.length) {
      if (p[pi] === '**') {
        pi += 1;
        starP = pi;
        starT = ti;
        continue;
      }
      if (p[pi] === '*' || p[pi] === t[ti]) {
        pi += 1;
        ti += 1;
        continue;
      }
    }
    if (starP < 0) return false;
    // Let the last "**" swallow one more segment and try again from there.
    starT += 1;
    pi = starP;
    ti = starT;
  }
  while (pi < p.length && p[pi] === '**') pi += 1;
  return pi === p.length;
}

// rank orders wildcard patterns like the sidecar: fewer "**", then fewer
// "*", then more literal segments.
function rank(pattern) {
  const k = { doubles: 0, singles: 0, literals: 0 };
  for (const s of pattern.split('.')) {
    if (s === '**') k.doubles += 1;
    else if (s === '*') k.singles += 1;
    else k.literals += 1;
  }
  return k;
}

// pathFor is the push path of a pattern: readable, stable across restarts,
// and free of the characters a subscription path may not hold.
function pathFor(pattern) {
  return EVENTS_PATH + pattern.replaceAll('*', '%2A');
}

// W3C trace context: a traceparent with a fresh trace id, for the first
// event of a flow that has none yet.
function newTraceparent() {
  return `00-${crypto.randomBytes(16).toString('hex')}-${crypto.randomBytes(8).toString('hex')}-01`;
}

// traceIdOf returns the trace-id part of a traceparent ('' when absent).
function traceIdOf(traceparent) {
  const parts = (traceparent || '').split('-');
  return parts.length === 4 ? parts[1] : '';
}

// Subscriber registers handlers by pattern and serves the sidecar's pushes.
// Register every handler before listen: the sidecar reads the list at its
// start and every 30 s.
class Subscriber {
  // client publishes from inside handlers (ctx.publish). appToken, when
  // set (HYVVE_APP_TOKEN), must match the X-Hyvve-Token the sidecar sends;
  // requests without it get 401. log receives one line per failed push.
  constructor({
    client = new Client(),
    appToken = process.env.HYVVE_APP_TOKEN || '',
    maxBodyBytes = 2 << 20,
    log = (msg) => console.error(msg),
  } = {}) {
    this.client = client;
    this.appToken = appToken;
    this.maxBodyBytes = maxBodyBytes;
    this.log = log;
    this.handlers = []; // {pattern, path, fn, rank}, in registration order
    this.server = null;
    this.closing = false;
  }

  // on registers fn(event, ctx) for the event types matching pattern, the
  // way @EventSubscriber('approval.granted') would. fn may be async; when it
  // throws or rejects, the push is answered 500 and the sidecar retries it.
  // ctx holds the push's headers (eventId, attempt, correlationId,
  // traceparent, tracestate, tenantId) and ctx.publish(event, {headers}),
  // which passes the correlation id, traceparent, tracestate and tenant of
  // the event being handled on to the new one.
  on(pattern, fn) {
    validatePattern(pattern);
    if (typeof fn !== 'function') throw new TypeError(`on(${JSON.stringify(pattern)}): handler is not a function`);
    if (this.handlers.some((h) => h.pattern === pattern)) {
      // The sidecar sends each event to one subscription: the second
      // handler of a pattern would never be called.
      throw new Error(`on(${JSON.stringify(pattern)}): a handler for this pattern is already registered`);
    }
    this.handlers.push({ pattern, path: pathFor(pattern), fn, rank: rank(pattern) });
    return this;
  }

  // subscriptions is the body of GET /hyvve/subscriptions.
  subscriptions() {
    return this.handlers.map(({ pattern, path }) => ({ pattern, path }));
  }

  // route returns the handler the sidecar routes the type to: an exact
  // pattern first, then fewer "**", then fewer "*", then more literal
  // segments, then the first registered. undefined when none matches.
  route(type) {
    const exact = this.handlers.find((h) => h.pattern === type && !h.pattern.includes('*'));
    if (exact) return exact;
    let best;
    for (const h of this.handlers) {
      if (!h.pattern.includes('*') || !match(h.pattern, type)) continue;
      if (!best || better(h.rank, best.rank)) best = h;
    }
    return best;
  }

  // requestListener is the (req, res) function that serves the sidecar;
  // mount it in your own server, or use listen.
  get requestListener() {
    return (req, res) => this.serve(req, res);
  }

  // listen starts an HTTP server on host:port and resolves to it once it
  // accepts connections.
  listen(port = Number(process.env.PORT) || 3000, host = '127.0.0.1') {
    const server = http.createServer(this.requestListener);
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve(server);
      });
    });
  }

  // close stops the server: it accepts no new connection, answers pushes
  // in flight (with Connection: close) and resolves once they are done.
  close() {
    return new Promise((resolve) => {
      if (!this.server) return resolve();
      this.closing = true;
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
    });
  }

  serve(req, res) {
    const send = (status, obj) => {
      const body = JSON.stringify(obj);
      const headers = { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) };
      // A kept-alive connection would hold close() until the sidecar drops it.
      if (this.closing) headers.Connection = 'close';
      res.writeHead(status, headers);
      res.end(body);
    };
    if (this.appToken && !sameToken(req.headers['x-hyvve-token'], this.appToken)) {
      req.resume();
      return send(401, { error: 'X-Hyvve-Token missing or wrong' });
    }
    const path = req.url.split('?')[0];
    if (req.method === 'GET' && path === SUBSCRIPTIONS_PATH) {
      return send(200, this.subscriptions());
    }
    if (req.method !== 'POST' || !path.startsWith(EVENTS_PATH)) {
      req.resume();
      return send(404, { error: `no route for ${req.method} ${path}` });
    }
    const chunks = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (c) => {
      size += c.length;
      if (size > this.maxBodyBytes) tooLarge = true;
      else chunks.push(c);
    });
    req.on('end', () => {
      if (tooLarge) return send(413, { error: `body larger than ${this.maxBodyBytes} bytes` });
      let event;
      try {
        event = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch (err) {
        return send(400, { error: `body is not JSON: ${err.message}` });
      }
      if (!event || typeof event !== 'object' || Array.isArray(event) || typeof event.type !== 'string') {
        return send(400, { error: 'body is not an event: want a JSON object with a string "type"' });
      }
      // Route by type with the sidecar's rules rather than by path, so a
      // push made from a list fetched before this process restarted still
      // reaches the right handler.
      const h = this.route(event.type);
      if (!h) return send(404, { error: `no handler for type ${JSON.stringify(event.type)}` });
      const ctx = this.context(req, event);
      Promise.resolve()
        .then(() => h.fn(event, ctx))
        .then(
          () => send(200, { ok: true }),
          (err) => {
            this.log(`hyvve: handler ${h.pattern} failed on event ${event.id} (attempt ${ctx.attempt}): ${(err && err.stack) || err}`);
            send(500, { error: `handler failed: ${err && err.message}` });
          },
        );
    });
    req.on('error', () => res.destroy());
  }

  context(req, event) {
    const hdr = (name) => req.headers[name] || '';
    const ctx = {
      eventId: hdr('x-event-id') || event.id || '',
      tenantId: hdr('x-tenant-id') || event.tenantId || '',
      correlationId: hdr('x-correlation-id') || event.correlationId || '',
      traceparent: hdr('traceparent'),
      tracestate: hdr('tracestate'),
      attempt: Number(hdr('x-delivery-attempt')) || 1,
      replay: hdr('x-replay') === 'true',
      headers: req.headers,
    };
    // publish from inside a handler continues the flow: same correlation
    // id, trace and tenant unless the caller sets them.
    ctx.publish = (ev, { headers = {} } = {}) => {
      const inherited = {};
      if (ctx.correlationId) inherited['X-Correlation-Id'] = ctx.correlationId;
      if (ctx.traceparent) inherited.traceparent = ctx.traceparent;
      if (ctx.tracestate) inherited.tracestate = ctx.tracestate;
      if (ctx.tenantId) inherited['X-Tenant-Id'] = ctx.tenantId;
      return this.client.publish(ev, { headers: mergeHeaders(inherited, headers) });
    };
    return ctx;
  }
}

// sameToken compares a received token with the expected one in constant time.
function sameToken(got, want) {
  const a = Buffer.from(String(got || ''));
  const b = Buffer.from(want);
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

// better reports whether wildcard rank a is more specific than b.
function better(a, b) {
  if (a.doubles !== b.doubles) return a.doubles < b.doubles;
  if (a.singles !== b.singles) return a.singles < b.singles;
  return a.literals > b.literals;
}

// mergeHeaders overlays extra on base, header names compared without case.
function mergeHeaders(base, extra) {
  const out = { ...base };
  for (const [k, v] of Object.entries(extra)) {
    for (const bk of Object.keys(out)) if (bk.toLowerCase() === k.toLowerCase()) delete out[bk];
    out[k] = v;
  }
  return out;
}

module.exports = { Client, Subscriber, HyvveError, match, validatePattern, newTraceparent, traceIdOf, parseSidecarUrl };
