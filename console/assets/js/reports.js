// Reports: pick a report, an organisation and a period, download it as JSON,
// CSV or PDF (a JSON report's figures are also shown here); list the runs of
// the scheduled reports.
import { request, getJSON, ApiError } from './api.js';
import { h, clear, message, announce, fmtNumber, fmtTime, fmtBytes, table, badge, errorText } from './dom.js';

const kinds = [['hipaa', 'HIPAA audit trail'], ['gdpr', 'GDPR processing activities'], ['general', 'General compliance'], ['integrity', 'Integrity verification']];
const formats = [['json', 'JSON', 'application/json'], ['csv', 'CSV', 'text/csv'], ['pdf', 'PDF', 'application/pdf']];
// The API names a report's type in full (metadata.reportType, a run's reportType).
const titles = {
  HIPAA_AUDIT_TRAIL: 'HIPAA audit trail', GDPR_PROCESSING_ACTIVITIES: 'GDPR processing activities',
  GENERAL_COMPLIANCE: 'General compliance', INTEGRITY_VERIFICATION: 'Integrity verification',
};
const runsPage = 50;
let fileURL = ''; // the last report's blob: URL, released when the next one comes

// figures are the numbers a JSON report's page shows: [path in the report, label].
const summaryFigures = [
  ['summary.totalEvents', 'Events'], ['summary.uniquePrincipals', 'Principals'], ['summary.uniqueResources', 'Resources'],
  ['summary.integrityViolations', 'Integrity violations (refused at ingest)'],
];
const typeFigures = {
  HIPAA_AUDIT_TRAIL: [
    ['hipaaSpecific.phiEvents', 'PHI events'], ['hipaaSpecific.phiAccessEvents', 'PHI accesses'],
    ['hipaaSpecific.phiModificationEvents', 'PHI modifications'], ['hipaaSpecific.unauthorizedAttempts', 'Unauthorized attempts'],
    ['hipaaSpecific.emergencyAccess', 'Emergency accesses'], ['hipaaSpecific.breakGlassEvents', 'Break-glass events'],
    ['hipaaSpecific.afterHoursAccessEvents', 'After-hours accesses'], ['riskAssessment.highRiskEvents', 'High-risk events'],
  ],
  GDPR_PROCESSING_ACTIVITIES: [
    ['gdprSpecific.personalDataEvents', 'Personal-data events'], ['gdprSpecific.dataSubjectRights.access', 'Access requests'],
    ['gdprSpecific.dataSubjectRights.rectification', 'Rectification requests'], ['gdprSpecific.dataSubjectRights.erasure', 'Erasure requests'],
    ['gdprSpecific.dataSubjectRights.portability', 'Portability requests'], ['gdprSpecific.dataSubjectRights.restriction', 'Restriction requests'],
    ['gdprSpecific.dataSubjectRights.objection', 'Objections'], ['gdprSpecific.consentEvents.total', 'Consent events'],
    ['gdprSpecific.crossBorderTransfers', 'Cross-border transfers'], ['gdprSpecific.dataBreaches', 'Data breaches'],
  ],
  GENERAL_COMPLIANCE: [['generalSpecific.accessRecords.total', 'Reads of the audit trail']],
  INTEGRITY_VERIFICATION: [
    ['results.totalEvents', 'Rows checked'], ['results.verifiedEvents', 'Verified'],
    ['results.failedVerifications', 'Failed verifications'], ['results.failuresTotal', 'Failed checks'],
  ],
};

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
  // A principal of every organisation types one, or leaves it empty for all.
  const orgInput = orgs.length
    ? h('select', { id: 'r-org', name: 'organization' }, orgs.map((o) => h('option', { value: o }, o)))
    : h('input', { id: 'r-org', name: 'organization', placeholder: 'all organisations' });
  const status = h('div', { id: 'report-status', role: 'status' });
  const form = h('form', { class: 'filters', id: 'report-form' },
    h('label', { for: 'r-type' }, 'Report', h('select', { id: 'r-type', name: 'type' }, kinds.map(([v, t]) => h('option', { value: v }, t)))),
    h('label', { for: 'r-org' }, 'Organisation', orgInput),
    h('label', { for: 'r-from' }, 'From (UTC, inclusive)', h('input', { id: 'r-from', name: 'from', type: 'date', value: from, required: true })),
    h('label', { for: 'r-to' }, 'To (UTC, exclusive)', h('input', { id: 'r-to', name: 'to', type: 'date', value: to, required: true })),
    h('label', { for: 'r-format' }, 'Format', h('select', { id: 'r-format', name: 'format' }, formats.map(([v, t]) => h('option', { value: v }, t)))),
    h('button', { type: 'submit', class: 'primary', id: 'report-download' }, 'Download'));
  const runs = h('div', { id: 'report-runs' });
  const more = h('button', { type: 'button', id: 'runs-more', hidden: true }, 'Load more');
  main.append(h('h1', {}, 'Reports'),
    h('p', { class: 'muted' }, 'Computed by the worker over the period, within your organisations; each report is recorded as an access to the audit trail. A JSON report\'s figures are also shown below the form.'),
    form, status, h('h2', {}, 'Scheduled runs'), runs, h('div', { class: 'actions' }, more));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    download(new FormData(form), status);
  });
  listRuns(runs, more);
}

