// Events: the search with its filters and "load more" paging; an event's
// page with its verification checks and its inclusion proof, checked here.
import { getJSON, request, ApiError } from './api.js';
import { h, clear, message, announce, fmtTime, pretty, table, fields, errorText, toRFC3339 } from './dom.js';
import { checkProof } from './proof.js';

const textFilters = [['organizationId', 'Organisation'], ['principalId', 'Principal'], ['action', 'Action (exact, or prefix.*)'],
  ['targetResourceType', 'Resource type'], ['targetResourceId', 'Resource id'], ['correlationId', 'Correlation id'],
  ['sessionId', 'Session id'], ['ipAddress', 'IP address']];
const choiceFilters = [
  ['status', 'Status', ['', 'attempt', 'success', 'failure']],
  ['dataClassification', 'Classification', ['', 'PUBLIC', 'INTERNAL', 'CONFIDENTIAL', 'PHI']],
  ['order', 'Order', ['desc', 'asc']],
];
const timeFilters = [['since', 'Since'], ['until', 'Until']];
const pageSize = 50;

export function render(main, route, ctx) {
  if (route.rest[0]) return renderOne(main, route.rest[0], ctx);
  return renderSearch(main, route.params);
}

// localValue shows an RFC 3339 time in a datetime-local input.
function localValue(rfc) {
  if (!rfc) return '';
  const d = new Date(rfc);
  if (Number.isNaN(d.getTime())) return '';
  const off = d.getTimezoneOffset() * 60000;
  return new Date(d.getTime() - off).toISOString().slice(0, 19);
}

function renderSearch(main, params) {
  const filters = {};
  for (const [n] of [...textFilters, ...choiceFilters, ...timeFilters]) filters[n] = params.get(n) || '';
  const form = h('form', { class: 'filters', id: 'event-filters' },
    textFilters.map(([n, label]) => h('label', { for: `f-${n}` }, label, h('input', { id: `f-${n}`, name: n, value: filters[n] }))),
    choiceFilters.map(([n, label, opts]) => h('label', { for: `f-${n}` }, label,
      h('select', { id: `f-${n}`, name: n }, opts.map((v) => h('option', { value: v, selected: v === filters[n] }, v || 'any'))))),
    timeFilters.map(([n, label]) => h('label', { for: `f-${n}` }, `${label} (your time)`,
      h('input', { id: `f-${n}`, name: n, type: 'datetime-local', step: 1, value: localValue(filters[n]) }))),
    h('button', { type: 'submit', class: 'primary', id: 'event-search' }, 'Search'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const q = new URLSearchParams();
    for (const [n] of [...textFilters, ...choiceFilters]) if (data.get(n)) q.set(n, data.get(n).trim());
    for (const [n] of timeFilters) if (data.get(n)) q.set(n, toRFC3339(data.get(n)));
    location.hash = `#/events?${q}`;
  });
  // The cursor is signed for exactly these filters: load more resends them.
  const search = {};
  for (const [k, v] of Object.entries(filters)) if (v && !(k === 'order' && v === 'desc')) search[k] = v;
  // data-filters names the search the results belong to, so that what
  // reads the page (a test, an assistive tool) can tell one search's
  // results from the page's before it.
  const results = h('div', { id: 'event-results', 'data-filters': new URLSearchParams(search).toString() });
  const more = h('button', { type: 'button', id: 'events-more', hidden: true }, 'Load more');
  main.append(h('h1', {}, 'Events'),
    h('p', { class: 'muted' }, 'Newest first, the last 30 days unless you say otherwise. Every search is itself recorded as an access to the audit trail.'),
    form, results, h('div', { class: 'actions' }, more));

  const rows = [];
  let cursor = '';
  const load = async () => {
    more.disabled = true;
    try {
      const page = await getJSON('/v1/events', { ...search, limit: pageSize, cursor });
      rows.push(...page.events);
      cursor = page.nextCursor || '';
      more.hidden = !cursor;
      clear(results, rows.length ? eventTable(rows) : h('p', { class: 'muted' }, 'No event matches.'));
      announce(`${rows.length} events shown`);
    } catch (err) {
      results.append(message(errorText(err, 'The search failed'), 'error'));
    } finally {
      more.disabled = false;
    }
  };
  more.addEventListener('click', load);
  load();
}

function eventTable(rows) {
  return table(`${rows.length} events`, [
    { label: 'id', value: (e) => h('a', { href: `#/events/${e.id}` }, String(e.id)) },
    { label: 'time', value: (e) => e.timestamp },
    { label: 'action', value: (e) => e.action },
    { label: 'status', value: (e) => e.status },
    { label: 'principal', value: (e) => e.principalId || '–' },
    { label: 'organisation', value: (e) => e.organizationId || '–' },
    { label: 'resource', value: (e) => [e.targetResourceType, e.targetResourceId].filter(Boolean).join(' ') || '–' },
  ], rows, { id: 'events-table', rowId: (e) => e.id });
}

