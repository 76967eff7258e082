// The Operations view's charts (charts.js): scales, paths, point counts,
// encodings that do not rely on colour, exact labels, and the DOM they make.
// Run: node --test adapters/http/ui-tests/

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  HEIGHT,
  LOOKS,
  WIDTH,
  barChart,
  bucketLabel,
  bucketRange,
  formatCount,
  histogram,
  labelledIndexes,
  legend,
  lineChart,
  niceTicks,
  pointCounts,
  toDom,
  xOfPoint,
  yOf,
} from '../ui/charts.js';

/** Every node of a drawing, depth first. */
function nodes(tree) {
  const out = [tree];
  for (const child of tree.children ?? []) out.push(...nodes(child));
  return out;
}

const points = (tree, series) =>
  nodes(tree).filter((n) => n.attrs.class === 'point' && (!series || n.attrs['data-series'] === series));

function spec(values, extra = {}) {
  return {
    id: 'c',
    label: 'test chart',
    categories: values.map((_, i) => `d${i}`),
    series: [
      { key: 'a', label: 'Alpha', values, exact: (i) => `exactly ${values[i]}` },
      { key: 'b', label: 'Beta', values: values.map((v) => v * 2), exact: (i) => `twice ${values[i] * 2}` },
    ],
    formatTick: (n) => String(n),
    ...extra,
  };
}

test('ticks run from 0 to a nice top at or above the maximum', () => {
  assert.deepEqual(niceTicks(0), [0, 1]);
  assert.deepEqual(niceTicks(-5), [0, 1]);
  assert.deepEqual(niceTicks(Number.NaN), [0, 1]);
  assert.deepEqual(niceTicks(1), [0, 1]);
  assert.deepEqual(niceTicks(3), [0, 1, 2, 3]);
  assert.deepEqual(niceTicks(10), [0, 3, 6, 9, 12]);
  assert.deepEqual(niceTicks(100), [0, 25, 50, 75, 100]);
  assert.deepEqual(niceTicks(101), [0, 50, 100, 150]);
  assert.deepEqual(niceTicks(80_000_000), [0, 20_000_000, 40_000_000, 60_000_000, 80_000_000]);
  for (const max of [1, 7, 13, 99, 1234, 987_654_321, 5e12]) {
    const ticks = niceTicks(max);
    assert.ok(ticks[ticks.length - 1] >= max, `top of ${max}`);
    assert.ok(ticks.length <= 8, `few ticks for ${max}: ${ticks}`);
    assert.ok(ticks.every(Number.isInteger), `integer ticks for ${max}`);
  }
});

test('scales put 0 on the baseline and the top at the top, clamped', () => {
  const box = { left: 10, top: 20, width: 100, height: 50 };
  assert.equal(yOf(0, 10, box), 70);
  assert.equal(yOf(10, 10, box), 20);
  assert.equal(yOf(5, 10, box), 45);
  assert.equal(yOf(20, 10, box), 20);
  assert.equal(yOf(-1, 10, box), 70);
  assert.equal(yOf(5n, 10, box), 45);
  assert.equal(xOfPoint(0, 1, box), 60);
  assert.equal(xOfPoint(0, 5, box), 10);
  assert.equal(xOfPoint(4, 5, box), 110);
});

test('a line chart has one point per category and series, a path through them', () => {
  for (const n of [1, 7, 30, 90]) {
    const tree = lineChart(spec(Array.from({ length: n }, (_, i) => i)));
    assert.deepEqual(pointCounts(tree), { a: n, b: n });
    const path = nodes(tree).find((x) => x.tag === 'path' && x.attrs['data-series'] === 'a');
    assert.equal((path.attrs.d.match(/[ML]/g) ?? []).length, n);
    assert.ok(path.attrs.d.startsWith('M'));
  }
  const tree = lineChart(spec([0, 5, 10]));
  assert.equal(tree.tag, 'svg');
  assert.equal(tree.attrs.viewBox, `0 0 ${WIDTH} ${HEIGHT}`);
  const d = nodes(tree).find((x) => x.tag === 'path' && x.attrs['data-series'] === 'b').attrs.d;
  // b = 0, 10, 20 on a scale topping at 20: the last point is at the top of the plot.
  const ys = [...d.matchAll(/[ML][\d.]+ ([\d.]+)/g)].map((m) => Number(m[1]));
  assert.ok(ys[0] > ys[1] && ys[1] > ys[2], d);
  assert.equal(ys[2], 16);
});

test('every point is labelled with its exact value; one per chart is in the tab order', () => {
  const tree = lineChart(spec([1, 2, 3]));
  const all = points(tree);
  assert.equal(all.length, 6);
  assert.deepEqual(
    all.map((p) => p.attrs['aria-label']),
    ['d0: Alpha exactly 1', 'd1: Alpha exactly 2', 'd2: Alpha exactly 3', 'd0: Beta twice 2', 'd1: Beta twice 4', 'd2: Beta twice 6'],
  );
  for (const p of all) {
    assert.equal(p.attrs.role, 'img');
    assert.equal(p.attrs['data-readout'], p.attrs['aria-label']);
    const title = p.children.find((c) => c.tag === 'title');
    assert.equal(title.text, p.attrs['aria-label'], 'hover text');
  }
  assert.deepEqual(
    all.map((p) => p.attrs.tabindex),
    ['0', '-1', '-1', '-1', '-1', '-1'],
  );
  const custom = lineChart(spec([7], { describe: (c, s, i) => `${s.key}@${c}=${s.exact(i)}` }));
  assert.equal(points(custom, 'a')[0].attrs['aria-label'], 'a@d0=exactly 7');
});

