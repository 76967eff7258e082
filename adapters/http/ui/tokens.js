// The Tokens panel: the signed-in person's personal API tokens (for the
// command line and scripts): list (GET /api/tokens), mint with a name and
// an expiry (POST /api/tokens; the token is shown once, with a Copy
// button) and revoke (DELETE /api/tokens/{id}, confirmed inline).
//
// A minted token lives in this panel's text field until Done or the panel
// closes: it is never stored (no localStorage) and never put in a URL.

import { api } from './api.js';

/** Longest token name the server accepts, in characters. */
export const MAX_NAME = 64;

/** The expiry choices, in days; the first is preselected. */
export const EXPIRY_DAYS = Object.freeze([90, 30, 7, 365]);

/**
 * What is wrong with `name` as a token name, or `null` when it is fine:
 * 1 to 64 characters once trimmed, none of them a control character.
 */
export function checkTokenName(name) {
  const text = String(name ?? '').trim();
  if (!text) return 'Give the token a name (for example the machine it is for).';
  if ([...text].length > MAX_NAME) return `Use at most ${MAX_NAME} characters.`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(text)) return 'Use printable characters only.';
  return null;
}

/** The words for an expiry choice of `days`. */
export function expiryLabel(days) {
  if (days % 365 === 0) return days === 365 ? '1 year' : `${days / 365} years`;
  return days === 1 ? '1 day' : `${days} days`;
}

function formatDate(ms) {
  return new Date(ms).toLocaleDateString([], { year: 'numeric', month: 'short', day: 'numeric' });
}

/**
 * A token's expiry for people: `{text, expired}`. `expiresAt` is an RFC
 * 3339 time or null (no expiry); `now` is ms since the epoch.
 */
export function expiryOf(expiresAt, now) {
  if (expiresAt == null) return { text: 'Never', expired: false };
  const at = Date.parse(expiresAt);
  if (!Number.isFinite(at)) return { text: 'Unknown', expired: false };
  if (at <= now) return { text: `Expired ${formatDate(at)}`, expired: true };
  return { text: formatDate(at), expired: false };
}

/**
 * When a token was last used, for people: `Never`, `Just now` (under a
 * minute), `N min ago`, `N h ago`, else the date.
 */
export function lastUsedOf(lastUsedAt, now) {
  if (lastUsedAt == null) return 'Never';
  const at = Date.parse(lastUsedAt);
  if (!Number.isFinite(at)) return 'Unknown';
  const minutes = Math.floor((now - at) / 60_000);
  if (minutes < 1) return 'Just now';
  if (minutes < 60) return `${minutes} min ago`;
  if (minutes < 24 * 60) return `${Math.floor(minutes / 60)} h ago`;
  return formatDate(at);
}

/** The tokens of an answer of GET /api/tokens that have what a row needs, newest first. */
export function tokenRows(answer) {
  const tokens = Array.isArray(answer?.tokens) ? answer.tokens : [];
  return tokens
    .filter((token) => typeof token?.id === 'string' && typeof token?.name === 'string')
    .sort((a, b) => String(b.createdAt ?? '').localeCompare(String(a.createdAt ?? '')));
}

