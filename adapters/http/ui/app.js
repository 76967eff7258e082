// The ContainerLease portal: sign-in (the identity provider, or a token),
// the provision form with an exact cost estimate, the live lease list,
// logs, a terminal, usage, history and personal tokens; for operators,
// the Operations view (ops.js).

import { api, ApiError, hasSession, onUnauthorized, setSession, setToken, shortId, token } from './api.js';
import { LEGACY_AUTH, endSession, loadAuth, signInHref, signInLabel, whoAmI } from './auth.js';
import { followEvents } from './live.js';
import { EXTEND_MINUTES, LeaseList, formatTime } from './leases.js';
import { LogsPanel } from './logs.js';
import { estimate, formatDollars, formatExact } from './money.js';
import { OpsView } from './ops.js';
import { ShellPanel } from './shell.js';
import { FilesPanel } from './files.js';
import { PortsDialog } from './ports.js';
import { TokensPanel } from './tokens.js';

const $ = (id) => document.getElementById(id);

/** How often leases still moving (pending, deleting) are re-read, ms. */
const TRANSIENT_POLL_MS = 1500;
/** How often everything is re-read, in case an event was missed, ms. */
const RESYNC_MS = 30_000;

const state = {
  offerings: new Map(),
  events: null,
  timers: [],
  owner: null,
  signedIn: false,
  /** How the server signs people in (auth.js `loadAuth`). */
  auth: LEGACY_AUTH,
  /** Who is signed in (GET /api/me), when the server says. */
  me: null,
};

// ---------------------------------------------------------------- notices

/** Most notices on screen at once (the oldest goes first); fewer on a phone. */
const narrowScreen = window.matchMedia('(max-width: 760px)');
const maxNotices = () => (narrowScreen.matches ? 2 : 3);
const NOTICE_MS = { ok: 4000, info: 5000, warn: 15000, error: 8000 };

/** A short notice for everyone, screen readers included (the region is aria-live). */
function notify(text, kind = 'info') {
  const box = $('notices');
  while (box.children.length >= maxNotices()) box.firstElementChild.remove();
  const notice = document.createElement('div');
  notice.className = `notice notice-${kind}`;
  const message = document.createElement('span');
  message.textContent = text;
  const close = document.createElement('button');
  close.type = 'button';
  close.className = 'notice-close';
  close.setAttribute('aria-label', 'Dismiss notice');
  close.textContent = '×';
  close.addEventListener('click', () => notice.remove());
  notice.append(message, close);
  box.append(notice);
  setTimeout(() => notice.remove(), NOTICE_MS[kind] ?? NOTICE_MS.info);
}

function showFatal(text) {
  $('fatal-text').textContent = text;
  $('fatal').hidden = false;
}

// ---------------------------------------------------------------- sign-in

/**
 * Shows the sign-in: with the identity provider's button when the server
 * has OIDC (the token form folded behind "Use a token instead"), else the
 * token form. `message` says why (a refused token, an ended session).
 */
function showSignIn(message = '') {
  stopApp();
  state.me = null;
  $('boot').hidden = true;
  $('app').hidden = true;
  $('signin').hidden = false;
  $('who').hidden = true;
  $('signout').hidden = true;
  $('live').hidden = true;
  const oidc = state.auth.mode === 'oidc';
  $('signin-oidc').hidden = !oidc;
  $('token-input').value = '';
  if (oidc) {
    const link = $('signin-oidc-link');
    link.href = signInHref(state.auth, `${window.location.pathname}${window.location.search}`);
    link.textContent = signInLabel(state.auth);
    $('signin-oidc-error').textContent = message;
    $('signin-error').textContent = '';
    showTokenForm(false);
    link.focus();
  } else {
    $('signin-error').textContent = message;
    $('token-input').setAttribute('aria-invalid', message ? 'true' : 'false');
    showTokenForm(true);
    $('token-input').focus();
  }
}

