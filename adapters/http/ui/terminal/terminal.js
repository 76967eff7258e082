// The terminal emulator without the page: the parser feeding the screen,
// the keyboard and paste turned into input, and the answers the terminal
// itself gives (cursor position, device attributes) sent as input too.
// The view (view.js) draws it; shell.js connects it to a session.

import { keyBytes, pasteBytes } from './keys.js';
import { Parser } from './parser.js';
import { Screen, SCROLLBACK_LINES } from './screen.js';

/**
 * A terminal of `cols` × `rows`. `options.input(bytes)` receives what is
 * typed, pasted or answered (a Uint8Array of UTF-8); `options.title(text)`
 * and `options.bell()` are told of OSC titles and BEL.
 */
export class Terminal {
  constructor({ cols = 80, rows = 24, input = () => {}, title = () => {}, bell = () => {}, scrollback = SCROLLBACK_LINES } = {}) {
    this.encoder = new TextEncoder();
    this.input = input;
    this.screen = new Screen(cols, rows, { reply: (text) => this.send(text), title, bell }, scrollback);
    this.parser = new Parser(this.screen);
  }

  /** Program output: bytes (Uint8Array) or a string. */
  write(data) {
    this.parser.write(data);
  }

  /** Sends `text` as input. */
  send(text) {
    if (text) this.input(this.encoder.encode(text));
  }

  /** A key press (KeyboardEvent-like); whether it was sent (else it is the browser's). */
  key(event) {
    const bytes = keyBytes(event, this.screen.modes);
    if (bytes === null) return false;
    this.send(bytes);
    return true;
  }

  /** Pasted text. */
  paste(text) {
    this.send(pasteBytes(text, this.screen.modes.bracketedPaste));
  }

  /** A new size (each at least 1). */
  resize(cols, rows) {
    this.screen.resize(cols, rows);
  }

  get cols() {
    return this.screen.cols;
  }

  get rows() {
    return this.screen.rows;
  }
}
