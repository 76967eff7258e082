// The screen behind the parser: cursor moves, erasing, attributes, scroll
// region, alternate screen, wrapping, scrollback, answers to the program.
// Run: node --test adapters/http/ui-tests/

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { BOLD, INVERSE, UNDERLINE, cssColour } from '../ui/terminal/sgr.js';
import { Terminal } from '../ui/terminal/terminal.js';

/** A terminal of `cols` × `rows` whose input (answers) is collected as text. */
function term(cols = 10, rows = 5, scrollback = 100) {
  const sent = [];
  const decoder = new TextDecoder();
  const t = new Terminal({ cols, rows, scrollback, input: (bytes) => sent.push(decoder.decode(bytes)) });
  return { t, s: t.screen, sent };
}

const rows = (s) => s.lines.map((line) => line.text());

test('text, CR LF and the cursor', () => {
  const { t, s } = term();
  t.write('ab\r\ncd');
  assert.deepEqual(rows(s).slice(0, 2), ['ab', 'cd']);
  assert.deepEqual([s.x, s.y], [2, 1]);
});

test('cursor moves: CUU CUD CUF CUB CUP HVP CHA VPA, clamped to the screen', () => {
  const { t, s } = term();
  t.write('\x1b[3;4H');
  assert.deepEqual([s.x, s.y], [3, 2]);
  t.write('\x1b[A\x1b[2C');
  assert.deepEqual([s.x, s.y], [5, 1]);
  t.write('\x1b[9B\x1b[99D');
  assert.deepEqual([s.x, s.y], [0, 4]);
  t.write('\x1b[7G\x1b[2d');
  assert.deepEqual([s.x, s.y], [6, 1]);
  t.write('\x1b[99;99f');
  assert.deepEqual([s.x, s.y], [9, 4]);
  t.write('\x1b[H');
  assert.deepEqual([s.x, s.y], [0, 0]);
  t.write('\x1b[0A\x1b[0C'); // 0 counts as 1
  assert.deepEqual([s.x, s.y], [1, 0]);
});

test('erase in display and in line, from, to and whole', () => {
  const { t, s } = term(5, 3);
  t.write('aaaaa\r\nbbbbb\r\nccccc');
  t.write('\x1b[2;3H\x1b[K');
  assert.deepEqual(rows(s), ['aaaaa', 'bb', 'ccccc']);
  t.write('\x1b[1K');
  assert.deepEqual(rows(s), ['aaaaa', '', 'ccccc']);
  t.write('\x1b[1;3H\x1b[0J');
  assert.deepEqual(rows(s), ['aa', '', '']);
  t.write('\x1b[3;1Hzz\x1b[1J');
  assert.deepEqual(rows(s), ['', '', '']);
  t.write('\x1b[1;1Hxy\x1b[2J');
  assert.deepEqual(rows(s), ['', '', '']);
  assert.deepEqual([s.x, s.y], [2, 0], 'ED 2 does not move the cursor');
});

test('ECH, ICH, DCH edit inside a line', () => {
  const { t, s } = term(8, 2);
  t.write('abcdefgh\x1b[1;3H\x1b[2X');
  assert.equal(s.lineText(0), 'ab  efgh');
  t.write('\x1b[2@');
  assert.equal(s.lineText(0), 'ab    ef');
  t.write('\x1b[3P');
  assert.equal(s.lineText(0), 'ab ef');
  assert.deepEqual([s.x, s.y], [2, 0]);
});

test('IL and DL inside the scroll region', () => {
  const { t, s } = term(4, 5);
  t.write('1\r\n2\r\n3\r\n4\r\n5');
  t.write('\x1b[2;4r\x1b[3;2H\x1b[L');
  assert.deepEqual(rows(s), ['1', '2', '', '3', '5']);
  assert.equal(s.x, 0, 'IL returns the carriage');
  t.write('\x1b[2M');
  assert.deepEqual(rows(s), ['1', '2', '', '', '5']);
  t.write('\x1b[5;1H\x1b[L'); // outside the region: nothing
  assert.deepEqual(rows(s), ['1', '2', '', '', '5']);
});

