/* app.js - the canaryd dashboard (docs/dashboard.md). No framework and no
 * dependency: the page is served from the binary where there is no
 * internet, and the CSP allows nothing but this origin.
 *
 * Data flow. The first load asks the polling API once: the canaries'
 * status (GET /api/v1/canaries), then per canary its audit history
 * (.../events) and its 5 s samples (.../series, which may not exist: then
 * the charts are drawn from the check events). From then on everything
 * comes from the event stream (GET /api/v1/events/stream): "status",
 * "audit" and "sample" events. What the stream sends before a canary's
 * history has arrived is held and merged (an audit event carries no id on
 * the stream: time, type and message identify it). When the stream comes
 * back after a break (EventSource reconnects by itself; a refused stream
 * is retried here), only what happened meanwhile is asked for
 * (?after=LAST_ID, ?since=LAST_T): nothing downloads the history again.
 *
 * Times are shown in the chosen IANA zone (Europe/London by default) with
 * its abbreviation, GMT or BST: the formatter's own name when it gives one,
 * else derived from the UTC offset (some ICU builds say "GMT+1").
 *
 * The DOM names that tests rely on are in ../docs/dashboard.md ("DOM
 * contract"): keep them stable. */
'use strict';
(function (root) {

/* ---- formatting: pure, run under node by tests/web/test_format.mjs ---- */

/* Zones whose summer time is British Summer Time. */
const UK_ZONES = new Set(['Europe/London', 'Europe/Belfast', 'Europe/Guernsey', 'Europe/Jersey',
  'Europe/Isle_of_Man', 'GB', 'GB-Eire']);

/* Formatters for IANA zone <zone> and BCP 47 <locale>. Throws RangeError
 * when either is unknown to the browser's Intl (the settings form says so). */
function makeFormat(zone, locale) {
  const dateTime = new Intl.DateTimeFormat(locale, { timeZone: zone, year: 'numeric',
    month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' });
  const clock = new Intl.DateTimeFormat(locale, { timeZone: zone, hour: '2-digit',
    minute: '2-digit', second: '2-digit' });
  const hm = new Intl.DateTimeFormat(locale, { timeZone: zone, hour: '2-digit', minute: '2-digit' });
  const named = new Intl.DateTimeFormat('en-GB', { timeZone: zone, timeZoneName: 'short' });
  const wall = new Intl.DateTimeFormat('en-GB', { timeZone: zone, hourCycle: 'h23', year: 'numeric',
    month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' });
  const numbers = new Map();
  const money = new Map();

  /* Minutes east of UTC in <zone> at <ms>: the zone's wall clock read as
   * if it were UTC, minus the instant. */
  function offsetMinutes(ms) {
    const p = {};
    for (const x of wall.formatToParts(ms)) p[x.type] = Number(x.value);
    const asUtc = Date.UTC(p.year, p.month - 1, p.day, p.hour % 24, p.minute, p.second);
    return Math.round((asUtc - Math.floor(ms / 1000) * 1000) / 60000);
  }
  /* "GMT"/"BST" in the UK zones, else the formatter's short name ("CET",
   * "GMT+2", "EST"); "UTC+01:00" style when it has none. */
  function zoneLabel(ms) {
    const off = offsetMinutes(ms);
    if (UK_ZONES.has(zone)) return off === 0 ? 'GMT' : off === 60 ? 'BST' : fmtOffset(off);
    const n = named.formatToParts(ms).find(x => x.type === 'timeZoneName');
    return n ? n.value : fmtOffset(off);
  }
  function fmtOffset(off) {
    const a = Math.abs(off);
    return 'UTC' + (off < 0 ? '-' : '+') + String(Math.floor(a / 60)).padStart(2, '0') + ':' +
      String(a % 60).padStart(2, '0');
  }
  function formatNumber(x, digits) {
    if (x === null || x === undefined || !Number.isFinite(Number(x))) return '–';
    const d = digits === undefined ? 2 : digits;
    if (!numbers.has(d))
      numbers.set(d, new Intl.NumberFormat(locale, { minimumFractionDigits: d, maximumFractionDigits: d }));
    return numbers.get(d).format(Number(x));
  }
  /* Money in <currency> (ISO 4217, GBP by default): two decimals, four
   * below one unit (a canary's running cost is often pennies). */
  function formatMoney(x, currency) {
    if (x === null || x === undefined || !Number.isFinite(Number(x))) return '–';
    const c = currency || 'GBP';
    const v = Number(x);
    const small = v !== 0 && Math.abs(v) < 1;
    const key = c + (small ? ':4' : ':2');
    if (!money.has(key))
      money.set(key, new Intl.NumberFormat(locale, { style: 'currency', currency: c,
        minimumFractionDigits: 2, maximumFractionDigits: small ? 4 : 2 }));
    return money.get(key).format(v);
  }
  return {
    zone, locale, zoneLabel, offsetMinutes, formatNumber, formatMoney,
    formatTime: ms => dateTime.format(ms) + ' ' + zoneLabel(ms),
    formatClock: ms => clock.format(ms) + ' ' + zoneLabel(ms),
    formatHM: ms => hm.format(ms),
    formatHMS: ms => clock.format(ms),
  };
}

/* The state shown for a status (docs/dashboard.md): at-risk is a canary
 * still progressing with failed checks, which must not look calm. */
function phaseState(st) {
  const p = st.phase;
  if (p === 'Failed') return 'failed';
  if (p === 'Succeeded') return 'succeeded';
  if (p === 'Paused') return 'paused';
  if (p === 'Waiting' || p === 'WaitingPromotion') return 'waiting';
  if (p === 'Progressing' || p === 'Promoting' || (p === 'Initialized' && st.canaryRevision))
    return st.failedChecks > 0 ? 'at-risk' : 'ok';
  return 'idle';
}

/* Error-rate and latency thresholds (percent, milliseconds) from a check's
 * metrics [{name, min, max}] (or a status' {name, thresholdRange}). */
function thresholds(metrics) {
  const out = { errors: [], latency: [] };
  for (const m of metrics || []) {
    const r = m.thresholdRange || m;
    if (m.name === 'request-success-rate' && typeof r.min === 'number')
      out.errors.push({ v: 100 - r.min, label: 'max ' + trim(100 - r.min) + ' %' });
    else if (m.name === 'error-rate' && typeof r.max === 'number')
      out.errors.push({ v: r.max, label: 'max ' + trim(r.max) + ' %' });
    else if (m.name === 'request-duration' && typeof r.max === 'number')
      out.latency.push({ v: r.max, label: 'max ' + trim(r.max) + ' ms' });
  }
  return out;
}
function trim(v) { return String(Math.round(v * 1000) / 1000); }

root.canarydFormat = { makeFormat, phaseState, thresholds };
if (typeof document === 'undefined') return;

/* ---- the page ---- */

const WINDOW_MS = 30 * 60 * 1000;  /* what the charts show, as the series keeps */
const MAX_ROWS = 400;              /* audit rows in the DOM at once */
const SVGNS = 'http://www.w3.org/2000/svg';
const ACTIONS = {
  pause: { label: 'Pause', text: 'holds the weight where it is; checks go on. Resume continues the analysis.' },
  resume: { label: 'Resume', text: 'continues the analysis from where it was paused.' },
  approve: { label: 'Approve', text: 'passes the approval gate: the rollout may go on to the next step.' },
  promote: { label: 'Promote', text: 'moves past the current step now (in full: all traffic to the canary revision, which becomes stable).' },
  abort: { label: 'Abort', text: 'rolls back: all traffic to stable now, recorded as an abort.' },
  weight: { label: 'Set weight', text: 'sets the canary weight and pauses the analysis there.' },
  undo: { label: 'Undo', text: 'sends all traffic back to the previous stable revision now.' },
};

const S = {
  fmt: null,
  server: { timeZone: 'Europe/London', locale: 'en-GB' },
  canaries: new Map(),
  opened: false,      /* the stream was open once: a new open is a reconnect */
  es: null,
  retry: null,
  retryMs: 2000,
};

function $(sel, el) { return (el || document).querySelector(sel); }

/* Builds an element: h('p', {class: 'x', dataset: {role: 'y'}}, 'text', child). Text is
 * always text: nothing from the API becomes markup. */
function h(tag, attrs, ...kids) {
  const el = tag.startsWith('svg:') ? document.createElementNS(SVGNS, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const k of kids.flat(Infinity)) if (k !== null && k !== undefined && k !== false)
    el.append(typeof k === 'object' ? k : String(k));
  return el;
}

function fmtT(ms) { return S.fmt.formatTime(ms); }
function num(x, d) { return S.fmt.formatNumber(x, d); }
function pct(x, d) { return x === null || x === undefined ? '–' : num(x, d === undefined ? 2 : d) + ' %'; }
function ms(x) { return x === null || x === undefined ? '–' : num(x, x < 10 ? 2 : 1) + ' ms'; }
function parseTime(s) { const t = Date.parse(s); return Number.isFinite(t) ? t : null; }

async function api(path, opts) {
  const r = await fetch(path, Object.assign({ headers: { Accept: 'application/json' }, cache: 'no-store' }, opts || {}));
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  return { ok: r.ok, status: r.status, data };
}

function announce(text) {
  const live = $('#live');
  const p = h('p', {}, text);
  live.append(p);
  while (live.children.length > 5) live.firstElementChild.remove();
}

function notice(text) {
  const n = $('#notice');
  n.textContent = text || '';
  n.hidden = !text;
}

/* ---- settings ---- */

function settingsLoad() {
  let zone = localStorage.getItem('canaryd.timeZone') || S.server.timeZone;
  let locale = localStorage.getItem('canaryd.locale') || S.server.locale;
  try {
    S.fmt = root.canarydFormat.makeFormat(zone, locale);
  } catch (e) {
    /* a stored value this browser does not know: the server's */
    S.fmt = root.canarydFormat.makeFormat(S.server.timeZone, S.server.locale);
  }
  document.documentElement.lang = S.fmt.locale;
  $('#set-zone').value = S.fmt.zone;
  $('#set-locale').value = S.fmt.locale;
  $('#settings-hint').textContent = 'canaryd\'s defaults: ' + S.server.timeZone + ', ' + S.server.locale +
    ' (--dashboard-time-zone, --dashboard-locale). Saved in this browser.';
}

function settingsInit() {
  $('#settings-form').addEventListener('submit', ev => {
    ev.preventDefault();
    const zone = $('#set-zone').value.trim(), locale = $('#set-locale').value.trim();
    try {
      root.canarydFormat.makeFormat(zone, locale);
    } catch (e) {
      $('#settings-error').textContent = 'not a time zone and locale this browser knows: ' + e.message;
      return;
    }
    $('#settings-error').textContent = '';
    localStorage.setItem('canaryd.timeZone', zone);
    localStorage.setItem('canaryd.locale', locale);
    settingsApplied();
  });
  $('#settings-reset').addEventListener('click', () => {
    localStorage.removeItem('canaryd.timeZone');
    localStorage.removeItem('canaryd.locale');
    $('#settings-error').textContent = '';
    settingsApplied();
  });
}

function settingsApplied() {
  settingsLoad();
  tick();
  for (const c of S.canaries.values()) renderAll(c);
  announce('times now shown in ' + S.fmt.zone + ', numbers in ' + S.fmt.locale);
}

function tick() {
  const now = Date.now();
  const el = $('#clock');
  el.textContent = S.fmt.formatClock(now);
  el.setAttribute('datetime', new Date(now).toISOString());
}

/* ---- canaries: state ---- */

function canary(name) {
  let c = S.canaries.get(name);
  if (c) return c;
  c = { name, status: null, events: [], keys: new Set(), lastId: 0, samples: [], lastT: 0,
    series: { state: 'loading', reason: '' }, loaded: false, pendingAudit: [], pendingSamples: [],
    el: null, drawQueued: false, filterType: '', filterText: '' };
  S.canaries.set(name, c);
  build(c);
  return c;
}

function eventKey(e) { return e.time + '|' + e.type + '|' + e.message; }

/* Adds audit event <e> unless already there; returns whether it was new. */
function addEvent(c, e) {
  const k = eventKey(e);
  if (c.keys.has(k)) return false;
  c.keys.add(k);
  e.t = parseTime(e.time);
  if (typeof e.id === 'number' && e.id > c.lastId) c.lastId = e.id;
  c.events.push(e);
  if (c.events.length > 1 && c.events[c.events.length - 2].t > e.t)
    c.events.sort((a, b) => a.t - b.t);
  return true;
}

/* Adds sample <s> in time order unless there is one at its time: a
 * catch-up answer may arrive after newer samples from the stream. */
function addSample(c, s) {
  if (!s || typeof s.t !== 'number') return false;
  if (s.t > c.lastT) {
    c.samples.push(s);
    c.lastT = s.t;
  } else {
    let i = c.samples.length;
    while (i > 0 && c.samples[i - 1].t > s.t) i--;
    if (i > 0 && c.samples[i - 1].t === s.t) return false;
    c.samples.splice(i, 0, s);
  }
  const cut = s.t - WINDOW_MS;
  let i = 0;
  while (i < c.samples.length && c.samples[i].t <= cut) i++;
  if (i) c.samples.splice(0, i);
  return true;
}

function setStatus(c, st) {
  const before = c.status;
  c.status = st;
  const state = phaseState(st);
  if (before) {
    const was = phaseState(before);
    if (before.phase !== st.phase)
      announce(c.name + ': phase ' + before.phase + ' → ' + st.phase + (st.message ? ': ' + st.message : ''));
    else if (was !== state && state === 'at-risk')
      announce(c.name + ' is at risk: ' + st.failedChecks + ' failed check' + (st.failedChecks === 1 ? '' : 's') +
        ' of ' + ((st.analysis || {}).threshold || '?'));
  }
}

/* The history of <c>, asked once whoever asks first (the list or the stream). */
function ensureLoaded(c) {
  if (!c.loading) c.loading = loadHistory(c);
  return c.loading;
}

async function loadHistory(c) {
  const base = '/api/v1/canaries/' + encodeURIComponent(c.name);
  const [ev, se] = await Promise.all([api(base + '/events').catch(() => null),
    api(base + '/series').catch(() => null)]);
  if (ev && ev.ok && Array.isArray(ev.data)) for (const e of ev.data) addEvent(c, e);
  else notice('cannot read the audit history of ' + c.name + (ev ? ' (HTTP ' + ev.status + ')' : ''));
  seriesAnswer(c, se);
  for (const e of c.pendingAudit) addEvent(c, e);
  for (const s of c.pendingSamples) addSample(c, s);
  c.pendingAudit = [];
  c.pendingSamples = [];
  c.loaded = true;
  renderAll(c);
}

function seriesAnswer(c, se) {
  if (se && se.ok && se.data) {
    if (se.data.available === false) {
      c.series = { state: 'unavailable', reason: se.data.reason || 'canaryd does not see this canary\'s traffic' };
    } else {
      c.series = { state: 'available', reason: '' };
      for (const s of se.data.samples || []) addSample(c, s);
    }
  } else if (c.series.state !== 'available') {
    /* 405: an older canaryd, whose POST route /canaries/NAME/ACTION the path matches */
    c.series = { state: 'missing', reason: se && (se.status === 404 || se.status === 405) ? 'this canaryd has no series API' :
      'the series could not be read' + (se ? ' (HTTP ' + se.status + ')' : '') };
  }
}

/* After a break in the stream: what happened meanwhile, no more. */
async function catchUp(c) {
  if (!c.loaded) return;
  const base = '/api/v1/canaries/' + encodeURIComponent(c.name);
  const ev = await api(base + '/events?after=' + c.lastId).catch(() => null);
  if (ev && ev.ok && Array.isArray(ev.data)) for (const e of ev.data) addEvent(c, e);
  if (c.series.state === 'available') {
    /* from the last sample before the break: the stream may have sent newer ones since */
    const since = c.breakT !== undefined ? c.breakT : c.lastT;
    c.breakT = undefined;
    const se = await api(base + '/series?since=' + since).catch(() => null);
    seriesAnswer(c, se);
  }
  renderAll(c);
}

/* ---- the event stream ---- */

function connect() {
  clearTimeout(S.retry);
  const es = new EventSource('/api/v1/events/stream');
  S.es = es;
  const conn = $('#conn');
  es.onopen = () => {
    document.body.dataset.sse = 'open';
    conn.dataset.state = 'open';
    conn.textContent = 'live';
    S.retryMs = 2000;
    if (S.opened) for (const c of S.canaries.values()) catchUp(c);
    S.opened = true;
  };
  es.onerror = () => {
    for (const c of S.canaries.values()) if (c.breakT === undefined) c.breakT = c.lastT;
    document.body.dataset.sse = 'closed';
    conn.dataset.state = 'closed';
    conn.textContent = 'reconnecting…';
    if (es.readyState === EventSource.CLOSED) {
      /* refused (503: too many streams) or not an event stream: EventSource
       * gives up, this does not */
      S.retry = setTimeout(connect, S.retryMs);
      S.retryMs = Math.min(S.retryMs * 2, 30000);
    }
  };
  es.addEventListener('status', m => {
    const st = parse(m.data);
    if (!st || !st.name) return;
    const isNew = !S.canaries.has(st.name);
    const c = canary(st.name);
    setStatus(c, st);
    if (isNew) ensureLoaded(c);
    else if (c.loaded) renderStatus(c);
  });
  es.addEventListener('audit', m => {
    const e = parse(m.data);
    if (!e || !e.canary) return;
    const c = S.canaries.get(e.canary);
    if (!c) return;  /* its status comes first, then its history */
    if (!c.loaded) { c.pendingAudit.push(e); return; }
    if (addEvent(c, e)) { renderEvents(c); scheduleDraw(c); }
  });
  es.addEventListener('sample', m => {
    const d = parse(m.data);
    if (!d || !d.canary) return;
    const c = S.canaries.get(d.canary);
    if (!c) return;
    if (!c.loaded) { c.pendingSamples.push(d.sample); return; }
    if (c.series.state !== 'available') c.series = { state: 'available', reason: '' };
    if (addSample(c, d.sample)) scheduleDraw(c);
  });
}

function parse(s) { try { return JSON.parse(s); } catch (e) { return null; } }

/* ---- canaries: the DOM ---- */

function build(c) {
  const id = 'c-' + c.name;
  const el = {};
  const role = (r, tag, attrs, ...kids) => (el[r] = h(tag, Object.assign({ dataset: { role: r } }, attrs || {}), ...kids));
  const fig = (r, caption, legend) => h('figure', {}, h('figcaption', { id: id + '-' + r }, caption),
    role(r, 'svg:svg', { class: 'chart', viewBox: '0 0 600 170', role: 'img', 'aria-labelledby': id + '-' + r,
      'data-points': '0', preserveAspectRatio: 'xMidYMid meet' }),
    h('ul', { class: 'legend', 'aria-hidden': 'true' }, legend.map(([k, t]) => h('li', {}, h('i', { class: 'k-' + k }), t))));
  const buttons = Object.keys(ACTIONS).map(a => h('button', { type: 'button', dataset: { action: a }, hidden: true,
    on: { click: () => confirmAction(c, a) } }, ACTIONS[a].label));
  el.buttons = buttons;
  const typeSel = role('audit-type', 'select', { id: id + '-atype', on: { change: ev => { c.filterType = ev.target.value; renderAudit(c); } } },
    h('option', { value: '' }, 'every type'));
  const text = role('audit-filter', 'input', { id: id + '-afilter', type: 'search', placeholder: 'text in the message, actor…',
    on: { input: ev => { c.filterText = ev.target.value; renderAudit(c); } } });
  const section = h('section', { class: 'canary', dataset: { canary: c.name }, 'aria-labelledby': id + '-title' },
    h('header', {},
      h('h2', { id: id + '-title' }, c.name),
      role('phase', 'span', { class: 'phase', 'data-state': 'idle' }, '…'),
      role('weight', 'span', { class: 'weight', 'aria-label': 'canary weight' }, '–')),
    role('revs', 'p', { class: 'revs' }),
    role('message', 'p', { class: 'message' }),
    h('div', { class: 'controls buttons', role: 'group', 'aria-label': 'actions on ' + c.name }, buttons),
    h('div', { class: 'grid' },
      h('div', { class: 'panel' },
        fig('chart-weight', 'Canary weight (%)', [['weight', 'canary weight']]),
        fig('chart-errors', 'Error rate (5xx, %)', [['canary', 'canary'], ['stable', 'stable'], ['threshold', 'threshold']]),
        fig('chart-latency', 'Latency (ms)', [['canary', 'canary p99'], ['p95', 'canary p95'], ['p50', 'canary p50'],
          ['stable', 'stable p50/p95/p99'], ['threshold', 'threshold']]),
        role('chart-note', 'p', { class: 'chart-note' })),
      h('div', { class: 'panel' },
        h('h3', {}, 'Checks'), role('checks', 'div'),
        role('evidence-box', 'div', { hidden: true }, h('h3', {}, 'Sequential judge'), role('evidence', 'div')),
        h('h3', {}, 'Steps, pauses and gates'), role('steps', 'div'),
        h('h3', {}, 'Endpoint health'), role('health', 'div'),
        role('cost-box', 'div', { hidden: true }, h('h3', {}, 'Cost'), role('cost', 'div', { hidden: true })))),
    h('h3', {}, 'Audit trail'),
    h('div', { class: 'audit-tools' },
      h('p', {}, h('label', { for: id + '-atype' }, 'Type'), typeSel),
      h('p', {}, h('label', { for: id + '-afilter' }, 'Filter'), text),
      role('audit-count', 'p', { class: 'hint', 'aria-live': 'off' })),
    role('audit', 'ol', { class: 'audit', tabindex: '0', 'aria-label': 'audit trail of ' + c.name + ', newest first' }));
  c.el = el;
  c.section = section;
  const main = $('#canaries');
  const empty = $('#empty');
  if (empty) empty.remove();
  /* sorted by name, as the API lists them */
  const next = [...main.querySelectorAll('section.canary')].find(s => s.dataset.canary > c.name);
  main.insertBefore(section, next || null);
}

function renderAll(c) {
  if (!c.status) return;
  renderStatus(c);
  renderEvents(c);
  draw(c);
}

function renderStatus(c) {
  const st = c.status, el = c.el;
  const state = phaseState(st);
  const a = st.analysis || {};
  let phaseText = st.phase;
  if (state === 'at-risk') phaseText += ' · at risk';
  el.phase.textContent = phaseText;
  el.phase.dataset.state = state;
  c.section.dataset.state = state;
  el.weight.textContent = num(st.canaryWeight, 0) + ' %';
  const since = parseTime(st.lastTransitionTime);
  el.revs.textContent = 'stable ' + st.stableRevision + (st.canaryRevision ? ' → canary ' + st.canaryRevision : '') +
    ' · failed checks ' + st.failedChecks + ' of ' + (a.threshold !== undefined ? a.threshold : '?') +
    ' · iterations ' + st.iterations + (since ? ' · last transition ' + fmtT(since) : '') +
    (st.stateSaved === false ? ' · NOT SAVED to the database' : '') +
    (st.routerError ? ' · router error: ' + st.routerError : '');
  el.message.textContent = st.message || '';
  renderControls(c);
  renderSteps(c);
  renderEvidence(c);
  renderHealth(c);
  renderCost(c);
  /* the checks panel says how many checks failed: the status is newer
   * than the check event it was drawn with */
  renderChecks(c);
}

/* Which actions make sense now (the API refuses the others anyway). */
function renderControls(c) {
  const st = c.status, p = st.phase;
  const active = ['Initialized', 'Progressing', 'Paused', 'Waiting', 'WaitingPromotion', 'Promoting'].includes(p) &&
    !!st.canaryRevision;
  const show = {
    pause: active && p !== 'Paused',
    resume: p === 'Paused',
    approve: active && !!(st.analysis || {}).approval && !st.approved,
    promote: active,
    abort: active,
    weight: active,
    undo: p === 'Succeeded' && !!st.undo,
  };
  for (const b of c.el.buttons) b.hidden = !show[b.dataset.action];
}

function renderSteps(c) {
  const st = c.status, a = st.analysis || {}, box = c.el.steps;
  const kids = [];
  if (Array.isArray(a.steps) && a.steps.length) {
    const cur = typeof st.currentStep === 'number' ? st.currentStep : (st.phase === 'Succeeded' ? a.steps.length : -1);
    kids.push(h('ol', { class: 'steps', 'aria-label': 'steps' }, a.steps.map((s, i) => {
      const text = 'setWeight' in s ? s.setWeight + ' %' : (s.pause && s.pause.duration ? 'pause ' + s.pause.duration : 'pause until resumed');
      return h('li', { class: i < cur ? 'done' : null, 'aria-current': i === cur ? 'step' : null },
        (i + 1) + '. ' + text + (i < cur ? ' ✓' : ''));
    })));
  } else {
    let ladder = Array.isArray(a.stepWeights) ? a.stepWeights.slice() : [];
    if (!ladder.length && a.stepWeight)
      for (let w = a.stepWeight; w <= (a.maxWeight || 100); w += a.stepWeight) ladder.push(w);
    if (ladder.length) kids.push(h('ol', { class: 'steps', 'aria-label': 'weights' }, ladder.map(w => h('li', {
      class: w < st.canaryWeight ? 'done' : null, 'aria-current': w === st.canaryWeight ? 'step' : null }, w + ' %'))));
  }
  const facts = [];
  if (st.paused) facts.push(['paused by', st.paused.by + (st.paused.until ? ' until ' + fmtT(parseTime(st.paused.until)) : '')]);
  if (st.gate) facts.push(['waiting for', st.gate.waitingFor + (st.gate.lastAnswer ? ' (last answer: ' + st.gate.lastAnswer + ')' : '')]);
  if (a.approval) facts.push(['approval', 'above ' + a.approval.above + ' %: ' + (st.approved ? 'approved' : 'not yet approved')]);
  facts.push(['gates', a.gates && a.gates.length ? a.gates.join(', ') : 'none']);
  facts.push(['interval', (a.interval || '–') + ', threshold ' + (a.threshold !== undefined ? a.threshold : '–') + ' failed checks']);
  if (a.maxDuration) facts.push(['max duration', a.maxDuration + ', then ' + a.onMaxDuration]);
  facts.push(['on failure', a.onFailure || 'rollback']);
  if (st.undo) facts.push(['undo', 'to ' + st.undo.revision + ' until ' + fmtT(parseTime(st.undo.until))]);
  kids.push(h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])));
  box.replaceChildren(...kids);
}

function renderEvidence(c) {
  const a = c.status.analysis || {};
  const seq = a.judge === 'sequential';
  c.el['evidence-box'].hidden = !seq;
  if (!seq) { c.el.evidence.replaceChildren(); return; }
  const e = a.evidence;
  if (!e) {
    c.el.evidence.replaceChildren(h('p', { class: 'hint' }, 'no evidence now: the judge counts while a rollout runs'));
    return;
  }
  const rows = [
    ['requests', num(e.canaryRequests, 0) + ' canary, ' + num(e.stableRequests, 0) + ' stable (' +
      num(e.stepCanaryRequests, 0) + ' canary in this step, ' + num(a.minSamples, 0) + ' needed)'],
    ['error rate', pct(e.canaryErrorRate * 100, 3) + ' canary vs ' + pct(e.stableErrorRate * 100, 3) + ' stable'],
    ['worse (rolls back)', 'e-value ' + num(e.worseEValue, 2) + ' of ' + num(e.worseThreshold, 2) +
      ' (p ≤ ' + num(Math.min(1, 1 / Math.max(e.worseEValue, 1e-9)), 4) + ')'],
    ['no worse (advances)', 'e-value ' + num(e.noWorseEValue, 2) + ' of ' + num(e.noWorseThreshold, 2)],
    ['stable', e.held ? 'departs from its baseline: holding (' + e.holds + ' holds)' : 'steady (' + e.holds + ' holds)'],
    ['dispersion', num(e.dispersion, 2)],
  ];
  c.el.evidence.replaceChildren(h('dl', { class: 'facts' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])));
}

function renderHealth(c) {
  const st = c.status;
  const kids = [];
  if (Array.isArray(st.endpointHealth) && st.endpointHealth.length) {
    kids.push(h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, ['endpoint', 'target', 'state', 'failures', 'last check', 'last error'].map(t => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, st.endpointHealth.map(x => h('tr', {},
        h('td', {}, x.endpoint), h('td', {}, x.target),
        h('td', { class: x.healthy ? 'pass' : 'fail' }, x.healthy ? 'healthy' : 'unhealthy'),
        h('td', { class: 'num' }, num(x.consecutiveFailures, 0)),
        h('td', {}, x.lastCheck ? S.fmt.formatClock(parseTime(x.lastCheck)) : '–'),
        h('td', {}, x.lastError || '')))))));
  } else {
    kids.push(h('p', { class: 'hint' }, 'no active health checks (spec.healthCheck); endpoints: stable ' +
      (st.stableEndpoints || []).join(', ') + (st.canaryEndpoints && st.canaryEndpoints.length ? '; canary ' + st.canaryEndpoints.join(', ') : '')));
  }
  const ej = c.events.filter(e => e.type === 'ejected' || e.type === 'readmitted' || e.type === 'unhealthy' || e.type === 'healthy');
  if (ej.length) {
    kids.push(h('p', {}, 'ejections and health changes: ' + ej.length + ' in the audit; the latest:'),
      h('ul', {}, ej.slice(-3).reverse().map(e => h('li', {}, fmtT(e.t) + ' ' + e.type + ': ' + e.message))));
  }
  c.el.health.replaceChildren(...kids);
}

