// Unit tests of hyvve.js: node --test examples/node/
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Client, Subscriber, HyvveError, match, validatePattern, parseSidecarUrl, traceIdOf, newTraceparent } = require('./hyvve');

// The sidecar's own routing table (internal/subscription/router_test.go):
// the subscriber must pick the same handler for every type.
const ROUTER_PATTERNS = [
  '**',
  'approval.**',
  '*.granted',
  'approval.*',
  'approval.granted',
  'crm.*.created',
  'crm.contact.*',
  'crm.**.deleted',
  '*.*.deleted',
];
const ROUTES = [
  ['approval.granted', 'approval.granted'],
  ['approval.rejected', 'approval.*'],
  ['approval.step.done', 'approval.**'],
  ['approval', 'approval.**'],
  ['user.granted', '*.granted'],
  ['user.joined', '**'],
  ['crm.contact.created', 'crm.*.created'],
  ['crm.contact.updated', 'crm.contact.*'],
  ['crm.lead.deleted', '*.*.deleted'],
  ['crm.contact.deleted', 'crm.contact.*'],
  ['crm.a.b.deleted', 'crm.**.deleted'],
];

test('route picks the handler the sidecar picks', () => {
  const sub = new Subscriber({ client: new Client({ sidecarUrl: 'http://127.0.0.1:1' }) });
  for (const p of ROUTER_PATTERNS) sub.on(p, () => {});
  for (const [type, want] of ROUTES) {
    const got = sub.route(type);
    assert.equal(got && got.pattern, want, `route(${type}): got ${got && got.pattern}, want ${want}`);
  }
});

test('match follows * and ** like the sidecar', () => {
  const cases = [
    ['a.b', 'a.b', true],
    ['a.*', 'a.b', true],
    ['a.*', 'a', false],
    ['a.*', 'a.b.c', false],
    ['a.**', 'a', true],
    ['a.**', 'a.b.c', true],
    ['**', 'x', true],
    ['**.c', 'a.b.c', true],
    ['**.c', 'c', true],
    ['a.**.c', 'a.c', true],
    ['a.**.c', 'a.x.y.c', true],
    ['a.**.c', 'a.x.y.d', false],
    ['*.*', 'a.b', true],
    ['*.*', 'a', false],
    ['a.**.b.**.c', 'a.b.x.b.c', true],
    ['a.b', 'a.bc', false],
  ];
  for (const [p, t, want] of cases) assert.equal(match(p, t), want, `match(${p}, ${t}): got ${!want}, want ${want}`);
});

test('validatePattern refuses what the sidecar refuses', () => {
  for (const ok of ['a', 'a.b', '**', 'crm.*.created', 'a_b-1.c']) validatePattern(ok);
  for (const bad of ['', 'A.b', 'a..b', 'a.*x', 'a.b.', 'a b', 'a.b.c.d.e.f.g.h.i.j.k', 'x'.repeat(129)]) {
    assert.throws(() => validatePattern(bad), /pattern/, `validatePattern(${JSON.stringify(bad)}) did not throw`);
  }
});

test('on refuses a second handler for the same pattern', () => {
  const sub = new Subscriber();
  sub.on('a.b', () => {});
  assert.throws(() => sub.on('a.b', () => {}), /already registered/);
});

test('parseSidecarUrl takes http://host:port and unix:///path only', () => {
  assert.deepEqual(parseSidecarUrl('http://127.0.0.1:4750'), { hostname: '127.0.0.1', port: '4750' });
  assert.deepEqual(parseSidecarUrl('unix:///run/hyvve/sidecar.sock'), { socketPath: '/run/hyvve/sidecar.sock', host: 'sidecar' });
  for (const bad of ['https://x:1', 'unix://relative.sock', 'http://x:1/base', 'localhost:4750', 'http://u:p@x:1']) {
    assert.throws(() => parseSidecarUrl(bad), /sidecar URL/, `parseSidecarUrl(${bad}) did not throw`);
  }
});