test('a full line wraps only when the next character comes (pending wrap)', () => {
  const { t, s } = term(4, 3);
  t.write('abcd');
  assert.deepEqual([s.x, s.y], [3, 0]);
  assert.equal(s.lines[0].wrapped, false);
  t.write('e');
  assert.deepEqual(rows(s), ['abcd', 'e', '']);
  assert.equal(s.lines[0].wrapped, true);
  t.write('\x1b[2;1Hwxyz\r\n');
  assert.deepEqual(rows(s), ['abcd', 'wxyz', ''], 'CR LF after a full line adds no empty line');
  assert.deepEqual([s.x, s.y], [0, 2]);
});

test('without autowrap (DECAWM off) the last column is overwritten', () => {
  const { t, s } = term(4, 2);
  t.write('\x1b[?7labcdef');
  assert.deepEqual(rows(s), ['abcf', '']);
  t.write('\x1b[?7h');
  assert.equal(s.modes.autowrap, true);
});

test('scrolling past the bottom fills a bounded scrollback', () => {
  const { t, s } = term(6, 3, 4);
  for (let i = 1; i <= 9; i += 1) t.write(`line${i}\r\n`);
  assert.deepEqual(rows(s), ['line8', 'line9', '']);
  assert.deepEqual(s.scrollbackLines().map((l) => l.text()), ['line4', 'line5', 'line6', 'line7']);
  assert.equal(s.takeScrolledOut().length, 4, 'at most the limit is pending for the view');
  assert.equal(s.takeScrolledOut().length, 0);
  t.write('\x1b[3J');
  assert.equal(s.scrollback.length, 0);
  assert.equal(s.scrollbackCleared, true);
});

test('the default scrollback keeps 5000 lines', () => {
  const t = new Terminal({ cols: 10, rows: 2 });
  t.write('x\r\n'.repeat(6000));
  assert.equal(t.screen.scrollbackLines().length, 5000);
});

test('scroll region: LF at its bottom scrolls only the region, keeps no scrollback', () => {
  const { t, s } = term(3, 5);
  t.write('a\r\nb\r\nc\r\nd\r\ne');
  t.write('\x1b[2;4r');
  assert.deepEqual([s.x, s.y], [0, 0], 'DECSTBM homes the cursor');
  t.write('\x1b[4;1H\nX');
  assert.deepEqual(rows(s), ['a', 'c', 'd', 'X', 'e']);
  assert.equal(s.scrollback.length, 0);
  t.write('\x1b[2;1H\x1bM\x1bMY'); // RI at the top scrolls the region down
  assert.deepEqual(rows(s), ['a', 'Y', '', 'c', 'e']);
  t.write('\x1b[S');
  assert.deepEqual(rows(s), ['a', '', 'c', '', 'e']);
  t.write('\x1b[T');
  assert.deepEqual(rows(s), ['a', '', '', 'c', 'e']);
  t.write('\x1b[r');
  assert.deepEqual([s.top, s.bottom], [0, 4]);
});

test('IND, NEL, origin mode and cursor moves stop at the margins', () => {
  const { t, s } = term(5, 6);
  t.write('\x1b[2;5r\x1b[?6h');
  assert.deepEqual([s.x, s.y], [0, 1]);
  t.write('\x1b[10;3H');
  assert.deepEqual([s.x, s.y], [2, 4], 'CUP is relative to the region and stays in it');
  t.write('\x1b[6n');
  t.write('\x1b[?6l\x1b[3;3H\x1b[9A');
  assert.equal(s.y, 1, 'CUU stops at the top margin');
  t.write('\x1b[9B');
  assert.equal(s.y, 4, 'CUD stops at the bottom margin');
  t.write('\x1bEz');
  assert.deepEqual([s.x, s.y], [1, 4]);
  t.write('\x1bD');
  assert.equal(s.y, 4);
});

test('SGR: 16, 256 and truecolour, bold, underline, inverse, reset', () => {
  const { t, s } = term(20, 2);
  t.write('\x1b[31;1mA\x1b[4;7mB\x1b[0;38;5;196mC\x1b[48;2;1;2;3mD\x1b[38:2::10:20:30mE\x1b[22;39;49mF\x1b[mG\x1b[92mH');
  const a = (x) => s.lines[0].attrs[x];
  assert.equal(a(0).fg, 1);
  assert.equal(a(0).flags, BOLD);
  assert.equal(a(1).flags, BOLD | UNDERLINE | INVERSE);
  assert.deepEqual([a(2).fg, a(2).flags], [196, 0]);
  assert.deepEqual([a(3).fg, a(3).bg], [196, '#010203']);
  assert.equal(a(4).fg, '#0a141e');
  assert.deepEqual([a(5).fg, a(5).bg, a(5).flags], [null, null, 0]);
  assert.equal(a(6), a(5));
  assert.equal(a(7).fg, 10);
  assert.equal(cssColour(1), '#cd3131');
  assert.equal(cssColour(196), '#ff0000');
  assert.equal(cssColour(232), '#080808');
  assert.equal(cssColour('#010203'), '#010203');
});

