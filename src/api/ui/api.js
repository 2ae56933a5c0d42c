// The API client: the token lives in sessionStorage (gone when the tab closes, never a cookie)
// and travels as a bearer header. 401 and 429 are raised as events the shell turns into screens.

const KEY = 'claw.token';
const RANK = { read: 1, execute: 2, full: 3 };

export const session = {
  token: sessionStorage.getItem(KEY),
  /** `{name, scope, expires_at}` from GET /api/v1/whoami once signed in. */
  me: null,
};

export function signIn(token) {
  session.token = token;
  sessionStorage.setItem(KEY, token);
}

export function signOut() {
  session.token = null;
  session.me = null;
  sessionStorage.removeItem(KEY);
}

/** True when the signed-in token's scope includes `scope` (read < execute < full). */
export function can(scope) {
  return Boolean(session.me && RANK[session.me.scope] >= RANK[scope]);
}

/** An error answer of the API: status, code, message, details, retryAfter (seconds). */
export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || '';
    this.details = e.details || [];
    this.retryAfter = retryAfter;
  }
}

function headers(extra) {
  const out = { Accept: 'application/json', ...extra };
  if (session.token) out.Authorization = `Bearer ${session.token}`;
  return out;
}

async function failure(res) {
  let body = null;
  try { body = await res.json(); } catch { /* not JSON */ }
  const retry = Number(res.headers.get('Retry-After') || (body && body.error && body.error.retry_after) || 0);
  const err = new ApiError(res.status, body, retry);
  if (res.status === 401) window.dispatchEvent(new CustomEvent('claw:unauthorized', { detail: err }));
  if (res.status === 429) window.dispatchEvent(new CustomEvent('claw:ratelimited', { detail: err }));
  return err;
}

/** One call; resolves to `{data, headers, status}`, rejects with an ApiError. */
export async function call(method, path, { body, headers: extra, signal } = {}) {
  const init = { method, headers: headers(extra), signal, credentials: 'omit', cache: 'no-store' };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  const res = await fetch(`/api/v1${path}`, init);
  if (!res.ok) throw await failure(res);
  const data = res.status === 204 ? null : await res.json();
  return { data, headers: res.headers, status: res.status };
}

export const get = async (path, opts) => (await call('GET', path, opts)).data;
export const post = async (path, body, opts) => (await call('POST', path, { ...opts, body })).data;
export const patch = async (path, body, opts) => (await call('PATCH', path, { ...opts, body })).data;
export const del = async (path, opts) => (await call('DELETE', path, opts)).data;

/** Every item of a paged list (100 at a time). */
export async function all(path, opts) {
  const sep = path.includes('?') ? '&' : '?';
  const items = [];
  for (let offset = 0; ; offset += 100) {
    const page = await get(`${path}${sep}limit=100&offset=${offset}`, opts);
    items.push(...page.items);
    if (items.length >= page.total || page.items.length === 0) return items;
  }
}

/**
 * Reads a Server-Sent Events stream with fetch (EventSource cannot send the Authorization
 * header, and tokens in URLs are refused). Calls onEvent(name, data) per event; resolves when
 * the stream ends; rejects with an ApiError or when `signal` aborts.
 */
export async function stream(path, onEvent, signal) {
  const res = await fetch(`/api/v1${path}`, {
    headers: headers({ Accept: 'text/event-stream' }),
    signal,
    credentials: 'omit',
    cache: 'no-store',
  });
  if (!res.ok) throw await failure(res);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n?/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = 'message';
      const data = [];
      for (const line of frame.split('\n')) {
        if (line.startsWith(':')) continue; // keep-alive comment
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? '' : line.slice(colon + 1);
        if (val.startsWith(' ')) val = val.slice(1);
        if (field === 'event') name = val;
        else if (field === 'data') data.push(val);
      }
      if (data.length) {
        let parsed = data.join('\n');
        try { parsed = JSON.parse(parsed); } catch { /* plain text */ }
        onEvent(name, parsed);
      }
    }
  }
}