/** Unfolds (or folds) the token form under the provider's button. */
function showTokenForm(shown) {
  $('signin-token').hidden = !shown;
  $('signin-use-token').setAttribute('aria-expanded', String(shown));
}

$('signin-use-token').addEventListener('click', () => {
  const shown = $('signin-token').hidden;
  showTokenForm(shown);
  if (shown) $('token-input').focus();
});

onUnauthorized(() => {
  if (!state.signedIn && !$('signin').hidden) return;
  const hadToken = Boolean(token());
  const hadSession = hasSession();
  setToken(null);
  setSession(null);
  let message = '';
  if (hadToken) message = 'Your token was refused (revoked or mistyped). Sign in again.';
  else if (hadSession) message = 'Your session has ended (signed out elsewhere, or it expired). Sign in again.';
  showSignIn(message);
});

$('signin-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const input = $('token-input');
  const candidate = input.value.trim();
  const errorEl = $('signin-error');
  if (!candidate) {
    errorEl.textContent = 'Paste your API token.';
    input.setAttribute('aria-invalid', 'true');
    input.focus();
    return;
  }
  const submit = $('signin-submit');
  submit.disabled = true;
  errorEl.textContent = '';
  try {
    await api('GET', '/api/usage', undefined, { token: candidate });
  } catch (error) {
    errorEl.textContent = error.status === 401 ? 'That token was refused. Check it and try again.' : error.message;
    input.setAttribute('aria-invalid', 'true');
    input.focus();
    input.select();
    return;
  } finally {
    submit.disabled = false;
  }
  input.setAttribute('aria-invalid', 'false');
  setToken(candidate);
  boot();
});

$('signout').addEventListener('click', async () => {
  if (token()) {
    setToken(null);
    showSignIn('');
    notify('Signed out. The token was removed from this browser.');
    return;
  }
  await signOutSession(false);
});

$('signout-everywhere').addEventListener('click', () => signOutSession(true));

/** Ends the browser session on the server (`everywhere`: all of yours). */
async function signOutSession(everywhere) {
  try {
    await endSession({ everywhere });
  } catch (error) {
    notify(`Signing out failed: ${error.message}`, 'error');
    return;
  }
  showSignIn('');
  notify(everywhere ? 'Signed out in every browser.' : 'Signed out.');
}

// ---------------------------------------------------------------- provision form

function selectedOffering() {
  return state.offerings.get($('offering').value) ?? null;
}

function offeringLabel(offering) {
  return `${offering.key} · ${formatDollars(offering.hourlyRate)}/h · ${offering.cpus} CPU · ${offering.memoryMb} MiB`;
}

function fillCatalog(offerings) {
  const select = $('offering');
  const previous = select.value;
  state.offerings = new Map(offerings.map((offering) => [offering.key, offering]));
  select.replaceChildren(
    ...offerings.map((offering) => {
      const option = document.createElement('option');
      option.value = offering.key;
      option.textContent = offeringLabel(offering);
      return option;
    }),
  );
  if (state.offerings.has(previous)) select.value = previous;
  const first = selectedOffering();
  if (first && !previous) $('minutes').value = String(Math.min(first.defaultMinutes, first.maxMinutes));
  $('provision-submit').disabled = offerings.length === 0;
  if (offerings.length === 0) $('offering-error').textContent = 'The catalog is empty: nothing can be rented.';
  updateForm();
}

/** The duration typed, or an error message. */
function readMinutes(offering) {
  const text = $('minutes').value.trim();
  const max = offering?.maxMinutes ?? 480;
  if (!/^\d+$/.test(text)) return { error: `Enter a whole number of minutes from 1 to ${max}.` };
  const minutes = Number(text);
  if (minutes < 1 || minutes > max) return { error: `Enter a whole number of minutes from 1 to ${max}.` };
  return { minutes };
}

