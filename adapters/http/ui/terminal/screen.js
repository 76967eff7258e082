// The screen: a grid of cells (a character and its attributes) with the
// cursor, scroll region, tab stops, modes, the alternate screen and the
// main screen's scrollback. It is the parser's handler (print, execute,
// csi, esc, osc) and knows nothing of the DOM: the view asks it what
// changed (`dirty` rows, lines `scrolledOut` to the scrollback).

import { DEFAULT_ATTR, applySgr, eraseAttr } from './sgr.js';
import { charWidth } from './width.js';

/** Lines kept above the screen by default. */
export const SCROLLBACK_LINES = 5000;

const BLANK = ' ';
/** The second cell of a wide character holds this (nothing to draw). */
export const WIDE_TAIL = '';
/** DEC special graphics (ESC ( 0): line drawing for 0x5f..0x7e. */
const DEC_GRAPHICS = {
  _: ' ', '`': '◆', a: '▒', b: '␉', c: '␌', d: '␍', e: '␊', f: '°', g: '±', h: '␤', i: '␋',
  j: '┘', k: '┐', l: '┌', m: '└', n: '┼', o: '⎺', p: '⎻', q: '─', r: '⎼', s: '⎽', t: '├',
  u: '┤', v: '┴', w: '┬', x: '│', y: '≤', z: '≥', '{': 'π', '|': '≠', '}': '£', '~': '·',
};
const COMBINING = /^\p{M}$/u;

/** One row of cells; `wrapped` when its text goes on in the next row. A
 * wide character takes two cells: itself, then WIDE_TAIL. */
export class Line {
  constructor(cols, attr = DEFAULT_ATTR) {
    this.chars = new Array(cols).fill(BLANK);
    this.attrs = new Array(cols).fill(attr);
    this.wrapped = false;
  }

  /** The row's text, trailing blanks removed. */
  text() {
    return this.chars.join('').trimEnd();
  }

  /** Blanks cells [from, to) with `attr`. */
  erase(from, to, attr) {
    for (let x = Math.max(0, from); x < Math.min(to, this.chars.length); x += 1) {
      this.chars[x] = BLANK;
      this.attrs[x] = attr;
    }
  }

  /** Makes the row `cols` wide (cut or padded). */
  setWidth(cols) {
    const width = this.chars.length;
    if (cols < width) {
      this.chars.length = cols;
      this.attrs.length = cols;
    } else {
      for (let x = width; x < cols; x += 1) {
        this.chars.push(BLANK);
        this.attrs.push(DEFAULT_ATTR);
      }
    }
  }
}

/** A screen buffer: its lines and its own saved cursor (DECSC). */
class Buffer {
  constructor(cols, rows) {
    this.lines = Array.from({ length: rows }, () => new Line(cols));
    this.saved = null;
  }
}

const clamp = (n, low, high) => Math.max(low, Math.min(high, n));
/** A parameter with its default: missing or 0 counts as 1 for moves. */
const count = (params, i = 0) => {
  const p = Array.isArray(params[i]) ? params[i][0] : params[i];
  return p > 0 ? p : 1;
};
const param = (params, i, fallback) => {
  const p = Array.isArray(params[i]) ? params[i][0] : params[i];
  return p === undefined || p < 0 ? fallback : p;
};

/** The screen state; `hooks` are `reply(text)`, `bell()`, `title(text)`. */
export class Screen {
  constructor(cols = 80, rows = 24, hooks = {}, scrollbackLimit = SCROLLBACK_LINES) {
    this.hooks = hooks;
    this.scrollbackLimit = scrollbackLimit;
    this.cols = cols;
    this.rows = rows;
    this.scrollback = [];
    this.scrolledOut = [];
    this.scrollbackCleared = false;
    this.dirty = new Set();
    this.title = '';
    this.fullReset();
  }

  /** RIS: everything back to the start (the scrollback stays). */
  fullReset() {
    this.main = new Buffer(this.cols, this.rows);
    this.alt = new Buffer(this.cols, this.rows);
    this.buffer = this.main;
    this.x = 0;
    this.y = 0;
    this.attr = DEFAULT_ATTR;
    this.pendingWrap = false;
    this.lastChar = null;
    this.charsets = ['B', 'B'];
    this.shift = 0; // which of G0/G1 is in use (SI/SO)
    this.top = 0;
    this.bottom = this.rows - 1;
    this.modes = {
      cursorKeys: false, // DECCKM: arrows send ESC O x
      keypad: false, // DECKPAM
      autowrap: true, // DECAWM
      origin: false, // DECOM
      insert: false, // IRM
      newline: false, // LNM: LF also returns the carriage
      cursorVisible: true, // DECTCEM
      bracketedPaste: false, // 2004
    };
    this.resetTabs();
    this.markAll();
  }

