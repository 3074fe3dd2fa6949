/* kpistream dashboard: plain JS, no library, no build step.
 *
 * Data: /api/v1/meta (windows, sets, clock), /api/v1/kpis (tiles: set=all;
 * the table: one chunk of up to 1000 values, sorted and paged here),
 * /api/v1/series (charts and the tiles' change), /api/v1/alerts, and the
 * /api/v1/events stream: a `kpis` event refreshes what is shown (the tiles
 * from the event itself), an `alert` event is added to the list at once.
 * Every number shown comes from the API unchanged except for formatting
 * (fmt below); the raw value is kept in data-raw for tests and tooltips. */
'use strict';

const CHUNK = 1000;       /* values per /kpis request for the table */
const PAGE = 25;          /* table rows per page */
/* The headline is what a finance team reports: churn and ARPU per month over
 * the subscriber base (docs/kpis.md); the window's own ratios over its active
 * subscribers are the detail line of the same tile. */
const KPIS = [
  {key: 'churn_rate_monthly', label: 'Monthly churn', detail: 'churn_rate', detailLabel: 'window churn'},
  {key: 'arpu_monthly', label: 'ARPU per month', detail: 'arpu', detailLabel: 'window ARPU'},
  {key: 'nps_network', label: 'Network NPS'},
  {key: 'active', label: 'Active subscribers'},
];
const COLUMNS = [
  {key: 'value', label: 'Value'},
  {key: 'events', label: 'Events'},
  {key: 'active', label: 'Active'},
  {key: 'churns', label: 'Churns'},
  {key: 'churn_rate_monthly', label: 'Monthly churn'},
  {key: 'churn_rate', label: 'Window churn'},
  {key: 'arpu_monthly', label: 'ARPU / month'},
  {key: 'arpu', label: 'Window ARPU'},
  {key: 'nps_network', label: 'Network NPS'},
  {key: 'nps_brand', label: 'Brand NPS'},
];

const S = {
  meta: null, window: null, set: null, q: '',
  rows: [], total: 0, exact: true, chunk: 0, page: 0, sort: {key: 'events', dir: -1},
  chart: {set: 'all', value: 'all'}, closed: null, asOf: null, watermark: null,
  alerts: [], series: null, tableTimer: null, tableBusy: false, tablePending: false,
};

const $ = (id) => document.getElementById(id);
const el = (tag, attrs, text) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
};

/* ---- formatting: one rule per KPI, shared by tiles, table and charts ---- */
const nf0 = new Intl.NumberFormat('en-US', {maximumFractionDigits: 0});
function fmt(key, v) {
  if (v === null || v === undefined) return '–';
  switch (key) {
    case 'churn_rate': case 'churn_rate_monthly': return (v * 100).toFixed(2) + '%';
    case 'arpu': case 'arpu_monthly': return v.toFixed(2);
    case 'nps_network': case 'nps_brand': return v.toFixed(1);
    default: return nf0.format(v);
  }
}
function fmtDelta(key, d) {
  if (key === 'churn_rate' || key === 'churn_rate_monthly')
    return (d >= 0 ? '+' : '−') + Math.abs(d * 100).toFixed(2) + ' pp';
  if (key === 'arpu' || key === 'arpu_monthly') return (d >= 0 ? '+' : '−') + Math.abs(d).toFixed(2);
  if (key === 'active') return (d >= 0 ? '+' : '−') + nf0.format(Math.abs(d));
  return (d >= 0 ? '+' : '−') + Math.abs(d).toFixed(1);
}
function ago(ms) {
  if (ms < 1500) return 'just now';
  const s = ms / 1000;
  if (s < 90) return s.toFixed(0) + ' s ago';
  if (s < 5400) return (s / 60).toFixed(0) + ' min ago';
  return (s / 3600).toFixed(1) + ' h ago';
}
function dur(ms) {
  const s = Math.max(0, ms / 1000);
  return s < 120 ? s.toFixed(0) + ' s' : s < 7200 ? (s / 60).toFixed(0) + ' min' : (s / 3600).toFixed(1) + ' h';
}
function clock(ms) {
  return new Date(ms).toLocaleTimeString([], {hour: '2-digit', minute: '2-digit', second: '2-digit'});
}

async function api(path) {
  const r = await fetch(path, {cache: 'no-store'});
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || ('HTTP ' + r.status));
  return body;
}
const win = () => S.meta.windows.find((w) => w.id === S.window);

