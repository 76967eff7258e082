// The terminal panel's words for how a session ended.
// Run: node --test adapters/http/ui-tests/

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { endOf } from '../ui/shell.js';

test('an exit says the code; 0 is a normal end', () => {
  assert.deepEqual(endOf({ type: 'exit', code: 0 }), { text: 'The shell exited with code 0.', normal: true });
  assert.deepEqual(endOf({ type: 'exit', code: 130 }), { text: 'The shell exited with code 130.', normal: false });
  assert.equal(endOf({ type: 'exit', code: '<b>' }).text, 'The shell exited with code ?.');
});

test('each end reason of the protocol has its words', () => {
  const text = (reason, message) => endOf({ type: 'ended', reason, message }).text;
  assert.equal(text('expired'), 'The lease expired: the session has ended.');
  assert.equal(text('deleted'), 'The lease was deleted: the session has ended.');
  assert.equal(text('closed'), 'The session was closed.');
  assert.equal(text('timeout'), 'The session ended: nobody was attached for too long.');
  assert.equal(text('shutdown'), 'The server is shutting down: the session has ended.');
  assert.equal(text('error', 'exec failed: no such file'), 'The session failed: exec failed: no such file.');
  assert.equal(text('something new'), 'The session ended (something new).');
  assert.equal(text('constructor'), 'The session ended (constructor).');
  assert.equal(endOf({ type: 'detached' }).normal, true);
});
