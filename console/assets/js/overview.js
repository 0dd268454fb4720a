// Overview: the worker live, pushed by the overview stream every second.
import { request } from './api.js';
import { h, clear, message, fmtNumber, fmtTime, fmtBytes, badge, table } from './dom.js';
import { ThroughputChart } from './chart.js';

const severities = ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW'];
const queueStates = ['wait', 'active', 'delayed', 'prioritized', 'paused', 'failed', 'dead_letter'];

export function render(main) {
  const live = h('p', { class: 'muted', id: 'live-status', role: 'status' }, 'Connecting…');
  const canvas = h('canvas', { class: 'chart', id: 'throughput-chart', role: 'img', 'aria-label': 'Events per second over the last 15 minutes' });
  const slots = {
    status: h('div', { id: 'ov-status' }),
    throughput: h('div', { class: 'figures', id: 'ov-throughput' }),
    latency: h('div', { class: 'figures', id: 'ov-latency' }),
    totals: h('div', { class: 'figures', id: 'ov-totals' }),
    queue: h('div', { id: 'ov-queue' }),
    breaker: h('div', { id: 'ov-breaker' }),
    health: h('div', { id: 'ov-health' }),
    config: h('div', { id: 'ov-config' }),
    alerts: h('div', { id: 'ov-alerts' }),
  };
  main.append(h('h1', {}, 'Overview'), live,
    h('div', { class: 'grid' },
      h('section', { class: 'card wide', 'aria-labelledby': 'tp-h' },
        h('h2', { id: 'tp-h' }, 'Events per second, last 15 minutes'), slots.throughput, canvas,
        h('div', { class: 'legend' }, h('span', { class: 'line' }, 'received'), h('span', { class: 'err' }, 'rejected or failed'))),
      card('Status', slots.status), card('Active alerts', slots.alerts),
      card('Enqueue → commit latency, last minute', slots.latency), card('Events since start', slots.totals),
      card('Queue', slots.queue), card('Circuit breaker', slots.breaker),
      card('Components', slots.health), card('Configuration', slots.config)));

  const chart = new ThroughputChart(canvas);
  const es = new EventSource('/v1/stream/overview');
  let closed = false;
  const onResize = () => chart.draw();
  window.addEventListener('resize', onResize);
  es.addEventListener('overview', (e) => {
    const doc = JSON.parse(e.data);
    chart.add(doc.series);
    chart.draw();
    canvas.dataset.last = String(chart.last);
    canvas.dataset.total = String(chart.total);
    canvas.setAttribute('aria-label', `Events per second over the last 15 minutes: now ${fmtNumber(chart.last)}, peak ${fmtNumber(chart.peak)}`);
    update(slots, doc);
    live.textContent = `Live · updated ${fmtTime(doc.time)}`;
  });
  es.addEventListener('end', (e) => {
    es.close();
    closed = true;
    const reason = JSON.parse(e.data).reason;
    live.textContent = `Live updates stopped: ${reason}.`;
    request('GET', '/console/session').catch(() => {}); // a 401 here signs the console out
  });
  es.addEventListener('error', () => {
    if (closed) return;
    if (es.readyState === EventSource.CLOSED) {
      live.textContent = 'Live updates stopped: the worker refused the stream.';
      request('GET', '/console/session').catch(() => {});
    } else {
      live.textContent = 'Reconnecting…';
    }
  });
  return () => {
    closed = true;
    es.close();
    window.removeEventListener('resize', onResize);
  };
}

function card(title, body) {
  const id = 'c-' + title.toLowerCase().replace(/[^a-z]+/g, '-');
  return h('section', { class: 'card', 'aria-labelledby': id }, h('h2', { id }, title), body);
}

function figure(label, value, id) {
  return h('div', { id }, h('span', {}, label), h('strong', {}, value));
}

function update(s, doc) {
  clear(s.status, h('p', {}, badge(doc.status, `st-${doc.status}`),
    doc.totals ? [' ', badge(doc.totals.systemStatus, `st-${doc.totals.systemStatus}`)] : null),
  doc.totals && doc.totals.statusReasons && doc.totals.statusReasons.length
    ? h('ul', {}, doc.totals.statusReasons.map((r) => h('li', {}, r))) : h('p', { class: 'muted' }, 'No threshold crossed.'));

  const tp = doc.throughput || {};
  clear(s.throughput, figure('now (last minute)', `${fmtNumber(tp.current, 1)}/s`, 'ov-current'),
    figure('peak second, last hour', `${fmtNumber(tp.peak)}/s`), figure('average, last hour', `${fmtNumber(tp.average, 1)}/s`));

  const lat = doc.latency || {};
  clear(s.latency, figure('p50', `${fmtNumber(lat.p50, 1)} ms`, 'ov-p50'), figure('p95', `${fmtNumber(lat.p95, 1)} ms`, 'ov-p95'),
    figure('p99', `${fmtNumber(lat.p99, 1)} ms`, 'ov-p99'), figure('max', `${fmtNumber(lat.max, 1)} ms`), figure('samples', fmtNumber(lat.samples)));

  const t = doc.totals || {};
  clear(s.totals, figure('received', fmtNumber(t.totalEvents), 'ov-received'), figure('stored', fmtNumber(t.storedEvents)),
    figure('duplicates', fmtNumber(t.duplicateEvents)), figure('rejected', fmtNumber(t.rejectedEvents)),
    figure('error rate', `${fmtNumber((t.errorRate || 0) * 100, 2)} %`),
    doc.runtime ? figure('heap', fmtBytes(doc.runtime.heapAllocBytes)) : null);

  updateQueue(s.queue, doc);
  updateBreaker(s.breaker, doc);
  updateHealth(s.health, doc.health);
  updateConfig(s.config, doc.config);
  updateAlerts(s.alerts, doc.alerts);
}

