// "Ports…" on a running lease: open one of its ports in a new tab (the
// browser gets in with a single-use `port` ticket, exchanged by the server
// for a cookie scoped to that port), and mint, list and revoke preview
// links. A small modal dialog built here; nothing else of the page changes.

import { api, ticketed } from './api.js';

const MIN_PORT = 1;
const MAX_PORT = 65535;

/** The path of `port` of lease `id` on this server. */
export function portPath(id, port) {
  return `/leases/${encodeURIComponent(id)}/ports/${port}/`;
}

/** `text` as a port number, or null when it is not 1–65535. */
export function parsePort(text) {
  const trimmed = String(text).trim();
  if (!/^[0-9]{1,5}$/.test(trimmed)) return null;
  const port = Number(trimmed);
  return port >= MIN_PORT && port <= MAX_PORT ? port : null;
}

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  for (const child of children) node.append(child);
  return node;
}

/** The dialog. `notify(text, kind)` reports outcomes to the page. */
export class PortsDialog {
  constructor({ notify }) {
    this.notify = notify;
    this.lease = null;
    this.port = el('input', { type: 'number', min: MIN_PORT, max: MAX_PORT, required: true, className: 'ports-port' });
    this.port.setAttribute('aria-label', 'Port');
    this.minutes = el('input', { type: 'number', min: 1, value: 60, className: 'ports-minutes' });
    this.minutes.setAttribute('aria-label', 'Link lifetime in minutes');
    this.public = el('input', { type: 'checkbox', className: 'ports-public' });
    this.status = el('p', { className: 'ports-status', role: 'status' });
    this.links = el('ul', { className: 'ports-links' });
    const open = el('button', { type: 'button', className: 'button act-open-port', textContent: 'Open port' });
    const share = el('button', { type: 'button', className: 'button button-quiet act-share-port', textContent: 'Share link' });
    const close = el('button', { type: 'button', className: 'button button-quiet', textContent: 'Close' });
    this.title = el('h2', { textContent: 'Ports' });
    this.dialog = el('dialog', { className: 'card ports-dialog' }, [
      this.title,
      el('label', { textContent: 'Port ' }, [this.port]),
      el('div', { className: 'ports-actions' }, [open]),
      el('fieldset', {}, [
        el('legend', { textContent: 'Preview link to this port' }),
        el('label', { textContent: 'Valid for (minutes) ' }, [this.minutes]),
        el('label', { textContent: ' Public (the URL alone opens it) ' }, [this.public]),
        share,
      ]),
      this.links,
      this.status,
      close,
    ]);
    open.addEventListener('click', () => this.openPort());
    share.addEventListener('click', () => this.share());
    close.addEventListener('click', () => this.dialog.close());
    this.port.addEventListener('change', () => this.refresh());
    document.body.append(this.dialog);
  }

  /** Shows the dialog for `lease`. */
  open(lease) {
    this.lease = lease;
    this.title.textContent = `Ports of ${lease.id}`;
    this.status.textContent = '';
    this.links.replaceChildren();
    this.dialog.showModal();
    this.port.focus();
  }

  checkedPort() {
    const port = parsePort(this.port.value);
    if (port == null) this.status.textContent = 'Enter a port from 1 to 65535.';
    return port;
  }

  /** Opens the port in a new tab: the tab is opened first (popup blockers
   * allow it only within the click), then pointed at the ticketed URL. */
  async openPort() {
    const port = this.checkedPort();
    if (port == null) return;
    const tab = window.open('about:blank', '_blank');
    try {
      const url = await ticketed(portPath(this.lease.id, port), {
        route: 'port',
        leaseId: this.lease.id,
        port,
      });
      if (tab) {
        tab.opener = null;
        tab.location.href = url;
      } else {
        window.location.assign(url);
      }
    } catch (error) {
      tab?.close();
      this.status.textContent = error.message;
    }
  }

  linksPath(port) {
    return `/api/containers/${encodeURIComponent(this.lease.id)}/ports/${port}/links`;
  }

  async share() {
    const port = this.checkedPort();
    if (port == null) return;
    const minutes = Math.max(1, Math.floor(Number(this.minutes.value) || 60));
    try {
      const link = await api('POST', this.linksPath(port), {
        expiresInSeconds: minutes * 60,
        public: this.public.checked,
      });
      this.status.textContent = `Link (shown once): ${link.hostUrl ?? link.url}`;
      try {
        await navigator.clipboard?.writeText(link.hostUrl ?? link.url);
        this.notify('Preview link copied to the clipboard.', 'ok');
      } catch {
        // No clipboard permission: the link stays shown in the dialog.
      }
      await this.refresh();
    } catch (error) {
      this.status.textContent = error.message;
    }
  }

  /** Lists the port's live links with a Revoke button each. */
  async refresh() {
    const port = parsePort(this.port.value);
    if (port == null || !this.lease) return;
    try {
      const answer = await api('GET', this.linksPath(port));
      const items = (answer?.links ?? []).map((link) => {
        const revoke = el('button', { type: 'button', className: 'button button-quiet', textContent: 'Revoke' });
        revoke.addEventListener('click', async () => {
          try {
            await api('DELETE', `/api/containers/${encodeURIComponent(this.lease.id)}/links/${encodeURIComponent(link.linkId)}`);
            this.notify('Preview link revoked.', 'ok');
            await this.refresh();
          } catch (error) {
            this.status.textContent = error.message;
          }
        });
        const kind = link.public ? 'public' : 'private';
        return el('li', { textContent: `${link.linkId} (${kind}, until ${new Date(link.expiresAt).toLocaleTimeString()}) ` }, [revoke]);
      });
      this.links.replaceChildren(...items);
    } catch (error) {
      this.status.textContent = error.message;
    }
  }
}