function renderCost(c) {
  const k = c.status.cost;
  c.el['cost-box'].hidden = !k;
  c.el.cost.hidden = !k;
  if (!k) { c.el.cost.replaceChildren(); return; }
  const m = x => S.fmt.formatMoney(x, k.currency);
  const rows = [
    ['since', k.since ? fmtT(parseTime(k.since)) : '–'],
    ['canary running cost', m(k.runningCost) + ' (' + num(k.canaryHours, 2) + ' h at ' + m(k.canaryHourly) + '/h, ' +
      num(k.canaryRequests, 0) + ' requests at ' + m(k.perMillionRequests) + ' per million)'],
    ['failed requests served', num(k.failedRequestsServed !== undefined ? k.failedRequestsServed : k.canaryFailedRequests, 0) +
      ', costing ' + m(k.failedRequestsCost) + ' (' + m(k.failedRequest) + ' each)' +
      (k.mirroredRequests ? '; besides, ' + num(k.mirroredFailedRequests, 0) + ' of ' + num(k.mirroredRequests, 0) +
        ' mirrored copies failed, which no user got' : '')],
    ['saved by the rollback', k.savedByRollback === null || k.savedByRollback === undefined ? 'not rolled back' :
      m(k.savedByRollback) + (k.fullRolloutFailedRequests !== null && k.fullRolloutFailedRequests !== undefined ?
        ' (a full rollout at the canary\'s error rate: ' + num(k.fullRolloutFailedRequests, 0) + ' failed requests)' : '')],
  ];
  c.el.cost.replaceChildren(h('dl', { class: 'facts' }, rows.map(([a, b]) => [h('dt', {}, a), h('dd', {}, b)])));
}

