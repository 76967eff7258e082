// Keyboard and paste to bytes.
// Run: node --test adapters/http/ui-tests/

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { keyBytes, pasteBytes } from '../ui/terminal/keys.js';

const key = (k, mods = {}) => keyBytes({ key: k, ...mods }, {});

test('plain keys, Enter, Backspace, Tab, Escape', () => {
  assert.equal(key('a'), 'a');
  assert.equal(key('é'), 'é');
  assert.equal(key('Enter'), '\r');
  assert.equal(key('Backspace'), '\x7f');
  assert.equal(key('Backspace', { ctrlKey: true }), '\x08');
  assert.equal(key('Tab'), '\t');
  assert.equal(key('Tab', { shiftKey: true }), '\x1b[Z');
  assert.equal(key('Escape'), '\x1b');
});

test('Ctrl-letters and symbols give control bytes; Alt prefixes ESC', () => {
  assert.equal(key('c', { ctrlKey: true }), '\x03');
  assert.equal(key('D', { ctrlKey: true, shiftKey: true }), '\x04');
  assert.equal(key('[', { ctrlKey: true }), '\x1b');
  assert.equal(key(' ', { ctrlKey: true }), '\x00');
  assert.equal(key('b', { altKey: true }), '\x1bb');
  assert.equal(key('Enter', { altKey: true }), '\x1b\r');
  assert.equal(key('@', { ctrlKey: true, altKey: true }), '@', 'AltGr gives the character');
});

test('arrows follow DECCKM; modifiers use the xterm parameter', () => {
  assert.equal(key('ArrowUp'), '\x1b[A');
  assert.equal(keyBytes({ key: 'ArrowLeft' }, { cursorKeys: true }), '\x1bOD');
  assert.equal(key('ArrowRight', { ctrlKey: true }), '\x1b[1;5C');
  assert.equal(key('Home'), '\x1b[H');
  assert.equal(key('End'), '\x1b[F');
  assert.equal(keyBytes({ key: 'Home' }, { cursorKeys: true }), '\x1bOH');
});

test('editing keys and function keys', () => {
  assert.equal(key('PageUp'), '\x1b[5~');
  assert.equal(key('PageDown'), '\x1b[6~');
  assert.equal(key('Delete'), '\x1b[3~');
  assert.equal(key('Insert'), '\x1b[2~');
  assert.equal(key('F1'), '\x1bOP');
  assert.equal(key('F4'), '\x1bOS');
  assert.equal(key('F5'), '\x1b[15~');
  assert.equal(key('F12'), '\x1b[24~');
  assert.equal(key('F5', { shiftKey: true }), '\x1b[15;2~');
});

test('keys left to the browser', () => {
  assert.equal(key('Shift'), null);
  assert.equal(key('Dead'), null);
  assert.equal(key('c', { metaKey: true }), null);
  assert.equal(key('C', { ctrlKey: true, shiftKey: true }), null, 'copy');
  assert.equal(key('V', { ctrlKey: true, shiftKey: true }), null, 'paste');
  assert.equal(key('v', { ctrlKey: true }), null, 'paste');
  assert.equal(key('Insert', { shiftKey: true }), null, 'paste');
  assert.equal(key('Insert', { ctrlKey: true }), '\x1b[2;5~');
});

test('paste: newlines become CR; bracketed when asked; no early end marker', () => {
  assert.equal(pasteBytes('a\r\nb\nc', false), 'a\rb\rc');
  assert.equal(pasteBytes('x', true), '\x1b[200~x\x1b[201~');
  assert.equal(pasteBytes('a\x1b[201~rm -rf /\n', true), '\x1b[200~arm -rf /\r\x1b[201~');
});