async function download(data, status) {
  clear(status, h('p', { class: 'muted' }, 'Making the report…'));
  const type = data.get('type');
  const fmt = formats.find(([v]) => v === data.get('format'));
  const org = String(data.get('organization') || '').trim();
  const criteria = { from: `${data.get('from')}T00:00:00Z`, to: `${data.get('to')}T00:00:00Z` };
  if (org) criteria.organizationIds = [org]; // none: the whole scope
  try {
    const res = await request('POST', `/v1/reports/${encodeURIComponent(type)}`, { body: { criteria }, accept: fmt[2] });
    const blob = await res.blob();
    const name = `report-${type}-${org || 'all'}-${data.get('from')}-${data.get('to')}.${fmt[0]}`;
    if (fileURL) URL.revokeObjectURL(fileURL);
    fileURL = URL.createObjectURL(blob);
    const link = h('a', { href: fileURL, download: name, id: 'report-file', 'data-type': blob.type }, `Save ${name} again`);
    const id = res.headers.get('X-Report-Id') || '';
    clear(status, message(`Report ready: ${name} (${fmtBytes(blob.size)}).`, 'success'),
      h('p', {}, link, id ? h('span', { class: 'muted' }, ` · report id `, h('code', { id: 'report-id' }, id)) : null),
      fmt[0] === 'json' ? figures(JSON.parse(await blob.text())) : null);
    link.click();
    announce('Report downloaded');
  } catch (err) {
    clear(status, message(err instanceof ApiError && err.notServed
      ? 'This worker does not make reports (no report generator is configured).'
      : errorText(err, 'The report failed'), 'error'));
  }
}

// orgNames lists organisations; '*' is every organisation.
function orgNames(orgs) {
  return (orgs || []).map((o) => (o === '*' ? 'all' : o)).join(', ') || '–';
}

