// The escape-sequence parser: a state machine after DEC's VT500 parser
// (states ground, escape, CSI, OSC, DCS and the SOS/PM/APC strings). It
// turns decoded text into calls on a handler:
//   print(text)                          printable characters, in runs
//   execute(code)                        C0 controls (BEL, BS, HT, LF, CR…)
//   csi(final, params, prefix, inter)    CSI sequences; params are numbers
//                                        (-1 when left out), sub-parameters
//                                        (`38:2:…`) as nested arrays
//   esc(final, inter)                    other escape sequences
//   osc(text)                            OSC strings (`0;title`)
// DCS, SOS, PM and APC strings are consumed and dropped.
//
// Bytes are decoded as UTF-8 with a streaming TextDecoder, so a character
// split across two chunks is joined; malformed bytes become U+FFFD.

const GROUND = 0;
const ESCAPE = 1;
const ESCAPE_INTERMEDIATE = 2;
const CSI_ENTRY = 3;
const CSI_PARAM = 4;
const CSI_INTERMEDIATE = 5;
const CSI_IGNORE = 6;
const OSC_STRING = 7;
const DCS = 8; // DCS, with its parameters and data, up to ST
const IGNORED_STRING = 9; // SOS, PM, APC, up to ST

/** Longest OSC string kept (longer ones are cut; the rest is dropped). */
const MAX_OSC = 4096;
/** Most parameters kept per CSI sequence (as xterm: more are ignored). */
const MAX_PARAMS = 32;
/** Largest parameter value (bigger numbers are clamped). */
const MAX_PARAM = 65535;

const ESC = 0x1b;
const CAN = 0x18;
const SUB = 0x1a;
const BEL = 0x07;
const DEL = 0x7f;

/** Whether `code` is a C0 control that executes in every state but strings. */
function isExecutable(code) {
  return code < 0x20 && code !== ESC && code !== CAN && code !== SUB;
}

/** The parser; feed it bytes with `write`, it calls `handler`. */
export class Parser {
  constructor(handler) {
    this.handler = handler;
    this.decoder = new TextDecoder('utf-8');
    this.state = GROUND;
    this.reset();
  }

  /** Forgets any sequence in progress (the decoder keeps a split character). */
  reset() {
    this.state = GROUND;
    this.clear();
    this.osc = '';
  }

  clear() {
    this.params = [];
    this.current = -1; // the parameter being read; -1 = none given
    this.sub = null; // sub-parameters of the current parameter
    this.prefix = ''; // private marker: ? > = <
    this.intermediates = '';
  }

  /** Parses a chunk of bytes (a Uint8Array) or a string. */
  write(data) {
    const text = typeof data === 'string' ? data : this.decoder.decode(data, { stream: true });
    this.parse(text);
  }

  parse(text) {
    let run = -1; // start of a run of printable characters in ground state
    for (let i = 0; i < text.length; i += 1) {
      const code = text.charCodeAt(i);
      if (this.state === GROUND && code >= 0x20 && code !== DEL) {
        if (run < 0) run = i;
        continue;
      }
      if (run >= 0) {
        this.handler.print(text.slice(run, i));
        run = -1;
      }
      this.step(code, text[i]);
    }
    if (run >= 0) this.handler.print(text.slice(run));
  }

  /** One character outside a printable run. */
  step(code, char) {
    // Anywhere: CAN and SUB abort a sequence, ESC starts a new one (and ends
    // a string: ESC \ is ST).
    if (code === CAN || code === SUB) {
      this.endString(false);
      this.state = GROUND;
      return;
    }
    if (code === ESC) {
      this.endString(true);
      this.clear();
      this.state = ESCAPE;
      return;
    }
    switch (this.state) {
      case GROUND:
        if (code !== DEL) this.handler.execute(code);
        return;
      case ESCAPE:
        return this.escape(code, char);
      case ESCAPE_INTERMEDIATE:
        return this.escapeIntermediate(code, char);
      case CSI_ENTRY:
      case CSI_PARAM:
      case CSI_INTERMEDIATE:
      case CSI_IGNORE:
        return this.csi(code, char);
      case OSC_STRING:
        return this.oscChar(code, char);
      default:
        // DCS and ignored strings: end at BEL (xterm) or ST.
        if (code === BEL) this.state = GROUND;
    }
  }

