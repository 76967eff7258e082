// The escape-sequence parser on its own: what it hands its handler.
// Run: node --test adapters/http/ui-tests/

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Parser } from '../ui/terminal/parser.js';

/** A parser with a handler that records every call. */
function recorder() {
  const calls = [];
  const handler = {
    print: (text) => calls.push(['print', text]),
    execute: (code) => calls.push(['execute', code]),
    csi: (final, params, prefix, inter) => calls.push(['csi', final, params, prefix, inter]),
    esc: (final, inter) => calls.push(['esc', final, inter]),
    osc: (text) => calls.push(['osc', text]),
  };
  return { parser: new Parser(handler), calls };
}

const bytes = (text) => new TextEncoder().encode(text);

test('printable runs and C0 controls are separated', () => {
  const { parser, calls } = recorder();
  parser.write(bytes('ab\r\ncd\x07'));
  assert.deepEqual(calls, [['print', 'ab'], ['execute', 13], ['execute', 10], ['print', 'cd'], ['execute', 7]]);
});

test('CSI parameters, defaults, private markers and intermediates', () => {
  const { parser, calls } = recorder();
  parser.write(bytes('\x1b[12;5H\x1b[;3H\x1b[?25l\x1b[>c\x1b[!p\x1b[m'));
  assert.deepEqual(calls, [
    ['csi', 'H', [12, 5], '', ''],
    ['csi', 'H', [-1, 3], '', ''],
    ['csi', 'l', [25], '?', ''],
    ['csi', 'c', [-1], '>', ''],
    ['csi', 'p', [-1], '', '!'],
    ['csi', 'm', [-1], '', ''],
  ]);
});

test('colon sub-parameters stay together', () => {
  const { parser, calls } = recorder();
  parser.write('\x1b[38:2::10:20:30;1m');
  assert.deepEqual(calls, [['csi', 'm', [[38, 2, -1, 10, 20, 30], 1], '', '']]);
});

test('a sequence split across chunks, byte by byte, is the same sequence', () => {
  const { parser, calls } = recorder();
  for (const byte of bytes('\x1b[31;1mhi\x1b]0;title\x07')) parser.write(new Uint8Array([byte]));
  assert.deepEqual(calls, [
    ['csi', 'm', [31, 1], '', ''],
    ['print', 'h'],
    ['print', 'i'],
    ['osc', '0;title'],
  ]);
});

test('UTF-8 characters split across chunks are joined', () => {
  const { parser, calls } = recorder();
  const data = bytes('é€😀');
  assert.equal(data.length, 2 + 3 + 4);
  // Cut inside each character.
  parser.write(data.slice(0, 1));
  parser.write(data.slice(1, 3));
  parser.write(data.slice(3, 6));
  parser.write(data.slice(6, 8));
  parser.write(data.slice(8));
  assert.equal(calls.map((c) => c[1]).join(''), 'é€😀');
});

test('malformed UTF-8 becomes U+FFFD and parsing goes on', () => {
  const { parser, calls } = recorder();
  parser.write(new Uint8Array([0x61, 0xff, 0x62, 0x1b, 0x5b, 0x41]));
  assert.deepEqual(calls, [['print', 'a\ufffdb'], ['csi', 'A', [-1], '', '']]);
});

test('controls execute inside a CSI sequence; CAN aborts it; ESC restarts', () => {
  const { parser, calls } = recorder();
  parser.write('\x1b[1\n;2H\x1b[5\x18X\x1b[3\x1b[4B');
  assert.deepEqual(calls, [
    ['execute', 10],
    ['csi', 'H', [1, 2], '', ''],
    ['print', 'X'],
    ['csi', 'B', [4], '', ''],
  ]);
});

test('escape sequences with intermediates, OSC ended by ST, DCS swallowed', () => {
  const { parser, calls } = recorder();
  parser.write('\x1b(0\x1b7\x1b]2;a b\x1b\\\x1bPq#0;2;0;0;0\x1b\\ok');
  assert.deepEqual(calls, [
    ['esc', '0', '('],
    ['esc', '7', ''],
    ['osc', '2;a b'],
    ['esc', '\\', ''],
    ['esc', '\\', ''],
    ['print', 'ok'],
  ]);
});

test('hostile input: huge parameters are clamped, long OSC strings cut', () => {
  const { parser, calls } = recorder();
  parser.write(`\x1b[${'9'.repeat(50)}A\x1b]0;${'x'.repeat(100000)}\x07`);
  assert.deepEqual(calls[0], ['csi', 'A', [65535], '', '']);
  assert.equal(calls[1][0], 'osc');
  assert.ok(calls[1][1].length <= 4096);
  parser.write(`\x1b[${'1;'.repeat(1000)}m`);
  assert.ok(calls[2][2].length <= 32);
});

test('a malformed CSI (parameter after an intermediate) is ignored whole', () => {
  const { parser, calls } = recorder();
  parser.write('\x1b[1 2Hz');
  assert.deepEqual(calls, [['print', 'z']]);
});
