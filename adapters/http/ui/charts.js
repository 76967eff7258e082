// Small SVG charts, our own code (no third-party library): a line chart, a
// grouped bar chart and a histogram. The drawing is computed here as plain
// data — a tree of `{tag, attrs, children, text}` nodes — so that scales,
// paths and point counts can be tested in Node without a DOM; `toDom` turns
// the tree into SVG elements on the page.
//
// Readable without colour: every series has its own marker shape, line dash
// and fill pattern, and a legend that shows them beside the series' name.
// Every point and bar is a focusable element (`class="point"`, one in the
// tab order per chart, arrows move between them: see ops.js) whose
// `aria-label` and `<title>` carry the exact value; `data-readout` holds the
// same text for the readout line under the chart (shown on hover and focus).
//
// Geometry is floating point (pixels); values are shown from the exact
// strings the caller gives (`series.exact(i)`), never from the geometry.

/** The SVG namespace. */
export const SVG_NS = 'http://www.w3.org/2000/svg';

/** The drawing box (the SVG's viewBox; CSS scales it to the page's width). */
export const WIDTH = 640;
export const HEIGHT = 240;
const MARGIN = Object.freeze({ top: 16, right: 16, bottom: 44, left: 84 });

/** Series looks, by series index: never told apart by colour alone. */
export const LOOKS = Object.freeze([
  Object.freeze({ colour: '#0b5cad', dash: null, marker: 'circle', pattern: 'solid' }),
  Object.freeze({ colour: '#9a3412', dash: '6 4', marker: 'square', pattern: 'hatch' }),
  Object.freeze({ colour: '#116329', dash: '2 3', marker: 'triangle', pattern: 'dots' }),
  Object.freeze({ colour: '#6e4a00', dash: '10 3 2 3', marker: 'diamond', pattern: 'cross' }),
]);

/** The look of series `index` (cycling through LOOKS). */
export function lookOf(index) {
  return LOOKS[index % LOOKS.length];
}

/** A drawing node: an SVG element with attributes, children and text. */
export function node(tag, attrs = {}, children = [], text = null) {
  return { tag, attrs, children, text };
}

/** `n` rounded to one decimal (shorter SVG, stable tests). */
export function px(n) {
  return Math.round(n * 10) / 10;
}

/**
 * Tick values from 0 to a "nice" top (1, 2, 2.5 or 5 × 10^k) at or above
 * `max`, about `count` steps. Integers only when `integer` (counts, nano-
 * dollars, milliseconds): the step is at least 1. `max` ≤ 0 gives [0, 1].
 */
export function niceTicks(max, count = 4, integer = true) {
  const top = Number(max);
  if (!Number.isFinite(top) || top <= 0) return [0, 1];
  const rough = top / count;
  const power = 10 ** Math.floor(Math.log10(rough));
  let step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= rough) ?? 10 * power;
  if (integer) step = Math.max(1, Math.ceil(step));
  const ticks = [];
  for (let value = 0; ticks.length === 0 || ticks[ticks.length - 1] < top; value += step) {
    ticks.push(integer ? Math.round(value) : value);
  }
  return ticks;
}

/** The plot area inside the margins. */
function plotBox() {
  return {
    left: MARGIN.left,
    top: MARGIN.top,
    width: WIDTH - MARGIN.left - MARGIN.right,
    height: HEIGHT - MARGIN.top - MARGIN.bottom,
  };
}

/** The y pixel of `value` on a scale from 0 to `top`. */
export function yOf(value, top, box = plotBox()) {
  const fraction = top > 0 ? Math.min(1, Math.max(0, Number(value) / top)) : 0;
  return box.top + box.height - fraction * box.height;
}

/** The x pixel of point `index` of `count` (line chart: ends on the edges; one point: centred). */
export function xOfPoint(index, count, box = plotBox()) {
  if (count <= 1) return box.left + box.width / 2;
  return box.left + (index * box.width) / (count - 1);
}

/** Which category labels to write on the x axis: about `most` of them, the last always. */
export function labelledIndexes(count, most = 8) {
  const step = Math.max(1, Math.ceil(count / most));
  const shown = new Set();
  for (let i = count - 1; i >= 0; i -= step) shown.add(i);
  return shown;
}

