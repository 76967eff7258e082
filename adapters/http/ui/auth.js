// How this server signs people in (GET /api/auth, public) and who is
// signed in (GET /api/me), and ending a browser session (POST /auth/logout).
//
// Modes: `oidc` (a "Sign in with …" link to the identity provider; a token
// can still be pasted), `tokens` (paste a token) and `single-user` (no
// sign-in). A server that predates /api/auth answers 404: the page then
// behaves as it always did (tokens, or single-user when the API lets it in).

import { api, ApiError, setSession } from './api.js';

/** The sign-in modes the page knows. */
export const MODES = Object.freeze(['oidc', 'tokens', 'single-user']);

/** Where the provider sign-in starts when the server does not say. */
const DEFAULT_SIGN_IN = '/auth/login';

/**
 * `value` if it is a path on this server (`/…`, not `//…` nor `/\…`, which
 * browsers treat as another host, and no control characters), else `/`.
 */
export function localPath(value) {
  if (typeof value !== 'string' || !value.startsWith('/')) return '/';
  if (value.startsWith('//') || value.startsWith('/\\')) return '/';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) return '/';
  return value;
}

/**
 * The answer of GET /api/auth, checked: `{mode, signIn, provider, legacy}`.
 * Anything unknown becomes `tokens` (the safe choice: ask for
 * credentials).
 */
export function parseAuth(data) {
  const mode = MODES.includes(data?.mode) ? data.mode : 'tokens';
  const signIn = typeof data?.signIn === 'string' ? localPath(data.signIn) : DEFAULT_SIGN_IN;
  const provider = typeof data?.provider === 'string' ? data.provider.trim().slice(0, 200) : '';
  return {
    mode,
    signIn: signIn === '/' ? DEFAULT_SIGN_IN : signIn,
    provider,
    legacy: false,
  };
}

/** What the page assumes of a server without GET /api/auth. */
export const LEGACY_AUTH = Object.freeze({ mode: 'tokens', signIn: DEFAULT_SIGN_IN, provider: '', legacy: true });

/**
 * The link that starts the provider sign-in and comes back to `here` (the
 * page's own path and query; anything else comes back to `/`).
 */
export function signInHref(auth, here = '/') {
  return `${auth.signIn}?return_to=${encodeURIComponent(localPath(here))}`;
}

/** The words on the sign-in button: the provider's host, or a generic name. */
export function signInLabel(auth) {
  return `Sign in with ${auth.provider || 'your organisation’s account'}`;
}

/**
 * GET /api/auth. A server without it (404), or an answer that is not JSON,
 * gives LEGACY_AUTH; a network failure rejects (the page cannot load).
 */
export async function loadAuth() {
  try {
    return parseAuth(await api('GET', '/api/auth', undefined, { quiet401: true }));
  } catch (error) {
    if (error instanceof ApiError && error.status !== 0) return { ...LEGACY_AUTH };
    throw error;
  }
}

/**
 * The answer of GET /api/me, checked: `{owner, admin, via, csrf}`.
 * `null` when it is not an answer the page can use.
 */
export function parseMe(data) {
  if (typeof data?.owner !== 'string' || !data.owner) return null;
  const via = ['session', 'token', 'single-user'].includes(data.via) ? data.via : 'token';
  const csrf = via === 'session' && typeof data.csrf === 'string' && data.csrf ? data.csrf : null;
  return { owner: data.owner, admin: data.admin === true, via, csrf };
}

/**
 * Who is signed in (GET /api/me), recording a session's CSRF token for
 * the requests that follow. Resolves to `null` when nobody is (401); with
 * `quiet` the 401 does not sign the page out (the caller shows the
 * sign-in itself).
 */
export async function whoAmI({ quiet = false } = {}) {
  let data;
  try {
    data = await api('GET', '/api/me', undefined, { quiet401: quiet });
  } catch (error) {
    if (error.status === 401) {
      setSession(null);
      return null;
    }
    throw error;
  }
  const me = parseMe(data);
  setSession(me?.csrf ?? null);
  return me;
}

/**
 * Ends the browser session on the server (`everywhere`: all of the
 * owner's sessions) and forgets it here. A 401 means it had already ended.
 */
export async function endSession({ everywhere = false } = {}) {
  try {
    await api('POST', everywhere ? '/auth/logout-everywhere' : '/auth/logout', undefined, { quiet401: true });
  } catch (error) {
    if (error.status !== 401) throw error;
  }
  setSession(null);
}
