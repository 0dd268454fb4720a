// Small helpers to build the pages without a framework. Text always goes in
// as text nodes, never as HTML, so nothing an event carries can run.

// h creates an element: h('a', {href: '#/x', class: 'y'}, 'text', child…).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// clear empties el, then appends children (leaving out null and false).
export function clear(el, ...children) {
  while (el.firstChild) el.removeChild(el.firstChild);
  append(el, children);
  return el;
}

const announcer = () => document.getElementById('announce');

// announce tells screen readers what just happened.
export function announce(text) {
  const el = announcer();
  if (el) el.textContent = text;
}

// message is a notice box: kind is '', 'error' or 'success'.
export function message(text, kind = '') {
  return h('div', { class: `message ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}

export function fmtNumber(n, digits = 0) {
  if (n === undefined || n === null || Number.isNaN(n)) return '–';
  return Number(n).toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

export function fmtTime(t) {
  if (!t) return '–';
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function fmtBytes(n) {
  if (!n) return '0 B';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${fmtNumber(n, i ? 1 : 0)} ${units[i]}`;
}

export function pretty(v) {
  return JSON.stringify(v, null, 2);
}

// table builds a table from column definitions [{label, value(row), num}].
export function table(caption, columns, rows, opts = {}) {
  return h('div', { class: 'scroll' }, h('table', { id: opts.id },
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.num ? 'num' : null }, c.label)))),
    h('tbody', {}, rows.map((r) => h('tr', { 'data-id': opts.rowId ? opts.rowId(r) : null },
      columns.map((c) => h('td', { class: c.num ? 'num' : null }, c.value(r))))))));
}

// fields renders a definition list of [label, value] pairs.
export function fields(pairs) {
  return h('dl', { class: 'fields' }, pairs.filter((p) => p).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v ?? '–')]));
}

export function badge(text, cls) {
  return h('span', { class: `badge ${cls || ''}` }, text);
}

// errorText explains an API error for the page.
export function errorText(err, what) {
  if (err && err.status === 403) return `${what}: your role may not do this (${err.message}).`;
  if (err && err.status) return `${what}: ${err.message} (HTTP ${err.status}).`;
  return `${what}: ${err && err.message ? err.message : err}`;
}

// toRFC3339 turns a datetime-local value (the browser's local time) into UTC.
export function toRFC3339(local) {
  if (!local) return '';
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}