function updateForm() {
  const offering = selectedOffering();
  const minutesInput = $('minutes');
  $('offering-error').textContent = '';
  if (!offering) return;
  minutesInput.max = String(offering.maxMinutes);
  $('offering-detail').textContent =
    `${offering.cpus} CPU, ${offering.memoryMb} MiB memory, ${formatDollars(offering.hourlyRate)} an hour; image ${offering.image}`;
  $('minutes-hint').textContent = `1 to ${offering.maxMinutes} minutes (extensions included).`;
  const { minutes, error } = readMinutes(offering);
  for (const chip of document.querySelectorAll('.chip[data-minutes]')) {
    const value = Number(chip.dataset.minutes);
    chip.disabled = value > offering.maxMinutes;
    chip.setAttribute('aria-pressed', String(value === minutes));
  }
  $('minutes-error').textContent = error ?? '';
  minutesInput.setAttribute('aria-invalid', error ? 'true' : 'false');
  const out = $('estimate');
  if (error) {
    out.textContent = '–';
    out.title = '';
    $('estimate-detail').textContent = '';
    return;
  }
  const cost = estimate(offering.hourlyRate, minutes);
  out.textContent = formatDollars(cost);
  out.title = `Exactly ${formatExact(cost)}`;
  out.dataset.nanos = cost.toString();
  const ends = new Date(Date.now() + minutes * 60_000).toLocaleTimeString([], { hour: 'numeric', minute: '2-digit' });
  const shown = formatDollars(cost);
  const exact = formatExact(cost);
  const exactly = exact === shown ? '' : ` (exactly ${exact})`;
  $('estimate-detail').textContent =
    `${formatDollars(offering.hourlyRate)}/h × ${minutes} min${exactly}; ends about ${ends}`;
}

$('offering').addEventListener('change', () => {
  $('provision-error').textContent = '';
  const offering = selectedOffering();
  // A duration past the new offering's maximum becomes that maximum.
  const typed = Number($('minutes').value);
  if (offering && Number.isInteger(typed) && typed > offering.maxMinutes) {
    $('minutes').value = String(offering.maxMinutes);
  }
  updateForm();
});
$('minutes').addEventListener('input', () => {
  $('provision-error').textContent = '';
  updateForm();
});
for (const chip of document.querySelectorAll('.chip[data-minutes]')) {
  chip.addEventListener('click', () => {
    $('minutes').value = chip.dataset.minutes;
    updateForm();
  });
}

$('provision-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const offering = selectedOffering();
  const errorEl = $('provision-error');
  errorEl.textContent = '';
  if (!offering) {
    $('offering-error').textContent = 'Pick an offering.';
    $('offering').focus();
    return;
  }
  const { minutes, error } = readMinutes(offering);
  if (error) {
    $('minutes-error').textContent = error;
    $('minutes').focus();
    return;
  }
  const submit = $('provision-submit');
  submit.disabled = true;
  submit.textContent = 'Renting…';
  try {
    const lease = await api('POST', '/api/provision', { imageType: offering.key, durationMinutes: minutes });
    leases.upsert(lease);
    notify(`Lease ${shortId(lease.id)} requested; its container is starting.`, 'ok');
    refreshUsage();
  } catch (failure) {
    showProvisionError(failure);
  } finally {
    submit.disabled = false;
    submit.textContent = 'Rent';
  }
});

function showProvisionError(error) {
  if (error.status === 401) return;
  if (error.field === 'durationMinutes') {
    $('minutes-error').textContent = error.message;
    $('minutes').setAttribute('aria-invalid', 'true');
    $('minutes').focus();
  } else if (error.field === 'imageType') {
    $('offering-error').textContent = error.message;
    $('offering').focus();
  } else {
    $('provision-error').textContent = refusalText(error);
  }
}