  /** The lines on screen. */
  get lines() {
    return this.buffer.lines;
  }

  /** Whether the alternate screen is shown. */
  get altScreen() {
    return this.buffer === this.alt;
  }

  /** The text of screen row `y` (trailing blanks removed). */
  lineText(y) {
    return this.lines[y]?.text() ?? '';
  }

  /** The screen's text, one line per row, trailing blank rows removed. */
  text() {
    return this.lines.map((line) => line.text()).join('\n').replace(/\n+$/, '');
  }

  markAll() {
    for (let y = 0; y < this.rows; y += 1) this.dirty.add(y);
  }

  markRange(from, to) {
    for (let y = from; y <= to; y += 1) this.dirty.add(y);
  }

  resetTabs() {
    this.tabs = new Set();
    for (let x = 8; x < this.cols; x += 8) this.tabs.add(x);
  }

  // ------------------------------------------------------------ printing

  /** Writes printable text at the cursor. */
  print(text) {
    for (const char of text) {
      const code = char.codePointAt(0);
      if (code >= 0x80 && code <= 0x9f) continue; // C1 controls: not printed
      if (code >= 0x300 && COMBINING.test(char)) {
        this.combine(char);
        continue;
      }
      this.printChar(this.charsets[this.shift] === '0' ? DEC_GRAPHICS[char] ?? char : char, code);
    }
  }

  printChar(char, code = char.codePointAt(0)) {
    const width = this.cols > 1 ? charWidth(code) : 1;
    if (this.pendingWrap && this.modes.autowrap) this.wrap();
    // A wide character that does not fit in the last column goes to the next row.
    if (width === 2 && this.x === this.cols - 1) {
      if (this.modes.autowrap) this.wrap();
      else this.x -= 1;
    }
    this.pendingWrap = false;
    const line = this.lines[this.y];
    if (this.modes.insert) this.insertBlanks(width);
    this.clearWide(line, this.x);
    if (width === 2) this.clearWide(line, this.x + 1);
    line.chars[this.x] = char;
    line.attrs[this.x] = this.attr;
    if (width === 2) {
      line.chars[this.x + 1] = WIDE_TAIL;
      line.attrs[this.x + 1] = this.attr;
    }
    this.dirty.add(this.y);
    this.lastChar = char;
    const last = this.x + width - 1;
    if (last >= this.cols - 1) {
      this.x = this.cols - 1;
      this.pendingWrap = this.modes.autowrap;
    } else {
      this.x = last + 1;
    }
  }

  wrap() {
    this.lines[this.y].wrapped = true;
    this.x = 0;
    this.index();
  }

  /** Before cell `x` is written: the other half of a wide character there becomes a blank. */
  clearWide(line, x) {
    if (line.chars[x] === WIDE_TAIL && x > 0) line.chars[x - 1] = BLANK;
    if (line.chars[x + 1] === WIDE_TAIL) line.chars[x + 1] = BLANK;
  }

  /** A combining mark joins the character before the cursor. */
  combine(mark) {
    let x = this.pendingWrap ? this.x : this.x - 1;
    const line = this.lines[this.y];
    if (line.chars[x] === WIDE_TAIL) x -= 1;
    if (x < 0) return;
    line.chars[x] += mark;
    this.dirty.add(this.y);
  }

  // ------------------------------------------------------------ controls

  /** A C0 control character. */
  execute(code) {
    switch (code) {
      case 0x07:
        this.hooks.bell?.();
        break;
      case 0x08:
        if (this.x > 0) this.x -= 1;
        this.pendingWrap = false;
        break;
      case 0x09:
        this.tabForward(1);
        break;
      case 0x0a:
      case 0x0b:
      case 0x0c:
        this.index();
        if (this.modes.newline) this.x = 0;
        break;
      case 0x0d:
        this.x = 0;
        this.pendingWrap = false;
        break;
      case 0x0e:
        this.shift = 1;
        break;
      case 0x0f:
        this.shift = 0;
        break;
      default:
    }
  }

