// The terminal panel: a shell session in a running lease's container.
// Opening it starts a session (POST …/sessions, the size from the panel)
// and attaches over a WebSocket with a one-time ticket: keystrokes go as
// binary frames, output comes back as binary frames (a channel byte, then
// the bytes), and control messages are JSON. A dropped connection is
// re-attached by itself, with backoff, from the output offset already
// shown, so nothing is lost or repeated. Closing the panel ends the
// session (DELETE).

import { api, authorize, shortId, ticketed, wsUrl } from './api.js';
import { Terminal } from './terminal/terminal.js';
import { TerminalView } from './terminal/view.js';

/** How often the page says it is alive (browsers cannot send WS pings), ms. */
const PING_MS = 20_000;
/** Resizes are sent once the panel has stopped changing size for this long, ms. */
const RESIZE_SETTLE_MS = 150;
/** Waits before each reconnect attempt, ms (the last one repeats). */
const BACKOFF_MS = [250, 1000, 2000, 4000, 8000];
/** Input kept to send (typed while disconnected, or a paste), bytes. */
const MAX_QUEUED = 1024 * 1024;
/** Keys typed within this long of the last message go together in the next, ms. */
const COALESCE_MS = 8;
/** Largest input message (the server refuses more than 64 KiB). */
const MAX_MESSAGE = 32 * 1024;

/** Why the server ended a session, in words. */
const END_TEXT = {
  expired: 'The lease expired: the session has ended.',
  deleted: 'The lease was deleted: the session has ended.',
  closed: 'The session was closed.',
  timeout: 'The session ended: nobody was attached for too long.',
  shutdown: 'The server is shutting down: the session has ended.',
};

const encode = encodeURIComponent;

/** How a session ended: `{ text, normal }`, from an `exit` or `ended` message. */
export function endOf(message) {
  if (message.type === 'exit') {
    const code = Number.isInteger(message.code) ? message.code : '?';
    return { text: `The shell exited with code ${code}.`, normal: code === 0 };
  }
  if (message.type === 'detached') {
    return { text: 'This session was opened somewhere else (another tab or client).', normal: true };
  }
  const reason = String(message.reason ?? '');
  if (Object.hasOwn(END_TEXT, reason)) return { text: END_TEXT[reason], normal: reason !== 'shutdown' };
  const detail = message.message ? `: ${message.message}` : '';
  if (reason === 'error') return { text: `The session failed${detail}.`, normal: false };
  return { text: `The session ended (${reason || 'no reason given'})${detail}.`, normal: false };
}

/** The terminal panel; `elements` are its DOM nodes. */
export class ShellPanel {
  constructor(elements) {
    this.el = elements;
    this.session = null;
    this.el.close.addEventListener('click', () => this.close());
  }

  /** The id of the lease whose terminal is open, if any. */
  get leaseId() {
    return this.session?.lease.id ?? null;
  }

  /** Opens the panel on `lease` with a new shell session (closing any other). */
  async open(lease) {
    this.close();
    const session = {
      lease,
      id: null,
      offset: 0,
      socket: null,
      attached: false,
      outage: false,
      attempt: 0,
      queue: [],
      queued: 0,
      lastSent: 0,
      end: null,
      done: false,
      timers: {},
    };
    this.session = session;
    this.el.end.hidden = true;
    this.el.panel.hidden = false;
    this.setTitle(session, '');
    this.setState('Starting a shell…');
    session.terminal = new Terminal({
      input: (bytes) => this.input(session, bytes),
      title: (text) => this.setTitle(session, text),
      bell: () => this.bell(),
    });
    session.view = new TerminalView(this.el.screen, session.terminal, {
      onResize: () => this.resized(session),
      onLeave: () => this.el.close.focus(),
      label: `Terminal of lease ${shortId(lease.id)}`,
    });
    this.el.panel.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
    const { cols, rows } = session.view.size;
    let created;
    try {
      created = await api('POST', `/api/containers/${encode(lease.id)}/sessions`, { tty: true, cols, rows });
    } catch (error) {
      if (this.session === session) this.finish(session, { text: `Cannot start a shell: ${error.message}`, normal: false });
      return;
    }
    session.id = created.sessionId;
    if (this.session !== session) {
      this.remove(session);
      return;
    }
    this.connect(session);
    session.view.focus();
  }

