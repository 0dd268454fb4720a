// The console's only way to the worker: its public HTTP API, same origin,
// with the session cookie and, on requests that change something, the
// session's CSRF token.

let csrfToken = '';
let onSignedOut = () => {};

export function setSession(token, signedOut) {
  csrfToken = token || '';
  if (signedOut) onSignedOut = signedOut;
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
  // routeMissing is a 404 from the router rather than from a handler: the
  // worker does not serve this endpoint (yet).
  get routeMissing() { return this.status === 404 && !this.code; }
  // notServed is a route this worker does not serve: missing, or answered
  // 503 because the part behind it is not configured.
  get notServed() { return this.routeMissing || (this.status === 503 && this.code === 'unavailable'); }
}

// query turns an object into a query string, leaving out empty values.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') q.append(k, v);
  }
  const s = q.toString();
  return s ? '?' + s : '';
}

// request calls the API and returns the Response; an answer that is not 2xx
// becomes an ApiError with the API's code and message.
export async function request(method, path, { body, accept } = {}) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (accept) headers.Accept = accept;
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  const res = await fetch(path, {
    method, headers, credentials: 'same-origin', cache: 'no-store',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.ok) return res;
  let code = '';
  let message = `${res.status} ${res.statusText}`;
  if ((res.headers.get('Content-Type') || '').includes('json')) {
    try {
      const j = await res.json();
      code = (j.error && j.error.code) || '';
      message = (j.error && j.error.message) || message;
    } catch { /* keep the status line */ }
  }
  // A 401 means the session is gone, except for a refused sign-in.
  if (res.status === 401 && !(method === 'POST' && path === '/console/session')) onSignedOut();
  throw new ApiError(res.status, code, message);
}

export async function getJSON(path, params) {
  return (await request('GET', path + query(params))).json();
}

export async function postJSON(path, body) {
  return (await request('POST', path, { body })).json();
}