  escape(code, char) {
    if (isExecutable(code)) return this.handler.execute(code);
    if (code === DEL) return;
    if (code >= 0x20 && code <= 0x2f) {
      this.intermediates += char;
      this.state = ESCAPE_INTERMEDIATE;
      return;
    }
    this.state = GROUND;
    switch (char) {
      case '[':
        this.clear();
        this.state = CSI_ENTRY;
        return;
      case ']':
        this.osc = '';
        this.state = OSC_STRING;
        return;
      case 'P':
        this.state = DCS;
        return;
      case 'X':
      case '^':
      case '_':
        this.state = IGNORED_STRING;
        return;
      default:
        if (code >= 0x30 && code <= 0x7e) this.handler.esc(char, '');
    }
  }

  escapeIntermediate(code, char) {
    if (isExecutable(code)) return this.handler.execute(code);
    if (code === DEL) return;
    if (code >= 0x20 && code <= 0x2f) {
      this.intermediates += char;
      return;
    }
    this.state = GROUND;
    if (code >= 0x30 && code <= 0x7e) this.handler.esc(char, this.intermediates);
  }

  csi(code, char) {
    if (isExecutable(code)) return this.handler.execute(code);
    if (code === DEL) return;
    if (code >= 0x40 && code <= 0x7e) {
      const ignored = this.state === CSI_IGNORE;
      this.state = GROUND;
      if (!ignored) {
        this.finishParam();
        this.handler.csi(char, this.params, this.prefix, this.intermediates);
      }
      return;
    }
    if (this.state === CSI_IGNORE) return;
    if (code >= 0x20 && code <= 0x2f) {
      this.intermediates += char;
      this.state = CSI_INTERMEDIATE;
      return;
    }
    if (this.state === CSI_INTERMEDIATE || code > 0x7e) {
      // A parameter after an intermediate, or a non-ASCII character: malformed.
      this.state = CSI_IGNORE;
      return;
    }
    if (code >= 0x3c && code <= 0x3f) {
      // A private marker is only allowed first.
      if (this.state === CSI_ENTRY) {
        this.prefix = char;
        this.state = CSI_PARAM;
      } else {
        this.state = CSI_IGNORE;
      }
      return;
    }
    this.state = CSI_PARAM;
    if (code >= 0x30 && code <= 0x39) {
      const digit = code - 0x30;
      this.current = this.current < 0 ? digit : Math.min(MAX_PARAM, this.current * 10 + digit);
    } else if (char === ';') {
      this.finishParam();
    } else if (char === ':') {
      this.sub ??= [];
      this.sub.push(this.current);
      this.current = -1;
    }
  }

  finishParam() {
    if (this.params.length >= MAX_PARAMS) {
      this.current = -1;
      this.sub = null;
      return;
    }
    if (this.sub) {
      this.sub.push(this.current);
      this.params.push(this.sub);
    } else {
      this.params.push(this.current);
    }
    this.current = -1;
    this.sub = null;
  }

  oscChar(code, char) {
    if (code === BEL) {
      this.endString(true);
      this.state = GROUND;
      return;
    }
    if (code < 0x20) return; // other controls inside an OSC are ignored
    if (this.osc.length < MAX_OSC) this.osc += char;
  }

  /** Ends an OSC string in progress; `complete` dispatches it. */
  endString(complete) {
    if (this.state === OSC_STRING && complete) this.handler.osc(this.osc);
    if (this.state === OSC_STRING) this.osc = '';
  }
}