/** A refusal's message, led by what it means when a limit refused it. */
function refusalText(error) {
  if (error.code === 'capacity_exhausted') {
    return `The server is full (${error.limit}); try again once some leases have ended. ${error.message}`;
  }
  if (error.code === 'quota_exceeded') {
    return `Your quota is reached (${error.limit}). ${error.message}`;
  }
  return error.message;
}

// ---------------------------------------------------------------- leases

const logs = new LogsPanel({
  panel: $('logs-panel'),
  title: $('logs-title'),
  output: $('logs-output'),
  state: $('logs-state'),
  end: $('logs-end'),
  follow: $('logs-follow'),
  close: $('logs-close'),
  reconnect: $('logs-reconnect'),
});

const shell = new ShellPanel({
  panel: $('shell-panel'),
  title: $('shell-title'),
  state: $('shell-state'),
  screen: $('shell-screen'),
  end: $('shell-end'),
  close: $('shell-close'),
});

window.addEventListener('pagehide', () => shell.abandon());

const files = new FilesPanel({
  panel: $('files-panel'),
  title: $('files-title'),
  close: $('files-close'),
  state: $('files-state'),
  downloadForm: $('files-download'),
  downloadPath: $('files-download-path'),
  uploadForm: $('files-upload'),
  uploadFiles: $('files-upload-files'),
  uploadPath: $('files-upload-path'),
});

// A hook for the browser tests: drop the terminal's connection as a network
// failure would (the panel must re-attach by itself). Harmless: it only
// closes this page's own socket.
window.containerLeaseDebug = Object.freeze({ dropTerminalConnection: () => shell.dropConnection() });

const ports = new PortsDialog({ notify: (text, kind) => notify(text, kind) });

const tokens = new TokensPanel(
  {
    panel: $('tokens-panel'),
    details: $('tokens'),
    form: $('token-mint'),
    name: $('token-name'),
    nameError: $('token-name-error'),
    expiry: $('token-expiry'),
    submit: $('token-mint-submit'),
    fresh: $('token-new'),
    freshName: $('token-new-name'),
    freshValue: $('token-new-value'),
    copy: $('token-copy'),
    done: $('token-new-done'),
    copyState: $('token-copy-state'),
    error: $('tokens-error'),
    empty: $('tokens-empty'),
    table: $('tokens-table'),
    body: $('tokens-body'),
  },
  { notify: (text, kind) => notify(text, kind) },
);

const leases = new LeaseList({
  list: $('lease-list'),
  empty: $('no-leases'),
  template: $('lease-template'),
  actions: {
    offering: (key) => state.offerings.get(key),
    logs: (lease) => logs.open(lease),
    terminal: (lease) => shell.open(lease),
    files: (lease) => files.open(lease),
    ports: (lease) => ports.open(lease),
    async extend(lease) {
      const updated = await api('POST', `/api/containers/${encodeURIComponent(lease.id)}/extend`, {
        minutes: EXTEND_MINUTES,
      });
      leases.upsert(updated);
      notify(`Lease ${shortId(updated.id)} extended to ${formatTime(Date.parse(updated.expiryAt))}.`, 'ok');
      refreshUsage();
    },
    async remove(lease) {
      try {
        const updated = await api('DELETE', `/api/containers/${encodeURIComponent(lease.id)}`);
        leases.upsert(updated);
      } catch (error) {
        if (error.status === 404) {
          leases.remove(lease.id); // already gone
          return;
        }
        throw error;
      }
    },
  },
});

async function refreshLeases() {
  try {
    const { containers } = await api('GET', '/api/containers');
    leases.replace(containers);
    $('leases-error').textContent = '';
  } catch (error) {
    if (error.status !== 401) $('leases-error').textContent = `Cannot load your leases: ${error.message}`;
  }
}

async function pollTransient() {
  for (const lease of leases.transient()) {
    try {
      const fresh = await api('GET', `/api/containers/${encodeURIComponent(lease.id)}/status`);
      if (leases.has(fresh.id)) leases.upsert(fresh);
    } catch (error) {
      if (error.status === 404) leases.remove(lease.id);
      if (error.status === 401) return;
    }
  }
}