  tabForward(n) {
    for (let i = 0; i < n; i += 1) {
      let x = this.x + 1;
      while (x < this.cols - 1 && !this.tabs.has(x)) x += 1;
      this.x = Math.min(x, this.cols - 1);
    }
    this.pendingWrap = false;
  }

  tabBackward(n) {
    for (let i = 0; i < n; i += 1) {
      let x = this.x - 1;
      while (x > 0 && !this.tabs.has(x)) x -= 1;
      this.x = Math.max(0, x);
    }
    this.pendingWrap = false;
  }

  /** IND / LF: down one row, scrolling the region at its bottom. */
  index() {
    this.pendingWrap = false;
    if (this.y === this.bottom) this.scrollUp(1);
    else if (this.y < this.rows - 1) this.y += 1;
  }

  /** RI: up one row, scrolling the region down at its top. */
  reverseIndex() {
    this.pendingWrap = false;
    if (this.y === this.top) this.scrollDown(1);
    else if (this.y > 0) this.y -= 1;
  }

  /** Scrolls the region up `n` lines; with `keep`, on the main screen with
   * the region at the top, the lines leaving go to the scrollback. */
  scrollUp(n, keep = true) {
    n = Math.min(n, this.bottom - this.top + 1);
    const blank = eraseAttr(this.attr);
    const { lines } = this;
    let removed;
    if (n === 1 && this.top === 0 && this.bottom === lines.length - 1) {
      // The common case (a line feed at the bottom of the whole screen).
      removed = [lines.shift()];
      lines.push(new Line(this.cols, blank));
    } else {
      removed = lines.splice(this.top, n);
      const fresh = Array.from({ length: n }, () => new Line(this.cols, blank));
      lines.splice(this.bottom - n + 1, 0, ...fresh);
    }
    if (keep && this.buffer === this.main && this.top === 0) this.keep(removed);
    this.markRange(this.top, this.bottom);
  }

  /** Scrolls the region down `n` lines (blank lines enter at its top). */
  scrollDown(n) {
    n = Math.min(n, this.bottom - this.top + 1);
    const blank = eraseAttr(this.attr);
    this.lines.splice(this.bottom - n + 1, n);
    const fresh = Array.from({ length: n }, () => new Line(this.cols, blank));
    this.lines.splice(this.top, 0, ...fresh);
    this.markRange(this.top, this.bottom);
  }

  /** Adds lines to the scrollback, dropping the oldest beyond the limit. */
  keep(lines) {
    if (this.scrollbackLimit <= 0) return;
    for (const line of lines) {
      this.scrollback.push(line);
      this.scrolledOut.push(line);
    }
    // Trimmed in batches: removing from the front of an array moves it all.
    const slack = Math.ceil(this.scrollbackLimit / 4);
    if (this.scrollback.length > this.scrollbackLimit + slack) this.trim(this.scrollback);
    if (this.scrolledOut.length > this.scrollbackLimit + slack) this.trim(this.scrolledOut);
  }

  trim(lines) {
    lines.splice(0, lines.length - this.scrollbackLimit);
  }

  /** The scrollback's lines (at most the limit), oldest first. */
  scrollbackLines() {
    if (this.scrollback.length > this.scrollbackLimit) this.trim(this.scrollback);
    return this.scrollback;
  }

  /** The lines scrolled out since the last call (for the view). */
  takeScrolledOut() {
    if (this.scrolledOut.length > this.scrollbackLimit) this.trim(this.scrolledOut);
    const lines = this.scrolledOut;
    this.scrolledOut = [];
    return lines;
  }

  // ------------------------------------------------------------ cursor

  moveTo(x, y) {
    const top = this.modes.origin ? this.top : 0;
    const bottom = this.modes.origin ? this.bottom : this.rows - 1;
    this.x = clamp(x, 0, this.cols - 1);
    this.y = clamp(y + top, top, bottom);
    this.pendingWrap = false;
  }

  moveX(x) {
    this.x = clamp(x, 0, this.cols - 1);
    this.pendingWrap = false;
  }

  /** Up `n`, stopping at the top margin when inside the region. */
  up(n) {
    const limit = this.y >= this.top ? this.top : 0;
    this.y = Math.max(limit, this.y - n);
    this.pendingWrap = false;
  }

  /** Down `n`, stopping at the bottom margin when inside the region. */
  down(n) {
    const limit = this.y <= this.bottom ? this.bottom : this.rows - 1;
    this.y = Math.min(limit, this.y + n);
    this.pendingWrap = false;
  }