/* The events of the current rollout: from its last rollout-started. */
function rolloutEvents(c) {
  let i = c.events.length - 1;
  while (i > 0 && c.events[i].type !== 'rollout-started') i--;
  return c.events.slice(Math.max(i, 0));
}

function lastCheck(c) {
  for (let i = c.events.length - 1; i >= 0; i--)
    if (c.events[i].type === 'check' && Array.isArray(c.events[i].metrics)) return c.events[i];
  return null;
}

function unit(name) {
  return name === 'request-duration' ? 'ms' : name === 'request-success-rate' || name === 'error-rate' ? '%' : '';
}
function val(v, name) {
  if (v === null || v === undefined) return 'no data';
  const u = unit(name);
  return num(v, Math.abs(v) >= 1000 ? 0 : 2) + (u ? ' ' + u : '');
}

function renderEvents(c) {
  renderChecks(c);
  renderAudit(c);
  if (c.status) renderHealth(c);
}

function renderChecks(c) {
  const ev = lastCheck(c);
  const st = c.status || {};
  if (!ev) { c.el.checks.replaceChildren(h('p', { class: 'hint' }, 'no check yet')); return; }
  const rows = ev.metrics.map(m => {
    const lim = [m.min !== undefined ? '≥ ' + val(m.min, m.name) : null, m.max !== undefined ? '≤ ' + val(m.max, m.name) : null]
      .filter(Boolean).join(', ') || '–';
    const res = m.passed ? h('span', { class: 'pass' }, '✓ pass') : m.held ? h('span', { class: 'held' }, '… held')
      : h('span', { class: 'fail' }, '✗ fail');
    return h('tr', {}, h('th', { scope: 'row' }, m.name), h('td', { class: 'num' }, val(m.value, m.name)),
      h('td', { class: 'num' }, m.stable !== undefined ? val(m.stable, m.name) : '–'), h('td', {}, lim),
      h('td', {}, res, m.reason ? ' ' + m.reason : ''));
  });
  const a = st.analysis || {};
  c.el.checks.replaceChildren(
    h('p', {}, 'last check ' + fmtT(ev.t) + ': ' + ev.message),
    h('p', { class: st.failedChecks > 0 ? 'held' : null }, 'failed checks in this rollout: ' + (st.failedChecks || 0) + ' of ' +
      (a.threshold !== undefined ? a.threshold : '?') + (phaseState(st) === 'at-risk' ? ' — at risk: ' + (a.threshold - st.failedChecks) + ' more roll back' : '')),
    h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, ['metric', 'canary', 'stable', 'threshold', 'result'].map(t => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows))));
}