$('refresh').addEventListener('click', () => {
  refreshLeases();
  refreshUsage();
});

// ---------------------------------------------------------------- usage and history

let usageTimer = null;

/** Re-reads usage soon (several events in a row cause one request). */
function refreshUsage() {
  clearTimeout(usageTimer);
  usageTimer = setTimeout(loadUsage, 250);
}

async function loadUsage() {
  try {
    const usage = await api('GET', '/api/usage');
    showUsage(usage);
    $('usage-error').textContent = '';
  } catch (error) {
    if (error.status !== 401) $('usage-error').textContent = `Cannot load usage: ${error.message}`;
  }
}

function showUsage(usage) {
  state.owner = usage.owner;
  showWho(usage.owner);
  $('usage-active').textContent = String(usage.activeLeases);
  const limits = usage.limits ?? {};
  $('usage-active-limit').textContent =
    limits.maxLeasesPerOwner != null ? `of ${limits.maxLeasesPerOwner} allowed` : `${usage.liveLeases} live`;
  $('usage-today').textContent = formatDollars(usage.spentToday);
  $('usage-today').title = `Exactly ${formatExact(usage.spentToday)} (bookings made today, UTC)`;
  $('usage-today-limit').textContent =
    limits.maxDailySpend != null ? `of ${formatDollars(limits.maxDailySpend)} a day` : 'booked today (UTC)';
  $('usage-estimate').textContent = formatDollars(usage.estimatedCost);
  $('usage-estimate').title = `Exactly ${formatExact(usage.estimatedCost)}: the bookings of what is running or starting`;
  $('usage-accrued').textContent = `${formatDollars(usage.accruedCost)} used so far`;
  showCapacity(limits.capacity ?? {});
}

/** "Signed in as …" in the top bar, saying so when the caller is an admin. */
function showWho(owner) {
  const admin = state.me?.admin === true && state.me.owner === owner;
  $('who').textContent = `Signed in as ${owner}${admin ? ' (admin)' : ''}`;
  $('who').dataset.admin = String(admin);
  $('who').hidden = false;
}

/** The server's capacity limits (all owners together), when it has any. */
function showCapacity(capacity) {
  const parts = [];
  if (capacity.maxLeases != null) parts.push(`${capacity.maxLeases} leases`);
  if (capacity.maxCpus != null) parts.push(`${capacity.maxCpus} CPUs`);
  if (capacity.maxMemoryMb != null) parts.push(`${capacity.maxMemoryMb} MiB of memory`);
  const inUse = capacity.inUse;
  const used = inUse ? ` Now in use: ${inUse.leases} leases, ${inUse.cpus} CPUs, ${inUse.memoryMb} MiB.` : '';
  $('usage-capacity').textContent = parts.length ? `Server capacity, all users together: ${parts.join(', ')}.${used}` : '';
  $('usage-capacity').hidden = parts.length === 0;
}

const END_REASONS = { deleted: 'deleted', expired: 'expired', error: 'failed', exited: 'stopped' };

async function loadHistory() {
  if (!$('history').open) return;
  try {
    const page = await api('GET', '/api/history?limit=20');
    const rows = page.leases.map((lease) => {
      const row = document.createElement('tr');
      const cells = [
        shortId(lease.id),
        lease.imageType,
        lease.endedAt ? new Date(lease.endedAt).toLocaleString() : '–',
        END_REASONS[lease.endReason] ?? lease.endReason ?? '–',
        formatDollars(lease.finalCost ?? lease.accruedCost),
      ];
      for (const text of cells) {
        const cell = document.createElement('td');
        cell.textContent = text;
        row.append(cell);
      }
      row.cells[0].title = lease.id;
      return row;
    });
    $('history-body').replaceChildren(...rows);
    $('history-table').hidden = rows.length === 0;
    $('history-empty').hidden = rows.length > 0;
    $('history-error').textContent = '';
  } catch (error) {
    if (error.status !== 401) $('history-error').textContent = `Cannot load history: ${error.message}`;
  }
}

