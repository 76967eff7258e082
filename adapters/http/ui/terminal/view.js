// The terminal on the page: rows of spans (only the rows that changed are
// redrawn, once per animation frame), the scrollback above the screen in
// the same scrolling box, the cursor, keyboard focus through a hidden
// textarea (which also takes IME and phone-keyboard text), native text
// selection for copying, paste, and the size in cells from the box's size
// (ResizeObserver and a measured cell).

import { WIDE_TAIL } from './screen.js';
import { BOLD, DIM, HIDDEN, INVERSE, ITALIC, STRIKE, UNDERLINE, cssColour, sameAttr } from './sgr.js';

const FLAG_CLASSES = [
  [BOLD, 'tb'], [DIM, 'td'], [ITALIC, 'ti'], [UNDERLINE, 'tu'], [STRIKE, 'ts'], [HIDDEN, 'th'],
];

/** A span of `text` drawn with `attr` (`wide`: one character two cells wide). */
function styledSpan(text, attr, cursor, wide) {
  const span = document.createElement('span');
  span.textContent = text;
  const classes = FLAG_CLASSES.filter(([flag]) => attr.flags & flag).map(([, name]) => name);
  if (cursor) classes.push('term-cursor');
  if (wide) classes.push('tw');
  if (classes.length) span.className = classes.join(' ');
  let fg = cssColour(attr.fg);
  let bg = cssColour(attr.bg);
  if (attr.flags & INVERSE) {
    [fg, bg] = [bg ?? 'var(--term-bg)', fg ?? 'var(--term-fg)'];
  }
  // CSSOM, not a style attribute: allowed by the page's CSP.
  if (fg) span.style.color = fg;
  if (bg) span.style.backgroundColor = bg;
  return span;
}

/** The spans of a line; `cursorX` (or -1) marks the cursor's cell. Runs of
 * cells with the same look share a span; the cursor's cell and each wide
 * character have their own. */
function lineSpans(line, cursorX) {
  const { chars, attrs } = line;
  // Trailing blanks in the default look are left out (so copied text has no
  // trailing spaces), unless the cursor is there.
  let end = chars.length;
  while (end > 0 && chars[end - 1] === ' ' && attrs[end - 1].bg === null && !(attrs[end - 1].flags & INVERSE)) end -= 1;
  end = Math.max(end, cursorX + 1);
  const spans = [];
  let text = '';
  let runAttr = null;
  const flush = () => {
    if (text) spans.push(styledSpan(text, runAttr, false, false));
    text = '';
  };
  for (let x = 0; x < end; x += 1) {
    let char = chars[x];
    const wide = char !== WIDE_TAIL && chars[x + 1] === WIDE_TAIL;
    if (char === WIDE_TAIL) {
      if (x > 0 && chars[x - 1] !== WIDE_TAIL) continue; // drawn with its character
      char = ' '; // a stray half
    }
    if (wide || x === cursorX) {
      flush();
      spans.push(styledSpan(char, attrs[x], x === cursorX, wide));
      continue;
    }
    if (runAttr === null || !sameAttr(attrs[x], runAttr)) {
      flush();
      runAttr = attrs[x];
    }
    text += char;
  }
  flush();
  return spans;
}

/**
 * The view of `terminal` inside `host` (an element sized by the page).
 * `onResize(cols, rows)` is called when the size in cells changes,
 * `onLeave()` when the user asks to leave the terminal (Ctrl+Shift+L).
 */
export class TerminalView {
  constructor(host, terminal, { onResize = () => {}, onLeave = () => {}, label = 'Terminal' } = {}) {
    this.host = host;
    this.terminal = terminal;
    this.onResize = onResize;
    this.onLeave = onLeave;
    this.frame = 0;
    this.cursorRow = -1;
    host.classList.add('term');
    host.tabIndex = -1;
    this.scroller = document.createElement('div');
    this.scroller.className = 'term-scroll';
    this.rowsEl = document.createElement('div');
    this.rowsEl.className = 'term-rows';
    this.rowsEl.setAttribute('role', 'log');
    this.rowsEl.setAttribute('aria-label', `${label} output`);
    this.scroller.append(this.rowsEl);
    this.input = document.createElement('textarea');
    this.input.className = 'term-input';
    this.input.setAttribute('aria-label', `${label} input`);
    this.input.autocapitalize = 'off';
    this.input.autocomplete = 'off';
    this.input.spellcheck = false;
    this.measure = document.createElement('span');
    this.measure.className = 'term-measure';
    this.measure.setAttribute('aria-hidden', 'true');
    this.measure.textContent = 'W'.repeat(40);
    host.replaceChildren(this.scroller, this.input, this.measure);
    this.screenRows = [];
    this.scrollbackRows = 0;
    this.buildRows();
    this.listen();
    this.observer = new ResizeObserver(() => this.fit());
    this.observer.observe(host);
    this.fit();
  }

