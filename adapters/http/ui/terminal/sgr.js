// Character attributes (SGR, "select graphic rendition"): colours and
// styles of a cell. An attribute set is a frozen object shared by every
// cell written with it: {fg, bg, flags}. A colour is null (the default),
// 0..255 (the 16 ANSI colours then xterm's 256-colour cube and greys), or
// a string '#rrggbb' (truecolor).

/** Style bits of `flags`. */
export const BOLD = 1;
export const DIM = 2;
export const ITALIC = 4;
export const UNDERLINE = 8;
export const BLINK = 16;
export const INVERSE = 32;
export const HIDDEN = 64;
export const STRIKE = 128;

/** No colour, no style. */
export const DEFAULT_ATTR = Object.freeze({ fg: null, bg: null, flags: 0 });

function make(fg, bg, flags) {
  if (fg === null && bg === null && flags === 0) return DEFAULT_ATTR;
  return Object.freeze({ fg, bg, flags });
}

/** Only the background of `attr` (what erased cells get: xterm's "bce"). */
export function eraseAttr(attr) {
  return attr.bg === null ? DEFAULT_ATTR : make(null, attr.bg, 0);
}

/** Whether two attribute sets look the same. */
export function sameAttr(a, b) {
  return a === b || (a.fg === b.fg && a.bg === b.bg && a.flags === b.flags);
}

const hex2 = (n) => n.toString(16).padStart(2, '0');

/**
 * An extended colour after 38/48/58: `5;n` (256 colours) or `2;r;g;b`
 * (truecolor), given either as separate parameters or as one with
 * sub-parameters (`38:2::r:g:b`, `38:5:n`). Returns [colour or undefined
 * when malformed, parameters consumed after the 38].
 */
function extendedColour(params, at) {
  const head = params[at];
  let parts;
  let used;
  if (Array.isArray(head)) {
    // 38:2:<colourspace>:r:g:b (ITU form) or 38:2:r:g:b (common form)
    parts = head.slice(1);
    if (parts[0] === 2 && parts.length >= 5) parts = [2, ...parts.slice(-3)];
    used = 0;
  } else {
    parts = params.slice(at + 1, at + 5).map((p) => (Array.isArray(p) ? -1 : p));
    used = parts[0] === 5 ? 2 : parts[0] === 2 ? 4 : 1;
  }
  if (parts[0] === 5) {
    const n = parts[1];
    return [n >= 0 && n <= 255 ? n : undefined, used];
  }
  if (parts[0] === 2) {
    const rgb = parts.slice(1, 4).map((c) => (c < 0 ? 0 : c));
    if (rgb.length < 3 || rgb.some((c) => c > 255)) return [undefined, used];
    return [`#${rgb.map(hex2).join('')}`, used];
  }
  return [undefined, used];
}

const STYLE_ON = { 1: BOLD, 2: DIM, 3: ITALIC, 4: UNDERLINE, 5: BLINK, 7: INVERSE, 8: HIDDEN, 9: STRIKE };
const STYLE_OFF = { 22: BOLD | DIM, 23: ITALIC, 24: UNDERLINE, 25: BLINK, 27: INVERSE, 28: HIDDEN, 29: STRIKE };

/** `attr` after the SGR parameters `params` (CSI … m). */
export function applySgr(attr, params) {
  let { fg, bg, flags } = attr;
  if (params.length === 0) params = [0];
  for (let i = 0; i < params.length; i += 1) {
    const raw = params[i];
    const p = Array.isArray(raw) ? raw[0] : raw;
    if (p <= 0) {
      fg = null;
      bg = null;
      flags = 0;
    } else if (STYLE_ON[p]) {
      // 4:0 is "no underline", 4:n a kind of underline (all drawn alike).
      if (p === 4 && Array.isArray(raw) && raw[1] === 0) flags &= ~UNDERLINE;
      else flags |= STYLE_ON[p];
    } else if (STYLE_OFF[p]) {
      flags &= ~STYLE_OFF[p];
    } else if (p >= 30 && p <= 37) {
      fg = p - 30;
    } else if (p === 39) {
      fg = null;
    } else if (p >= 40 && p <= 47) {
      bg = p - 40;
    } else if (p === 49) {
      bg = null;
    } else if (p >= 90 && p <= 97) {
      fg = p - 90 + 8;
    } else if (p >= 100 && p <= 107) {
      bg = p - 100 + 8;
    } else if (p === 38 || p === 48 || p === 58) {
      const [colour, used] = extendedColour(params, i);
      i += used;
      if (colour !== undefined && p === 38) fg = colour;
      if (colour !== undefined && p === 48) bg = colour;
      // 58 (underline colour) is read and not drawn.
    }
  }
  return make(fg, bg, flags);
}

/** The 16 ANSI colours (as xterm's defaults, a little softened). */
const ANSI = [
  '#000000', '#cd3131', '#0dbc79', '#e5e510', '#2472c8', '#bc3fbc', '#11a8cd', '#e5e5e5',
  '#666666', '#f14c4c', '#23d18b', '#f5f543', '#3b8eea', '#d670d6', '#29b8db', '#ffffff',
];

/** The CSS colour of a colour value (null for the default). */
export function cssColour(colour) {
  if (colour === null) return null;
  if (typeof colour === 'string') return colour;
  if (colour < 16) return ANSI[colour];
  if (colour < 232) {
    const n = colour - 16;
    const level = (v) => (v === 0 ? 0 : 55 + v * 40);
    return `#${[Math.floor(n / 36), Math.floor(n / 6) % 6, n % 6].map((v) => hex2(level(v))).join('')}`;
  }
  const grey = 8 + (colour - 232) * 10;
  return `#${hex2(grey).repeat(3)}`;
}