function updateQueue(el, doc) {
  clear(el);
  const depths = (doc.queue && doc.queue.depths) || {};
  const states = queueStates.filter((q) => q in depths);
  if (states.length) {
    el.append(table('Jobs by state', [{ label: 'state', value: (q) => q.replace('_', ' ') }, { label: 'jobs', num: true, value: (q) => fmtNumber(depths[q]) }], states));
  } else {
    el.append(h('p', { class: 'muted' }, 'No queue: this worker takes events over HTTP only.'));
  }
  if (doc.queue && doc.queue.error) el.append(message(`Queue depths: ${doc.queue.error}`, 'error'));
  if (doc.deadLetters) {
    el.append(h('p', {}, doc.deadLetters.error ? doc.deadLetters.error
      : [h('a', { href: '#/dead-letters' }, `${fmtNumber(doc.deadLetters.entries)} dead letters`), ` kept in the store (${fmtBytes(doc.deadLetters.bytes)})`]));
  }
}

function updateBreaker(el, doc) {
  clear(el);
  const state = doc.breaker ? doc.breaker.state : 'unknown';
  el.append(h('p', { id: 'ov-breaker-state' }, badge(state, `st-${state}`)));
  const hist = (doc.breakerHistory || []).slice().reverse();
  if (hist.length) {
    el.append(h('ol', { class: 'timeline', reversed: true }, hist.slice(0, 10).map((t) => h('li', {}, `${fmtTime(t.time)}: ${t.from} → ${t.to}`))));
  } else {
    el.append(h('p', { class: 'muted' }, 'No state change since start.'));
  }
}

function updateHealth(el, rep) {
  clear(el);
  const comps = Object.entries((rep && rep.components) || {}).sort(([a], [b]) => a.localeCompare(b));
  el.append(table('Health of each component', [
    { label: 'component', value: ([n]) => n },
    { label: 'status', value: ([, r]) => badge(r.status, `st-${r.status}`) },
    { label: 'message', value: ([, r]) => r.message || '' },
  ], comps));
}

function updateConfig(el, cfg) {
  clear(el);
  if (!cfg) { el.append(h('p', { class: 'muted' }, 'Not reported.')); return; }
  // The source's status fields sit beside source and pendingRestart.
  el.append(h('dl', { class: 'fields', id: 'ov-config-fields' },
    h('dt', {}, 'source'), h('dd', {}, cfg.source || '–'),
    h('dt', {}, 'version'), h('dd', {}, cfg.version || '–'),
    h('dt', {}, 'loaded'), h('dd', {}, fmtTime(cfg.loadedAt)),
    h('dt', {}, 'last reload'), h('dd', {}, fmtTime(cfg.lastReload)),
    h('dt', {}, 'watch'), h('dd', {}, cfg.watchMode || '–'),
    h('dt', {}, 'pending restart'), h('dd', {}, (cfg.pendingRestart || []).join(', ') || 'nothing')));
  if (cfg.degraded) el.append(message('Running on the cached configuration: the source is unreachable.', 'error'));
  if (cfg.lastError) el.append(message(`Last version refused: ${cfg.lastError}`, 'error'));
}

function updateAlerts(el, a) {
  clear(el);
  if (!a) { el.append(h('p', { class: 'muted' }, 'Alerts are not kept by this worker.')); return; }
  if (a.error) { el.append(message(a.error, 'error')); return; }
  el.append(h('p', {}, h('span', { class: 'figure', id: 'ov-alerts-total' }, fmtNumber(a.total)), ' active or acknowledged'),
    h('ul', { class: 'checks' }, severities.map((sev) => h('li', {},
      h('a', { href: `#/alerts?status=active,acknowledged&severity=${sev}`, class: `sev-${sev.toLowerCase()}` },
        `${sev.toLowerCase()}: ${fmtNumber((a.bySeverity || {})[sev] || 0)}`)))));
}
