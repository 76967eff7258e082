// The API client's answer to network failures: reads are tried again,
// writes are not.
// Run: node --test adapters/http/ui-tests/

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ApiError, api } from '../ui/api.js';

/** Replaces fetch with one that fails `failures` times, then answers `{}`; returns the calls seen. */
function flakyFetch(failures) {
  const calls = [];
  globalThis.fetch = async (path, init) => {
    calls.push(`${init.method} ${path}`);
    if (calls.length <= failures) throw new TypeError('Failed to fetch');
    return new Response('{"ok":true}', { status: 200, headers: { 'content-type': 'application/json' } });
  };
  return calls;
}

test('a read that hits a network failure is tried again and succeeds', async () => {
  const calls = flakyFetch(2);
  assert.deepEqual(await api('GET', '/api/catalog'), { ok: true });
  assert.deepEqual(calls, ['GET /api/catalog', 'GET /api/catalog', 'GET /api/catalog']);
});

test('a read gives up after its retries with a network ApiError', async () => {
  const calls = flakyFetch(100);
  await assert.rejects(api('GET', '/api/usage'), (error) => {
    assert.ok(error instanceof ApiError);
    assert.equal(error.status, 0);
    assert.equal(error.code, 'network');
    return true;
  });
  assert.equal(calls.length, 4);
});

test('a write is never sent twice', async () => {
  const calls = flakyFetch(1);
  await assert.rejects(api('POST', '/api/containers', { imageType: 'busybox' }), ApiError);
  assert.deepEqual(calls, ['POST /api/containers']);
});
