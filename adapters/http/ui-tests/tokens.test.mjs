// The Tokens panel's rules: names, expiry and last-used words, rows.
// Run: node --test adapters/http/ui-tests/

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { EXPIRY_DAYS, MAX_NAME, checkTokenName, expiryLabel, expiryOf, lastUsedOf, tokenRows } from '../ui/tokens.js';

const NOW = Date.parse('2026-03-01T12:00:00Z');

test('a token name is 1 to 64 printable characters', () => {
  assert.equal(checkTokenName('laptop'), null);
  assert.equal(checkTokenName('  ci runner  '), null);
  assert.equal(checkTokenName('é'.repeat(MAX_NAME)), null);
  assert.equal(checkTokenName('😀'.repeat(MAX_NAME)), null); // characters, not UTF-16 units
  assert.match(checkTokenName(''), /name/);
  assert.match(checkTokenName('   '), /name/);
  assert.match(checkTokenName(undefined), /name/);
  assert.match(checkTokenName('x'.repeat(MAX_NAME + 1)), /at most 64/);
  assert.match(checkTokenName('a\u0007b'), /printable/);
  assert.match(checkTokenName('a\u009bb'), /printable/);
});

test('expiry choices have words', () => {
  assert.equal(EXPIRY_DAYS[0], 90);
  assert.deepEqual(EXPIRY_DAYS.map(expiryLabel), ['90 days', '30 days', '7 days', '1 year']);
  assert.equal(expiryLabel(1), '1 day');
  assert.equal(expiryLabel(730), '2 years');
});

test('expiry says past expiry in words, not colour only', () => {
  assert.deepEqual(expiryOf(null, NOW), { text: 'Never', expired: false });
  assert.equal(expiryOf('garbage', NOW).text, 'Unknown');
  const past = expiryOf('2026-02-01T00:00:00Z', NOW);
  assert.equal(past.expired, true);
  assert.match(past.text, /^Expired /);
  const future = expiryOf('2026-06-01T00:00:00Z', NOW);
  assert.equal(future.expired, false);
  assert.match(future.text, /2026/);
});

test('last use is relative when recent', () => {
  assert.equal(lastUsedOf(null, NOW), 'Never');
  assert.equal(lastUsedOf('2026-03-01T11:59:30Z', NOW), 'Just now');
  assert.equal(lastUsedOf('2026-03-01T11:15:00Z', NOW), '45 min ago');
  assert.equal(lastUsedOf('2026-03-01T05:00:00Z', NOW), '7 h ago');
  assert.match(lastUsedOf('2026-01-01T00:00:00Z', NOW), /2026/);
  assert.equal(lastUsedOf('nope', NOW), 'Unknown');
});

test('rows: newest first, entries without id or name left out', () => {
  const rows = tokenRows({
    tokens: [
      { id: 'a', name: 'old', createdAt: '2026-01-01T00:00:00Z' },
      { id: 'b', name: 'new', createdAt: '2026-02-01T00:00:00Z' },
      { id: 7, name: 'bad id' },
      { id: 'c' },
      null,
    ],
  });
  assert.deepEqual(rows.map((r) => r.id), ['b', 'a']);
  assert.deepEqual(tokenRows(null), []);
  assert.deepEqual(tokenRows({ tokens: 'x' }), []);
});