/** The Tokens panel; `el` are its DOM nodes, `notify(text, kind)` shows a notice. */
export class TokensPanel {
  constructor(el, { notify }) {
    this.el = el;
    this.notify = notify;
    this.enabled = false;
    for (const days of EXPIRY_DAYS) {
      const option = document.createElement('option');
      option.value = String(days);
      option.textContent = expiryLabel(days);
      el.expiry.append(option);
    }
    el.form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.mint();
    });
    el.name.addEventListener('input', () => {
      el.nameError.textContent = '';
      el.name.setAttribute('aria-invalid', 'false');
    });
    el.copy.addEventListener('click', () => this.copy());
    el.done.addEventListener('click', () => this.hideNew());
    el.details.addEventListener('toggle', () => {
      if (el.details.open) this.load();
      else this.hideNew();
    });
  }

  /** Shows the panel (a server with personal tokens) or hides it. */
  show(enabled) {
    this.enabled = enabled;
    this.el.panel.hidden = !enabled;
    if (!enabled) this.clear();
    else if (this.el.details.open) this.load();
  }

  /** Forgets everything shown (sign-out). */
  clear() {
    this.hideNew();
    this.el.body.replaceChildren();
    this.el.table.hidden = true;
    this.el.empty.hidden = true;
    this.el.error.textContent = '';
    this.el.details.open = false;
  }

  /** Re-reads the list. */
  async load() {
    if (!this.enabled) return;
    try {
      const rows = tokenRows(await api('GET', '/api/tokens'));
      this.render(rows);
      this.el.error.textContent = '';
    } catch (error) {
      if (error.status === 404) {
        this.show(false); // a server without personal tokens
        return;
      }
      if (error.status !== 401) this.el.error.textContent = `Cannot load your tokens: ${error.message}`;
    }
  }

  render(tokens) {
    const now = Date.now();
    this.el.body.replaceChildren(...tokens.map((token) => this.row(token, now)));
    this.el.table.hidden = tokens.length === 0;
    this.el.empty.hidden = tokens.length > 0;
  }

  row(token, now) {
    const row = document.createElement('tr');
    row.dataset.id = token.id;
    const name = document.createElement('th');
    name.scope = 'row';
    name.className = 'token-name';
    name.textContent = token.name;
    if (token.admin === true) {
      const badge = document.createElement('span');
      badge.className = 'badge badge-admin';
      badge.textContent = 'admin';
      name.append(' ', badge);
    }
    const expiry = expiryOf(token.expiresAt ?? null, now);
    const cells = [
      token.createdAt ? formatDate(Date.parse(token.createdAt)) : '–',
      lastUsedOf(token.lastUsedAt ?? null, now),
      expiry.text,
    ].map((text) => {
      const cell = document.createElement('td');
      cell.textContent = text;
      return cell;
    });
    if (expiry.expired) cells[2].classList.add('token-expired');
    const actions = document.createElement('td');
    actions.className = 'token-actions';
    actions.append(...this.revokeControls(token));
    row.append(name, ...cells, actions);
    return row;
  }

  /** Revoke, and its inline confirmation (Escape or Keep backs out). */
  revokeControls(token) {
    const revoke = button('Revoke', 'button button-danger act-revoke');
    revoke.setAttribute('aria-label', `Revoke token ${token.name}`);
    const confirm = document.createElement('span');
    confirm.className = 'confirm';
    confirm.hidden = true;
    const question = document.createElement('span');
    question.textContent = `Revoke “${token.name}”? Whatever uses it stops working.`;
    const yes = button('Yes, revoke', 'button button-danger act-revoke-confirm');
    const keep = button('Keep', 'button button-quiet act-revoke-cancel');
    confirm.append(question, ' ', yes, ' ', keep);
    const back = () => {
      confirm.hidden = true;
      revoke.hidden = false;
      revoke.focus();
    };
    revoke.addEventListener('click', () => {
      revoke.hidden = true;
      confirm.hidden = false;
      keep.focus();
    });
    keep.addEventListener('click', back);
    confirm.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') back();
    });
    yes.addEventListener('click', async () => {
      yes.disabled = true;
      try {
        await api('DELETE', `/api/tokens/${encodeURIComponent(token.id)}`);
        this.notify(`Token “${token.name}” revoked.`, 'ok');
      } catch (error) {
        if (error.status === 401) return;
        if (error.status !== 404) {
          this.el.error.textContent = `Cannot revoke “${token.name}”: ${error.message}`;
          yes.disabled = false;
          return;
        }
      }
      await this.load();
      this.el.name.focus();
    });
    return [revoke, confirm];
  }

  /** Mints a token with the form's name and expiry, and shows it once. */
  async mint() {
    const { name, nameError, expiry, submit } = this.el;
    const problem = checkTokenName(name.value);
    if (problem) {
      nameError.textContent = problem;
      name.setAttribute('aria-invalid', 'true');
      name.focus();
      return;
    }
    submit.disabled = true;
    try {
      const minted = await api('POST', '/api/tokens', {
        name: name.value.trim(),
        expiresInDays: Number(expiry.value),
      });
      this.showNew(minted);
      name.value = '';
      await this.load();
    } catch (error) {
      if (error.status === 401) return;
      nameError.textContent =
        error.code === 'too_many_tokens'
          ? `You have as many tokens as allowed${error.limit ? ` (${error.limit})` : ''}: revoke one first.`
          : error.message;
      name.setAttribute('aria-invalid', error.field === 'name' ? 'true' : 'false');
    } finally {
      submit.disabled = false;
    }
  }

  showNew(minted) {
    const { fresh, freshName, freshValue, copyState } = this.el;
    freshName.textContent = minted?.name ?? '';
    freshValue.value = typeof minted?.token === 'string' ? minted.token : '';
    copyState.textContent = '';
    fresh.hidden = false;
    freshValue.focus();
    freshValue.select();
  }

  hideNew() {
    const { fresh, freshValue, freshName, copyState } = this.el;
    if (fresh.hidden) return;
    freshValue.value = '';
    freshName.textContent = '';
    copyState.textContent = '';
    fresh.hidden = true;
  }

  /** Copies the new token to the clipboard (or selects it for Ctrl+C). */
  async copy() {
    const { freshValue, copyState } = this.el;
    try {
      await navigator.clipboard.writeText(freshValue.value);
      copyState.textContent = 'Copied to the clipboard.';
    } catch {
      freshValue.focus();
      freshValue.select();
      copyState.textContent = 'The browser did not allow copying: the token is selected, press Ctrl+C.';
    }
  }
}

function button(text, className) {
  const element = document.createElement('button');
  element.type = 'button';
  element.className = className;
  element.textContent = text;
  return element;
}
