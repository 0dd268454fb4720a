// Alerts: filter, open one (evidence, occurrences, timeline), and change its
// status with a note.
import { getJSON, postJSON } from './api.js';
import { h, clear, message, announce, fmtNumber, fmtTime, pretty, table, fields, badge, errorText } from './dom.js';

const statuses = [['active,acknowledged', 'open (active or acknowledged)'], ['active', 'active'], ['acknowledged', 'acknowledged'],
  ['resolved', 'resolved'], ['dismissed', 'dismissed'], ['', 'any']];
const severities = [['', 'any'], ['CRITICAL', 'critical'], ['HIGH', 'high'], ['MEDIUM', 'medium'], ['LOW', 'low']];
const types = [['', 'any'], ['SECURITY', 'security'], ['SYSTEM', 'system'], ['PERFORMANCE', 'performance'], ['COMPLIANCE', 'compliance']];
const filterNames = ['status', 'severity', 'type', 'organizationId'];

export function render(main, route, ctx) {
  if (route.rest[0]) return renderOne(main, route.rest[0], ctx);
  return renderList(main, route.params);
}

function select(name, label, options, value) {
  return h('label', { for: `f-${name}` }, label,
    h('select', { id: `f-${name}`, name }, options.map(([v, text]) => h('option', { value: v, selected: v === value }, text))));
}

function renderList(main, params) {
  const current = Object.fromEntries(filterNames.map((n) => [n, params.get(n) ?? (n === 'status' ? 'active,acknowledged' : '')]));
  const form = h('form', { class: 'filters', id: 'alert-filters' },
    select('status', 'Status', statuses, current.status),
    select('severity', 'Severity', severities, current.severity),
    select('type', 'Type', types, current.type),
    h('label', { for: 'f-organizationId' }, 'Organisation', h('input', { id: 'f-organizationId', name: 'organizationId', value: current.organizationId, placeholder: 'any of yours' })),
    h('button', { type: 'submit', class: 'primary' }, 'Filter'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const q = new URLSearchParams();
    for (const n of filterNames) q.set(n, data.get(n) || '');
    location.hash = `#/alerts?${q}`;
  });
  const results = h('div', { id: 'alert-results' });
  const more = h('button', { type: 'button', id: 'alerts-more', hidden: true }, 'Load more');
  main.append(h('h1', {}, 'Alerts'), form, results, h('div', { class: 'actions' }, more));

  let cursor = '';
  const rows = [];
  const load = async () => {
    more.disabled = true;
    try {
      const page = await getJSON('/v1/alerts', { ...current, limit: 50, cursor });
      rows.push(...page.alerts);
      cursor = page.nextCursor || '';
      clear(results, rows.length ? alertTable(rows) : h('p', { class: 'muted' }, 'No alert matches.'));
      more.hidden = !cursor;
      announce(`${rows.length} alerts shown`);
    } catch (err) {
      results.append(message(errorText(err, 'Alerts could not be read'), 'error'));
    } finally {
      more.disabled = false;
    }
  };
  more.addEventListener('click', load);
  load();
}

function alertTable(rows) {
  return table('Alerts, newest first', [
    { label: 'severity', value: (a) => h('span', { class: `sev-${a.severity.toLowerCase()}` }, a.severity.toLowerCase()) },
    { label: 'alert', value: (a) => h('a', { href: `#/alerts/${encodeURIComponent(a.id)}` }, a.title) },
    { label: 'type', value: (a) => a.type.toLowerCase() },
    { label: 'organisation', value: (a) => a.organizationId || 'system' },
    { label: 'status', value: (a) => a.status },
    { label: 'occurrences', num: true, value: (a) => fmtNumber(a.occurrences) },
    { label: 'last seen', value: (a) => fmtTime(a.lastSeen) },
  ], rows, { id: 'alerts-table', rowId: (a) => a.id });
}

async function renderOne(main, id, ctx) {
  main.append(h('p', {}, h('a', { href: '#/alerts' }, '← Alerts')));
  const body = h('div', { id: 'alert-detail' });
  main.append(body);
  try {
    showAlert(body, await getJSON(`/v1/alerts/${encodeURIComponent(id)}`), ctx);
  } catch (err) {
    body.append(message(errorText(err, `Alert ${id}`), 'error'));
  }
}

function showAlert(el, a, ctx, notice) {
  clear(el, 
    h('h1', {}, a.title),
    h('p', {}, badge(a.severity.toLowerCase(), `sev-${a.severity.toLowerCase()}`), ' ',
      h('span', { class: 'badge', id: 'alert-status', 'data-status': a.status }, a.status)),
    notice,
    h('p', {}, a.description),
    h('div', { class: 'grid detail' },
      h('section', { class: 'card' }, h('h2', {}, 'Details'), fields([
        ['id', a.id], ['type', a.type], ['organisation', a.organizationId || 'system (no organisation)'], ['source', a.source],
        ['occurrences', fmtNumber(a.occurrences)], ['dedup key', a.dedupKey], a.correlationId ? ['correlation id', a.correlationId] : null,
        ['tags', (a.tags || []).join(', ') || '–']])),
      h('section', { class: 'card' }, h('h2', {}, 'Timeline'), timeline(a)),
      h('section', { class: 'card wide' }, h('h2', {}, 'Evidence'),
        a.metadata ? h('pre', { id: 'alert-evidence' }, pretty(a.metadata)) : h('p', { class: 'muted' }, 'No evidence recorded.'))));
  if (ctx.can('alerts:manage') && (a.status === 'active' || a.status === 'acknowledged')) {
    el.append(actions(el, a, ctx));
  }
}

function timeline(a) {
  const items = [[a.firstSeen, 'first seen'], [a.lastSeen, `last seen (${fmtNumber(a.occurrences)} occurrences)`]];
  if (a.acknowledgedAt) items.push([a.acknowledgedAt, `acknowledged by ${a.acknowledgedBy}`]);
  if (a.resolvedAt) items.push([a.resolvedAt, `${a.status} by ${a.resolvedBy}`]);
  items.sort((x, y) => new Date(x[0]) - new Date(y[0]));
  return h('ol', { class: 'timeline' }, items.map(([t, what]) => h('li', {}, `${fmtTime(t)} — ${what}`)),
    a.statusNote ? h('li', {}, `note: ${a.statusNote}`) : null);
}

function actions(el, a, ctx) {
  const note = h('textarea', { id: 'alert-note', name: 'note', maxlength: 4000 });
  const status = h('div', { role: 'status' });
  const act = (action, label) => h('button', { type: 'button', id: `alert-${action}`, class: action === 'dismiss' ? 'danger' : 'primary',
    onclick: async () => {
      clear(status);
      try {
        const updated = await postJSON(`/v1/alerts/${encodeURIComponent(a.id)}/${action}`, { note: note.value });
        showAlert(el, updated, ctx, message(`Alert ${updated.status}.`, 'success'));
        announce(`Alert ${updated.status}`);
      } catch (err) {
        status.append(message(errorText(err, `Could not ${action} the alert`), 'error'));
      }
    } }, label);
  return h('section', { class: 'card', 'aria-labelledby': 'act-h' }, h('h2', { id: 'act-h' }, 'Change its status'),
    h('label', { for: 'alert-note' }, 'Note (why; kept with the alert)', note),
    h('div', { class: 'actions' }, a.status === 'active' ? act('acknowledge', 'Acknowledge') : null,
      act('resolve', 'Resolve'), act('dismiss', 'Dismiss as false positive')), status);
}
