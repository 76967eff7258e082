// The HTTP API of lease-http: JSON requests with the bearer token, errors
// as ApiError (the server's {"error":{"code","message","field","limit"}}),
// and URLs for the streams (events, log and terminal WebSockets), which take
// a single-use ?ticket= from POST /api/tickets: the bearer token itself never
// goes into a URL (URLs end up in logs and history).

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
async function send(path, init) {
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
 * keeps a 401 from signing the page out (used to check a new token).
 */
export async function api(method, path, body = undefined, options = {}) {
  const bearer = options.token ?? memoryToken;
  const headers = { Accept: 'application/json' };
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await send(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
    credentials: 'omit',
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
    const detail = data?.error ?? {};
    const error = new ApiError(
      response.status,
      detail.code ?? `http_${response.status}`,
      detail.message ?? `${response.status} ${response.statusText || 'error'}`,
      detail.field ?? null,
      detail.limit ?? null,
    );
    if (response.status === 401 && options.token === undefined) unauthorized(error);
    throw error;
  }
  return data;
}

/**
 * `path` with a fresh single-use `?ticket=` (or `&ticket=`) added, for an
 * EventSource or WebSocket. `request` is the ticket's body for
 * POST /api/tickets: `{route: 'events'}`, `{route: 'logs', leaseId}` or
 * `{route: 'attach', leaseId, sessionId}`. Without a token (single-user
 * mode) streams need no ticket: `path` comes back unchanged. A ticket
 * expires after about 30 s and is spent by its first use, so call this right
 * before opening each connection (reconnects included). Rejects with an
 * ApiError (404: not the caller's lease or session; 401 signs the page out).
 */
export async function ticketed(path, request) {
  if (!memoryToken) return path;
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