$('history').addEventListener('toggle', loadHistory);

// ---------------------------------------------------------------- operations view

const ops = new OpsView(
  {
    section: $('ops'),
    windows: [...document.querySelectorAll('.ops-window')],
    refresh: $('ops-refresh'),
    state: $('ops-state'),
    error: $('ops-error'),
    totalActive: $('ops-active'),
    totalAccrued: $('ops-accrued'),
    totalBooked: $('ops-booked'),
    totalProvisions: $('ops-provisions'),
    totalFailures: $('ops-failures'),
    byStatus: $('ops-by-status'),
    byOffering: $('ops-by-offering'),
    capacity: $('ops-capacity'),
    spendChart: $('ops-spend'),
    leasesChart: $('ops-leases'),
    provisionChart: $('ops-provision'),
    provisionP: $('ops-provision-p'),
    lateP50: $('ops-late-p50'),
    lateP90: $('ops-late-p90'),
    lateP99: $('ops-late-p99'),
    lateSamples: $('ops-late-samples'),
    lateTable: $('ops-late-table'),
    owners: $('ops-owners'),
    ownersEmpty: $('ops-owners-empty'),
    offerings: $('ops-offerings'),
  },
  { notify: (text, kind) => notify(text, kind) },
);

/** The address fragment that opens the Operations view. */
const OPS_HASH = '#operations';

/**
 * Whether the caller may see the Operations view: an admin (token or
 * session), or the owner of a single-user server, who runs it. The API
 * checks again (403 for anyone else), and a refusal hides the view.
 */
function isOperator() {
  return state.me?.admin === true || state.me?.via === 'single-user';
}

/**
 * Shows the portal (`portal`) or the Operations view (`ops`); `remember`
 * keeps the choice in the address (`#operations`), so a reload comes back.
 */
function showView(name, remember = false) {
  const opsShown = name === 'ops' && ops.enabled;
  $('portal-view').hidden = opsShown;
  $('view-portal').setAttribute('aria-pressed', String(!opsShown));
  $('view-ops').setAttribute('aria-pressed', String(opsShown));
  ops.show(opsShown);
  const hash = opsShown ? OPS_HASH : '';
  if (remember && window.location.hash !== hash) {
    window.history.replaceState(null, '', `${window.location.pathname}${window.location.search}${hash}`);
  }
}

/** Turns the view switch on for an operator, off (and the view hidden) for anyone else. */
function setOperator(on) {
  ops.enable(on);
  $('views').hidden = !on;
  showView(on && window.location.hash === OPS_HASH ? 'ops' : 'portal');
}

ops.onRefused = () => {
  setOperator(false);
  notify('The operations figures are for admins only.', 'info');
};

$('view-portal').addEventListener('click', () => showView('portal', true));
$('view-ops').addEventListener('click', () => {
  showView('ops', true);
  $('ops-title').focus();
});

// ---------------------------------------------------------------- live events

function setLive(status) {
  const text = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…' }[status] ?? status;
  $('live').dataset.state = status;
  $('live-text').textContent = text;
  $('live').title = status === 'live' ? 'Updates arrive as they happen' : 'Live updates are paused; retrying';
}