test('series differ by more than colour: marker shape, dash and pattern', () => {
  const shapes = new Set(LOOKS.map((l) => l.marker));
  const dashes = new Set(LOOKS.map((l) => l.dash));
  const patterns = new Set(LOOKS.map((l) => l.pattern));
  assert.equal(shapes.size, LOOKS.length);
  assert.equal(dashes.size, LOOKS.length);
  assert.equal(patterns.size, LOOKS.length);
  const line = lineChart(spec([1, 2]));
  const markerTags = (key) => points(line, key).map((p) => p.children[1].tag);
  assert.deepEqual(markerTags('a'), ['circle', 'circle']);
  assert.deepEqual(markerTags('b'), ['rect', 'rect']);
  const paths = nodes(line).filter((n) => n.attrs.class === 'line');
  assert.equal(paths[0].attrs['stroke-dasharray'], undefined);
  assert.equal(paths[1].attrs['stroke-dasharray'], '6 4');

  const bars = barChart(spec([1, 2]));
  const fills = (key) => points(bars, key).map((p) => p.children[1].attrs.fill);
  assert.deepEqual(fills('a'), [LOOKS[0].colour, LOOKS[0].colour]);
  assert.deepEqual(fills('b'), ['url(#c-p1)', 'url(#c-p1)']);
  const pattern = nodes(bars).find((n) => n.tag === 'pattern');
  assert.equal(pattern.attrs.id, 'c-p1');

  const key = legend(spec([1]).series, 'c', 'bar');
  assert.deepEqual(
    key.children.map((li) => li.children[1].text),
    ['Alpha', 'Beta'],
  );
  const lineKey = legend(spec([1]).series, 'c', 'line');
  assert.equal(lineKey.children[1].children[0].children[0].attrs['stroke-dasharray'], '6 4');
});

test('a bar chart has a bar per category and series; zero is a visible sliver', () => {
  const tree = barChart(spec([0, 3, 0, 9, 1, 1, 2]));
  assert.deepEqual(pointCounts(tree), { a: 7, b: 7 });
  const rects = points(tree, 'a').map((p) => p.children[1].attrs);
  assert.equal(rects[0].height, 1);
  assert.ok(rects[3].height > rects[1].height);
  // Bars stand on the baseline and do not overlap their neighbours.
  const base = rects[0].y + rects[0].height;
  for (const r of rects) assert.equal(Math.round((r.y + r.height) * 10) / 10, base);
  for (let i = 1; i < rects.length; i += 1) assert.ok(rects[i].x >= rects[i - 1].x + rects[i - 1].width);
});

test('the x axis labels about eight categories, always the last', () => {
  assert.deepEqual([...labelledIndexes(7)].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6]);
  const thirty = [...labelledIndexes(30)].sort((a, b) => a - b);
  assert.ok(thirty.includes(29));
  assert.ok(thirty.length <= 8);
  assert.deepEqual([...labelledIndexes(0)], []);
});

test('a histogram has a bar per bucket plus the overflow, labelled with its range', () => {
  const bounds = [50, 100, 1000];
  const counts = [3, 0, 12, 1];
  const tree = histogram({ id: 'h', label: 'provisioning', bounds, counts, unit: 'ms', noun: 'leases' });
  const all = points(tree);
  assert.equal(all.length, 4);
  assert.deepEqual(
    all.map((p) => p.attrs['aria-label']),
    ['0–50 ms: 3 leases', '51–100 ms: 0 leases', '101–1,000 ms: 12 leases', 'over 1,000 ms: 1 leases'],
  );
  assert.equal(bucketLabel(bounds, 0), '≤50');
  assert.equal(bucketLabel(bounds, 3), '>1,000');
  assert.equal(bucketRange([], 0), 'over 0 ms');
});

test('counts are written with grouped thousands, exactly', () => {
  assert.equal(formatCount(0), '0');
  assert.equal(formatCount(999), '999');
  assert.equal(formatCount(1234567), '1,234,567');
  assert.equal(formatCount(12345678901234567890n), '12,345,678,901,234,567,890');
  assert.equal(formatCount(-1500), '-1,500');
  assert.equal(formatCount('nonsense'), '0');
});

test('toDom builds SVG elements in the SVG namespace and HTML outside', () => {
  const made = [];
  const fakeElement = (ns, tag) => {
    const element = {
      ns,
      tag,
      attrs: {},
      children: [],
      textContent: '',
      setAttribute(name, value) {
        this.attrs[name] = value;
      },
      append(child) {
        this.children.push(child);
      },
    };
    made.push(element);
    return element;
  };
  const doc = {
    createElementNS: (ns, tag) => fakeElement(ns, tag),
    createElement: (tag) => fakeElement(null, tag),
  };
  const svg = toDom(lineChart(spec([1, 2, 3, 4, 5, 6, 7])), doc);
  assert.equal(svg.ns, 'http://www.w3.org/2000/svg');
  assert.ok(made.every((e) => e.ns === 'http://www.w3.org/2000/svg'));
  assert.equal(made.filter((e) => e.attrs.class === 'point').length, 14);
  assert.ok(made.every((e) => Object.values(e.attrs).every((v) => typeof v === 'string')));
  assert.ok(made.every((e) => !('style' in e.attrs)), 'no style attributes (the CSP forbids them)');
  made.length = 0;
  const list = toDom(legend(spec([1]).series, 'c', 'line'), doc);
  assert.equal(list.ns, null);
  assert.equal(list.children[0].ns, null); // li
  assert.equal(list.children[0].children[0].ns, 'http://www.w3.org/2000/svg'); // swatch
});