function renderAudit(c) {
  const sel = c.el['audit-type'];
  const types = [...new Set(c.events.map(e => e.type))].sort();
  const have = [...sel.options].map(o => o.value).slice(1);
  if (types.join() !== have.join()) {
    sel.replaceChildren(h('option', { value: '' }, 'every type'), ...types.map(t => h('option', { value: t }, t)));
    sel.value = types.includes(c.filterType) ? c.filterType : '';
  }
  const q = c.filterText.trim().toLowerCase();
  const match = e => (!c.filterType || e.type === c.filterType) &&
    (!q || (e.message + ' ' + e.actor + ' ' + e.type + ' ' + e.phase).toLowerCase().includes(q));
  const rows = [];
  let n = 0;
  for (let i = c.events.length - 1; i >= 0; i--) {
    const e = c.events[i];
    if (!match(e)) continue;
    n++;
    if (rows.length >= MAX_ROWS) continue;
    rows.push(h('li', { dataset: { role: 'audit-row', type: e.type } },
      h('time', { datetime: e.time }, fmtT(e.t)),
      h('span', { class: 'type' }, e.type),
      h('span', {}, e.phase + ' · ' + e.weight + ' % · ' + e.message),
      e.actor && e.actor !== 'canaryd' ? h('span', { class: 'actor' }, ' — by ' + e.actor) : null));
  }
  c.el.audit.replaceChildren(...rows);
  c.el['audit-count'].textContent = n + ' of ' + c.events.length + ' events' + (n > MAX_ROWS ? ', the newest ' + MAX_ROWS + ' shown' : '');
}

