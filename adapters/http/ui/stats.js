// The answer of GET /api/admin/stats, read into what the Operations view
// shows: money as BigInt nano-dollars (money.js, exact), counts as
// integers, checked field by field (a missing or malformed field becomes
// zero or "none", never NaN on the page). Keys are read in snake_case as
// the API writes them, camelCase accepted too. No DOM here (tested in Node).

import { formatDollars, formatExact, toNanos } from './money.js';
import { formatCount } from './charts.js';

/** The windows the view offers, in days (the API takes 1 to 90). */
export const WINDOWS = Object.freeze([7, 30]);

/** `obj[key]`, or its camelCase spelling (`by_status` → `byStatus`). */
export function field(obj, key) {
  if (obj === null || typeof obj !== 'object') return undefined;
  if (obj[key] !== undefined) return obj[key];
  return obj[key.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase())];
}

/** A non-negative integer count, 0 for anything else. */
export function count(value) {
  const n = Number(value);
  return Number.isSafeInteger(n) && n >= 0 ? n : 0;
}

/** An integer or `null` (a percentile without samples, an unlimited limit). */
export function optionalInt(value) {
  if (value === null || value === undefined) return null;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : null;
}

/** Nano-dollars of a money field (`"0.012345678"`), 0 when absent; a malformed one throws. */
function nanos(value) {
  return toNanos(value ?? 0);
}