// fakeSidecar serves POST /v1/events on a Unix socket, records each request
// and answers with answer(req).
async function fakeSidecar(t, answer) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hyvve-node-'));
  const sock = path.join(dir, 's.sock');
  const got = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      got.push({ method: req.method, url: req.url, headers: req.headers, body });
      const [status, obj, headers] = answer(req);
      res.writeHead(status, { 'Content-Type': 'application/json', ...(headers || {}) });
      res.end(JSON.stringify(obj));
    });
  });
  await new Promise((r) => server.listen(sock, r));
  t.after(() => {
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { url: `unix://${sock}`, got };
}

test('publish over a Unix socket returns the answer and sends the headers', async (t) => {
  const sc = await fakeSidecar(t, () => [202, { id: 'e1', tenantId: 'acme', correlationId: 'c1' }]);
  const client = new Client({ sidecarUrl: sc.url, apiToken: 'tok' });
  t.after(() => client.close());
  const ack = await client.publish({ type: 'a.b' }, { headers: { 'X-Correlation-Id': 'c1' } });
  assert.equal(ack.id, 'e1');
  assert.equal(sc.got.length, 1);
  const r = sc.got[0];
  assert.equal(`${r.method} ${r.url}`, 'POST /v1/events');
  assert.equal(r.headers['content-type'], 'application/json');
  assert.equal(r.headers.authorization, 'Bearer tok');
  assert.equal(r.headers['x-correlation-id'], 'c1');
  assert.deepEqual(JSON.parse(r.body), { type: 'a.b' });
});

test('publish rejects with the sidecar error', async (t) => {
  const sc = await fakeSidecar(t, () => [
    503,
    { error: { code: 'broker_unavailable', message: 'redis down', field: '' } },
    { 'Retry-After': '1' },
  ]);
  const client = new Client({ sidecarUrl: sc.url });
  t.after(() => client.close());
  await assert.rejects(client.publish({ type: 'a.b' }), (err) => {
    assert.ok(err instanceof HyvveError);
    assert.equal(err.status, 503);
    assert.equal(err.code, 'broker_unavailable');
    assert.equal(err.retryAfter, 1);
    return true;
  });
});

test('publish to an absent sidecar rejects with status 0', async () => {
  const client = new Client({ sidecarUrl: 'unix:///nonexistent/hyvve.sock' });
  await assert.rejects(client.publish({ type: 'a.b' }), (err) => err instanceof HyvveError && err.status === 0);
  assert.equal(await client.ready(), false);
});

// startSubscriber serves sub on a free port and returns a request function.
async function startSubscriber(t, sub) {
  const server = await sub.listen(0);
  t.after(() => sub.close());
  const { port } = server.address();
  return (method, p, body, headers = {}) =>
    new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method, path: p, headers }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode, text }));
      });
      req.on('error', reject);
      req.end(body);
    });
}

test('subscriber serves its subscriptions and answers pushes', async (t) => {
  const sc = await fakeSidecar(t, () => [202, { id: 'e2' }]);
  const client = new Client({ sidecarUrl: sc.url });
  t.after(() => client.close());
  const sub = new Subscriber({ client, log: () => {} });
  const seen = [];
  sub.on('approval.granted', async (event, ctx) => {
    seen.push(event.id);
    await ctx.publish({ type: 'invoice.created' }, { headers: { 'x-tenant-id': 'other' } });
  });
  sub.on('approval.*', () => {
    throw new Error('boom');
  });
  sub.on('crm.**', async () => {
    throw new Error('async boom');
  });
  const req = await startSubscriber(t, sub);

  const list = await req('GET', '/hyvve/subscriptions');
  assert.equal(list.status, 200);
  const subs = JSON.parse(list.text);
  assert.deepEqual(subs.map((s) => s.pattern), ['approval.granted', 'approval.*', 'crm.**']);
  assert.equal(new Set(subs.map((s) => s.path)).size, 3, `paths not distinct: ${list.text}`);
  for (const s of subs) assert.match(s.path, /^\/[^ ?#*]*$/, `path ${s.path} is not a valid subscription path`);

  const tp = newTraceparent();
  const push = (type, body) =>
    req('POST', subs[0].path, body === undefined ? JSON.stringify({ id: 'e1', type, tenantId: 'acme' }) : body, {
      'Content-Type': 'application/json',
      'X-Correlation-Id': 'corr-1',
      'X-Tenant-Id': 'acme',
      'X-Delivery-Attempt': '2',
      traceparent: tp,
      tracestate: 'k=v',
    });
  const cases = [
    ['handler succeeds', 'approval.granted', undefined, 200],
    ['handler throws', 'approval.rejected', undefined, 500],
    ['async handler rejects', 'crm.deal.won', undefined, 500],
    ['body is not JSON', '', '{"type":', 400],
    ['body is not an event', '', '[1]', 400],
    ['no handler matches', 'user.joined', undefined, 404],
  ];
  for (const [name, type, body, want] of cases) {
    const got = await push(type, body);
    assert.equal(got.status, want, `${name}: got ${got.status} ${got.text}, want ${want}`);
  }
  assert.deepEqual(seen, ['e1']);
  assert.equal(sc.got.length, 1, 'ctx.publish did not reach the sidecar once');
  const h = sc.got[0].headers;
  assert.equal(h['x-correlation-id'], 'corr-1');
  assert.equal(h.traceparent, tp);
  assert.equal(traceIdOf(h.traceparent), tp.split('-')[1]);
  assert.equal(h.tracestate, 'k=v');
  assert.equal(h['x-tenant-id'], 'other', 'a header given to ctx.publish must win over the inherited one');
});

test('subscriber with an app token refuses requests without it', async (t) => {
  const sub = new Subscriber({ client: new Client({ sidecarUrl: 'http://127.0.0.1:1' }), appToken: 's3cret' });
  sub.on('a.b', () => {});
  const req = await startSubscriber(t, sub);
  assert.equal((await req('GET', '/hyvve/subscriptions')).status, 401);
  assert.equal((await req('GET', '/hyvve/subscriptions', undefined, { 'X-Hyvve-Token': 'wrong' })).status, 401);
  assert.equal((await req('GET', '/hyvve/subscriptions', undefined, { 'X-Hyvve-Token': 's3cret' })).status, 200);
});