/* ---- charts (plain SVG) ---- */

function scheduleDraw(c) {
  if (c.drawQueued) return;
  c.drawQueued = true;
  requestAnimationFrame(() => { c.drawQueued = false; draw(c); });
}

function draw(c) {
  if (!c.status) return;
  const check = lastCheck(c);
  const th = thresholds(((c.status.analysis || {}).metrics) || (check ? check.metrics : []));
  const evs = rolloutEvents(c);
  let note = '';
  const weightPts = [];
  let errs, lat, t0, t1;
  if (c.series.state === 'available' && c.samples.length) {
    const sm = c.samples;
    t1 = sm[sm.length - 1].t;
    t0 = Math.max(sm[0].t, t1 - WINDOW_MS);
    for (const s of sm) weightPts.push([s.t, s.weight]);
    /* a step taken since the last 5 s sample is drawn at once: the
     * weight chart reaches to the latest event, not to the last sample */
    for (const e of evs) if (e.t >= t0) { weightPts.push([e.t, e.weight]); t1 = Math.max(t1, e.t); }
    const pick = (side, k) => sm.map(s => [s.t, s[side] ? s[side][k] : null]);
    errs = [{ cls: 's-canary', pts: pick('canary', 'errorRate') }, { cls: 's-stable', pts: pick('stable', 'errorRate') }];
    lat = [{ cls: 's-p99', pts: pick('canary', 'p99') }, { cls: 's-p95', pts: pick('canary', 'p95') },
      { cls: 's-p50', pts: pick('canary', 'p50') }, { cls: 's-stable-p99', pts: pick('stable', 'p99') },
      { cls: 's-stable-p95', pts: pick('stable', 'p95') }, { cls: 's-stable-p50', pts: pick('stable', 'p50') }];
  } else {
    /* from the audit alone: the weight at each event, the checks' values */
    for (const e of evs) if (e.t) weightPts.push([e.t, e.weight]);
    const checks = evs.filter(e => e.type === 'check' && Array.isArray(e.metrics));
    const metric = (e, name) => e.metrics.find(m => m.name === name);
    const err = (e, side) => {
      const sr = metric(e, 'request-success-rate'), er = metric(e, 'error-rate');
      const v = sr ? sr[side] : er ? er[side] : undefined;
      return v === null || v === undefined ? null : sr ? 100 - v : v;
    };
    const dur = (e, side) => { const m = metric(e, 'request-duration'); return m && m[side] !== undefined ? m[side] : null; };
    errs = [{ cls: 's-canary', pts: checks.map(e => [e.t, err(e, 'value')]) },
      { cls: 's-stable', pts: checks.map(e => [e.t, err(e, 'stable')]) }];
    lat = [{ cls: 's-p99', pts: checks.map(e => [e.t, dur(e, 'value')]) },
      { cls: 's-stable-p99', pts: checks.map(e => [e.t, dur(e, 'stable')]) }];
    const all = weightPts.map(p => p[0]);
    t1 = all.length ? Math.max(...all) : Date.now();
    t0 = all.length ? Math.min(...all) : t1 - 60000;
    note = c.series.state === 'loading' ? '' : 'Charts from the audit\'s check events only (the latency line is the ' +
      'request-duration metric over its window): ' + (c.series.reason || 'no 5 s samples yet') + '.';
  }
  weightPts.sort((a, b) => a[0] - b[0]);
  c.el['chart-note'].textContent = note;
  chart(c.el['chart-weight'], { t0, t1, series: [{ cls: 's-weight', pts: weightPts, step: true }], yMax: 100, unit: ' %',
    label: 'canary weight over time, now ' + c.status.canaryWeight + ' %' });
  chart(c.el['chart-errors'], { t0, t1, series: errs, thresholds: th.errors, unit: ' %', yMin: 1,
    label: 'error rate of canary and stable over time' + (th.errors.length ? ', threshold ' + th.errors.map(x => x.label).join(', ') : '') });
  chart(c.el['chart-latency'], { t0, t1, series: lat, thresholds: th.latency, unit: ' ms', yMin: 1,
    label: 'latency percentiles of canary and stable over time' + (th.latency.length ? ', threshold ' + th.latency.map(x => x.label).join(', ') : '') });
}