/* ---- freshness ---- */
function renderFresh() {
  const f = $('fresh');
  if (!S.meta) return;
  const now = Date.now();
  f.textContent = '';
  const dot = el('span', {class: 'dot', 'aria-hidden': 'true'});
  if (S.asOf === null) {
    f.append(dot, 'Waiting for the first flush…');
    return;
  }
  const age = now - S.asOf;
  const lag = S.watermark === null ? null : now - S.watermark;
  const stale = age > 3 * S.meta.flush_interval_ms + 5000;
  document.body.classList.toggle('stale', stale);
  f.append(dot, (stale ? 'STALE: no flush for ' + dur(age) + ' (engine stopped or Redis down?)'
                       : 'Last flush ' + ago(age)) +
    (lag === null ? '' : ' · watermark lag ' + dur(lag)) +
    ' · data as of ' + clock(S.asOf));
}

/* ---- tiles ---- */
function renderTiles(all, series) {
  const pts = series ? series.points : [];
  const last = pts[pts.length - 1], prev = pts[pts.length - 2];
  for (const k of KPIS) {
    const t = document.querySelector(`.tile[data-kpi="${k.key}"]`);
    const v = all ? all[k.key] : null;
    const big = t.querySelector('[data-role="value"]');
    big.textContent = fmt(k.key, v);
    big.dataset.raw = v === null || v === undefined ? '' : String(v);
    const d = t.querySelector('[data-role="delta"]');
    d.textContent = '';
    if (series) {
      const a = last ? last[k.key] : null, b = prev ? prev[k.key] : null;
      const slide = win().name.split('/')[1];
      if (a !== null && a !== undefined && b !== null && b !== undefined) {
        const diff = a - b;
        const arrow = el('span', {class: diff > 0 ? 'up' : diff < 0 ? 'down' : ''},
          (diff > 0 ? '▲ ' : diff < 0 ? '▼ ' : '■ ') + fmtDelta(k.key, diff));
        d.append('last ' + slide + ' ' + fmt(k.key, a) + ' ', arrow, ' vs the previous ' + slide);
      } else if (a !== null && a !== undefined) {
        d.textContent = 'last ' + slide + ' ' + fmt(k.key, a);
      } else {
        d.textContent = 'no closed ' + slide + ' yet';
      }
    }
    if (k.detail) {
      const dv = all ? all[k.detail] : null;
      const x = t.querySelector('[data-role="detail"]');
      x.textContent = k.detailLabel + ' ' + fmt(k.detail, dv);
      x.dataset.raw = dv === null || dv === undefined ? '' : String(dv);
    }
    if (k.key === 'churn_rate_monthly') {
      /* Which base: the BSS's, or the active-base fallback, said as such. */
      const b = t.querySelector('[data-role="base"]');
      const n = all ? all.base : null, src = all ? all.base_source : null;
      b.textContent = n === null || n === undefined ? 'no subscriber base yet'
        : (src === 'active' ? 'over the active base (30 d) of ' : 'over a base of ') + nf0.format(n);
      b.dataset.raw = n === null || n === undefined ? '' : String(n);
      b.dataset.source = src || '';
    }
    if (k.key === 'nps_network') {
      const b = t.querySelector('[data-role="brand"]');
      b.textContent = fmt('nps_brand', all ? all.nps_brand : null);
      b.dataset.raw = all && all.nps_brand !== null ? String(all.nps_brand) : '';
    }
  }
}

