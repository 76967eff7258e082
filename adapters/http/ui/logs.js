// The logs panel: a lease's container output from /ws/logs/{id}, one text
// frame per line, auto-scrolling, with a clear end when the stream closes.
// Each (re)connection takes a fresh single-use ticket (api.js `ticketed`).

import { api, shortId, ticketed, wsUrl } from './api.js';

const MAX_LINES = 5000;
const TAIL = 200;

/** Why the server closed the stream (its close reason) in words. */
function endText(event) {
  const reason = event.reason || '';
  if (event.code === 1000) {
    switch (reason) {
      case 'container stopped':
        return 'Container stopped.';
      case 'lease ended':
        return 'Container stopped: the lease has ended.';
      case 'log stream ended':
        return 'The log stream ended (the container may have stopped).';
      case 'the lease has no container':
        return 'This lease has no container (its provisioning failed).';
      default:
        return reason ? `Stream closed: ${reason}.` : 'Stream closed.';
    }
  }
  if (event.code === 1001) return 'The server is restarting or shutting down.';
  if (event.code === 1011) return `The log stream failed${reason ? `: ${reason}` : ''}.`;
  return '';
}

/** The logs panel; `elements` are its DOM nodes. */
export class LogsPanel {
  constructor(elements) {
    this.el = elements;
    this.socket = null;
    this.lease = null;
    this.lines = 0;
    this.opening = 0; // counts open() calls: a late ticket for an older one is dropped
    this.el.close.addEventListener('click', () => this.close());
    this.el.reconnect.addEventListener('click', () => this.lease && this.open(this.lease));
    this.el.follow.addEventListener('change', () => {
      if (this.el.follow.checked) this.scrollToEnd();
    });
    this.el.output.addEventListener('scroll', () => {
      const out = this.el.output;
      const atEnd = out.scrollHeight - out.scrollTop - out.clientHeight < 8;
      // Scrolling up to read stops following; scrolling back down resumes it.
      if (this.el.follow.checked !== atEnd && !this.autoScrolling) this.el.follow.checked = atEnd;
    });
  }

  /** The id of the lease whose logs are shown, if any. */
  get leaseId() {
    return this.lease?.id ?? null;
  }

  /** Opens (or reopens) the panel on `lease` and starts streaming. */
  async open(lease) {
    this.disconnect();
    this.opening += 1;
    const opening = this.opening;
    this.lease = lease;
    this.lines = 0;
    this.el.output.textContent = '';
    this.el.title.textContent = `Logs — ${shortId(lease.id)} (${lease.imageType})`;
    this.el.end.hidden = true;
    this.el.end.textContent = '';
    this.el.end.className = 'logs-end';
    this.el.reconnect.hidden = true;
    this.el.follow.checked = true;
    this.el.panel.hidden = false;
    this.setState(lease.status === 'pending' ? 'Waiting for the container to start…' : 'Connecting…');
    this.el.panel.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
    let url;
    try {
      url = await ticketed(`/ws/logs/${encodeURIComponent(lease.id)}?tail=${TAIL}`, {
        route: 'logs',
        leaseId: lease.id,
      });
    } catch (error) {
      if (opening !== this.opening || this.lease !== lease) return;
      this.setState('');
      this.showEnd(`Cannot stream logs: ${error.message}`, false, true);
      return;
    }
    if (opening !== this.opening || this.lease !== lease) return;
    const socket = new WebSocket(wsUrl(url));
    this.socket = socket;
    socket.addEventListener('open', () => {
      if (this.socket === socket) this.setState('Streaming — new lines appear as the container writes them.');
    });
    socket.addEventListener('message', (message) => {
      if (this.socket !== socket) return;
      if (this.lines === 0) this.setState('Streaming — new lines appear as the container writes them.');
      this.append(String(message.data));
    });
    socket.addEventListener('close', (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.ended(event);
    });
  }

  append(text) {
    const out = this.el.output;
    out.append(text.endsWith('\n') ? text : `${text}\n`);
    this.lines += 1;
    while (this.lines > MAX_LINES && out.firstChild) {
      out.firstChild.remove();
      this.lines -= 1;
    }
    if (this.el.follow.checked) this.scrollToEnd();
  }

  scrollToEnd() {
    this.autoScrolling = true;
    this.el.output.scrollTop = this.el.output.scrollHeight;
    requestAnimationFrame(() => {
      this.autoScrolling = false;
    });
  }

  async ended(event) {
    let text = endText(event);
    let normal = event.code === 1000;
    if (!text) {
      // 1006: the upgrade was refused (404, 401) or the connection dropped.
      // WebSockets do not show the HTTP answer, so ask the API why.
      normal = false;
      try {
        await api('GET', `/api/containers/${encodeURIComponent(this.lease.id)}/status`);
        text = 'The connection to the log stream was lost.';
      } catch (error) {
        text = `Cannot stream logs: ${error.message}`;
      }
    }
    if (this.lines === 0 && normal) text = `${text} No output was written.`;
    this.setState('');
    this.showEnd(text, normal, !normal || event.reason === 'log stream ended');
  }

  /** Shows how the stream ended, and the Reconnect button if `reconnect`. */
  showEnd(text, normal, reconnect) {
    this.el.end.textContent = `■ ${text}`;
    this.el.end.className = normal ? 'logs-end logs-end-normal' : 'logs-end logs-end-error';
    this.el.end.hidden = false;
    this.el.reconnect.hidden = !reconnect;
  }

  setState(text) {
    this.el.state.textContent = text;
  }

  disconnect() {
    const socket = this.socket;
    this.socket = null;
    if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000, 'closed by the page');
  }

  /** Stops streaming and hides the panel. */
  close() {
    this.disconnect();
    this.opening += 1;
    this.lease = null;
    this.el.panel.hidden = true;
  }
}
