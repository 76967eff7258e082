// Signing in: the page's reading of GET /api/auth and /api/me, the sign-in
// link's return path, and the credentials each request carries (the bearer
// token, or the session cookie with the CSRF header) against a fake fetch.
// Run: node --test adapters/http/ui-tests/

import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';

import { api, authorize, hasSession, setSession, setToken, ticketed } from '../ui/api.js';
import { LEGACY_AUTH, endSession, loadAuth, localPath, parseAuth, parseMe, signInHref, signInLabel, whoAmI } from '../ui/auth.js';

/** Replaces fetch with `answer(url, init)` and records every call. */
function fakeFetch(answer) {
  const calls = [];
  globalThis.fetch = async (url, init) => {
    calls.push({ url, init });
    const { status = 200, body = null } = answer(url, init, calls.length) ?? {};
    return new Response(body === null ? null : JSON.stringify(body), {
      status,
      headers: { 'content-type': 'application/json' },
    });
  };
  return calls;
}

afterEach(() => {
  setToken(null);
  setSession(null);
  delete globalThis.fetch;
});

test('only paths on this server come back after sign-in', () => {
  assert.equal(localPath('/'), '/');
  assert.equal(localPath('/?lease=1#x'), '/?lease=1#x');
  for (const bad of ['//evil.example/', '/\\evil.example', 'https://evil.example/', 'evil', '', null, 7, '/a\nb']) {
    assert.equal(localPath(bad), '/', String(bad));
  }
  const auth = parseAuth({ mode: 'oidc', signIn: '/auth/login', provider: 'id.example.com' });
  assert.equal(signInHref(auth, '/'), '/auth/login?return_to=%2F');
  assert.equal(signInHref(auth, '/?a=b&c'), '/auth/login?return_to=%2F%3Fa%3Db%26c');
  assert.equal(signInHref(auth, '//evil.example'), '/auth/login?return_to=%2F');
});

test('the answer of /api/auth is checked', () => {
  assert.deepEqual(parseAuth({ mode: 'oidc', signIn: '/auth/login', provider: 'id.example.com' }), {
    mode: 'oidc', signIn: '/auth/login', provider: 'id.example.com', legacy: false,
  });
  assert.equal(parseAuth({ mode: 'single-user' }).mode, 'single-user');
  assert.equal(parseAuth({ mode: 'tokens' }).mode, 'tokens');
  // Unknown modes ask for credentials; a sign-in URL elsewhere is not followed.
  assert.equal(parseAuth({ mode: 'anything' }).mode, 'tokens');
  assert.equal(parseAuth(null).mode, 'tokens');
  assert.equal(parseAuth({ mode: 'oidc', signIn: 'https://evil.example/login' }).signIn, '/auth/login');
  assert.equal(parseAuth({ mode: 'oidc', signIn: '//evil.example/login' }).signIn, '/auth/login');
  assert.equal(signInLabel(parseAuth({ mode: 'oidc', provider: 'id.example.com' })), 'Sign in with id.example.com');
  assert.match(signInLabel(parseAuth({ mode: 'oidc' })), /^Sign in with your organisation/);
});

test('a server without /api/auth is treated as before; an unreachable one is an error', async () => {
  fakeFetch(() => ({ status: 404, body: { error: { code: 'not_found', message: 'no route' } } }));
  assert.deepEqual(await loadAuth(), { ...LEGACY_AUTH });
  globalThis.fetch = async () => {
    throw new TypeError('connection refused');
  };
  await assert.rejects(loadAuth(), (error) => error.status === 0);
});

test('the answer of /api/me is checked; the CSRF token is kept for a session only', () => {
  assert.deepEqual(parseMe({ owner: 'alice@example.com', admin: true, via: 'session', csrf: 'c1' }), {
    owner: 'alice@example.com', admin: true, via: 'session', csrf: 'c1',
  });
  assert.equal(parseMe({ owner: 'bob', admin: 'yes', via: 'token', csrf: 'c2' }).csrf, null);
  assert.equal(parseMe({ owner: 'bob', admin: 'yes', via: 'token' }).admin, false);
  assert.equal(parseMe({ owner: '' }), null);
  assert.equal(parseMe(null), null);
});

test('a bearer token goes in the header and no cookie is sent', async () => {
  setToken('clt_secret');
  const calls = fakeFetch(() => ({ body: { ok: true } }));
  await api('POST', '/api/provision', { imageType: 'alpine' });
  const { init } = calls[0];
  assert.equal(init.credentials, 'omit');
  assert.equal(init.headers.Authorization, 'Bearer clt_secret');
  assert.equal(init.headers['X-CSRF-Token'], undefined);
});