/* ---- charts (inline SVG) ---- */
function chartSvg(key, pts) {
  const W = 600, H = 180, L = 56, R = 8, T = 10, B = 22;
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('preserveAspectRatio', 'none');
  const vals = pts.map((p) => p[key]).filter((v) => v !== null && v !== undefined);
  svg.dataset.points = String(vals.length);
  const mk = (tag, attrs) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    svg.append(e);
    return e;
  };
  if (!vals.length) return svg;
  let lo = Math.min(...vals), hi = Math.max(...vals);
  if (lo === hi) { lo -= Math.abs(lo) * 0.1 || 1; hi += Math.abs(hi) * 0.1 || 1; }
  const t0 = pts[0].bucket, t1 = pts[pts.length - 1].bucket;
  const x = (t) => L + (t1 === t0 ? (W - L - R) / 2 : (t - t0) / (t1 - t0) * (W - L - R));
  const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
  mk('line', {class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B});
  mk('line', {class: 'axis', x1: L, y1: T, x2: L, y2: H - B});
  mk('text', {x: L - 4, y: T + 8, 'text-anchor': 'end'}).textContent = fmt(key, hi);
  mk('text', {x: L - 4, y: H - B, 'text-anchor': 'end'}).textContent = fmt(key, lo);
  mk('text', {x: L, y: H - 6}).textContent = clock(t0);
  mk('text', {x: W - R, y: H - 6, 'text-anchor': 'end'}).textContent = clock(t1);
  let d = '';
  for (const p of pts) {
    const v = p[key];
    if (v === null || v === undefined) continue;
    d += (d ? 'L' : 'M') + x(p.bucket).toFixed(1) + ',' + y(v).toFixed(1);
  }
  mk('path', {class: 'line', d});
  if (vals.length <= 30) {
    for (const p of pts) {
      if (p[key] === null || p[key] === undefined) continue;
      mk('circle', {class: 'dotp', cx: x(p.bucket), cy: y(p[key]), r: 3});
    }
  }
  const title = document.createElementNS(ns, 'title');
  title.textContent = `${vals.length} points`;
  svg.prepend(title);
  return svg;
}

function renderCharts(series) {
  const box = $('charts');
  box.textContent = '';
  box.dataset.points = String(series.points.length);
  for (const k of KPIS) {
    const c = el('figure', {class: 'chart', 'data-kpi': k.key});
    c.append(el('h3', {}, k.label));
    if (series.points.length) {
      const svg = chartSvg(k.key, series.points);
      svg.setAttribute('role', 'img');
      svg.setAttribute('aria-label', `${k.label} per ${win().name.split('/')[1]}, ${series.points.length} points`);
      c.append(svg);
    } else {
      c.append(el('p', {class: 'empty'}, 'No closed bucket yet'));
    }
    box.append(c);
  }
  const subj = S.chart.set === 'all' ? 'total' : `${S.chart.set} = ${S.chart.value}`;
  $('chart-subject').textContent = subj;
  $('chart-total').hidden = S.chart.set === 'all';
  $('slide-name').textContent = win().name.split('/')[1];
}

/* ---- refreshing ---- */
function pointsFor(w) {
  /* the last 60 of 1h/1m, the last 24 of 24h/1h: one instance's buckets */
  return Math.max(2, Math.min(1000, Math.round(w.size_ms / w.slide_ms)));
}

async function refreshTop() {
  const w = win();
  const [k, total, series] = await Promise.all([
    api(`/api/v1/kpis?window=${encodeURIComponent(S.window)}&set=all`),
    api(`/api/v1/series?window=${encodeURIComponent(S.window)}&set=all&points=${pointsFor(w)}`),
    S.chart.set === 'all' ? null
      : api(`/api/v1/series?window=${encodeURIComponent(S.window)}&set=${encodeURIComponent(S.chart.set)}` +
            `&value=${encodeURIComponent(S.chart.value)}&points=${pointsFor(w)}`),
  ]);
  S.asOf = k.as_of_ms;
  S.watermark = k.watermark_ms;
  S.closed = k.closed_ms;
  S.series = total;
  renderTiles(k.values[0] || null, total);
  renderCharts(series || total);
  document.body.dataset.asOf = String(k.as_of_ms);
  renderFresh();
}

async function refreshTable() {
  if (S.tableBusy) { S.tablePending = true; return; }
  S.tableBusy = true;
  try {
    const url = `/api/v1/kpis?window=${encodeURIComponent(S.window)}&set=${encodeURIComponent(S.set)}` +
      `&limit=${CHUNK}&offset=${S.chunk * CHUNK}` + (S.q ? `&q=${encodeURIComponent(S.q)}` : '');
    const r = await api(url);
    S.rows = r.values;
    S.total = r.total;
    S.exact = r.total_exact;
    $('table').dataset.asOf = String(r.as_of_ms);
    renderTable();
  } catch (e) {
    $('table-info').textContent = 'Cannot load: ' + e.message;
  } finally {
    S.tableBusy = false;
    if (S.tablePending) { S.tablePending = false; refreshTable(); }
  }
}

function sortedRows() {
  const {key, dir} = S.sort;
  const rows = S.rows.slice();
  rows.sort((a, b) => {
    const x = a[key], y = b[key];
    if (x === y) return 0;
    if (x === null) return 1; /* undefined KPIs last either way */
    if (y === null) return -1;
    if (key === 'value') return dir * String(x).localeCompare(String(y));
    return dir * (x < y ? -1 : 1);
  });
  return rows;
}