async function renderOne(main, id, ctx) {
  main.append(h('p', {}, h('a', { href: '#/events' }, '← Events')));
  let ev;
  try {
    ev = await getJSON(`/v1/events/${encodeURIComponent(id)}`);
  } catch (err) {
    main.append(message(errorText(err, `Event ${id}`), 'error'));
    return;
  }
  const verifyEl = h('div', { id: 'event-verify' });
  const proofEl = h('div', { id: 'event-proof' });
  main.append(h('h1', {}, `Event ${ev.id}: ${ev.action}`),
    h('div', { class: 'grid detail' },
      h('section', { class: 'card' }, h('h2', {}, 'The event'), fields([
        ['time', ev.timestamp], ['action', ev.action], ['status', ev.status], ['principal', ev.principalId],
        ['organisation', ev.organizationId], ['resource', [ev.targetResourceType, ev.targetResourceId].filter(Boolean).join(' ')],
        ['outcome', ev.outcomeDescription], ['classification', ev.dataClassification], ['correlation id', ev.correlationId],
        ['received', fmtTime(ev.receivedAt)], ['record hash', ev.recordHash],
        ['integrity at ingest', `hash ${ev.integrity.hashVerified ? 'verified' : 'not verified'}, signature ${ev.integrity.signatureVerified ? 'verified' : 'not verified'}`]])),
      h('section', { class: 'card', 'aria-labelledby': 'v-h' }, h('h2', { id: 'v-h' }, 'Verification now'), verifyEl),
      h('section', { class: 'card', 'aria-labelledby': 'p-h' }, h('h2', { id: 'p-h' }, 'Inclusion proof, checked in your browser'), proofEl),
      h('section', { class: 'card wide' }, h('h2', {}, 'As stored'), h('pre', {}, pretty(ev)))));
  if (!ctx.can('events:verify')) {
    const note = `Your role (${ctx.principal.role}) may read events but not verify them.`;
    verifyEl.append(h('p', { class: 'muted' }, note));
    proofEl.append(h('p', { class: 'muted' }, note));
    return;
  }
  await Promise.all([showVerification(verifyEl, ev.id), showProof(proofEl, ev)]);
}

function checkList(checks, id) {
  return h('ul', { class: 'checks', id }, checks.map((c) => h('li', {
    class: c.ok === null ? 'warn' : c.ok ? 'ok' : 'bad', 'data-check': c.name, 'data-ok': String(c.ok),
  }, `${c.name}: `, c.ok === null ? 'not checked' : c.ok ? 'ok' : 'FAILED', c.note ? ` — ${c.note}` : '',
  c.expected && !c.ok ? ` (expected ${c.expected}, found ${c.found})` : '')));
}

async function showVerification(el, id) {
  try {
    const v = await getJSON(`/v1/events/${id}/verify`);
    el.append(h('p', { id: 'verify-result', 'data-verified': String(v.verified) },
      h('strong', { class: v.verified ? 'ok' : 'bad' }, v.verified ? 'Verified' : 'NOT verified'),
      ': recomputed from the stored row just now.'), checkList(v.checks, 'verify-checks'));
  } catch (err) {
    el.append(message(errorText(err, 'Verification failed'), 'error'));
  }
}

// A stored event joins the log's tree, and a signed checkpoint, within
// seconds; until then the proof route answers 409. The page says so and
// asks again while it is shown, then leaves it to a button.
const pendingRetryMs = 2000;
const pendingRetries = 15;

async function showProof(el, ev, attempt = 0) {
  let proof;
  try {
    proof = await getJSON(`/v1/events/${ev.id}/proof`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 409) {
      showPending(el, ev, attempt);
    } else if (err instanceof ApiError && err.notServed) {
      clear(el, h('p', { class: 'muted', id: 'proof-result', 'data-ok': 'unavailable' },
        'This worker does not serve inclusion proofs (tamper evidence is not enabled).'));
    } else {
      clear(el, message(errorText(err, 'The proof could not be read'), 'error'));
    }
    return;
  }
  let vkey = '';
  try {
    vkey = (await (await request('GET', '/v1/checkpoints/key')).text()).trim();
  } catch { /* no verifier key published: the signature is not checked */ }
  const res = await checkProof(ev.recordHash, proof, vkey);
  clear(el, h('p', { id: 'proof-result', 'data-ok': String(res.ok) },
    h('strong', { class: res.ok ? 'ok' : 'bad' }, res.ok ? 'Included' : 'NOT proven'),
    ` in the log as leaf ${proof.index} of ${proof.size}.`),
  checkList(res.checks, 'proof-checks'),
  h('details', {}, h('summary', {}, 'The checkpoint'), h('pre', {}, String(proof.checkpoint))));
  if (attempt > 0) announce(res.ok ? 'The event is now in a checkpoint and its proof checks' : 'The event\'s proof does not check');
}

// showPending says the event is not in a checkpoint yet: not a failure.
function showPending(el, ev, attempt) {
  const retrying = attempt < pendingRetries;
  clear(el, h('p', { id: 'proof-result', 'data-ok': 'pending' },
    h('strong', { class: 'warn' }, 'Not yet in a checkpoint'),
    ': the worker adds each stored event to its log and signs a checkpoint of it within seconds; the proof can be checked then.',
    retrying ? ' Checking again shortly…' : ''),
  retrying ? null : h('button', { type: 'button', id: 'proof-again', onclick: () => showProof(el, ev, 1) }, 'Check again'));
  if (retrying) {
    setTimeout(() => { if (el.isConnected) showProof(el, ev, attempt + 1); }, pendingRetryMs);
  }
}