  listen() {
    const { host, input, terminal } = this;
    // The host outlives the view (a new session gets a new view): dispose() removes these.
    this.listening = new AbortController();
    const options = { signal: this.listening.signal };
    host.addEventListener('keydown', (event) => {
      if (event.isComposing || event.key === 'Process') return;
      // Every other key goes to the program (Tab and Escape too), so this
      // one gives the keyboard back to the page: no keyboard trap.
      if (event.ctrlKey && event.shiftKey && (event.key === 'L' || event.key === 'l')) {
        event.preventDefault();
        this.onLeave();
        return;
      }
      const copying = (event.ctrlKey || event.metaKey) && (event.key === 'c' || event.key === 'C') && this.hasSelection();
      if (copying) return; // the browser copies the selection
      if (terminal.key(event)) {
        event.preventDefault();
        this.scrollToEnd();
      }
    }, options);
    // Text that came as input rather than as a key (IME, dead keys, phones).
    input.addEventListener('input', (event) => {
      if (event.isComposing) return;
      if (input.value) terminal.send(input.value);
      input.value = '';
    }, options);
    input.addEventListener('compositionend', (event) => {
      if (event.data) terminal.send(event.data);
      input.value = '';
    }, options);
    host.addEventListener('paste', (event) => {
      event.preventDefault();
      const text = event.clipboardData?.getData('text/plain') ?? '';
      if (text) terminal.paste(text);
      this.scrollToEnd();
    }, options);
    // A click (not a selection) gives the keyboard to the terminal.
    host.addEventListener('mouseup', () => {
      if (!this.hasSelection()) this.focus();
    }, options);
  }

  hasSelection() {
    const selection = window.getSelection();
    return Boolean(selection && !selection.isCollapsed && this.host.contains(selection.anchorNode));
  }

  /** Gives the keyboard to the terminal. */
  focus() {
    this.input.focus({ preventScroll: true });
  }

  /** Program output: written to the screen and drawn at the next frame. */
  write(data) {
    this.terminal.write(data);
    this.schedule();
  }

  /** A line of text of the page's own (a notice like "reconnecting…"),
   * written on its own line in the terminal, dim. */
  notice(text) {
    const screen = this.terminal.screen;
    const attr = screen.attr; // the program's colours stay as they were
    const start = screen.x > 0 || screen.pendingWrap ? '\r\n' : '';
    this.write(`${start}\x1b[0;2;3m${text}\x1b[0m\r\n`);
    screen.attr = attr;
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  /** Builds the screen's row elements (at start and after a resize). */
  buildRows() {
    for (const row of this.screenRows) row.remove();
    this.screenRows = Array.from({ length: this.terminal.rows }, () => {
      const row = document.createElement('div');
      row.className = 'term-row';
      return row;
    });
    this.rowsEl.append(...this.screenRows);
    this.terminal.screen.markAll();
    this.cursorRow = -1;
  }

  /** Draws what changed: new scrollback lines, dirty rows, the cursor. */
  render() {
    const screen = this.terminal.screen;
    const atEnd = this.atEnd();
    if (screen.scrollbackCleared) {
      while (this.scrollbackRows > 0) {
        this.rowsEl.firstChild.remove();
        this.scrollbackRows -= 1;
      }
      screen.scrollbackCleared = false;
    }
    const gone = screen.takeScrolledOut();
    if (gone.length) {
      const rows = gone.map((line) => {
        const row = document.createElement('div');
        row.className = 'term-row term-scrollback';
        row.replaceChildren(...lineSpans(line, -1));
        return row;
      });
      this.screenRows[0].before(...rows);
      this.scrollbackRows += rows.length;
      while (this.scrollbackRows > screen.scrollbackLimit) {
        this.rowsEl.firstChild.remove();
        this.scrollbackRows -= 1;
      }
    }
    const cursorRow = screen.modes.cursorVisible ? screen.y : -1;
    if (cursorRow !== this.cursorRow) {
      if (this.cursorRow >= 0) screen.dirty.add(this.cursorRow);
      if (cursorRow >= 0) screen.dirty.add(cursorRow);
    } else if (cursorRow >= 0) {
      screen.dirty.add(cursorRow); // the cursor may have moved along the row
    }
    this.cursorRow = cursorRow;
    for (const y of screen.dirty) {
      const line = screen.lines[y];
      if (!line || !this.screenRows[y]) continue;
      this.screenRows[y].replaceChildren(...lineSpans(line, y === cursorRow ? screen.x : -1));
    }
    screen.dirty.clear();
    this.host.classList.toggle('term-alt', screen.altScreen);
    this.placeInput();
    if (atEnd) this.scrollToEnd();
  }

  /** The textarea follows the cursor (IME popups appear there). */
  placeInput() {
    const { cellWidth, cellHeight } = this;
    if (!cellWidth) return;
    const s = this.terminal.screen;
    const row = this.screenRows[s.y];
    this.input.style.left = `${s.x * cellWidth}px`;
    this.input.style.top = `${(row?.offsetTop ?? 0) - this.scroller.scrollTop}px`;
    this.input.style.height = `${cellHeight}px`;
  }

  atEnd() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 4;
  }

  scrollToEnd(really = true) {
    if (really) this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  /** Measures a cell and sets the size in cells from the box. */
  fit() {
    const box = this.measure.getBoundingClientRect();
    if (!box.width || !box.height) return; // hidden
    this.cellWidth = box.width / 40;
    this.cellHeight = box.height;
    const style = getComputedStyle(this.rowsEl);
    const padding = parseFloat(style.paddingLeft) + parseFloat(style.paddingRight);
    const cols = Math.max(2, Math.floor((this.scroller.clientWidth - padding) / this.cellWidth));
    const rows = Math.max(1, Math.floor(this.scroller.clientHeight / this.cellHeight));
    this.host.dataset.cols = String(cols);
    this.host.dataset.rows = String(rows);
    if (cols === this.terminal.cols && rows === this.terminal.rows) return;
    this.terminal.resize(cols, rows);
    this.buildRows();
    this.render();
    this.scrollToEnd();
    this.onResize(cols, rows);
  }

  /** The size in cells. */
  get size() {
    return { cols: this.terminal.cols, rows: this.terminal.rows };
  }

  /** Stops observing and drawing. */
  dispose() {
    this.observer.disconnect();
    this.listening.abort();
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
  }
}