test('erasing takes the background colour (bce) but not the other attributes', () => {
  const { t, s } = term(4, 2);
  t.write('\x1b[1;31;44m\x1b[2J');
  assert.deepEqual(s.lines[1].attrs[3], { fg: null, bg: 4, flags: 0 });
});

test('alternate screen 1049: saves the cursor, clears, restores the main screen', () => {
  const { t, s } = term(10, 3);
  t.write('shell$ ');
  t.write('\x1b[?1049h');
  assert.equal(s.altScreen, true);
  assert.deepEqual(rows(s), ['', '', '']);
  t.write('\x1b[2;2Hvi');
  for (let i = 0; i < 5; i += 1) t.write('\r\n');
  assert.equal(s.scrollback.length, 0, 'the alternate screen keeps no scrollback');
  t.write('\x1b[?1049l');
  assert.equal(s.altScreen, false);
  assert.deepEqual(rows(s), ['shell$', '', '']);
  assert.deepEqual([s.x, s.y], [7, 0]);
  t.write('\x1b[?1049h');
  assert.deepEqual(rows(s), ['', '', ''], 'entering again starts blank');
});

test('alternate screen 47 and 1047', () => {
  const { t, s } = term(4, 2);
  t.write('main\x1b[?47h\x1b[HALT');
  assert.deepEqual(rows(s), ['ALT', '']);
  t.write('\x1b[?47l');
  assert.deepEqual(rows(s), ['main', '']);
  t.write('\x1b[?47h');
  assert.deepEqual(rows(s), ['ALT', ''], '47 does not clear');
  t.write('\x1b[?47l\x1b[?1047h');
  t.write('\x1b[?1047l\x1b[?1047h');
  assert.deepEqual(rows(s), ['', ''], '1047 clears on the way out');
});

test('DECSC/DECRC keep position and attributes', () => {
  const { t, s } = term(10, 4);
  t.write('\x1b[3;4H\x1b[1m\x1b7\x1b[H\x1b[0mx\x1b8y');
  assert.deepEqual([s.x, s.y], [4, 2]);
  assert.equal(s.lines[2].attrs[3].flags, BOLD);
  t.write('\x1b[1;1H\x1b[s\x1b[4;4H\x1b[u');
  assert.deepEqual([s.x, s.y], [0, 0]);
});

test('tabs: default stops every 8, HTS, TBC, CHT, CBT', () => {
  const { t, s } = term(30, 2);
  t.write('a\tb');
  assert.equal(s.lineText(0), 'a       b');
  t.write('\r\x1b[3g\x1b[4G\x1bH\r\t');
  assert.equal(s.x, 3);
  t.write('\t');
  assert.equal(s.x, 29, 'no stop left: the last column');
  t.write('\x1b[Z');
  assert.equal(s.x, 3);
});

test('answers: DSR cursor position, status, device attributes', () => {
  const { t, sent } = term(10, 5);
  t.write('\x1b[3;7H\x1b[6n\x1b[5n\x1b[c\x1b[>c');
  assert.deepEqual(sent, ['\x1b[3;7R', '\x1b[0n', '\x1b[?1;2c', '\x1b[>0;0;0c']);
});

test('modes: DECTCEM, DECCKM, bracketed paste, insert mode', () => {
  const { t, s, sent } = term(6, 2);
  t.write('\x1b[?25l\x1b[?1h\x1b[?2004h');
  assert.equal(s.modes.cursorVisible, false);
  assert.equal(t.key({ key: 'ArrowUp' }), true);
  t.paste('a\nb');
  assert.deepEqual(sent, ['\x1bOA', '\x1b[200~a\rb\x1b[201~']);
  t.write('\x1b[?25h\x1b[?1l\x1b[?2004l');
  t.key({ key: 'ArrowUp' });
  assert.equal(sent.at(-1), '\x1b[A');
  t.write('abc\r\x1b[4hX\x1b[4lY');
  assert.equal(s.lineText(0), 'XYbc');
});