test('a session sends the cookie, and the CSRF token on every change but not on reads', async () => {
  const calls = fakeFetch((url) =>
    url === '/api/me' ? { body: { owner: 'alice', admin: false, via: 'session', csrf: 'csrf-1' } } : { body: {} },
  );
  const me = await whoAmI({ quiet: true });
  assert.equal(me.owner, 'alice');
  assert.equal(hasSession(), true);
  await api('GET', '/api/containers');
  await api('POST', '/api/provision', { imageType: 'alpine' });
  await api('DELETE', '/api/containers/x');
  const [, get, post, del] = calls;
  for (const call of calls) {
    assert.equal(call.init.credentials, 'same-origin');
    assert.equal(call.init.headers.Authorization, undefined);
  }
  assert.equal(get.init.headers['X-CSRF-Token'], undefined);
  assert.equal(post.init.headers['X-CSRF-Token'], 'csrf-1');
  assert.equal(del.init.headers['X-CSRF-Token'], 'csrf-1');
  assert.deepEqual(authorize('PUT', { 'Content-Type': 'application/octet-stream' }), {
    headers: { 'Content-Type': 'application/octet-stream', 'X-CSRF-Token': 'csrf-1' },
    credentials: 'same-origin',
  });
  assert.deepEqual(authorize('HEAD').headers, {});
});

test('a CSRF refusal re-reads the token once and sends the request again', async () => {
  setSession('stale');
  let csrfChecks = 0;
  const calls = fakeFetch((url, init) => {
    if (url === '/api/me') return { body: { owner: 'alice', via: 'session', csrf: 'fresh' } };
    csrfChecks += 1;
    return init.headers['X-CSRF-Token'] === 'fresh'
      ? { status: 201, body: { id: 'x' } }
      : { status: 403, body: { error: { code: 'csrf', message: 'missing or wrong CSRF token' } } };
  });
  assert.deepEqual(await api('POST', '/api/tokens', { name: 'laptop' }), { id: 'x' });
  assert.deepEqual(calls.map((c) => c.url), ['/api/tokens', '/api/me', '/api/tokens']);
  assert.equal(csrfChecks, 2);
  // A second refusal is the caller's to show; no loop.
  fakeFetch((url) =>
    url === '/api/me'
      ? { body: { owner: 'alice', via: 'session', csrf: 'again' } }
      : { status: 403, body: { error: { code: 'csrf', message: 'no' } } },
  );
  await assert.rejects(api('POST', '/api/tokens', {}), (error) => error.code === 'csrf');
});

test('nobody signed in: /api/me answers null and the page is not signed out', async () => {
  fakeFetch(() => ({ status: 401, body: { error: { code: 'unauthorized', message: 'sign in' } } }));
  assert.equal(await whoAmI({ quiet: true }), null);
  assert.equal(hasSession(), false);
});

test('a session asks for stream tickets with its CSRF token; single-user needs none', async () => {
  const calls = fakeFetch(() => ({ body: { ticket: 'tkt_abc' } }));
  assert.equal(await ticketed('/api/events', { route: 'events' }), '/api/events');
  assert.equal(calls.length, 0);
  setSession('csrf-2');
  assert.equal(await ticketed('/ws/logs/l1?tail=5', { route: 'logs', leaseId: 'l1' }), '/ws/logs/l1?tail=5&ticket=tkt_abc');
  assert.equal(calls[0].url, '/api/tickets');
  assert.equal(calls[0].init.headers['X-CSRF-Token'], 'csrf-2');
});

test('signing out posts to /auth/logout with the CSRF token and forgets the session', async () => {
  setSession('csrf-3');
  const calls = fakeFetch(() => ({ status: 204 }));
  await endSession();
  assert.equal(calls[0].url, '/auth/logout');
  assert.equal(calls[0].init.method, 'POST');
  assert.equal(calls[0].init.headers['X-CSRF-Token'], 'csrf-3');
  assert.equal(hasSession(), false);
  setSession('csrf-4');
  const more = fakeFetch(() => ({ status: 401, body: { error: { code: 'unauthorized', message: 'gone' } } }));
  await endSession({ everywhere: true });
  assert.equal(more[0].url, '/auth/logout-everywhere');
  assert.equal(hasSession(), false);
});
