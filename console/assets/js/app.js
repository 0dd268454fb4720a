// The console's shell: sign-in, navigation, and the router that shows one
// page at a time. Pages live in their own modules and use only the API.
import { request, setSession, ApiError } from './api.js';
import { h, clear, message, announce } from './dom.js';
import * as overview from './overview.js';
import * as alerts from './alerts.js';
import * as deadLetters from './deadletters.js';
import * as events from './events.js';
import * as reports from './reports.js';

// pages, in the navigation's order, with the permission each needs.
const pages = [
  { path: 'overview', title: 'Overview', perm: 'observability:read', module: overview },
  { path: 'alerts', title: 'Alerts', perm: 'alerts:read', module: alerts },
  { path: 'dead-letters', title: 'Dead letters', perm: 'deadletters:manage', module: deadLetters },
  { path: 'events', title: 'Events', perm: 'events:read', module: events },
  { path: 'reports', title: 'Reports', perm: 'reports:read', module: reports },
];

const state = { principal: null, cleanup: null };
const main = () => document.getElementById('main');

function can(perm) {
  return !!state.principal && state.principal.permissions.includes(perm);
}

function allowedPages() {
  return pages.filter((p) => can(p.perm));
}

// route reads the location hash: #/alerts/42?status=active → page, rest, params.
function route() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [pathPart, queryPart] = raw.split('?');
  const parts = pathPart.split('/').filter(Boolean).map(decodeURIComponent);
  return { page: parts[0] || '', rest: parts.slice(1), params: new URLSearchParams(queryPart || '') };
}

function renderNav(current) {
  const nav = document.getElementById('nav');
  clear(nav);
  for (const p of allowedPages()) {
    nav.append(h('a', { href: `#/${p.path}`, 'aria-current': p.path === current ? 'page' : null }, p.title));
  }
  nav.hidden = false;
}

async function show() {
  if (!state.principal) return;
  if (state.cleanup) { state.cleanup(); state.cleanup = null; }
  const r = route();
  const allowed = allowedPages();
  let page = pages.find((p) => p.path === r.page);
  if (!page) {
    if (!allowed.length) {
      renderNav('');
      clear(main(), h('h1', {}, 'Nothing to show'),
        message(`The role ${state.principal.role} has no page in the console.`));
      return;
    }
    location.replace(`#/${allowed[0].path}`);
    return;
  }
  renderNav(page.path);
  const el = clear(main());
  document.title = `${page.title} · audit-worker console`;
  if (!can(page.perm)) {
    el.append(h('h1', {}, page.title), message(`Your role (${state.principal.role}) may not see this page: it needs ${page.perm}.`, 'error'));
    return;
  }
  const ctx = { can, principal: state.principal };
  try {
    state.cleanup = (await page.module.render(el, r, ctx)) || null;
  } catch (err) {
    el.append(message(`This page failed: ${err.message}`, 'error'));
  }
  el.focus();
}

function signedIn(session) {
  state.principal = session.principal;
  setSession(session.csrfToken, signedOut);
  const who = document.getElementById('who');
  document.getElementById('who-name').textContent =
    `${session.principal.name || session.principal.id} · ${session.principal.role} · ${session.principal.organizations.join(', ')}`;
  who.hidden = false;
  show();
}

function signedOut(reason) {
  if (state.cleanup) { state.cleanup(); state.cleanup = null; }
  state.principal = null;
  setSession('');
  document.getElementById('nav').hidden = true;
  document.getElementById('who').hidden = true;
  renderSignIn(typeof reason === 'string' ? reason : 'Your session has ended. Sign in again.');
}

function renderSignIn(notice) {
  document.title = 'Sign in · audit-worker console';
  const status = h('div', { id: 'signin-status' });
  if (notice) status.append(message(notice));
  const input = h('input', { id: 'credential', name: 'credential', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false' });
  const form = h('form', { class: 'card signin', id: 'signin-form' },
    h('h1', {}, 'Sign in'),
    h('p', { class: 'muted' }, 'An API key (awk_…) or, where OpenID Connect is configured, a bearer token from your identity provider. The console keeps it on the worker only while you are signed in.'),
    h('label', { for: 'credential' }, 'API key or token', input),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Sign in')),
    status);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clear(status);
    try {
      const res = await request('POST', '/console/session', { body: { credential: input.value } });
      input.value = '';
      signedIn(await res.json());
      announce('Signed in');
    } catch (err) {
      status.append(message(err instanceof ApiError ? err.message : String(err), 'error'));
      input.focus();
    }
  });
  clear(main(), form);
  input.focus();
}

async function signOut() {
  try {
    await request('DELETE', '/console/session');
  } catch { /* the session may be gone already */ }
  location.hash = '';
  signedOut('Signed out.');
}

async function start() {
  document.getElementById('sign-out').addEventListener('click', signOut);
  window.addEventListener('hashchange', show);
  try {
    const res = await request('GET', '/console/session');
    signedIn(await res.json());
  } catch (err) {
    renderSignIn(err instanceof ApiError && err.status === 401 ? '' : `The worker did not answer: ${err.message}`);
  }
}

start();
