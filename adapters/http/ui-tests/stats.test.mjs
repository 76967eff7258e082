// The Operations view's reading of GET /api/admin/stats (stats.js): exact
// money, counts, hostile or missing fields, number formatting, capacity
// words, the chart series and the refresh throttle.
// Run: node --test adapters/http/ui-tests/

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  capacityRows,
  cpusText,
  field,
  leaseSeries,
  moneyText,
  moneyTick,
  msText,
  parseStats,
  percentUsed,
  readHistogram,
  shortDay,
  spendSeries,
  tally,
  throttle,
} from '../ui/stats.js';

const ANSWER = {
  from: '2026-11-26',
  to: '2026-12-02',
  generated_at: '2026-12-02T10:00:00Z',
  totals: { active: 3, booked: '1.23', accrued: '0.000000001', provisions: 120, failures: 2 },
  active: { by_status: { pending: 1, running: 2 }, by_offering: { busybox: 3, alpine: 3, zeta: 1 } },
  days: [
    { day: '2026-12-01', provisions: 10, failures: 1, finished: 9, booked: '0.10', accrued: '0.080000001' },
    { day: '2026-12-02', provisions: 0, failures: 0, finished: 0, booked: '0', accrued: '0' },
  ],
  owners: [{ owner: 'ada', active: 1, provisions: 5, booked: '0.05', accrued: '9007199.254740993' }],
  offerings: [{ offering: 'busybox', provisions: 10, booked: '0.10', accrued: '0.08' }],
  provision_ms: { bounds: [50, 100], counts: [1, 2, 3], p50: 100, p90: null, p99: null },
  reap_lateness_ms: { bounds: [10], counts: [4, 0], p50: 0, p90: 10, p99: 10 },
  capacity: { leases: 3, max_leases: 100, nano_cpus: 1500000000, max_nano_cpus: null, memory_mb: 192, max_memory_mb: 1024 },
};

test('the answer is read with money exact to the nano-dollar', () => {
  const stats = parseStats(ANSWER);
  assert.equal(stats.from, '2026-11-26');
  assert.equal(stats.generatedAt, '2026-12-02T10:00:00Z');
  assert.deepEqual(stats.totals, { active: 3, booked: 1_230_000_000n, accrued: 1n, provisions: 120, failures: 2 });
  assert.equal(stats.days[0].accrued, 80_000_001n);
  // Beyond 2^53 nano-dollars: still exact (BigInt).
  assert.equal(stats.owners[0].accrued, 9_007_199_254_740_993n);
  assert.deepEqual(stats.byStatus, [['running', 2], ['pending', 1]]);
  assert.deepEqual(stats.byOffering, [['alpine', 3], ['busybox', 3], ['zeta', 1]]);
  assert.equal(stats.provisionMs.samples, 6);
  assert.equal(stats.provisionMs.p90, null);
  assert.deepEqual(stats.capacity, {
    leases: 3,
    maxLeases: 100,
    nanoCpus: 1_500_000_000,
    maxNanoCpus: null,
    memoryMb: 192,
    maxMemoryMb: 1024,
  });
});

test('camelCase keys are read too', () => {
  assert.equal(field({ byStatus: 1 }, 'by_status'), 1);
  assert.equal(field({ by_status: 2, byStatus: 1 }, 'by_status'), 2);
  assert.equal(field(null, 'x'), undefined);
  const stats = parseStats({ generatedAt: 'x', provisionMs: { bounds: [1], counts: [1, 1], p50: 1 } });
  assert.equal(stats.generatedAt, 'x');
  assert.equal(stats.provisionMs.p50, 1);
});

