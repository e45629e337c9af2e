// The hyvve sidecar dashboard. Plain browser JavaScript, no libraries, no
// build step. Every piece of data comes from the admin API (/v1/admin/…)
// with the admin token as a Bearer header. The token arrives once in the URL
// (?token=…), is kept in sessionStorage (this tab only) and removed from the
// address bar at once.
'use strict';

(function () {
  const TOKEN_KEY = 'hyvve-admin-token';
  const STATS_EVERY_MS = 5000;
  const REPLAYS_EVERY_MS = 2000;
  const $ = (id) => document.getElementById(id);

  // ---- token ----
  function takeTokenFromURL() {
    const url = new URL(window.location.href);
    const t = url.searchParams.get('token');
    if (t) {
      sessionStorage.setItem(TOKEN_KEY, t);
      url.searchParams.delete('token');
      history.replaceState(null, '', url.pathname + (url.search || '') + url.hash);
    }
  }
  const token = () => sessionStorage.getItem(TOKEN_KEY) || '';

  // ---- errors ----
  function showError(msg) {
    $('banner-text').textContent = msg;
    $('banner').hidden = false;
  }
  function clearError() { $('banner').hidden = true; }

  class APIError extends Error {
    constructor(status, msg) { super(msg); this.status = status; }
  }

  // api calls the admin API; it throws an APIError with the server's message.
  async function api(method, path, body) {
    const opts = { method, headers: { Authorization: 'Bearer ' + token() }, cache: 'no-store' };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, opts);
    } catch (e) {
      throw new APIError(0, 'cannot reach the sidecar: ' + e.message);
    }
    if (resp.status === 204) return null;
    const text = await resp.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { /* not JSON */ }
    if (!resp.ok) {
      const msg = data && data.error ? data.error.message : text || resp.statusText;
      if (resp.status === 401) {
        showLogin();
      }
      throw new APIError(resp.status, method + ' ' + path + ': ' + resp.status + ' ' + msg);
    }
    return data;
  }

  // ---- formatting ----
  const nf = new Intl.NumberFormat('en');
  const fmtN = (n) => nf.format(n);
  const fmtRate = (r) => (r >= 100 ? nf.format(Math.round(r)) : r.toFixed(r >= 10 ? 1 : 2));
  function fmtTime(s) {
    if (!s) return '–';
    const d = new Date(s);
    return isNaN(d) ? s : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  }
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v;
      else if (k === 'onclick') e.addEventListener('click', v);
      else e.setAttribute(k, v);
    }
    for (const c of children) {
      if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  // ---- stats ----
  let statsCursor = '';       // the page of tenants shown

  async function loadStats() {
    const q = statsCursor ? '?cursor=' + encodeURIComponent(statsCursor) : '';
    const s = await api('GET', '/v1/admin/stats' + q);
    $('t-tenants').textContent = fmtN(s.tenantCount);
    $('t-lag').textContent = fmtN(s.lagTotal);
    $('t-dlq').textContent = fmtN(s.dlqTotal);
    $('t-pub').textContent = fmtRate(s.sidecar.publishedPerSec);
    $('t-del').textContent = fmtRate(s.sidecar.deliveredPerSec);
    $('t-fail').textContent = fmtRate(s.sidecar.failedPerSec);
    const badge = $('dlq-count');
    badge.textContent = fmtN(s.dlqTotal);
    badge.className = 'badge' + (s.dlqTotal === 0 ? ' zero' : '');
    renderGroups(s);
    drawChart(s);
    $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
  }

  function renderGroups(s) {
    const tb = $('groups').querySelector('tbody');
    tb.replaceChildren();
    // The embedded/NATS store has one consumer per group for all tenants:
    // its groups come once, over every tenant, instead of per tenant.
    const shared = s.groups || [];
    shared.forEach((g, i) => {
      tb.append(el('tr', null,
        el('td', null, i === 0 ? el('span', { class: 'muted' }, 'all tenants') : ''),
        el('td', { class: 'num' }, ''), el('td', { class: 'num' }, ''),
        el('td', null, g.group),
        el('td', { class: 'num' }, fmtN(g.consumers)),
        el('td', { class: 'num' }, fmtN(g.lag)),
        el('td', { class: 'num' }, fmtN(g.pending))));
    });
    for (const t of s.tenants) {
      const groups = t.groups.length ? t.groups : [null];
      const none = shared.length ? 'groups: see all tenants' : 'no group yet';
      groups.forEach((g, i) => {
        const lag = g ? [g.lagEstimated ? el('span', { class: 'est', title: 'counted: Redis could not tell the lag after trimming' }, '≈ ') : null, fmtN(g.lag)] : ['–'];
        tb.append(el('tr', null,
          el('td', null, i === 0 ? t.tenantId : ''),
          el('td', { class: 'num' }, i === 0 ? fmtN(t.streamLength) : ''),
          el('td', { class: 'num' }, i === 0 ? fmtN(t.dlqLength) : ''),
          el('td', null, g ? g.group : el('span', { class: 'muted' }, none)),
          el('td', { class: 'num' }, g ? fmtN(g.consumers) : ''),
          el('td', { class: 'num' }, ...lag),
          el('td', { class: 'num' }, g ? fmtN(g.pending) : '')));
      });
    }
    if (!s.tenants.length) {
      tb.append(el('tr', null, el('td', { colspan: '7', class: 'muted' }, 'No tenant has published yet.')));
    }
    $('groups-page').textContent = s.tenants.length ? 'tenants ' + s.tenants[0].tenantId + ' … ' +
      s.tenants[s.tenants.length - 1].tenantId + ' (' + fmtN(s.tenantCount) + ' in all; totals are for this page)' : '';
    $('groups-next').hidden = !s.nextCursor;
    $('groups-next').dataset.cursor = s.nextCursor;
    $('groups-first').hidden = !statsCursor;
  }

  // drawChart draws published (cluster) and delivered/failed (this sidecar)
  // per minute for the last hour, by hand on the canvas.
  function drawChart(s) {
    const cv = $('chart');
    const dpr = window.devicePixelRatio || 1;
    const w = cv.clientWidth || 960, h = cv.clientHeight || 240;
    cv.width = w * dpr; cv.height = h * dpr;
    const g = cv.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const minutes = s.cluster.publishedPerMinute.map((m) => ({ t: Date.parse(m.minute), pub: m.count, del: 0, fail: 0 }));
    const byT = new Map(minutes.map((m) => [m.t, m]));
    for (const m of s.sidecar.perMinute) {
      const x = byT.get(Date.parse(m.minute));
      if (x) { x.del = m.delivered; x.fail = m.failed; }
    }
    const pad = { l: 48, r: 12, t: 10, b: 24 };
    const pw = w - pad.l - pad.r, ph = h - pad.t - pad.b;
    let max = 0;
    for (const m of minutes) max = Math.max(max, m.pub, m.del, m.fail);
    max = niceMax(max);
    g.font = '11px system-ui, sans-serif';
    g.fillStyle = '#667085';
    g.strokeStyle = '#e3e6eb';
    g.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = pad.t + ph - (ph * i) / 4;
      g.beginPath(); g.moveTo(pad.l, y + 0.5); g.lineTo(w - pad.r, y + 0.5); g.stroke();
      g.textAlign = 'right'; g.textBaseline = 'middle';
      g.fillText(fmtN(Math.round((max * i) / 4)), pad.l - 6, y);
    }
    const n = minutes.length;
    if (n < 2) return;
    const xOf = (i) => pad.l + (pw * i) / (n - 1);
    const yOf = (v) => pad.t + ph - (ph * v) / max;
    g.textAlign = 'center'; g.textBaseline = 'top';
    for (let i = 0; i < n; i += 10) {
      const d = new Date(minutes[i].t);
      g.fillText(d.toTimeString().slice(0, 5), xOf(i), pad.t + ph + 6);
    }
    g.fillText('now', xOf(n - 1) - 8, pad.t + ph + 6);
    const css = getComputedStyle(document.documentElement);
    const line = (key, color) => {
      g.strokeStyle = color; g.lineWidth = 2; g.beginPath();
      minutes.forEach((m, i) => (i ? g.lineTo(xOf(i), yOf(m[key])) : g.moveTo(xOf(i), yOf(m[key]))));
      g.stroke();
    };
    line('fail', css.getPropertyValue('--fail').trim() || '#d64545');
    line('del', css.getPropertyValue('--del').trim() || '#1f9d55');
    line('pub', css.getPropertyValue('--pub').trim() || '#2f6fed');
  }
  function niceMax(v) {
    if (v <= 4) return 4;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  // ---- dead letters ----
  let dlqCursor = '';
  let dlqMore = false; // the table holds more than the first page: no auto-refresh
  let selected = null; // {tenantId, id} of the dead letter in the detail view

  function dlqQuery(cursor) {
    const p = new URLSearchParams();
    const t = $('f-tenant').value.trim(), ty = $('f-type').value.trim();
    if (t) p.set('tenantId', t);
    if (ty) p.set('type', ty);
    p.set('limit', '50');
    if (cursor) p.set('cursor', cursor);
    return '/v1/admin/dlq?' + p.toString();
  }

  // loadDLQ reloads the first page, or appends the next one when more is set.
  async function loadDLQ(more) {
    const page = await api('GET', dlqQuery(more ? dlqCursor : ''));
    const tb = $('dlq').querySelector('tbody');
    if (!more) tb.replaceChildren();
    dlqMore = !!more;
    for (const d of page.items) tb.append(dlqRow(d));
    dlqCursor = page.nextCursor;
    $('dlq-more').hidden = !dlqCursor;
    $('dlq-empty').hidden = tb.children.length > 0;
  }

  function dlqRow(d) {
    const type = d.event ? d.event.type : '(undecodable)';
    const tr = el('tr', { 'data-id': d.tenantId + '/' + d.id },
      el('td', null, fmtTime(d.failedAt)),
      el('td', null, d.tenantId),
      el('td', null, type),
      el('td', null, d.group),
      el('td', { class: 'num' }, d.attempts),
      el('td', { class: 'err', title: d.lastError }, d.lastError),
      el('td', null,
        el('button', { type: 'button', class: 'small secondary', onclick: () => guard(() => showDetail(d.tenantId, d.id)) }, 'View'), ' ',
        el('button', { type: 'button', class: 'small', 'data-action': 'retry', onclick: () => guard(() => retry(d.tenantId, d.id)) }, 'Retry'), ' ',
        el('button', { type: 'button', class: 'small danger', onclick: () => guard(() => del(d.tenantId, d.id)) }, 'Delete')));
    if (selected && selected.tenantId === d.tenantId && selected.id === d.id) tr.className = 'selected';
    return tr;
  }

  async function showDetail(tenantId, id) {
    const d = await api('GET', '/v1/admin/dlq/' + encodeURIComponent(tenantId) + '/' + encodeURIComponent(id));
    selected = { tenantId, id };
    $('d-id').textContent = d.id;
    $('d-tenant').textContent = d.tenantId;
    $('d-group').textContent = d.group;
    $('d-attempts').textContent = d.attempts;
    $('d-failed').textContent = fmtTime(d.failedAt);
    $('d-orig').textContent = d.originalStreamId;
    $('d-error').textContent = d.lastError || '–';
    $('d-event').textContent = d.event ? JSON.stringify(d.event, null, 2) : '(the entry could not be decoded as an event)';
    $('detail').hidden = false;
    $('detail').scrollIntoView({ behavior: 'smooth', block: 'nearest' });
  }
  function closeDetail() { selected = null; $('detail').hidden = true; }

  async function retry(tenantId, id) {
    const r = await api('POST', '/v1/admin/dlq/' + encodeURIComponent(tenantId) + '/' + encodeURIComponent(id) + '/retry');
    if (selected && selected.id === id && selected.tenantId === tenantId) closeDetail();
    await Promise.all([loadDLQ(false), loadStats()]);
    notice('Re-published as ' + r.streamId + ' for its group; the dead letter was removed.');
  }
  async function del(tenantId, id) {
    if (!window.confirm('Delete dead letter ' + tenantId + '/' + id + '? The event will not be delivered.')) return;
    await api('DELETE', '/v1/admin/dlq/' + encodeURIComponent(tenantId) + '/' + encodeURIComponent(id));
    if (selected && selected.id === id && selected.tenantId === tenantId) closeDetail();
    await Promise.all([loadDLQ(false), loadStats()]);
  }
  function notice(msg) { $('updated').textContent = msg; }

  // ---- replays ----
  async function loadReplays() {
    const r = await api('GET', '/v1/admin/replays?limit=20');
    const tb = $('replays').querySelector('tbody');
    tb.replaceChildren();
    for (const j of r.items) {
      tb.append(el('tr', null,
        el('td', null, fmtTime(j.startedAt)),
        el('td', { class: 'status-' + j.status }, j.status),
        el('td', null, j.tenantId),
        el('td', null, fmtTime(j.from) + ' → ' + fmtTime(j.to)),
        el('td', null, j.types && j.types.length ? j.types.join(', ') : 'all'),
        el('td', null, j.group || 'every group'),
        el('td', null, fmtN(j.republished) + ' of ' + fmtN(j.matched) + ' matched (' + fmtN(j.scanned) + ' scanned)'),
        el('td', { class: 'error-text' }, j.error || '')));
    }
    $('replays-empty').hidden = r.items.length > 0;
  }
  function utcInput(id) {
    const v = $(id).value; // "YYYY-MM-DDTHH:MM[:SS]", read as UTC
    return v ? new Date(v + (v.length === 16 ? ':00' : '') + 'Z').toISOString() : '';
  }
  async function startReplay(ev) {
    ev.preventDefault();
    const body = { tenantId: $('r-tenant').value.trim(), from: utcInput('r-from'), to: utcInput('r-to') };
    const types = $('r-types').value.split(',').map((s) => s.trim()).filter(Boolean);
    if (types.length) body.types = types;
    const group = $('r-group').value.trim();
    if (group) body.group = group;
    const j = await api('POST', '/v1/admin/replays', body);
    notice('Replay ' + j.id + ' started.');
    await loadReplays();
  }

  // ---- wiring ----
  // guard runs an action and shows its failure in the banner.
  async function guard(f) {
    try {
      await f();
      return true;
    } catch (e) {
      showError(e.message);
      return false;
    }
  }

  let timers = [];
  function showLogin() {
    timers.forEach(clearInterval);
    timers = [];
    $('main').hidden = true;
    $('login').hidden = false;
  }
  async function refreshAll() {
    const ok = await guard(() => Promise.all([loadStats(), loadDLQ(false), loadReplays()]));
    if (ok) clearError();
    return ok;
  }
  async function start() {
    $('login').hidden = true;
    $('main').hidden = false;
    if (!(await refreshAll())) return;
    // Stats, and the first page of dead letters unless the user paged on,
    // every 5 s; replay progress every 2 s.
    timers.push(setInterval(() => guard(() => Promise.all([loadStats(), dlqMore ? null : loadDLQ(false)])), STATS_EVERY_MS));
    timers.push(setInterval(() => guard(loadReplays), REPLAYS_EVERY_MS));
  }

  function init() {
    takeTokenFromURL();
    $('banner-close').addEventListener('click', clearError);
    $('refresh').addEventListener('click', refreshAll);
    $('forget').addEventListener('click', () => { sessionStorage.removeItem(TOKEN_KEY); showLogin(); });
    $('login-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, $('login-token').value.trim());
      $('login-token').value = '';
      start();
    });
    $('dlq-filter').addEventListener('submit', (ev) => { ev.preventDefault(); closeDetail(); guard(() => loadDLQ(false)); });
    $('dlq-clear').addEventListener('click', () => { $('f-tenant').value = ''; $('f-type').value = ''; guard(() => loadDLQ(false)); });
    $('dlq-more').addEventListener('click', () => guard(() => loadDLQ(true)));
    $('groups-next').addEventListener('click', () => { statsCursor = $('groups-next').dataset.cursor; guard(loadStats); });
    $('groups-first').addEventListener('click', () => { statsCursor = ''; guard(loadStats); });
    $('d-close').addEventListener('click', closeDetail);
    $('d-retry').addEventListener('click', () => selected && guard(() => retry(selected.tenantId, selected.id)));
    $('d-delete').addEventListener('click', () => selected && guard(() => del(selected.tenantId, selected.id)));
    $('replay-form').addEventListener('submit', (ev) => guard(() => startReplay(ev)));
    const now = new Date();
    $('r-to').value = now.toISOString().slice(0, 19);
    $('r-from').value = new Date(now - 3600e3).toISOString().slice(0, 19);
    if (token()) start(); else showLogin();
  }
  init();
})();