/** The y axis: grid lines and tick labels. */
function yAxis(ticks, formatTick) {
  const box = plotBox();
  const top = ticks[ticks.length - 1];
  const children = [];
  for (const tick of ticks) {
    const y = px(yOf(tick, top, box));
    children.push(node('line', { class: 'grid', x1: box.left, x2: box.left + box.width, y1: y, y2: y }));
    children.push(node('text', { class: 'tick', x: box.left - 6, y: px(y + 4), 'text-anchor': 'end' }, [], formatTick(tick)));
  }
  return node('g', { class: 'axis axis-y', 'aria-hidden': 'true' }, children);
}

/** The x axis: the baseline and the category labels at `xs`. */
function xAxis(categories, xs) {
  const box = plotBox();
  const base = box.top + box.height;
  const children = [node('line', { class: 'baseline', x1: box.left, x2: box.left + box.width, y1: base, y2: base })];
  for (const i of labelledIndexes(categories.length)) {
    children.push(node('text', { class: 'tick', x: px(xs[i]), y: base + 18, 'text-anchor': 'middle' }, [], categories[i]));
  }
  return node('g', { class: 'axis axis-x', 'aria-hidden': 'true' }, children);
}

/** A marker shape of `kind` centred on (x, y). */
export function marker(kind, x, y, colour, r = 4.5) {
  const common = { class: 'marker', fill: colour, stroke: '#ffffff', 'stroke-width': 1.5 };
  switch (kind) {
    case 'square':
      return node('rect', { ...common, x: px(x - r), y: px(y - r), width: px(2 * r), height: px(2 * r) });
    case 'triangle':
      return node('path', { ...common, d: `M${px(x)} ${px(y - r - 1)}L${px(x + r + 1)} ${px(y + r)}L${px(x - r - 1)} ${px(y + r)}Z` });
    case 'diamond':
      return node('path', { ...common, d: `M${px(x)} ${px(y - r - 1)}L${px(x + r + 1)} ${px(y)}L${px(x)} ${px(y + r + 1)}L${px(x - r - 1)} ${px(y)}Z` });
    default:
      return node('circle', { ...common, cx: px(x), cy: px(y), r });
  }
}

/** The fill pattern of a look, with id `id` (solid fills need none: `null`). */
export function patternDef(look, id) {
  const background = node('rect', { width: 8, height: 8, fill: '#ffffff' });
  const ink = { stroke: look.colour, 'stroke-width': 2 };
  switch (look.pattern) {
    case 'hatch':
      return node('pattern', { id, width: 8, height: 8, patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)' }, [
        background,
        node('line', { x1: 0, y1: 0, x2: 0, y2: 8, ...ink, 'stroke-width': 4 }),
      ]);
    case 'dots':
      return node('pattern', { id, width: 6, height: 6, patternUnits: 'userSpaceOnUse' }, [
        background,
        node('circle', { cx: 3, cy: 3, r: 1.8, fill: look.colour }),
      ]);
    case 'cross':
      return node('pattern', { id, width: 8, height: 8, patternUnits: 'userSpaceOnUse' }, [
        background,
        node('path', { d: 'M0 0L8 8M8 0L0 8', ...ink, 'stroke-width': 1.5 }),
      ]);
    default:
      return null;
  }
}

/** The fill of bars of series `index` in chart `id`. */
function barFill(index, id) {
  const look = lookOf(index);
  return look.pattern === 'solid' ? look.colour : `url(#${id}-p${index})`;
}

/** The patterns a chart's bars use. */
function defs(seriesCount, id) {
  const patterns = [];
  for (let i = 0; i < seriesCount; i += 1) {
    const def = patternDef(lookOf(i), `${id}-p${i}`);
    if (def) patterns.push(def);
  }
  return node('defs', {}, patterns);
}

/**
 * A focusable point: the text says the category, the series and the exact
 * value; the first point of the chart is in the tab order, the others are
 * reached with the arrow keys.
 */