  /** Attaches (or re-attaches) from the output offset already shown. */
  async connect(session) {
    const { lease, id } = session;
    const path = `/api/containers/${encode(lease.id)}/sessions/${encode(id)}/attach?offset=${session.offset}`;
    let url;
    try {
      url = wsUrl(await ticketed(path, { route: 'attach', leaseId: lease.id, sessionId: id }));
    } catch (error) {
      if (session.done) return;
      if (error.status === 404) this.finish(session, { text: 'The session is gone: it has ended.', normal: false });
      else this.dropped(session, null);
      return;
    }
    if (session.done) return;
    const socket = new WebSocket(url);
    socket.binaryType = 'arraybuffer';
    session.socket = socket;
    socket.addEventListener('message', (event) => {
      if (session.socket === socket) this.message(session, event.data);
    });
    socket.addEventListener('close', (event) => {
      if (session.socket !== socket) return;
      session.socket = null;
      session.attached = false;
      clearInterval(session.timers.ping);
      this.dropped(session, event);
    });
    clearInterval(session.timers.ping);
    session.timers.ping = setInterval(() => this.sendJson(session, { type: 'ping' }), PING_MS);
  }

  message(session, data) {
    if (data instanceof ArrayBuffer) {
      const bytes = new Uint8Array(data);
      if (bytes.length === 0) return;
      const payload = bytes.subarray(1); // after the channel byte
      session.offset += payload.length;
      session.view.write(payload);
      return;
    }
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    switch (message?.type) {
      case 'attached':
        this.attached(session, message);
        break;
      case 'exit':
      case 'ended':
      case 'detached':
        session.end = endOf(message);
        break;
      case 'error':
        session.view.notice(`[server: ${String(message.message ?? message.code ?? 'error')}]`);
        break;
      default: // pong, and anything newer
    }
  }

  attached(session, message) {
    if (Number.isSafeInteger(message.offset) && message.offset >= 0) session.offset = message.offset;
    session.attached = true;
    session.attempt = 0;
    if (session.outage) session.view.notice('reconnected');
    session.outage = false;
    if (message.missed > 0) session.view.notice(`(${message.missed} bytes of output were lost while disconnected)`);
    this.setState('');
    this.sendResize(session);
    this.flushInput(session);
  }

  /** The socket closed: the end the server announced, or a drop to recover from. */
  dropped(session, event) {
    if (session.done) return;
    if (session.end) {
      this.finish(session, session.end);
      return;
    }
    if (event?.code === 4001) {
      this.finish(session, endOf({ type: 'detached' }));
      return;
    }
    if (!session.outage) session.view.notice('reconnecting…');
    session.outage = true;
    const wait = BACKOFF_MS[Math.min(session.attempt, BACKOFF_MS.length - 1)];
    session.attempt += 1;
    this.setState(`Connection lost; reconnecting (attempt ${session.attempt})…`);
    clearTimeout(session.timers.retry);
    session.timers.retry = setTimeout(() => this.reconnect(session), wait);
  }

  /** Re-attaches if the session still exists (a refused upgrade says nothing of why). */
  async reconnect(session) {
    if (session.done) return;
    try {
      const list = await api('GET', `/api/containers/${encode(session.lease.id)}/sessions`);
      if (session.done) return;
      if (!list.sessions.some((s) => s.sessionId === session.id)) {
        this.finish(session, { text: 'The session has ended while disconnected.', normal: false });
        return;
      }
    } catch (error) {
      if (session.done) return;
      if (error.status === 404) {
        this.finish(session, { text: 'The lease has ended: the session is gone.', normal: false });
      } else {
        this.dropped(session, null);
      }
      return;
    }
    this.connect(session);
  }