/* Draws <o.series> ({cls, pts: [[t, v|null]], step}) in <svg> between
 * times o.t0 and o.t1, with o.thresholds ({v, label}) as dotted lines;
 * data-points is the number of points plotted. */
function chart(svg, o) {
  const W = 600, H = 170, L = 46, R = 10, T = 8, B = 22;
  const pw = W - L - R, ph = H - T - B;
  let t0 = o.t0, t1 = o.t1;
  if (!(t1 > t0)) { t0 -= 30000; t1 += 30000; }
  let max = o.yMin || 0, points = 0;
  for (const s of o.series) for (const p of s.pts) if (p[1] !== null && p[1] !== undefined) {
    if (p[1] > max) max = p[1];
  }
  for (const x of o.thresholds || []) if (x.v > max) max = x.v;
  points = Math.max(0, ...o.series.map(s => s.pts.filter(p => p[1] !== null && p[1] !== undefined).length));
  /* four steps of a round size: 0, 2.5, 5, 7.5, 10 */
  const step = o.yMax ? o.yMax / 4 : niceStep(max * 1.05 / 4);
  max = step * 4;
  const digits = Number.isInteger(step) ? 0 : step >= 0.1 ? 1 : 2;
  const X = t => L + (t - t0) / (t1 - t0) * pw;
  const Y = v => T + ph - (v / max) * ph;
  const kids = [h('svg:title', {}, o.label)];
  for (let i = 0; i <= 4; i++) {
    const v = max * i / 4, y = Y(v);
    kids.push(h('svg:line', { class: 'axis', x1: L, x2: W - R, y1: y, y2: y }),
      h('svg:text', { x: L - 4, y: y + 4, 'text-anchor': 'end' }, num(v, digits)));
  }
  for (let i = 0; i <= 3; i++) {
    const t = t0 + (t1 - t0) * i / 3;
    kids.push(h('svg:text', { x: X(t), y: H - 6, 'text-anchor': i === 0 ? 'start' : i === 3 ? 'end' : 'middle' }, t1 - t0 < 5 * 60000 ? S.fmt.formatHMS(t) : S.fmt.formatHM(t)));
  }
  for (const x of o.thresholds || []) {
    const y = Y(x.v);
    kids.push(h('svg:line', { class: 'threshold', x1: L, x2: W - R, y1: y, y2: y }),
      h('svg:text', { class: 'threshold-label', x: W - R - 2, y: y - 3, 'text-anchor': 'end' }, x.label));
  }
  for (const s of o.series) {
    let run = [];
    const flush = () => {
      if (run.length === 1) kids.push(h('svg:circle', { class: 'dot ' + s.cls, cx: run[0][0], cy: run[0][1], r: 2.5 }));
      else if (run.length > 1) kids.push(h('svg:polyline', { class: 'series ' + s.cls, points: run.map(p => p.join(',')).join(' ') }));
      run = [];
    };
    let prev = null;
    for (const p of s.pts) {
      if (p[0] < t0 || p[0] > t1) continue;
      if (p[1] === null || p[1] === undefined) { flush(); prev = null; continue; }
      const x = +X(p[0]).toFixed(1), y = +Y(Math.min(p[1], max)).toFixed(1);
      if (s.step && prev) run.push([x, prev[1]]);
      run.push([x, y]);
      prev = [x, y];
    }
    flush();
  }
  svg.replaceChildren(...kids);
  svg.setAttribute('data-points', String(points));
}

