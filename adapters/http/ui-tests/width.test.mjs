// Character widths.
// Run: node --test adapters/http/ui-tests/

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { charWidth } from '../ui/terminal/width.js';

test('wide: CJK, Hangul, fullwidth forms, emoji; narrow: the rest', () => {
  for (const char of ['中', '日', '한', 'Ａ', '😀', '🚀', '、', '𠀀']) {
    assert.equal(charWidth(char.codePointAt(0)), 2, char);
  }
  for (const char of ['a', 'é', 'ж', '─', '€', '→', 'ｱ', '☺']) {
    assert.equal(charWidth(char.codePointAt(0)), 1, char);
  }
});