function point(text, index, seriesKey, first, shapes) {
  return node(
    'g',
    {
      class: 'point',
      tabindex: first ? '0' : '-1',
      role: 'img',
      'aria-label': text,
      'data-readout': text,
      'data-series': seriesKey,
      'data-index': String(index),
    },
    [node('title', {}, [], text), ...shapes],
  );
}

/** The legend under the chart title: each series' swatch (marker, dash, pattern) and name. */
export function legend(series, id, kind) {
  const items = series.map((s, i) => {
    const look = lookOf(i);
    const swatch =
      kind === 'line'
        ? node('svg', { class: 'swatch', width: 34, height: 14, viewBox: '0 0 34 14', 'aria-hidden': 'true' }, [
            node('line', { x1: 1, x2: 33, y1: 7, y2: 7, stroke: look.colour, 'stroke-width': 2.5, ...(look.dash ? { 'stroke-dasharray': look.dash } : {}) }),
            marker(look.marker, 17, 7, look.colour, 4),
          ])
        : node('svg', { class: 'swatch', width: 16, height: 14, viewBox: '0 0 16 14', 'aria-hidden': 'true' }, [
            ...(patternDef(look, `${id}-l${i}`) ? [node('defs', {}, [patternDef(look, `${id}-l${i}`)])] : []),
            node('rect', { x: 1, y: 1, width: 14, height: 12, stroke: look.colour, 'stroke-width': 1.5, fill: look.pattern === 'solid' ? look.colour : `url(#${id}-l${i})` }),
          ]);
    return node('li', { 'data-series': s.key }, [swatch, node('span', {}, [], s.label)]);
  });
  return node('ul', { class: 'legend' }, items);
}

/** The `<svg>` root of a chart. */
function svgRoot(id, label, children) {
  return node(
    'svg',
    { id, class: 'chart-svg', viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: 'group', 'aria-label': label, preserveAspectRatio: 'xMidYMid meet' },
    children,
  );
}

/** The largest value of `series` (Numbers for geometry). */
function maxOf(series) {
  let max = 0;
  for (const s of series) for (const v of s.values) max = Math.max(max, Number(v));
  return max;
}

/** A chart's spec with its defaults, plot box and value scale (ticks, top). */
function frame(spec) {
  const describe = spec.describe ?? ((category, s, i) => `${category}: ${s.label} ${s.exact(i)}`);
  const ticks = niceTicks(maxOf(spec.series));
  return { ...spec, describe, box: plotBox(), ticks, top: ticks[ticks.length - 1] };
}

/**
 * A line chart. `spec`: `{id, label, categories: string[], series: [{key,
 * label, values: (number|bigint)[], exact(i) → string}], formatTick(n) →
 * string, describe(category, series, i) → string}` (`describe` is the text
 * of one point; the default is "<category>: <series> <exact>").
 */
export function lineChart(spec) {
  const { id, label, categories, series, formatTick, describe, box, ticks, top } = frame(spec);
  const xs = categories.map((_, i) => xOfPoint(i, categories.length, box));
  const layers = [yAxis(ticks, formatTick), xAxis(categories, xs)];
  let first = true;
  series.forEach((s, si) => {
    const look = lookOf(si);
    const coords = s.values.map((v, i) => [px(xs[i]), px(yOf(v, top, box))]);
    const d = coords.map(([x, y], i) => `${i === 0 ? 'M' : 'L'}${x} ${y}`).join('');
    const lineAttrs = { class: 'line', d, fill: 'none', stroke: look.colour, 'stroke-width': 2.5, 'data-series': s.key };
    if (look.dash) lineAttrs['stroke-dasharray'] = look.dash;
    const points = coords.map(([x, y], i) => {
      const p = point(describe(categories[i], s, i), i, s.key, first, [marker(look.marker, x, y, look.colour)]);
      first = false;
      return p;
    });
    layers.push(node('g', { class: 'series', 'data-series': s.key }, [node('path', lineAttrs), ...points]));
  });
  return svgRoot(id, label, layers);
}

/**
 * A grouped bar chart: one group per category, one bar per series. `spec`
 * as for `lineChart`.
 */