/* The smallest of 1, 2, 2.5, 5 times a power of ten that is >= <v>. */
function niceStep(v) {
  if (!(v > 0)) return 0.25;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5]) if (v <= m * p * 1.000001) return m * p;
  return 10 * p;
}

/* ---- controls ---- */

function confirmAction(c, action) {
  const dlg = $('#confirm'), form = $('#confirm-form');
  const err = $('[data-role=error]', dlg);
  const a = ACTIONS[action];
  $('#confirm-title').textContent = a.label + ' ' + c.name + '?';
  $('#confirm-text').textContent = a.label + ' ' + c.name + ' (now ' + c.status.phase + ' at ' + c.status.canaryWeight + ' %): ' + a.text;
  $('[data-role=weight-field]', dlg).hidden = action !== 'weight';
  $('[data-role=full-field]', dlg).hidden = action !== 'promote';
  form.elements.weight.value = String(c.status.canaryWeight);
  form.elements.full.checked = false;
  form.elements.reason.value = '';
  form.elements.token.value = '';
  $('[data-role=token-field]', dlg).hidden = sessionStorage.getItem('canaryd.token') !== null;
  err.textContent = '';
  const ok = $('[data-role=confirm-ok]', dlg);
  ok.disabled = false;
  dlg.dataset.canary = c.name;
  dlg.dataset.action = action;
  if (!dlg.open) dlg.showModal();
  form.elements.reason.focus();
}