/** `{key: n}` as `[key, n]` pairs, largest first, then by name. */
export function tally(obj) {
  if (obj === null || typeof obj !== 'object') return [];
  return Object.entries(obj)
    .map(([key, n]) => [key, count(n)])
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** A histogram field: bounds, counts (bounds + 1 with the overflow), percentiles. */
export function readHistogram(h) {
  const bounds = Array.isArray(field(h, 'bounds')) ? field(h, 'bounds').map(count) : [];
  const raw = Array.isArray(field(h, 'counts')) ? field(h, 'counts').map(count) : [];
  const counts = Array.from({ length: bounds.length + 1 }, (_, i) => raw[i] ?? 0);
  return {
    bounds,
    counts,
    p50: optionalInt(field(h, 'p50')),
    p90: optionalInt(field(h, 'p90')),
    p99: optionalInt(field(h, 'p99')),
    samples: counts.reduce((a, b) => a + b, 0),
  };
}

/** One day of the answer's `days`. */
function readDay(d) {
  return {
    day: String(field(d, 'day') ?? ''),
    provisions: count(field(d, 'provisions')),
    failures: count(field(d, 'failures')),
    finished: count(field(d, 'finished')),
    booked: nanos(field(d, 'booked')),
    accrued: nanos(field(d, 'accrued')),
  };
}

/** One owner of the answer's `owners`. */
function readOwner(o) {
  return {
    owner: String(field(o, 'owner') ?? ''),
    active: count(field(o, 'active')),
    provisions: count(field(o, 'provisions')),
    booked: nanos(field(o, 'booked')),
    accrued: nanos(field(o, 'accrued')),
  };
}

/** One offering of the answer's `offerings`. */
function readOffering(o) {
  return {
    offering: String(field(o, 'offering') ?? ''),
    provisions: count(field(o, 'provisions')),
    booked: nanos(field(o, 'booked')),
    accrued: nanos(field(o, 'accrued')),
  };
}

/** The capacity in use and its limits (`null`: no limit). */
function readCapacity(c) {
  return {
    leases: count(field(c, 'leases')),
    maxLeases: optionalInt(field(c, 'max_leases')),
    nanoCpus: count(field(c, 'nano_cpus')),
    maxNanoCpus: optionalInt(field(c, 'max_nano_cpus')),
    memoryMb: count(field(c, 'memory_mb')),
    maxMemoryMb: optionalInt(field(c, 'max_memory_mb')),
  };
}

const list = (value) => (Array.isArray(value) ? value : []);

/**
 * The stats answer read for the view. Throws a RangeError when a money
 * field is not an amount (the view then says the answer was unreadable).
 */
export function parseStats(data) {
  const totals = field(data, 'totals') ?? {};
  const active = field(data, 'active') ?? {};
  return {
    from: String(field(data, 'from') ?? ''),
    to: String(field(data, 'to') ?? ''),
    generatedAt: String(field(data, 'generated_at') ?? ''),
    totals: {
      active: count(field(totals, 'active')),
      booked: nanos(field(totals, 'booked')),
      accrued: nanos(field(totals, 'accrued')),
      provisions: count(field(totals, 'provisions')),
      failures: count(field(totals, 'failures')),
    },
    byStatus: tally(field(active, 'by_status')),
    byOffering: tally(field(active, 'by_offering')),
    days: list(field(data, 'days')).map(readDay),
    owners: list(field(data, 'owners')).map(readOwner),
    offerings: list(field(data, 'offerings')).map(readOffering),
    provisionMs: readHistogram(field(data, 'provision_ms')),
    reapLatenessMs: readHistogram(field(data, 'reap_lateness_ms')),
    capacity: readCapacity(field(data, 'capacity') ?? {}),
  };
}

/** "2026-12-01" → "12-01" (a chart's axis label). */
export function shortDay(day) {
  return /^\d{4}-\d{2}-\d{2}$/.test(day) ? day.slice(5) : day;
}

/** Money for a chart label and its exact figure: "$0.08 (exactly $0.080000000)". */
export function moneyText(value) {
  const shown = formatDollars(value);
  const exact = formatExact(value);
  return shown === exact ? shown : `${shown} (exactly ${exact})`;
}

/** Milliseconds for people ("120 ms", "1,500 ms"); `null` → "no samples". */
export function msText(value) {
  return value === null || value === undefined ? 'no samples' : `${formatCount(value)} ms`;
}

/** Nano-CPUs as an exact decimal number of CPUs ("1.5"). */
export function cpusText(nanoCpus) {
  const n = BigInt(count(nanoCpus));
  const whole = n / 1_000_000_000n;
  const fraction = (n % 1_000_000_000n).toString().padStart(9, '0').replace(/0+$/, '');
  return fraction ? `${whole}.${fraction}` : whole.toString();
}

/** "used of limit" words for one capacity figure ("3 of 100", "3 (no limit)"). */
export function usedOf(used, limit, unit = '') {
  const suffix = unit ? ` ${unit}` : '';
  return limit === null ? `${used}${suffix} (no limit)` : `${used} of ${limit}${suffix}`;
}

/** How full a capacity figure is, 0 to 100 (whole percent), `null` without a limit. */
export function percentUsed(used, limit) {
  if (limit === null || limit <= 0) return null;
  return Math.min(100, Math.floor((used * 100) / limit));
}

/** The capacity rows of the view: what, used, limit words and percent. */
export function capacityRows(capacity) {
  const cpuLimit = capacity.maxNanoCpus === null ? null : cpusText(capacity.maxNanoCpus);
  return [
    { what: 'Leases', text: usedOf(capacity.leases, capacity.maxLeases), percent: percentUsed(capacity.leases, capacity.maxLeases) },
    {
      what: 'CPUs',
      text: usedOf(cpusText(capacity.nanoCpus), cpuLimit),
      percent: percentUsed(capacity.nanoCpus, capacity.maxNanoCpus),
    },
    {
      what: 'Memory',
      text: usedOf(formatCount(capacity.memoryMb), capacity.maxMemoryMb === null ? null : formatCount(capacity.maxMemoryMb), 'MiB'),
      percent: percentUsed(capacity.memoryMb, capacity.maxMemoryMb),
    },
  ];
}

/** The series of the spend-per-day chart (accrued and booked, exact labels). */
export function spendSeries(days) {
  const accrued = days.map((d) => d.accrued);
  const booked = days.map((d) => d.booked);
  return [
    { key: 'accrued', label: 'Accrued', values: accrued, exact: (i) => moneyText(accrued[i]) },
    { key: 'booked', label: 'Booked', values: booked, exact: (i) => moneyText(booked[i]) },
  ];
}

/** The series of the leases-per-day chart (provisions and failures). */
export function leaseSeries(days) {
  const provisions = days.map((d) => d.provisions);
  const failures = days.map((d) => d.failures);
  return [
    { key: 'provisions', label: 'Provisions', values: provisions, exact: (i) => formatCount(provisions[i]) },
    { key: 'failures', label: 'Failures', values: failures, exact: (i) => formatCount(failures[i]) },
  ];
}

/** A y-axis label for nano-dollars (short: "$0.08"). */
export function moneyTick(value) {
  return formatDollars(BigInt(Math.round(Number(value))));
}

/**
 * Calls `run` at most once per `intervalMs`: a burst of `request()`s
 * causes one run now (if the last was long enough ago) or one at the end
 * of the interval. `timers` is `{setTimeout, clearTimeout, now}` (tests
 * pass fakes). Returns `{request(), cancel()}`.
 */
export function throttle(run, intervalMs, timers = globalThis) {
  const now = () => (timers.now ? timers.now() : Date.now());
  let last = -Infinity;
  let pending = null;
  const fire = () => {
    pending = null;
    last = now();
    run();
  };
  return {
    request() {
      if (pending !== null) return;
      const wait = Math.max(0, last + intervalMs - now());
      pending = timers.setTimeout(fire, wait);
    },
    cancel() {
      if (pending !== null) timers.clearTimeout(pending);
      pending = null;
    },
  };
}