export function barChart(spec) {
  const { id, label, categories, series, formatTick, describe, box, ticks, top } = frame(spec);
  const group = box.width / Math.max(1, categories.length);
  const barWidth = (group * 0.8) / Math.max(1, series.length);
  const xs = categories.map((_, i) => box.left + group * (i + 0.5));
  const layers = [defs(series.length, id), yAxis(ticks, formatTick), xAxis(categories, xs)];
  const base = box.top + box.height;
  let first = true;
  series.forEach((s, si) => {
    const look = lookOf(si);
    const bars = s.values.map((v, i) => {
      const x = box.left + group * i + group * 0.1 + barWidth * si;
      const y = yOf(v, top, box);
      // A zero still gets a sliver, so that it can be seen and focused.
      const height = Math.max(1, base - y);
      const rect = node('rect', {
        class: 'bar',
        x: px(x),
        y: px(base - height),
        width: px(barWidth),
        height: px(height),
        fill: barFill(si, id),
        stroke: look.colour,
        'stroke-width': 1,
      });
      const p = point(describe(categories[i], s, i), i, s.key, first, [rect]);
      first = false;
      return p;
    });
    layers.push(node('g', { class: 'series', 'data-series': s.key }, bars));
  });
  return svgRoot(id, label, layers);
}

/** The label of histogram bucket `index` of `bounds` (the last one is the overflow). */
export function bucketLabel(bounds, index, unit = 'ms') {
  if (index < bounds.length) return `≤${formatCount(bounds[index])}`;
  return `>${formatCount(bounds[bounds.length - 1] ?? 0)}`;
}

/** The range bucket `index` covers, in words ("51–100 ms", "over 5,000 ms"). */
export function bucketRange(bounds, index, unit = 'ms') {
  if (index >= bounds.length) return `over ${formatCount(bounds[bounds.length - 1] ?? 0)} ${unit}`;
  const low = index === 0 ? 0 : bounds[index - 1] + 1;
  return `${formatCount(low)}–${formatCount(bounds[index])} ${unit}`;
}

/**
 * A histogram: `spec` is `{id, label, bounds: number[], counts: number[]
 * (bounds.length + 1, the last the overflow), unit, noun}`.
 */
export function histogram(spec) {
  const { id, label, bounds, counts, unit = 'ms', noun = 'leases' } = spec;
  const categories = counts.map((_, i) => bucketLabel(bounds, i, unit));
  return barChart({
    id,
    label,
    categories,
    series: [{ key: 'count', label: noun, values: counts, exact: (i) => formatCount(counts[i]) }],
    formatTick: formatCount,
    describe: (_, s, i) => `${bucketRange(bounds, i, unit)}: ${formatCount(counts[i])} ${noun}`,
  });
}

/** An integer for people: thousands grouped ("12,345"). */
export function formatCount(value) {
  const n = typeof value === 'bigint' ? value : BigInt(Math.trunc(Number(value) || 0));
  const negative = n < 0n;
  const digits = (negative ? -n : n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return `${negative ? '-' : ''}${digits}`;
}

/** How many points (focusable elements) a drawing has, by series key. */
export function pointCounts(tree) {
  const counts = {};
  const walk = (n) => {
    if (n.attrs?.class === 'point') counts[n.attrs['data-series']] = (counts[n.attrs['data-series']] ?? 0) + 1;
    for (const child of n.children ?? []) walk(child);
  };
  walk(tree);
  return counts;
}

/**
 * The DOM elements of a drawing (`doc`: the page's document). SVG elements
 * inside an `<svg>`, HTML ones (the legend list) outside.
 */
export function toDom(tree, doc, inSvg = false) {
  const svg = inSvg || tree.tag === 'svg';
  const element = svg ? doc.createElementNS(SVG_NS, tree.tag) : doc.createElement(tree.tag);
  for (const [name, value] of Object.entries(tree.attrs)) {
    if (value !== null && value !== undefined) element.setAttribute(name, String(value));
  }
  if (tree.text !== null && tree.text !== undefined) element.textContent = tree.text;
  for (const child of tree.children) element.append(toDom(child, doc, svg));
  return element;
}