  saveCursor() {
    this.buffer.saved = {
      x: this.x,
      y: this.y,
      attr: this.attr,
      pendingWrap: this.pendingWrap,
      origin: this.modes.origin,
      autowrap: this.modes.autowrap,
      charsets: [...this.charsets],
      shift: this.shift,
    };
  }

  restoreCursor() {
    const saved = this.buffer.saved;
    if (!saved) {
      this.attr = DEFAULT_ATTR;
      this.modes.origin = false;
      this.moveTo(0, 0);
      return;
    }
    this.x = clamp(saved.x, 0, this.cols - 1);
    this.y = clamp(saved.y, 0, this.rows - 1);
    this.attr = saved.attr;
    this.pendingWrap = saved.pendingWrap && this.x === this.cols - 1;
    this.modes.origin = saved.origin;
    this.modes.autowrap = saved.autowrap;
    this.charsets = [...saved.charsets];
    this.shift = saved.shift;
  }

  // ------------------------------------------------------------ editing

  /** ED: 0 below (from the cursor), 1 above (to the cursor), 2 all, 3 scrollback. */
  eraseDisplay(mode) {
    const blank = eraseAttr(this.attr);
    this.pendingWrap = false;
    if (mode === 3) {
      this.scrollback = [];
      this.scrolledOut = [];
      this.scrollbackCleared = true;
      return;
    }
    const [from, to] = mode === 0 ? [this.y + 1, this.rows] : mode === 1 ? [0, this.y] : [0, this.rows];
    for (let y = from; y < to; y += 1) {
      this.lines[y].erase(0, this.cols, blank);
      this.lines[y].wrapped = false;
    }
    this.markRange(from, to - 1);
    if (mode === 0 || mode === 1) this.eraseLine(mode);
  }

  /** EL: 0 to the right (cursor included), 1 to the left (included), 2 all. */
  eraseLine(mode) {
    const line = this.lines[this.y];
    const blank = eraseAttr(this.attr);
    if (mode === 0) line.erase(this.x, this.cols, blank);
    else if (mode === 1) line.erase(0, this.x + 1, blank);
    else line.erase(0, this.cols, blank);
    if (mode !== 1) line.wrapped = false;
    this.pendingWrap = false;
    this.dirty.add(this.y);
  }

  /** ICH: `n` blanks at the cursor, the rest of the row moving right. */
  insertBlanks(n) {
    const line = this.lines[this.y];
    n = Math.min(n, this.cols - this.x);
    const blank = eraseAttr(this.attr);
    line.chars.splice(this.x, 0, ...new Array(n).fill(BLANK));
    line.attrs.splice(this.x, 0, ...new Array(n).fill(blank));
    line.setWidth(this.cols);
    this.dirty.add(this.y);
  }

  /** DCH: deletes `n` cells at the cursor, the rest moving left. */
  deleteChars(n) {
    const line = this.lines[this.y];
    n = Math.min(n, this.cols - this.x);
    line.chars.splice(this.x, n);
    line.attrs.splice(this.x, n);
    const blank = eraseAttr(this.attr);
    for (let i = 0; i < n; i += 1) {
      line.chars.push(BLANK);
      line.attrs.push(blank);
    }
    this.pendingWrap = false;
    this.dirty.add(this.y);
  }

  /** IL / DL: lines in or out at the cursor row, inside the scroll region. */
  insertLines(n, remove) {
    if (this.y < this.top || this.y > this.bottom) return;
    const top = this.top;
    this.top = this.y;
    if (remove) this.scrollUp(n, false);
    else this.scrollDown(n);
    this.top = top;
    this.x = 0;
    this.pendingWrap = false;
  }

  // ------------------------------------------------------------ modes

  setMode(params, prefix, on) {
    for (const raw of params) {
      const mode = Array.isArray(raw) ? raw[0] : raw;
      if (prefix === '?') this.setPrivateMode(mode, on);
      else if (prefix === '' && mode === 4) this.modes.insert = on;
      else if (prefix === '' && mode === 20) this.modes.newline = on;
    }
  }