  /** Typed, pasted or answered bytes. A key goes at once; keys that follow
   * within a few milliseconds (fast typing, automation, a key's repeat) go
   * together in one message, so the server's input queue is not flooded
   * with one-byte messages. */
  input(session, bytes) {
    if (session.done || session.queued + bytes.length > MAX_QUEUED) return;
    session.queue.push(bytes);
    session.queued += bytes.length;
    if (session.timers.flush) return;
    const wait = Math.max(0, session.lastSent + COALESCE_MS - performance.now());
    session.timers.flush = setTimeout(() => this.flushInput(session), wait);
  }

  /** Sends what is queued, if attached (else it waits for the re-attach). */
  flushInput(session) {
    clearTimeout(session.timers.flush);
    session.timers.flush = 0;
    const socket = session.socket;
    if (!session.attached || socket?.readyState !== WebSocket.OPEN || session.queued === 0) return;
    const all = new Uint8Array(session.queued);
    let at = 0;
    for (const bytes of session.queue) {
      all.set(bytes, at);
      at += bytes.length;
    }
    session.queue = [];
    session.queued = 0;
    for (let from = 0; from < all.length; from += MAX_MESSAGE) socket.send(all.subarray(from, from + MAX_MESSAGE));
    session.lastSent = performance.now();
  }

  resized(session) {
    clearTimeout(session.timers.resize);
    session.timers.resize = setTimeout(() => this.sendResize(session), RESIZE_SETTLE_MS);
  }

  sendResize(session) {
    const { cols, rows } = session.view.size;
    this.sendJson(session, { type: 'resize', cols, rows });
  }

  sendJson(session, message) {
    if (session.attached && session.socket?.readyState === WebSocket.OPEN) session.socket.send(JSON.stringify(message));
  }

  /** The session is over: says why, keeps the output readable. */
  finish(session, { text, normal }) {
    session.done = true;
    this.stop(session);
    if (this.session !== session) return;
    session.view.notice(text);
    session.view.write('\x1b[?25l'); // no cursor: nothing more can be typed
    this.setState('');
    this.el.end.textContent = `■ ${text}`;
    this.el.end.className = normal ? 'shell-end shell-end-normal' : 'shell-end shell-end-error';
    this.el.end.hidden = false;
  }

  stop(session) {
    clearInterval(session.timers.ping);
    clearTimeout(session.timers.retry);
    clearTimeout(session.timers.resize);
    clearTimeout(session.timers.flush);
    const socket = session.socket;
    session.socket = null;
    session.attached = false;
    if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000, 'closed by the page');
  }

  /** Ends the session on the server (its process is killed); 404 means it was gone. */
  remove(session) {
    if (!session.id || session.end) return;
    const path = `/api/containers/${encode(session.lease.id)}/sessions/${encode(session.id)}`;
    api('DELETE', path).catch(() => {});
  }

  /** Closes the panel and ends its session. */
  close() {
    const session = this.session;
    this.session = null;
    if (session) {
      session.done = true;
      this.stop(session);
      session.view.dispose();
      this.remove(session);
    }
    this.el.screen.replaceChildren();
    this.el.panel.hidden = true;
  }

  /** The page is going away (closed, reloaded, navigated): ends the
   * session now rather than leaving it to the server's detach timeout,
   * where it would count against the per-lease session limit meanwhile.
   * A `keepalive` request outlives the page. */
  abandon() {
    const session = this.session;
    if (!session?.id || session.done) return;
    session.done = true;
    const path = `/api/containers/${encode(session.lease.id)}/sessions/${encode(session.id)}`;
    fetch(path, { method: 'DELETE', ...authorize('DELETE'), keepalive: true }).catch(() => {});
  }

  /** Drops the connection as a network failure would (for tests: the
   * panel must re-attach by itself). */
  dropConnection() {
    this.session?.socket?.close(4000, 'dropped on purpose');
  }

  setTitle(session, text) {
    if (this.session !== session) return;
    const lease = session.lease;
    const base = `Terminal — ${shortId(lease.id)} (${lease.imageType})`;
    this.el.title.textContent = text ? `${base}: ${text}` : base;
  }

  setState(text) {
    this.el.state.textContent = text;
  }

  bell() {
    const host = this.el.screen;
    host.classList.add('term-bell');
    setTimeout(() => host.classList.remove('term-bell'), 150);
  }
}
