// Dead letters: the refused events, by reason; inspect one, redrive one or a
// selection through the pipeline.
import { getJSON, postJSON } from './api.js';
import { h, clear, message, announce, fmtNumber, fmtTime, pretty, table, fields, errorText } from './dom.js';

const reasons = [['', 'any'], ['validation_failed', 'validation failed'], ['integrity_violation', 'integrity violation'],
  ['forbidden_organization', 'forbidden organisation'], ['store_refused', 'refused by the store'], ['processing_failed', 'processing failed']];

export function render(main, route) {
  if (route.rest[0]) return renderOne(main, route.rest[0]);
  return renderList(main, route.params);
}

async function redrive(id) {
  return postJSON(`/v1/dead-letters/${encodeURIComponent(id)}/redrive`, undefined);
}

// outcomeText says what a redrive did.
function outcomeText(id, r) {
  const o = r.outcome || {};
  if (o.status === 'rejected') return `Dead letter ${id}: refused again (${o.reason}: ${o.message}); it stays, its count raised.`;
  return `Dead letter ${id}: ${o.status}${o.seq ? ` as event ${o.seq}` : ''}${r.removed ? ', removed from the dead letters' : ''}.`;
}

function renderList(main, params) {
  const reason = params.get('reason') || '';
  const form = h('form', { class: 'filters', id: 'dl-filters' },
    h('label', { for: 'f-reason' }, 'Reason',
      h('select', { id: 'f-reason', name: 'reason' }, reasons.map(([v, t]) => h('option', { value: v, selected: v === reason }, t)))),
    h('button', { type: 'submit', class: 'primary' }, 'Filter'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    location.hash = `#/dead-letters?reason=${encodeURIComponent(new FormData(form).get('reason'))}`;
  });
  const results = h('div', { id: 'dl-results' });
  const status = h('div', { id: 'dl-status', role: 'status' });
  const more = h('button', { type: 'button', id: 'dl-more', hidden: true }, 'Load more');
  const redriveSelected = h('button', { type: 'button', id: 'dl-redrive-selected', class: 'primary', disabled: true }, 'Redrive selected');
  main.append(h('h1', {}, 'Dead letters'),
    h('p', { class: 'muted' }, 'Events the worker refused, kept with their reason and exact bytes. Redrive sends one through the pipeline again under its idempotency key: it is stored at most once.'),
    form, status, h('div', { class: 'actions' }, redriveSelected), results, h('div', { class: 'actions' }, more));

  const rows = [];
  let after = 0;
  const selected = new Set();
  const refresh = () => {
    redriveSelected.disabled = selected.size === 0;
    redriveSelected.textContent = selected.size ? `Redrive selected (${selected.size})` : 'Redrive selected';
  };
  const draw = () => {
    clear(results, rows.length ? table(`Dead letters${reason ? ` (${reason})` : ''}, oldest first`, [
      { label: h('span', { class: 'visually-hidden' }, 'select'), value: (d) => h('input', { type: 'checkbox', 'aria-label': `select dead letter ${d.id}`,
        checked: selected.has(d.id), 'data-id': d.id,
        onchange: (e) => { if (e.target.checked) selected.add(d.id); else selected.delete(d.id); refresh(); } }) },
      { label: 'id', value: (d) => h('a', { href: `#/dead-letters/${d.id}` }, String(d.id)) },
      { label: 'reason', value: (d) => d.reason },
      { label: 'message', value: (d) => d.message },
      { label: 'organisation', value: (d) => d.organizationId || '–' },
      { label: 'count', num: true, value: (d) => fmtNumber(d.count) },
      { label: 'received', value: (d) => fmtTime(d.receivedAt) },
    ], rows, { id: 'dl-table', rowId: (d) => d.id }) : h('p', { class: 'muted' }, 'No dead letter.'));
  };
  const load = async () => {
    more.disabled = true;
    try {
      const page = await getJSON('/v1/dead-letters', { reason, limit: 100, after: after || '' });
      rows.push(...page.deadLetters);
      after = page.nextAfter || 0;
      more.hidden = !after;
      draw();
    } catch (err) {
      results.append(message(errorText(err, 'Dead letters could not be read'), 'error'));
    } finally {
      more.disabled = false;
    }
  };
  redriveSelected.addEventListener('click', async () => {
    redriveSelected.disabled = true;
    clear(status);
    const ids = [...selected].sort((a, b) => a - b);
    const lines = [];
    for (const id of ids) { // one at a time: each answer says what became of that event
      try {
        const r = await redrive(id);
        lines.push(message(outcomeText(id, r), r.outcome && r.outcome.status === 'rejected' ? 'error' : 'success'));
        if (r.removed) {
          const i = rows.findIndex((d) => d.id === id);
          if (i >= 0) rows.splice(i, 1);
        }
      } catch (err) {
        lines.push(message(errorText(err, `Dead letter ${id}`), 'error'));
      }
      selected.delete(id);
    }
    status.append(...lines);
    announce(`${ids.length} dead letters redriven`);
    draw();
    refresh();
  });
  more.addEventListener('click', load);
  load();
}

async function renderOne(main, id) {
  main.append(h('p', {}, h('a', { href: '#/dead-letters' }, '← Dead letters')));
  const body = h('div', { id: 'dl-detail' });
  main.append(body);
  let d;
  try {
    d = await getJSON(`/v1/dead-letters/${encodeURIComponent(id)}`);
  } catch (err) {
    body.append(message(errorText(err, `Dead letter ${id}`), 'error'));
    return;
  }
  const status = h('div', { role: 'status', id: 'dl-outcome' });
  const btn = h('button', { type: 'button', class: 'primary', id: 'dl-redrive' }, 'Redrive');
  btn.addEventListener('click', async () => {
    btn.disabled = true;
    clear(status);
    try {
      const r = await redrive(d.id);
      status.append(message(outcomeText(d.id, r), r.outcome && r.outcome.status === 'rejected' ? 'error' : 'success'));
      if (r.outcome && r.outcome.seq) status.append(h('p', {}, h('a', { href: `#/events/${r.outcome.seq}` }, `Open event ${r.outcome.seq}`)));
      announce('Redrive done');
    } catch (err) {
      status.append(message(errorText(err, 'Redrive failed'), 'error'));
    } finally {
      btn.disabled = false;
    }
  });
  body.append(h('h1', {}, `Dead letter ${d.id}`),
    h('div', { class: 'grid detail' },
      h('section', { class: 'card' }, h('h2', {}, 'Why it was refused'), fields([
        ['reason', d.reason], ['message', d.message], ['count', fmtNumber(d.count)], ['organisation', d.organizationId || '–'],
        ['source', d.source], ['idempotency key', d.idempotencyKey], ['received', fmtTime(d.receivedAt)], ['first failed', fmtTime(d.firstFailedAt)]])),
      h('section', { class: 'card' }, h('h2', {}, 'Field errors'), d.errors && d.errors.length
        ? table('Errors', [{ label: 'field', value: (e) => e.field }, { label: 'code', value: (e) => e.code }, { label: 'message', value: (e) => e.message }], d.errors)
        : h('p', { class: 'muted' }, 'None: the event as a whole was refused.')),
      h('section', { class: 'card wide' }, h('h2', {}, 'The event as it arrived'), h('pre', { id: 'dl-payload' }, pretty(d.payload)))),
    h('div', { class: 'actions' }, btn), status);
}