  setPrivateMode(mode, on) {
    switch (mode) {
      case 1:
        this.modes.cursorKeys = on;
        break;
      case 6:
        this.modes.origin = on;
        this.moveTo(0, 0);
        break;
      case 7:
        this.modes.autowrap = on;
        if (!on) this.pendingWrap = false;
        break;
      case 25:
        this.modes.cursorVisible = on;
        this.dirty.add(this.y);
        break;
      case 47:
      case 1047:
        this.switchScreen(on, mode === 1047);
        break;
      case 1048:
        if (on) this.saveCursor();
        else this.restoreCursor();
        break;
      case 1049:
        if (on) {
          this.saveCursor();
          this.switchScreen(true, true);
        } else {
          this.switchScreen(false, false);
          this.restoreCursor();
        }
        break;
      case 2004:
        this.modes.bracketedPaste = on;
        break;
      default:
      // Mouse reporting (9, 1000-1006, 1015), focus events (1004),
      // cursor blinking (12) and others are not supported: ignored.
    }
  }

  /** To the alternate screen (`alt`) or back; `clear` blanks the alternate
   * screen on the way in or out. */
  switchScreen(alt, clear) {
    if (alt === this.altScreen) return;
    if (!alt && clear) this.alt = new Buffer(this.cols, this.rows);
    if (alt && clear) {
      const saved = this.alt.saved;
      this.alt = new Buffer(this.cols, this.rows);
      this.alt.saved = saved;
    }
    this.buffer = alt ? this.alt : this.main;
    this.pendingWrap = false;
    this.markAll();
  }

  // ------------------------------------------------------------ dispatch

  /** A CSI sequence from the parser. */
  csi(final, params, prefix, intermediates) {
    if (intermediates) return this.csiWithIntermediate(final, params, prefix, intermediates);
    if (prefix === '?' || prefix === '>' || prefix === '=') return this.csiPrivate(final, params, prefix);
    if (prefix) return;
    const n = count(params);
    switch (final) {
      case '@': return this.insertBlanks(n);
      case 'A': return this.up(n);
      case 'B': case 'e': return this.down(n);
      case 'C': case 'a': return this.moveX(this.x + n);
      case 'D': return this.moveX(this.x - n);
      case 'E': this.down(n); return this.moveX(0);
      case 'F': this.up(n); return this.moveX(0);
      case 'G': case '`': return this.moveX(n - 1);
      case 'H': case 'f': return this.moveTo(count(params, 1) - 1, n - 1);
      case 'I': return this.tabForward(n);
      case 'J': return this.eraseDisplay(param(params, 0, 0));
      case 'K': return this.eraseLine(param(params, 0, 0));
      case 'L': return this.insertLines(n, false);
      case 'M': return this.insertLines(n, true);
      case 'P': return this.deleteChars(n);
      case 'S': return this.scrollUp(n, false);
      case 'T': return params.length <= 1 ? this.scrollDown(n) : undefined;
      case 'X': return this.eraseChars(n);
      case 'Z': return this.tabBackward(n);
      case 'b': return this.repeat(n);
      case 'c': return param(params, 0, 0) === 0 ? this.reply('\x1b[?1;2c') : undefined;
      case 'd': return this.moveTo(this.x, n - 1);
      case 'g': return this.clearTabs(param(params, 0, 0));
      case 'h': return this.setMode(params, '', true);
      case 'l': return this.setMode(params, '', false);
      case 'm': this.attr = applySgr(this.attr, params); return undefined;
      case 'n': return this.statusReport(param(params, 0, 0), '');
      case 'r': return this.setMargins(param(params, 0, 1), param(params, 1, this.rows));
      case 's': return params.length <= 1 ? this.saveCursor() : undefined;
      case 'u': return this.restoreCursor();
      default: return undefined; // XTWINOPS (t) and others: ignored
    }
  }

  csiPrivate(final, params, prefix) {
    if (prefix === '?' && (final === 'h' || final === 'l')) return this.setMode(params, '?', final === 'h');
    if (prefix === '?' && final === 'n') return this.statusReport(param(params, 0, 0), '?');
    if (prefix === '>' && final === 'c') return this.reply('\x1b[>0;0;0c');
    return undefined; // modifyOtherKeys (> m), DECRQM and others: ignored
  }

  csiWithIntermediate(final, params, prefix, intermediates) {
    if (intermediates === '!' && final === 'p' && !prefix) this.softReset();
    // DECSCUSR (SP q), DECRQM ($ p) and others: ignored
  }

  eraseChars(n) {
    this.lines[this.y].erase(this.x, this.x + n, eraseAttr(this.attr));
    this.pendingWrap = false;
    this.dirty.add(this.y);
  }