test('missing or hostile fields become zero or none, never NaN', () => {
  for (const data of [null, {}, [], 'text', { totals: 'x', days: 'x', owners: {}, capacity: 7 }]) {
    const stats = parseStats(data);
    assert.equal(stats.totals.active, 0);
    assert.equal(stats.totals.booked, 0n);
    assert.deepEqual(stats.days, []);
    assert.deepEqual(stats.owners, []);
    assert.equal(stats.capacity.maxLeases, null);
  }
  const odd = parseStats({
    totals: { active: -1, provisions: 1.5, failures: 'many' },
    days: [{ day: 7, provisions: Number.MAX_SAFE_INTEGER + 2 }],
    active: { by_status: { running: 'x', '<img>': 2 } },
    provision_ms: { bounds: [10, 20], counts: [1] },
  });
  assert.equal(odd.totals.active, 0);
  assert.equal(odd.totals.provisions, 0);
  assert.equal(odd.totals.failures, 0);
  assert.equal(odd.days[0].day, '7');
  assert.equal(odd.days[0].provisions, 0);
  assert.deepEqual(odd.byStatus, [['<img>', 2], ['running', 0]]);
  assert.deepEqual(odd.provisionMs.counts, [1, 0, 0], 'padded to bounds + overflow');
  assert.throws(() => parseStats({ totals: { booked: 'lots' } }), RangeError);
});

test('histograms, tallies and percentiles', () => {
  assert.deepEqual(readHistogram(undefined), { bounds: [], counts: [0], p50: null, p90: null, p99: null, samples: 0 });
  assert.deepEqual(readHistogram({ bounds: [5], counts: [1, 2, 99] }).counts, [1, 2]);
  assert.deepEqual(tally(null), []);
  assert.equal(msText(null), 'no samples');
  assert.equal(msText(0), '0 ms');
  assert.equal(msText(12500), '12,500 ms');
});

test('capacity is used-of-limit in words, percent for a meter', () => {
  assert.equal(cpusText(0), '0');
  assert.equal(cpusText(1_500_000_000), '1.5');
  assert.equal(cpusText(250_000_000), '0.25');
  assert.equal(cpusText(2_000_000_001), '2.000000001');
  assert.equal(percentUsed(3, 100), 3);
  assert.equal(percentUsed(150, 100), 100);
  assert.equal(percentUsed(3, null), null);
  assert.equal(percentUsed(3, 0), null);
  const rows = capacityRows(parseStats(ANSWER).capacity);
  assert.deepEqual(
    rows.map((r) => [r.what, r.text, r.percent]),
    [
      ['Leases', '3 of 100', 3],
      ['CPUs', '1.5 (no limit)', null],
      ['Memory', '192 of 1,024 MiB', 18],
    ],
  );
});

test('chart series carry exact labels', () => {
  const days = parseStats(ANSWER).days;
  const spend = spendSeries(days);
  assert.deepEqual(spend.map((s) => s.key), ['accrued', 'booked']);
  assert.deepEqual(spend[0].values, [80_000_001n, 0n]);
  assert.equal(spend[0].exact(0), '$0.08 (exactly $0.080000001)');
  assert.equal(spend[1].exact(0), '$0.10');
  const leases = leaseSeries(days);
  assert.deepEqual(leases[0].values, [10, 0]);
  assert.equal(leases[1].exact(0), '1');
  assert.equal(moneyText(333_333n), '$0.000333 (exactly $0.000333333)');
  assert.equal(moneyTick(20_000_000), '$0.02');
  assert.equal(moneyTick(0), '$0.00');
  assert.equal(shortDay('2026-12-01'), '12-01');
  assert.equal(shortDay('junk'), 'junk');
});

test('the refresh throttle runs at most once per interval', () => {
  let clock = 0;
  const queue = [];
  const timers = {
    now: () => clock,
    setTimeout: (fn, ms) => {
      queue.push({ fn, at: clock + ms });
      return queue.length;
    },
    clearTimeout: (id) => {
      queue[id - 1].fn = null;
    },
  };
  const advance = (ms) => {
    clock += ms;
    for (const entry of queue) {
      if (entry.fn && entry.at <= clock) {
        const { fn } = entry;
        entry.fn = null;
        fn();
      }
    }
  };
  let runs = 0;
  const t = throttle(() => (runs += 1), 2000, timers);
  t.request();
  advance(0);
  assert.equal(runs, 1, 'the first request runs at once');
  for (let i = 0; i < 50; i += 1) {
    t.request();
    advance(30);
  }
  assert.equal(runs, 1, 'a burst within the interval waits');
  advance(2000);
  assert.equal(runs, 2, 'then runs once');
  advance(10_000);
  assert.equal(runs, 2, 'nothing more without requests');
  t.request();
  t.cancel();
  advance(5000);
  assert.equal(runs, 2, 'cancelled');
});