async function confirmSubmit(ev) {
  ev.preventDefault();
  const dlg = $('#confirm'), form = $('#confirm-form');
  const err = $('[data-role=error]', dlg), ok = $('[data-role=confirm-ok]', dlg);
  const c = S.canaries.get(dlg.dataset.canary), action = dlg.dataset.action;
  if (!c) { dlg.close(); return; }
  /* the API takes one line: what a textarea lets through is joined */
  const reason = form.elements.reason.value.replace(/\s+/g, ' ').trim();
  if (!reason) { err.textContent = 'give a reason: it is recorded in the audit with your name'; form.elements.reason.focus(); return; }
  const body = { reason };
  if (action === 'weight') {
    const w = form.elements.weight.value.trim();
    if (!/^\d{1,3}$/.test(w) || Number(w) > 100) { err.textContent = 'the weight is a whole number from 0 to 100'; form.elements.weight.focus(); return; }
    body.weight = Number(w);
  }
  if (action === 'promote') body.full = form.elements.full.checked;
  const typed = form.elements.token.value.trim();
  if (typed) sessionStorage.setItem('canaryd.token', typed);
  const token = sessionStorage.getItem('canaryd.token');
  const headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
  if (token) headers.Authorization = 'Bearer ' + token;
  ok.disabled = true;
  err.textContent = '';
  let r;
  try {
    r = await api('/api/v1/canaries/' + encodeURIComponent(c.name) + '/' + action,
      { method: 'POST', headers, body: JSON.stringify(body) });
  } catch (e) {
    r = { ok: false, status: 0, data: { error: 'canaryd did not answer: ' + e.message } };
  }
  ok.disabled = false;
  if (r.status === 401) {
    sessionStorage.removeItem('canaryd.token');
    $('[data-role=token-field]', dlg).hidden = false;
    err.textContent = (token ? 'the token was refused' : 'this canaryd needs an API token') + ' (' +
      ((r.data && r.data.error) || 'HTTP 401') + '): enter it';
    form.elements.token.focus();
    return;
  }
  if (!r.ok) {
    err.textContent = (r.data && r.data.error) || ('HTTP ' + r.status);
    return;
  }
  dlg.close();
  announce(ACTIONS[action].label + ' ' + c.name + ': done');
  if (r.data && r.data.name === c.name && r.data.phase) { setStatus(c, r.data); renderStatus(c); }
}

function confirmInit() {
  const dlg = $('#confirm');
  $('#confirm-form').addEventListener('submit', confirmSubmit);
  $('[data-role=confirm-cancel]', dlg).addEventListener('click', () => dlg.close());
}

/* ---- start ---- */

async function start() {
  const d = await api('/api/v1/dashboard').catch(() => null);
  if (d && d.ok && d.data) S.server = { timeZone: d.data.timeZone || 'Europe/London', locale: d.data.locale || 'en-GB' };
  settingsLoad();
  settingsInit();
  confirmInit();
  tick();
  setInterval(tick, 1000);
  root.canarydUI = {
    formatTime: t => S.fmt.formatTime(t),
    formatNumber: (x, dg) => S.fmt.formatNumber(x, dg),
    formatMoney: (x, cur) => S.fmt.formatMoney(x, cur),
    zoneLabel: t => S.fmt.zoneLabel(t),
  };
  connect();
  const list = await api('/api/v1/canaries').catch(() => null);
  if (!list || !list.ok || !Array.isArray(list.data)) {
    notice('cannot read the canaries from canaryd' + (list ? ' (HTTP ' + list.status + ')' : '') + ': the live stream will fill the page when it can');
  } else {
    if (!list.data.length && $('#empty')) $('#empty').textContent = 'No canary is configured.';
    const loads = [];
    for (const st of list.data) {
      const isNew = !S.canaries.has(st.name);
      const c = canary(st.name);
      if (!c.status || isNew) setStatus(c, st);
      loads.push(ensureLoaded(c));
    }
    await Promise.all(loads);
  }
  document.body.dataset.ready = '1';
}

document.addEventListener('DOMContentLoaded', start);
})(typeof window !== 'undefined' ? window : globalThis);