function onEvent(kind, data) {
  const lease = data.lease;
  if (!lease) return;
  const known = leases.has(lease.id);
  const short = shortId(lease.id);
  switch (kind) {
    case 'deleted':
      // An open logs panel ends by itself when the container goes.
      leases.remove(lease.id);
      if (known) notify(`Lease ${short} ended (${lease.endReason ?? 'deleted'}).`);
      loadHistory();
      break;
    case 'expiring_soon':
      leases.upsert(lease);
      notify(`Lease ${short} expires in ${Math.max(1, Math.ceil(lease.expiresIn / 60))} min. Extend it to keep it.`, 'warn');
      break;
    case 'error':
      leases.upsert(lease);
      notify(`Lease ${short} failed; its card says why.`, 'error');
      break;
    case 'reap_failed':
      leases.upsert(lease);
      notify(`Removing lease ${short} failed; the server keeps retrying.`, 'error');
      break;
    case 'running':
      leases.upsert(lease);
      if (known) notify(`Lease ${short} is running.`, 'ok');
      break;
    default:
      leases.upsert(lease);
  }
  refreshUsage();
  ops.leaseEvent();
}

// ---------------------------------------------------------------- start and stop

function stopApp() {
  state.signedIn = false;
  state.events?.stop();
  state.events = null;
  for (const timer of state.timers) clearInterval(timer);
  state.timers = [];
  logs.close();
  shell.close();
  files.close();
  leases.clear();
  tokens.show(false);
  setOperator(false);
}

/**
 * How the server signs people in, and who is signed in: `true` when the
 * page may go on, `false` when it showed the sign-in or an error. A server
 * without GET /api/auth keeps the old way: the catalog's 401 says.
 */
async function identify() {
  try {
    state.auth = await loadAuth();
  } catch (error) {
    showFatal(`Cannot reach the server: ${error.message}`);
    return false;
  }
  state.me = null;
  setSession(null);
  if (state.auth.legacy) return true;
  const hadToken = Boolean(token());
  try {
    // With a token, a 401 signs the page out (the token is bad); without,
    // it just means nobody is signed in yet.
    state.me = await whoAmI({ quiet: !hadToken });
  } catch (error) {
    showFatal(`Cannot tell who is signed in: ${error.message}`);
    return false;
  }
  if (state.me) return true;
  if (hadToken) return false; // onUnauthorized showed the sign-in
  if (state.auth.mode === 'single-user') return true;
  showSignIn('');
  return false;
}

async function boot() {
  stopApp();
  $('fatal').hidden = true;
  if (!(await identify())) {
    $('boot').hidden = true;
    return;
  }
  let catalog;
  try {
    catalog = await api('GET', '/api/catalog');
  } catch (error) {
    $('boot').hidden = true;
    if (error.status === 401) return; // onUnauthorized showed the sign-in
    showFatal(`Cannot load the catalog: ${error.message}`);
    return;
  }
  state.signedIn = true;
  $('boot').hidden = true;
  $('signin').hidden = true;
  $('app').hidden = false;
  $('signout').hidden = !token() && !hasSession();
  $('signout-everywhere-row').hidden = !hasSession();
  $('live').hidden = false;
  if (state.me) showWho(state.me.owner);
  tokens.show(Boolean(state.me) && state.me.via !== 'single-user');
  fillCatalog(catalog.offerings);
  setOperator(isOperator());
  await Promise.all([refreshLeases(), loadUsage(), loadHistory()]);
  if (!state.signedIn) return;
  state.events = followEvents({
    onEvent,
    onConnected: () => {
      refreshLeases();
      refreshUsage();
      ops.leaseEvent();
    },
    onState: setLive,
  });
  state.timers.push(
    setInterval(pollTransient, TRANSIENT_POLL_MS),
    setInterval(() => {
      refreshLeases();
      loadUsage();
      ops.leaseEvent();
    }, RESYNC_MS),
  );
}

$('fatal-retry').addEventListener('click', boot);

window.addEventListener('unhandledrejection', (event) => {
  if (event.reason instanceof ApiError) {
    event.preventDefault();
    notify(event.reason.message, 'error');
  }
});

// Every module loaded: boot.js's automatic reloads start counting afresh.
try {
  window.sessionStorage.removeItem('containerlease.reloads');
} catch {
  // storage disabled: boot.js does not reload either
}

boot();
