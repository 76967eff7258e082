// The HTTP API of lease-http: JSON requests, errors as ApiError (the
// server's {"error":{"code","message","field","limit"}}), and URLs for the
// streams (events, log and terminal WebSockets), which take a single-use
// ?ticket= from POST /api/tickets: no credential ever goes into a URL (URLs
// end up in logs and history).
//
// Two ways to be signed in: a bearer token (pasted, kept in localStorage,
// sent as `Authorization: Bearer`, cookies never sent), or a browser
// session from OpenID Connect sign-in (the HttpOnly `cl_session` cookie the
// page cannot read, sent with `credentials: 'same-origin'`; every request
// that changes something carries `X-CSRF-Token` from GET /api/me). The
// token wins when both exist.

const TOKEN_KEY = 'containerlease.token';

/** An error answer of the API (or a network failure, status 0). */
export class ApiError extends Error {
  constructor(status, code, message, field = null, limit = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.field = field;
    this.limit = limit;
  }
}

let unauthorized = () => {};
let clockSkewMs = 0;
/** The signed-in browser session's CSRF token (from GET /api/me), if any. */
let sessionCsrf = null;

/** Methods that change nothing: no CSRF token needed. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function storage() {
  try {
    return window.localStorage;
  } catch {
    return null; // storage disabled: the token lives until the page closes
  }
}

let memoryToken = storage()?.getItem(TOKEN_KEY) || null;

/** The saved bearer token, if any. */
export function token() {
  return memoryToken;
}

/** Saves `value` as the bearer token (`null` forgets it). */
export function setToken(value) {
  memoryToken = value || null;
  const store = storage();
  if (!store) return;
  if (memoryToken) store.setItem(TOKEN_KEY, memoryToken);
  else store.removeItem(TOKEN_KEY);
}

/**
 * Marks the page as signed in by a browser session whose CSRF token is
 * `csrf` (from GET /api/me); `null` forgets the session. The cookie itself
 * is HttpOnly: the page never sees it.
 */
export function setSession(csrf) {
  sessionCsrf = typeof csrf === 'string' && csrf ? csrf : null;
}

/** Whether the page is signed in by a browser session (and no token). */
export function hasSession() {
  return sessionCsrf !== null && !memoryToken;
}

/**
 * The headers and credentials mode of a request with `method` as the page
 * is signed in: the bearer token (cookies left out), else the session
 * cookie and, unless the method is safe, the CSRF header. `extra` headers
 * are kept. For `fetch` calls that do not go through `api()` (files,
 * keepalive requests).
 */
export function authorize(method, extra = {}, bearer = memoryToken) {
  const headers = { ...extra };
  if (bearer) {
    headers.Authorization = `Bearer ${bearer}`;
    return { headers, credentials: 'omit' };
  }
  if (sessionCsrf && !SAFE_METHODS.has(String(method).toUpperCase())) {
    headers['X-CSRF-Token'] = sessionCsrf;
  }
  return { headers, credentials: 'same-origin' };
}

/** Called with the ApiError whenever the server answers 401. */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

/** The server's clock now, in ms since the epoch (from the `Date` headers seen). */
export function serverNow() {
  return Date.now() + clockSkewMs;
}

function noteServerDate(response) {
  const header = response.headers.get('date');
  const at = header ? Date.parse(header) : NaN;
  if (Number.isFinite(at)) {
    // Date has whole seconds: the server's clock was somewhere in [at, at + 1 s).
    clockSkewMs = at + 500 - Date.now();
  }
}

/** Waits before each new try of a read that failed on the network, in ms. */
const READ_RETRIES_MS = [200, 500, 1000];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * `fetch`, with a read (GET/HEAD) tried again when the network failed (a
 * dropped connection, a network change on the machine): reads are safe to
 * repeat; a write is not, so it fails at once and the person decides.
 */
async function fetchWithRetry(path, init) {
  const retries = init.method === 'GET' || init.method === 'HEAD' ? READ_RETRIES_MS : [];
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await fetch(path, init);
    } catch {
      if (attempt >= retries.length) {
        throw new ApiError(0, 'network', 'The server cannot be reached. Is lease-server running?');
      }
      await sleep(retries[attempt]);
    }
  }
}

/**
 * Calls the API. `body` is sent as JSON. Resolves to the parsed answer;
 * rejects with an ApiError. `options.token` overrides the saved token and
 * keeps a 401 from signing the page out (used to check a new token);
 * `options.quiet401` keeps a 401 from signing the page out too (used to
 * ask whether a session exists).
 *
 * A session request refused with 403 `csrf` (the session changed in
 * another tab, so its CSRF token did) re-reads the token from GET /api/me
 * and is sent once more.
 */
export async function api(method, path, body = undefined, options = {}) {
  try {
    return await send(method, path, body, options);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 403 || error.code !== 'csrf') throw error;
    if (options.token !== undefined || memoryToken || !sessionCsrf) throw error;
    const me = await send('GET', '/api/me', undefined, options);
    setSession(me?.csrf);
    if (!sessionCsrf) throw error;
    return send(method, path, body, options);
  }
}

async function send(method, path, body, options) {
  const bearer = options.token ?? memoryToken;
  const { headers, credentials } = authorize(method, { Accept: 'application/json' }, bearer);
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetchWithRetry(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
    credentials,
  });
  noteServerDate(response);
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = errorOf(response, data);
    if (response.status === 401 && options.token === undefined && !options.quiet401) unauthorized(error);
    throw error;
  }
  return data;
}

/** The ApiError of a failed answer (`data`: its parsed JSON, or null). */
function errorOf(response, data) {
  const detail = data?.error ?? {};
  // The auth routes answer {"error":"authorization_pending"}-style errors too.
  const code = typeof detail === 'string' ? detail : detail.code;
  return new ApiError(
    response.status,
    code ?? `http_${response.status}`,
    detail.message ?? `${response.status} ${response.statusText || 'error'}`,
    detail.field ?? null,
    detail.limit ?? null,
  );
}

/**
 * `path` with a fresh single-use `?ticket=` (or `&ticket=`) added, for an
 * EventSource or WebSocket. `request` is the ticket's body for
 * POST /api/tickets: `{route: 'events'}`, `{route: 'logs', leaseId}` or
 * `{route: 'attach', leaseId, sessionId}`. Signed in neither by token nor
 * by session (single-user mode), streams need no ticket: `path` comes back
 * unchanged. A session asks for tickets too (with its CSRF header), so no
 * stream depends on the cookie reaching it (a port proxy on another host). A ticket
 * expires after about 30 s and is spent by its first use, so call this right
 * before opening each connection (reconnects included). Rejects with an
 * ApiError (404: not the caller's lease or session; 401 signs the page out).
 */
export async function ticketed(path, request) {
  if (!memoryToken && !sessionCsrf) return path;
  const answer = await api('POST', '/api/tickets', request);
  const ticket = answer?.ticket;
  if (typeof ticket !== 'string' || !ticket) {
    throw new ApiError(0, 'bad_ticket', 'The server did not return a ticket.');
  }
  const separator = path.includes('?') ? '&' : '?';
  return `${path}${separator}ticket=${encodeURIComponent(ticket)}`;
}

/** The absolute ws:// or wss:// URL of `path` (a path with any query) on this server. */
export function wsUrl(path) {
  const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${window.location.host}${path}`;
}

/** A lease id (`container-` and random characters) shortened to 12 of its random characters. */
export function shortId(id) {
  return String(id).replace(/^container-/, '').slice(0, 12);
}