test('OSC 0/2 set the title; BEL rings', () => {
  let title = '';
  let bells = 0;
  const t = new Terminal({ title: (text) => { title = text; }, bell: () => { bells += 1; } });
  t.write('\x1b]0;user@box: ~\x07\x07');
  assert.equal(title, 'user@box: ~');
  assert.equal(bells, 1);
});

test('DEC line drawing charset and combining marks', () => {
  const { t, s } = term(10, 2);
  t.write('\x1b(0lqk\x1b(Bq');
  assert.equal(s.lineText(0), '┌─┐q');
  t.write('\r\ne\u0301!');
  assert.equal(s.lines[1].chars[0], 'e\u0301');
  assert.equal(s.lines[1].chars[1], '!');
});

test('REP repeats the last character', () => {
  const { t, s } = term(10, 2);
  t.write('-\x1b[4b');
  assert.equal(s.lineText(0), '-----');
});

test('resize cuts or pads, keeps the cursor row on screen, resets the region', () => {
  const { t, s } = term(6, 4);
  t.write('1\r\n2\r\n3\r\n4abcde');
  t.write('\x1b[2;3r\x1b[4;6H');
  t.resize(3, 2);
  assert.deepEqual(rows(s), ['3', '4ab']);
  assert.deepEqual(s.scrollbackLines().map((l) => l.text()), ['1', '2']);
  assert.deepEqual([s.x, s.y, s.top, s.bottom], [2, 1, 0, 1]);
  t.resize(5, 3);
  assert.deepEqual(rows(s), ['3', '4ab', '']);
  t.write('\x1b[3;1Hxyzuv');
  assert.equal(s.lineText(2), 'xyzuv');
});

test('dirty rows: only what changed', () => {
  const { t, s } = term(5, 4);
  s.dirty.clear();
  t.write('\x1b[3;1Hx');
  assert.deepEqual([...s.dirty], [2]);
  s.dirty.clear();
  t.write('\x1b[2J');
  assert.equal(s.dirty.size, 4);
});

test('soft and full reset', () => {
  const { t, s } = term(5, 3);
  t.write('ab\x1b[?7l\x1b[1m\x1b[2;3r\x1b[!p');
  assert.equal(s.modes.autowrap, true);
  assert.equal(s.attr.flags, 0);
  assert.equal(s.lineText(0), 'ab');
  t.write('\x1bc');
  assert.deepEqual(rows(s), ['', '', '']);
  assert.deepEqual([s.x, s.y, s.top, s.bottom], [0, 0, 0, 2]);
});

test('hostile output does not break the screen', () => {
  const { t, s } = term(8, 3);
  t.write('\x1b[65535;65535H\x1b[65535@\x1b[65535P\x1b[65535L\x1b[65535M\x1b[65535S\x1b[65535T\x1b[65535X\x1b[65535b');
  t.write('\x1b[5;2r\x1b[0;0r\x1b[?1049l\x1b8\x1b[u');
  t.write(new Uint8Array(Array.from({ length: 4096 }, (_, i) => i % 256)));
  assert.equal(s.lines.length, 3);
  for (const line of s.lines) assert.equal(line.chars.length, 8);
  assert.ok(s.x >= 0 && s.x < 8 && s.y >= 0 && s.y < 3);
});

test('wide characters take two cells and wrap whole', () => {
  const { t, s } = term(5, 3);
  t.write('a中b');
  assert.deepEqual(s.lines[0].chars, ['a', '中', '', 'b', ' ']);
  assert.equal(s.x, 4);
  assert.equal(s.lineText(0), 'a中b');
  t.write('😀');
  assert.deepEqual(s.lines[0].chars.slice(4), [' '], 'no room in the last column: it wraps');
  assert.deepEqual(s.lines[1].chars.slice(0, 2), ['😀', '']);
  assert.deepEqual([s.x, s.y], [2, 1]);
  t.write('\x1b[1;3Hx');
  assert.deepEqual(s.lines[0].chars.slice(0, 4), ['a', ' ', 'x', 'b'], 'writing over half of it blanks the other half');
  t.write('\x1b[2;1Hy');
  assert.deepEqual(s.lines[1].chars.slice(0, 2), ['y', ' ']);
  t.write('\x1b[3;1H한\u0301');
  assert.equal(s.lines[2].chars[0], '한\u0301', 'a combining mark joins the wide character');
});
