// The keyboard and the clipboard as the program sees them: a key press
// (a KeyboardEvent's key and modifiers) becomes the bytes an xterm sends,
// and pasted text becomes input, bracketed when the program asked (2004).

const CSI = '\x1b[';
const SS3 = '\x1bO';

/** Cursor keys: final byte of CSI/SS3 x. */
const CURSOR = { ArrowUp: 'A', ArrowDown: 'B', ArrowRight: 'C', ArrowLeft: 'D', Home: 'H', End: 'F' };
/** Keys sent as CSI n ~. */
const TILDE = {
  Insert: 2, Delete: 3, PageUp: 5, PageDown: 6,
  F5: 15, F6: 17, F7: 18, F8: 19, F9: 20, F10: 21, F11: 23, F12: 24,
};
/** F1..F4: SS3 P..S. */
const PF = { F1: 'P', F2: 'Q', F3: 'R', F4: 'S' };
/** Ctrl with these characters gives a control byte besides Ctrl-letter. */
const CTRL_SYMBOLS = { '@': 0, ' ': 0, '2': 0, '[': 27, '3': 27, '\\': 28, '4': 28, ']': 29, '5': 29, '^': 30, '6': 30, '_': 31, '-': 31, '7': 31, '/': 31, '?': 127, '8': 127 };

/** xterm's modifier parameter: 1 + shift + 2·alt + 4·ctrl (1 = none). */
function modifier(event) {
  return 1 + (event.shiftKey ? 1 : 0) + (event.altKey ? 2 : 0) + (event.ctrlKey ? 4 : 0);
}

/** Ctrl + a printable key: its control byte, or null. */
function controlByte(key) {
  const lower = key.toLowerCase();
  if (lower >= 'a' && lower <= 'z' && lower.length === 1) return String.fromCharCode(lower.charCodeAt(0) - 96);
  const code = CTRL_SYMBOLS[key];
  return code === undefined ? null : String.fromCharCode(code);
}

/**
 * The bytes (as a string of characters, UTF-8 encoded later) a key press
 * sends, or null when the terminal leaves the key to the browser (Meta
 * combinations, Ctrl+Shift+C/V for copy and paste, Ctrl+V and Shift+Insert
 * for paste, dead keys and IME input, which arrive as text instead). `modes` is the
 * screen's: `cursorKeys` (DECCKM) picks the application cursor keys.
 */
export function keyBytes(event, modes = {}) {
  const { key } = event;
  if (event.metaKey || key === undefined) return null;
  if (key === 'Insert' && event.shiftKey && !event.ctrlKey && !event.altKey) return null; // paste
  const mod = modifier(event);
  if (CURSOR[key]) {
    if (mod > 1) return `${CSI}1;${mod}${CURSOR[key]}`;
    return (modes.cursorKeys ? SS3 : CSI) + CURSOR[key];
  }
  if (TILDE[key]) return mod > 1 ? `${CSI}${TILDE[key]};${mod}~` : `${CSI}${TILDE[key]}~`;
  if (PF[key]) return mod > 1 ? `${CSI}1;${mod}${PF[key]}` : SS3 + PF[key];
  const alt = event.altKey ? '\x1b' : '';
  switch (key) {
    case 'Enter':
      return `${alt}\r`;
    case 'Backspace':
      return alt + (event.ctrlKey ? '\x08' : '\x7f');
    case 'Tab':
      return event.shiftKey ? `${CSI}Z` : `${alt}\t`;
    case 'Escape':
      return `${alt}\x1b`;
    default:
  }
  if ([...key].length !== 1) return null; // Shift, Dead, Process, Unidentified…
  if (event.ctrlKey && event.altKey && !/^[a-z]$/i.test(key)) return key; // AltGr
  if (event.ctrlKey) {
    if (event.shiftKey && (key === 'C' || key === 'V' || key === 'c' || key === 'v')) return null;
    if (key === 'v' || key === 'V') return null; // paste
    const control = controlByte(key);
    return control === null ? null : alt + control;
  }
  return alt + key;
}

const PASTE_START = '\x1b[200~';
const PASTE_END = '\x1b[201~';

/**
 * Pasted text as input: line ends become CR (as Enter), and with
 * bracketed paste the text is wrapped in ESC[200~ … ESC[201~ (with any
 * end marker inside it removed, so a paste cannot end itself early).
 */
export function pasteBytes(text, bracketed) {
  const body = String(text).replace(/\r\n?|\n/g, '\r');
  if (!bracketed) return body;
  return PASTE_START + body.replaceAll(PASTE_END, '').replaceAll('\x1b[200~', '') + PASTE_END;
}