// at reads a dotted path of an object.
function at(obj, path) {
  return path.split('.').reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

// figures shows a JSON report's numbers as the worker computed them, and
// the HIPAA report's findings.
function figures(rep) {
  const md = rep.metadata || {};
  const list = [...summaryFigures, ...(typeFigures[md.reportType] || [])];
  const range = rep.summary && rep.summary.timeRange;
  const rows = [
    [h('dt', {}, 'Report'), h('dd', {}, titles[md.reportType] || md.reportType || '–')],
    [h('dt', {}, 'Organisations'), h('dd', { id: 'fig-organizations' }, orgNames(md.organizations))],
    [h('dt', {}, 'Period'), h('dd', {}, `${fmtTime(md.criteria && md.criteria.from)} – ${fmtTime(md.criteria && md.criteria.to)}`)],
    [h('dt', {}, 'First and last event'), h('dd', {}, range ? `${fmtTime(range.earliest)} – ${fmtTime(range.latest)}` : 'no event')],
    list.map(([path, label]) => [h('dt', {}, label), h('dd', { 'data-figure': path }, fmtNumber(at(rep, path)))]),
  ];
  const rate = at(rep, 'results.verificationRate');
  if (md.reportType === 'INTEGRITY_VERIFICATION') {
    rows.push([h('dt', {}, 'Verification rate'), h('dd', {}, rate == null ? 'no rows' : `${fmtNumber(rate, 2)} %`)]);
  }
  const findings = (rep.riskAssessment && rep.riskAssessment.findings) || [];
  return h('section', { id: 'report-figures' },
    h('h2', {}, 'Figures'),
    h('dl', { class: 'fields' }, rows),
    rep.riskAssessment ? (findings.length
      ? table('Risk findings', [
        { label: 'finding', value: (f) => f.type },
        { label: 'severity', value: (f) => badge(f.severity.toLowerCase(), `sev-${f.severity.toLowerCase()}`) },
        { label: 'principal', value: (f) => f.principalId || '–' },
        { label: 'count', num: true, value: (f) => fmtNumber(f.count) },
        { label: 'description', value: (f) => f.description },
      ], findings, { id: 'findings-table' })
      : h('p', { class: 'muted', id: 'no-findings' }, 'No risk finding.')) : null,
    h('p', { class: 'muted' }, `Definitions version ${md.definitionsVersion || '–'}; the report file carries the formula of every number.`));
}

// runStatus shows a run's status: succeeded, failed (with its next attempt), running.
function runStatus(r) {
  const cls = { succeeded: 'ok', failed: 'bad', running: 'warn' }[r.status] || '';
  return h('span', {}, badge(r.status || '–', cls),
    r.status === 'failed' && r.nextAttemptAt ? h('span', { class: 'muted' }, ` retry ${fmtTime(r.nextAttemptAt)}`) : null);
}

async function listRuns(el, more) {
  const rows = [];
  let after = 0;
  const load = async () => {
    more.disabled = true;
    try {
      const body = await getJSON('/v1/reports/runs', { limit: runsPage, after: after || '' });
      rows.push(...(body.runs || []));
      after = body.nextAfter || 0;
      more.hidden = !after;
      clear(el, rows.length ? table('Scheduled report runs, newest first', [
        { label: 'schedule', value: (r) => r.schedule },
        { label: 'report', value: (r) => titles[r.reportType] || r.reportType },
        { label: 'organisations', value: (r) => orgNames(r.organizations) },
        { label: 'period', value: (r) => `${fmtTime(r.periodStart)} – ${fmtTime(r.periodEnd)}` },
        { label: 'format', value: (r) => r.format },
        { label: 'status', value: runStatus },
        { label: 'attempts', num: true, value: (r) => fmtNumber(r.attempts) },
        { label: 'finished', value: (r) => fmtTime(r.finishedAt) },
        { label: 'location', value: (r) => r.location || r.destination || '–' },
        { label: 'size', num: true, value: (r) => (r.sizeBytes == null ? '–' : fmtBytes(r.sizeBytes)) },
        { label: 'SHA-256', value: (r) => (r.sha256 ? h('code', { title: r.sha256 }, r.sha256) : '–') },
        { label: 'error', value: (r) => r.error || '' },
      ], rows, { id: 'runs-table', rowId: (r) => r.id }) : h('p', { class: 'muted', id: 'no-runs' }, 'No scheduled run yet.'));
    } catch (err) {
      if (err instanceof ApiError && err.notServed) {
        more.hidden = true;
        clear(el, h('p', { class: 'muted', id: 'runs-unavailable' }, 'This worker keeps no report runs.'));
      } else {
        el.append(message(errorText(err, 'The runs could not be read'), 'error')); // keeps the rows already shown
      }
    } finally {
      more.disabled = false;
    }
  };
  more.addEventListener('click', load);
  load();
}