function renderTable() {
  const head = $('table-head');
  head.textContent = '';
  for (const c of COLUMNS) {
    const th = el('th', {scope: 'col', 'data-key': c.key});
    if (S.sort.key === c.key) th.setAttribute('aria-sort', S.sort.dir < 0 ? 'descending' : 'ascending');
    const b = el('button', {type: 'button'}, c.label + (S.sort.key === c.key ? (S.sort.dir < 0 ? ' ▼' : ' ▲') : ''));
    b.addEventListener('click', () => {
      S.sort = S.sort.key === c.key ? {key: c.key, dir: -S.sort.dir} : {key: c.key, dir: c.key === 'value' ? 1 : -1};
      S.page = 0;
      renderTable();
    });
    th.append(b);
    head.append(th);
  }
  const rows = sortedRows();
  const pages = Math.max(1, Math.ceil(rows.length / PAGE));
  S.page = Math.min(S.page, pages - 1);
  const body = $('table-body');
  body.textContent = '';
  for (const r of rows.slice(S.page * PAGE, S.page * PAGE + PAGE)) {
    const tr = el('tr', {'data-value': r.value});
    if (S.chart.set === S.set && S.chart.value === r.value) tr.classList.add('chosen');
    for (const c of COLUMNS) {
      const td = el('td', {'data-key': c.key});
      if (c.key === 'value') {
        const b = el('button', {type: 'button', class: 'value', title: 'Chart this value'}, r.value);
        b.addEventListener('click', () => chooseChart(S.set, r.value));
        td.append(b);
      } else {
        td.textContent = fmt(c.key, r[c.key]);
        td.dataset.raw = r[c.key] === null ? '' : String(r[c.key]);
      }
      tr.append(td);
    }
    body.append(tr);
  }
  if (!rows.length) {
    const tr = el('tr');
    tr.append(el('td', {colspan: String(COLUMNS.length)}, S.q ? 'No value matches.' : 'No data in this window yet.'));
    body.append(tr);
  }
  const first = S.chunk * CHUNK + S.page * PAGE;
  $('table-info').textContent = rows.length
    ? `${first + 1}–${first + Math.min(PAGE, rows.length - S.page * PAGE)} of ${S.total}${S.exact ? '' : '+'} values` +
      (S.total > CHUNK ? ` (sorted within the ${S.chunk * CHUNK + 1}–${S.chunk * CHUNK + rows.length} with the most events)` : '')
    : '';
  $('prev').disabled = S.page === 0 && S.chunk === 0;
  $('next').disabled = S.page >= pages - 1 && (S.chunk + 1) * CHUNK >= S.total;
}