  /** REP: the last printed character `n` more times. */
  repeat(n) {
    if (this.lastChar === null) return;
    const char = this.lastChar;
    for (let i = 0; i < Math.min(n, this.cols * this.rows); i += 1) this.printChar(char);
  }

  clearTabs(mode) {
    if (mode === 0) this.tabs.delete(this.x);
    else if (mode === 3) this.tabs.clear();
  }

  /** DSR: 5 = status ("OK"), 6 = where the cursor is. */
  statusReport(kind, prefix) {
    if (kind === 5) this.reply('\x1b[0n');
    if (kind === 6) {
      const row = this.y - (this.modes.origin ? this.top : 0) + 1;
      this.reply(`\x1b[${prefix}${row};${this.x + 1}R`);
    }
  }

  /** DECSTBM: the scroll region (1-based, inclusive); the cursor goes home. */
  setMargins(top, bottom) {
    const t = Math.max(1, top) - 1;
    const b = Math.min(bottom === 0 ? this.rows : bottom, this.rows) - 1;
    if (t >= b) return;
    this.top = t;
    this.bottom = b;
    this.moveTo(0, 0);
  }

  /** DECSTR: modes and attributes back to their defaults, text kept. */
  softReset() {
    Object.assign(this.modes, {
      cursorKeys: false, keypad: false, autowrap: true, origin: false, insert: false, cursorVisible: true,
    });
    this.attr = DEFAULT_ATTR;
    this.top = 0;
    this.bottom = this.rows - 1;
    this.charsets = ['B', 'B'];
    this.shift = 0;
    this.buffer.saved = null;
    this.pendingWrap = false;
  }

  /** An escape sequence other than CSI. */
  esc(final, intermediates) {
    if (intermediates === '(' || intermediates === ')') {
      this.charsets[intermediates === '(' ? 0 : 1] = final;
      return;
    }
    if (intermediates === '#' && final === '8') return this.alignmentTest();
    if (intermediates) return;
    switch (final) {
      case '7': return this.saveCursor();
      case '8': return this.restoreCursor();
      case 'D': return this.index();
      case 'E': this.index(); return this.moveX(0);
      case 'M': return this.reverseIndex();
      case 'H': this.tabs.add(this.x); return undefined;
      case 'c': return this.fullReset();
      case '=': this.modes.keypad = true; return undefined;
      case '>': this.modes.keypad = false; return undefined;
      default: return undefined;
    }
  }

  /** DECALN: the screen filled with E. */
  alignmentTest() {
    for (const line of this.lines) {
      line.chars.fill('E');
      line.attrs.fill(DEFAULT_ATTR);
    }
    this.top = 0;
    this.bottom = this.rows - 1;
    this.moveTo(0, 0);
    this.markAll();
  }

  /** An OSC string: 0 and 2 set the title; the rest is ignored. */
  osc(text) {
    const at = text.indexOf(';');
    const kind = at < 0 ? text : text.slice(0, at);
    if ((kind === '0' || kind === '2') && at >= 0) {
      this.title = text.slice(at + 1);
      this.hooks.title?.(this.title);
    }
  }

  reply(text) {
    this.hooks.reply?.(text);
  }

  // ------------------------------------------------------------ size

  /** New size: rows are cut or padded (no reflow); on the main screen,
   * rows cut above the cursor go to the scrollback. */
  resize(cols, rows) {
    cols = Math.max(1, cols);
    rows = Math.max(1, rows);
    if (cols === this.cols && rows === this.rows) return;
    for (const buffer of [this.main, this.alt]) {
      for (const line of buffer.lines) line.setWidth(cols);
      const isCurrent = buffer === this.buffer;
      while (buffer.lines.length > rows) {
        // Keep the cursor's row on screen: drop from the top while it is low.
        if (isCurrent && this.y > 0 && this.y >= rows) {
          const [gone] = buffer.lines.splice(0, 1);
          if (buffer === this.main) this.keep([gone]);
          this.y -= 1;
        } else {
          buffer.lines.pop();
        }
      }
      while (buffer.lines.length < rows) buffer.lines.push(new Line(cols));
    }
    this.cols = cols;
    this.rows = rows;
    this.top = 0;
    this.bottom = rows - 1;
    this.x = clamp(this.x, 0, cols - 1);
    this.y = clamp(this.y, 0, rows - 1);
    this.pendingWrap = false;
    this.resetTabs();
    this.dirty.clear();
    this.markAll();
  }
}
