// Reports: pick a report, an organisation and a period, download it as JSON,
// CSV or PDF; list the scheduled runs.
import { request, getJSON, ApiError } from './api.js';
import { h, clear, message, announce, fmtTime, fmtBytes, table, errorText } from './dom.js';

const kinds = [['hipaa', 'HIPAA audit trail'], ['gdpr', 'GDPR processing activities'], ['general', 'General compliance'], ['integrity', 'Integrity verification']];
const formats = [['json', 'JSON', 'application/json'], ['csv', 'CSV', 'text/csv'], ['pdf', 'PDF', 'application/pdf']];

// lastMonth is the previous calendar month, as yyyy-mm-dd dates.
function lastMonth() {
  const now = new Date();
  const from = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1));
  const to = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
  return [from.toISOString().slice(0, 10), to.toISOString().slice(0, 10)];
}

export function render(main, route, ctx) {
  const [from, to] = lastMonth();
  const orgs = ctx.principal.organizations.filter((o) => o !== '*');
  const orgInput = orgs.length
    ? h('select', { id: 'r-org', name: 'organization' }, orgs.map((o) => h('option', { value: o }, o)))
    : h('input', { id: 'r-org', name: 'organization', required: true, placeholder: 'organisation id' });
  const status = h('div', { id: 'report-status', role: 'status' });
  const form = h('form', { class: 'filters', id: 'report-form' },
    h('label', { for: 'r-type' }, 'Report', h('select', { id: 'r-type', name: 'type' }, kinds.map(([v, t]) => h('option', { value: v }, t)))),
    h('label', { for: 'r-org' }, 'Organisation', orgInput),
    h('label', { for: 'r-from' }, 'From (UTC, inclusive)', h('input', { id: 'r-from', name: 'from', type: 'date', value: from, required: true })),
    h('label', { for: 'r-to' }, 'To (UTC, exclusive)', h('input', { id: 'r-to', name: 'to', type: 'date', value: to, required: true })),
    h('label', { for: 'r-format' }, 'Format', h('select', { id: 'r-format', name: 'format' }, formats.map(([v, t]) => h('option', { value: v }, t)))),
    h('button', { type: 'submit', class: 'primary', id: 'report-download' }, 'Download'));
  const runs = h('div', { id: 'report-runs' });
  main.append(h('h1', {}, 'Reports'),
    h('p', { class: 'muted' }, 'Computed by the worker over the period, within your organisations; each report is recorded as an access to the audit trail.'),
    form, status, h('h2', {}, 'Scheduled runs'), runs);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    download(new FormData(form), status);
  });
  listRuns(runs);
}

async function download(data, status) {
  clear(status, h('p', { class: 'muted' }, 'Making the report…'));
  const type = data.get('type');
  const fmt = formats.find(([v]) => v === data.get('format'));
  const from = `${data.get('from')}T00:00:00Z`;
  const to = `${data.get('to')}T00:00:00Z`;
  const org = String(data.get('organization') || '').trim();
  try {
    const res = await request('POST', `/v1/reports/${encodeURIComponent(type)}`, {
      body: { criteria: { organizationIds: [org], from, to } }, accept: fmt[2],
    });
    const blob = await res.blob();
    const name = `report-${type}-${org}-${data.get('from')}-${data.get('to')}.${fmt[0]}`;
    const url = URL.createObjectURL(blob);
    const link = h('a', { href: url, download: name, id: 'report-file' }, `Save ${name} again`);
    clear(status, message(`Report ready: ${name} (${fmtBytes(blob.size)}).`, 'success'), h('p', {}, link));
    link.click();
    announce('Report downloaded');
  } catch (err) {
    clear(status, message(err instanceof ApiError && err.notServed
      ? 'This worker does not make reports (no report store is configured).'
      : errorText(err, 'The report failed'), 'error'));
  }
}

async function listRuns(el) {
  try {
    const body = await getJSON('/v1/reports/runs');
    const rows = Array.isArray(body) ? body : (body.runs || []);
    clear(el, rows.length ? table('Scheduled report runs, newest first', [
      { label: 'report', value: (r) => r.report || r.reportType || '–' },
      { label: 'organisations', value: (r) => (r.organizations || []).join(', ') || '–' },
      { label: 'period', value: (r) => `${fmtTime(r.periodStart || r.from)} – ${fmtTime(r.periodEnd || r.to)}` },
      { label: 'status', value: (r) => r.status || '–' },
      { label: 'size', num: true, value: (r) => (r.size || r.bytes) ? fmtBytes(r.size || r.bytes) : '–' },
      { label: 'checksum', value: (r) => r.checksum || r.sha256 || '–' },
      { label: 'error', value: (r) => r.error || '' },
    ], rows, { id: 'runs-table' }) : h('p', { class: 'muted' }, 'No scheduled run yet.'));
  } catch (err) {
    clear(el, err instanceof ApiError && err.notServed
      ? h('p', { class: 'muted', id: 'runs-unavailable' }, 'This worker does not schedule reports.')
      : message(errorText(err, 'The runs could not be read'), 'error'));
  }
}
