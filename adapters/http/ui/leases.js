// The lease list: one card per active lease, updated in place (so focus and
// an open confirmation survive updates), with a countdown and the accrued
// cost ticking every second.

import { serverNow, shortId } from './api.js';
import { accrued, formatDollars, formatExact } from './money.js';

/** Minutes added by the Extend button. */
export const EXTEND_MINUTES = 30;
/** The countdown turns amber this close to expiry. */
const SOON_SECONDS = 5 * 60;

const STATUS_TEXT = {
  pending: 'pending',
  running: 'running',
  error: 'error',
  exited: 'exited',
  deleting: 'deleting',
  deleted: 'deleted',
};

const LIVE = new Set(['pending', 'running']);

/** `h:mm:ss` or `m:ss`. */
export function formatCountdown(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${rest}` : `${m}:${rest}`;
}

/** A local wall-clock time (`14:05:09`). */
export function formatTime(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: 'numeric', minute: '2-digit', second: '2-digit' });
}

function pullText(progress) {
  if (!progress) return null;
  const { layersTotal, layersDone, bytesDone, bytesTotal, status } = progress;
  const percent = bytesTotal > 0 ? Math.min(100, Math.floor((bytesDone * 100) / bytesTotal)) : null;
  const parts = [];
  if (layersTotal > 0) parts.push(`${layersDone}/${layersTotal} layers`);
  if (percent !== null) parts.push(`${percent}%`);
  if (status) parts.push(status);
  return { percent, text: `Pulling image: ${parts.join(' · ') || 'starting'}` };
}

/**
 * The list. `actions` has `logs(lease)`, `terminal(lease)`, `extend(lease)`, `remove(lease)`
 * (each may return a promise; a rejection is shown on the card), and
 * `offering(key)` for an offering's limits.
 */
export class LeaseList {
  constructor({ list, empty, template, actions }) {
    this.listEl = list;
    this.emptyEl = empty;
    this.template = template;
    this.actions = actions;
    this.leases = new Map();
    this.cards = new Map();
    this.ticker = setInterval(() => this.tick(), 1000);
  }

  /** Whether `id` is listed. */
  has(id) {
    return this.leases.has(id);
  }

  /** The listed lease `id`. */
  get(id) {
    return this.leases.get(id);
  }

  /** All listed leases. */
  all() {
    return [...this.leases.values()];
  }

  /** Replaces the whole list with `leases` (a resync). */
  replace(leases) {
    const keep = new Set(leases.map((lease) => lease.id));
    for (const id of [...this.leases.keys()]) {
      if (!keep.has(id)) this.remove(id);
    }
    for (const lease of leases) this.upsert(lease);
  }

  /** Adds or updates a lease; a finished one (`deleted`) is removed. */
  upsert(lease) {
    if (lease.status === 'deleted') {
      this.remove(lease.id);
      return;
    }
    const previous = this.leases.get(lease.id);
    // Events carry no pull progress: keep the last known while still pending.
    if (previous && lease.status === 'pending' && !lease.pullProgress && previous.pullProgress) {
      lease = { ...lease, pullProgress: previous.pullProgress };
    }
    this.leases.set(lease.id, lease);
    let card = this.cards.get(lease.id);
    if (!card) {
      card = this.createCard(lease.id);
      this.cards.set(lease.id, card);
      this.place(card, lease);
    }
    this.fill(card, lease);
    this.emptyEl.hidden = this.leases.size > 0;
  }

  /** Removes a lease's card. */
  remove(id) {
    this.leases.delete(id);
    const card = this.cards.get(id);
    this.cards.delete(id);
    if (card) {
      const hadFocus = card.contains(document.activeElement);
      card.remove();
      if (hadFocus) document.getElementById('leases-title')?.focus?.();
    }
    this.emptyEl.hidden = this.leases.size > 0;
  }

  /** Newest first. */
  place(card, lease) {
    const created = Date.parse(lease.createdAt);
    for (const other of this.listEl.children) {
      const otherLease = this.leases.get(other.dataset.id);
      if (otherLease && Date.parse(otherLease.createdAt) < created) {
        this.listEl.insertBefore(card, other);
        return;
      }
    }
    this.listEl.append(card);
  }

  createCard(id) {
    const card = this.template.content.firstElementChild.cloneNode(true);
    card.dataset.id = id;
    const q = (selector) => card.querySelector(selector);
    const run = async (button, action) => {
      const lease = this.leases.get(id);
      if (!lease) return;
      const errorEl = q('.action-error');
      errorEl.textContent = '';
      button.disabled = true;
      button.setAttribute('aria-busy', 'true');
      try {
        await action(lease);
      } catch (error) {
        if (card.isConnected) errorEl.textContent = error.message;
      } finally {
        button.removeAttribute('aria-busy');
        button.disabled = false;
        if (card.isConnected) this.fill(card, this.leases.get(id) ?? lease);
      }
    };
    q('.act-logs').addEventListener('click', () => this.actions.logs(this.leases.get(id)));
    q('.act-terminal').addEventListener('click', () => this.actions.terminal(this.leases.get(id)));
    q('.act-files').addEventListener('click', () => this.actions.files(this.leases.get(id)));
    q('.act-ports').addEventListener('click', () => this.actions.ports(this.leases.get(id)));
    q('.act-extend').addEventListener('click', (event) => run(event.currentTarget, this.actions.extend));
    q('.act-delete').addEventListener('click', () => this.confirm(card, true));
    q('.act-cancel').addEventListener('click', () => this.confirm(card, false));
    q('.act-confirm').addEventListener('click', (event) => {
      this.confirm(card, false, false);
      card.classList.add('is-removing');
      run(event.currentTarget, this.actions.remove).finally(() => card.classList.remove('is-removing'));
    });
    card.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && !q('.confirm').hidden) this.confirm(card, false);
    });
    return card;
  }

  confirm(card, show, restoreFocus = true) {
    const q = (selector) => card.querySelector(selector);
    q('.confirm').hidden = !show;
    q('.act-delete').hidden = show;
    if (show) q('.act-confirm').focus();
    else if (restoreFocus) q('.act-delete').focus();
  }

  fill(card, lease) {
    const q = (selector) => card.querySelector(selector);
    const idEl = q('.lease-id');
    idEl.textContent = shortId(lease.id);
    idEl.title = lease.id;
    card.dataset.status = lease.status;
    card.setAttribute('aria-label', `Lease ${shortId(lease.id)}, ${lease.imageType}, ${lease.status}`);

    q('.badge-image').textContent = lease.imageType;
    const status = q('.badge-status');
    status.textContent = STATUS_TEXT[lease.status] ?? lease.status;
    status.className = `badge badge-status status-${lease.status}`;

    const pull = q('.pull');
    const progress = lease.status === 'pending' ? pullText(lease.pullProgress) : null;
    pull.hidden = lease.status !== 'pending';
    if (lease.status === 'pending') {
      const bar = q('.pull-bar');
      if (progress?.percent != null) bar.value = progress.percent;
      else bar.removeAttribute('value'); // indeterminate
      q('.pull-text').textContent = progress?.text ?? 'Starting the container…';
    }

    const errorEl = q('.lease-error');
    const errorText = lease.error || (lease.status === 'exited' ? 'The container stopped on its own.' : '');
    errorEl.hidden = !errorText;
    errorEl.textContent = errorText;

    const offering = this.actions.offering(lease.imageType);
    const extend = q('.act-extend');
    const live = LIVE.has(lease.status);
    const room = offering ? lease.durationMinutes + EXTEND_MINUTES <= offering.maxMinutes : true;
    extend.hidden = !live;
    if (extend.getAttribute('aria-busy') !== 'true') extend.disabled = !room;
    extend.title = room ? `Add ${EXTEND_MINUTES} minutes to the booking` : `At most ${offering?.maxMinutes} minutes in all`;
    // A shell needs a running container.
    q('.act-terminal').hidden = lease.status !== 'running';
    q('.act-files').hidden = lease.status !== 'running';
    q('.act-ports').hidden = lease.status !== 'running';
    const deleting = lease.status === 'deleting';
    q('.act-delete').disabled = deleting;
    q('.act-logs').disabled = deleting;
    if (deleting) {
      q('.confirm').hidden = true;
      q('.act-delete').hidden = false;
    }
    this.tickCard(card, lease);
  }

  tickCard(card, lease) {
    const now = serverNow();
    const expiry = Date.parse(lease.expiryAt);
    const created = Date.parse(lease.createdAt);
    const left = Math.max(0, Math.floor((expiry - now) / 1000));
    const countdown = card.querySelector('.countdown');
    const ended = lease.status === 'deleting';
    countdown.textContent = ended ? 'removing…' : left > 0 ? `${formatCountdown(left)} left` : 'expired — removing…';
    countdown.dataset.seconds = String(left);
    countdown.classList.toggle('soon', !ended && left <= SOON_SECONDS);
    const expiryEl = card.querySelector('.expiry');
    expiryEl.textContent = `until ${formatTime(expiry)}`;
    expiryEl.dataset.expiry = lease.expiryAt;
    expiryEl.title = new Date(expiry).toString();

    // Accrued so far, as the server computes it: rate × time held, up to
    // the expiry; fixed once billing has stopped.
    const billed = lease.endedAt || lease.finalCost != null;
    const sofar = billed ? lease.finalCost ?? lease.accruedCost : accrued(lease.hourlyRate, Math.min(now, expiry) - created);
    const cost = card.querySelector('.badge-cost');
    cost.textContent = `${formatDollars(lease.cost)} est. · ${formatDollars(sofar)} so far`;
    cost.title = `Estimate for ${lease.durationMinutes} min: ${formatExact(lease.cost)}; accrued so far: ${formatExact(sofar)}`;
  }

  tick() {
    for (const [id, card] of this.cards) {
      const lease = this.leases.get(id);
      if (lease) this.tickCard(card, lease);
    }
  }

  /** Ids of leases whose state moves without events worth waiting for. */
  transient() {
    return this.all().filter((lease) => lease.status === 'pending' || lease.status === 'deleting');
  }

  /** Empties the list (sign-out). */
  clear() {
    this.replace([]);
  }
}