function renderTabs() {
  const tabs = $('set-tabs');
  tabs.textContent = '';
  for (const s of S.meta.sets.filter((x) => x !== 'all')) {
    const b = el('button', {type: 'button', role: 'tab', 'aria-selected': String(s === S.set), 'data-set': s,
      tabindex: s === S.set ? '0' : '-1'}, s);
    b.addEventListener('click', () => { S.set = s; S.chunk = 0; S.page = 0; renderTabs(); refreshTable(); });
    b.addEventListener('keydown', (e) => {
      if (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft') return;
      const all = [...tabs.querySelectorAll('button')];
      const i = all.indexOf(b) + (e.key === 'ArrowRight' ? 1 : -1);
      const n = all[(i + all.length) % all.length];
      n.focus();
      n.click();
    });
    tabs.append(b);
  }
}

function chooseChart(set, value) {
  S.chart = {set, value};
  refreshTop().catch(showError);
  renderTable();
}

/* ---- alerts ---- */
function renderAlerts() {
  const list = $('alerts');
  list.textContent = '';
  const open = new Set();
  const seenKey = new Set();
  /* newest first: the first entry per (window, set, value) is its state now */
  for (const a of S.alerts) {
    const k = a.window + '\u0000' + a.set + '\u0000' + a.value;
    if (!seenKey.has(k)) { seenKey.add(k); if (a.state === 'raised') open.add(a.id); }
  }
  for (const a of S.alerts.slice(0, 50)) {
    const li = el('li', {'data-state': a.state, 'data-set': a.set, 'data-value': a.value, 'data-id': a.id,
      'data-active': open.has(a.id) ? '1' : '0'});
    li.append(el('span', {class: 'badge'}, a.state));
    li.append(el('span', {class: 'what'}, `${a.set} = ${a.value}: churn ${fmt('churn_rate', a.rate)} ` +
      `(baseline ${fmt('churn_rate', a.baseline)}, threshold ${fmt('churn_rate', a.threshold)})`));
    li.append(el('span', {class: 'when'}, `${clock(a.time_ms)} · ${a.window} · ${nf0.format(a.active)} active`));
    list.append(li);
  }
  if (!S.alerts.length) list.append(el('li', {class: 'none'}, 'No alert raised.'));
  $('alerts-active').textContent = open.size ? `${open.size} active` : '';
}

/* ---- wiring ---- */
function showError(e) {
  $('fresh').textContent = 'Cannot reach the API: ' + e.message;
  document.body.classList.add('stale');
}

function scheduleTable() {
  /* at most one table refresh per 3 s, whatever the event rate */
  if (S.tableTimer) return;
  S.tableTimer = setTimeout(() => { S.tableTimer = null; refreshTable(); }, 3000);
}

function listen() {
  const es = new EventSource('/api/v1/events');
  es.addEventListener('kpis', (ev) => {
    const d = JSON.parse(ev.data);
    const w = d.windows[S.window];
    S.asOf = d.as_of_ms;
    S.watermark = d.watermark_ms;
    if (w && w.closed_ms !== S.closed) {
      refreshTop().catch(showError); /* a bucket closed: new points */
    } else if (w) {
      renderTiles(w.all, S.series); /* the event carries the totals */
      document.body.dataset.asOf = String(d.as_of_ms);
    }
    scheduleTable();
    renderFresh();
  });
  es.addEventListener('alert', (ev) => {
    const a = JSON.parse(ev.data);
    if (!S.alerts.some((x) => x.id === a.id)) S.alerts.unshift(a);
    renderAlerts();
  });
  es.onerror = () => renderFresh();
  es.onopen = () => api('/api/v1/alerts?limit=50').then((r) => { S.alerts = r.alerts; renderAlerts(); }).catch(() => {});
}

async function start() {
  try {
    S.meta = await api('/api/v1/meta');
  } catch (e) {
    showError(e);
    setTimeout(start, 3000);
    return;
  }
  $('group').textContent = 'group ' + S.meta.group;
  $('version').textContent = S.meta.version;
  $('store').textContent = S.meta.store === 'memory' ? 'in-memory (no Redis)' : 'Redis';
  const pref = new URLSearchParams(location.search).get('window');
  const ids = S.meta.windows.map((w) => w.id);
  S.window = ids.includes(pref) ? pref : ids.includes('1h_1m') ? '1h_1m' : ids[0];
  const sel = $('window');
  for (const w of S.meta.windows) sel.append(el('option', {value: w.id}, w.name));
  sel.value = S.window;
  sel.addEventListener('change', () => {
    S.window = sel.value;
    S.chunk = 0;
    S.page = 0;
    refreshTop().catch(showError);
    refreshTable();
  });
  S.set = S.meta.sets.includes('segment') ? 'segment' : S.meta.sets.find((s) => s !== 'all') || 'all';
  renderTabs();
  let t = null;
  $('search').addEventListener('input', (e) => {
    clearTimeout(t);
    t = setTimeout(() => { S.q = e.target.value.trim(); S.chunk = 0; S.page = 0; refreshTable(); }, 250);
  });
  $('prev').addEventListener('click', () => {
    if (S.page > 0) { S.page--; renderTable(); } else if (S.chunk > 0) { S.chunk--; S.page = Math.ceil(CHUNK / PAGE) - 1; refreshTable(); }
  });
  $('next').addEventListener('click', () => {
    if ((S.page + 1) * PAGE < S.rows.length) { S.page++; renderTable(); } else { S.chunk++; S.page = 0; refreshTable(); }
  });
  $('chart-total').addEventListener('click', () => chooseChart('all', 'all'));
  const alerts = await api('/api/v1/alerts?limit=50').catch(() => ({alerts: []}));
  S.alerts = alerts.alerts;
  renderAlerts();
  await Promise.all([refreshTop().catch(showError), refreshTable()]);
  listen();
  setInterval(renderFresh, 1000);
  document.body.dataset.ready = '1';
}

start();
