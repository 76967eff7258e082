// The Operations view (admins, and the owner of a single-user server):
// GET /api/admin/stats drawn as totals, active leases by status and
// offering, capacity used against the limits, spend and leases per day
// (charts, 7 or 30 days), provisioning time (a histogram), reap lateness
// percentiles, and spend per owner and per offering (tables). Lease events
// ask for fresh figures, at most one request every two seconds.

import { api } from './api.js';
import { barChart, bucketRange, formatCount, histogram, legend, lineChart, toDom } from './charts.js';
import { formatDollars, formatExact } from './money.js';
import { WINDOWS, capacityRows, leaseSeries, moneyTick, msText, parseStats, shortDay, spendSeries, throttle } from './stats.js';

/** Fewest milliseconds between two stats requests caused by events. */
export const REFRESH_MS = 2000;

/** An element with `className` and text. */
function make(doc, tag, className = '', text = null) {
  const element = doc.createElement(tag);
  if (className) element.className = className;
  if (text !== null) element.textContent = text;
  return element;
}

/** A table row of cells (`th` for the first when `header`). */
function row(doc, cells, header = false) {
  const tr = doc.createElement('tr');
  cells.forEach((cell, i) => {
    const td = doc.createElement(header ? 'th' : i === 0 ? 'th' : 'td');
    if (header) td.scope = 'col';
    else if (i === 0) td.scope = 'row';
    if (typeof cell === 'object' && cell !== null) {
      td.textContent = cell.text;
      for (const [key, value] of Object.entries(cell.data ?? {})) td.dataset[key] = value;
      if (cell.title) td.title = cell.title;
    } else {
      td.textContent = cell;
    }
    tr.append(td);
  });
  return tr;
}

/** A money cell: the short figure shown, the exact one in its title and data. */
function moneyCell(nanos, name) {
  return { text: formatDollars(nanos), title: `Exactly ${formatExact(nanos)}`, data: { field: name, nanos: nanos.toString() } };
}

/** A table (in a scrolling wrapper) with `head` and `rows` (arrays of cells). */
function table(doc, caption, head, rows) {
  const wrap = make(doc, 'div', 'table-wrap');
  const t = doc.createElement('table');
  const cap = make(doc, 'caption', 'visually-hidden', caption);
  const thead = doc.createElement('thead');
  thead.append(row(doc, head, true));
  const tbody = doc.createElement('tbody');
  for (const cells of rows) tbody.append(row(doc, cells));
  t.append(cap, thead, tbody);
  wrap.append(t);
  return wrap;
}

/**
 * Moves focus between the points of a chart with the arrow keys (one point
 * per chart is in the tab order), and shows the point's exact figures in
 * the readout line on hover and focus.
 */
function wireChart(body, readout) {
  const points = () => [...body.querySelectorAll('.point')];
  const show = (target) => {
    const p = target.closest?.('.point');
    if (p) readout.textContent = p.dataset.readout;
  };
  body.addEventListener('focusin', (event) => show(event.target));
  body.addEventListener('mouseover', (event) => show(event.target));
  body.addEventListener('keydown', (event) => {
    const all = points();
    const at = all.indexOf(event.target.closest?.('.point'));
    if (at < 0) return;
    const next = { ArrowRight: at + 1, ArrowDown: at + 1, ArrowLeft: at - 1, ArrowUp: at - 1, Home: 0, End: all.length - 1 }[event.key];
    if (next === undefined) return;
    event.preventDefault();
    const target = all[Math.max(0, Math.min(all.length - 1, next))];
    all[at].setAttribute('tabindex', '-1');
    target.setAttribute('tabindex', '0');
    target.focus();
  });
}

/** The Operations view. `elements` are the page's parts (see index.html). */
export class OpsView {
  constructor(elements, { notify }) {
    this.el = elements;
    this.notify = notify;
    this.days = 30;
    this.enabled = false;
    this.loading = null;
    this.stale = true;
    this.refresher = throttle(() => this.load(), REFRESH_MS);
    for (const button of this.el.windows) {
      button.addEventListener('click', () => this.setDays(Number(button.dataset.days)));
    }
    this.el.refresh.addEventListener('click', () => this.load());
    this.showWindow();
  }

  /** Whether the view is on screen. */
  visible() {
    return this.enabled && !this.el.section.hidden;
  }

  /** Enables (for an operator) or disables the view; disabled, it never asks the API. */
  enable(on) {
    this.enabled = on;
    this.stale = true;
    if (!on) this.refresher.cancel();
  }

  /** Shows or hides the view; shown, it loads fresh figures. */
  show(shown) {
    this.el.section.hidden = !shown;
    if (shown && this.enabled) this.load();
  }

  /** Something happened to a lease: figures are re-read soon (throttled). */
  leaseEvent() {
    if (!this.enabled) return;
    if (this.visible()) this.refresher.request();
    else this.stale = true;
  }

  setDays(days) {
    if (!WINDOWS.includes(days) || days === this.days) return;
    this.days = days;
    this.showWindow();
    this.load();
  }

  showWindow() {
    for (const button of this.el.windows) {
      button.setAttribute('aria-pressed', String(Number(button.dataset.days) === this.days));
    }
  }

  /**
   * Reads the stats and draws them. A 403 or 404 (not an operator after
   * all, or a server without the route) calls `onRefused` so the page can
   * hide the view.
   */
  async load() {
    if (!this.enabled) return;
    const days = this.days;
    this.el.section.setAttribute('aria-busy', 'true');
    let data;
    try {
      data = await api('GET', `/api/admin/stats?days=${days}`);
    } catch (error) {
      this.el.section.setAttribute('aria-busy', 'false');
      if (error.status === 401) return;
      if (error.status === 403 || error.status === 404) {
        this.onRefused?.(error);
        return;
      }
      this.el.error.textContent = `Cannot load the operations figures: ${error.message}`;
      return;
    }
    this.el.section.setAttribute('aria-busy', 'false');
    if (days !== this.days) return; // the window changed meanwhile: its own load draws
    let stats;
    try {
      stats = parseStats(data);
    } catch (error) {
      this.el.error.textContent = `The operations figures could not be read: ${error.message}`;
      return;
    }
    this.el.error.textContent = '';
    this.stale = false;
    this.draw(stats);
  }

  draw(stats) {
    const doc = this.el.section.ownerDocument;
    this.el.section.dataset.days = String(stats.days.length);
    this.el.section.dataset.generatedAt = stats.generatedAt;
    const at = Date.parse(stats.generatedAt);
    const when = Number.isFinite(at) ? new Date(at).toLocaleTimeString() : 'now';
    this.el.state.textContent = `${stats.from} to ${stats.to} (UTC days, created then); figures as of ${when}.`;
    this.drawTotals(stats.totals);
    this.drawActive(doc, stats);
    this.drawCapacity(doc, stats.capacity);
    this.drawSpend(doc, stats.days);
    this.drawLeases(doc, stats.days);
    this.drawProvisioning(doc, stats.provisionMs);
    this.drawLateness(doc, stats.reapLatenessMs);
    this.drawOwners(doc, stats.owners);
    this.drawOfferings(doc, stats.offerings);
  }

  drawTotals(totals) {
    const { el } = this;
    el.totalActive.textContent = formatCount(totals.active);
    for (const [target, nanos] of [
      [el.totalAccrued, totals.accrued],
      [el.totalBooked, totals.booked],
    ]) {
      target.textContent = formatDollars(nanos);
      target.title = `Exactly ${formatExact(nanos)}`;
      target.dataset.nanos = nanos.toString();
    }
    el.totalProvisions.textContent = formatCount(totals.provisions);
    el.totalFailures.textContent = `${formatCount(totals.failures)} failed`;
  }

  drawActive(doc, stats) {
    const tallies = (pairs, empty) =>
      pairs.length === 0
        ? [make(doc, 'li', 'empty', empty)]
        : pairs.map(([key, n]) => {
            const li = make(doc, 'li', '', `${key}: ${formatCount(n)}`);
            li.dataset.key = key;
            return li;
          });
    this.el.byStatus.replaceChildren(...tallies(stats.byStatus, 'No active leases.'));
    this.el.byOffering.replaceChildren(...tallies(stats.byOffering, 'No active leases.'));
  }

  drawCapacity(doc, capacity) {
    const rows = capacityRows(capacity).map((r) => {
      const li = make(doc, 'li', 'capacity-row');
      li.append(make(doc, 'span', 'capacity-what', r.what), make(doc, 'span', 'capacity-text', r.text));
      if (r.percent !== null) {
        const meter = doc.createElement('meter');
        meter.min = 0;
        meter.max = 100;
        meter.low = 70;
        meter.high = 90;
        meter.optimum = 0;
        meter.value = r.percent;
        meter.setAttribute('aria-label', `${r.what} used: ${r.percent}%`);
        li.append(meter, make(doc, 'span', 'capacity-percent', `${r.percent}%`));
      }
      return li;
    });
    this.el.capacity.replaceChildren(...rows);
  }

  /** Draws one chart figure: legend, drawing, readout and the table fallback. */
  drawChart(figure, tree, series, kind, tableSpec) {
    const doc = figure.ownerDocument;
    const body = figure.querySelector('.chart-body');
    const readout = figure.querySelector('.chart-readout');
    const legendBox = figure.querySelector('.chart-legend');
    legendBox.replaceChildren(...(series.length > 1 ? [toDom(legend(series, tree.attrs.id, kind), doc)] : []));
    body.replaceChildren(toDom(tree, doc));
    if (!body.dataset.wired) {
      wireChart(body, readout);
      body.dataset.wired = 'true';
    }
    readout.textContent = 'Point at or focus a bar or point for its exact figures.';
    figure.querySelector('.chart-table').replaceChildren(table(doc, tableSpec.caption, tableSpec.head, tableSpec.rows));
  }

  drawSpend(doc, days) {
    const series = spendSeries(days);
    const tree = lineChart({
      id: 'spend-chart',
      label: `Spend per day, last ${days.length} days`,
      categories: days.map((d) => shortDay(d.day)),
      series,
      formatTick: moneyTick,
      describe: (_, s, i) => `${days[i].day}: ${s.label.toLowerCase()} ${s.exact(i)}`,
    });
    this.drawChart(this.el.spendChart, tree, series, 'line', {
      caption: 'Spend per day',
      head: ['Day', 'Accrued', 'Booked'],
      rows: days.map((d) => [{ text: d.day, data: { day: d.day } }, moneyCell(d.accrued, 'accrued'), moneyCell(d.booked, 'booked')]),
    });
  }

  drawLeases(doc, days) {
    const series = leaseSeries(days);
    const tree = barChart({
      id: 'leases-chart',
      label: `Leases provisioned and failed per day, last ${days.length} days`,
      categories: days.map((d) => shortDay(d.day)),
      series,
      formatTick: formatCount,
      describe: (_, s, i) => `${days[i].day}: ${s.exact(i)} ${s.label.toLowerCase()}`,
    });
    this.drawChart(this.el.leasesChart, tree, series, 'bar', {
      caption: 'Leases per day',
      head: ['Day', 'Provisions', 'Failures', 'Finished'],
      rows: days.map((d) => [d.day, formatCount(d.provisions), formatCount(d.failures), formatCount(d.finished)]),
    });
  }

  drawProvisioning(doc, h) {
    this.el.provisionP.textContent = `p50 ${msText(h.p50)} · p90 ${msText(h.p90)} · p99 ${msText(h.p99)} (${formatCount(h.samples)} leases)`;
    const tree = histogram({
      id: 'provision-chart',
      label: 'Provisioning time: leases per time range',
      bounds: h.bounds,
      counts: h.counts,
      unit: 'ms',
      noun: 'leases',
    });
    this.drawChart(this.el.provisionChart, tree, [], 'bar', bucketTable(h, 'Provisioning time'));
  }

  drawLateness(doc, h) {
    const { el } = this;
    // Without samples a short "none" (the line below says why): "no
    // samples" in the large figure type wraps in a third of a card.
    for (const [target, value] of [
      [el.lateP50, h.p50],
      [el.lateP90, h.p90],
      [el.lateP99, h.p99],
    ]) {
      target.textContent = value === null ? 'none' : msText(value);
      target.title = value === null ? 'No samples' : '';
    }
    el.lateSamples.textContent = `${formatCount(h.samples)} leases ended by expiry`;
    const spec = bucketTable(h, 'Reap lateness');
    el.lateTable.replaceChildren(table(doc, spec.caption, spec.head, spec.rows));
  }

  drawOwners(doc, owners) {
    this.el.ownersEmpty.hidden = owners.length > 0;
    const rows = owners.map((o) => {
      const cells = [{ text: o.owner, data: { owner: o.owner } }, formatCount(o.active), formatCount(o.provisions), moneyCell(o.accrued, 'accrued'), moneyCell(o.booked, 'booked')];
      return cells;
    });
    const wrap = table(doc, 'Spend per owner', ['Owner', 'Active', 'Provisions', 'Accrued', 'Booked'], rows);
    wrap.querySelectorAll('tbody tr').forEach((tr, i) => {
      tr.dataset.owner = owners[i].owner;
    });
    this.el.owners.replaceChildren(wrap);
  }

  drawOfferings(doc, offerings) {
    const rows = offerings.map((o) => [o.offering, formatCount(o.provisions), moneyCell(o.accrued, 'accrued'), moneyCell(o.booked, 'booked')]);
    this.el.offerings.replaceChildren(table(doc, 'Spend per offering', ['Offering', 'Provisions', 'Accrued', 'Booked'], rows));
  }
}

/** The table of a histogram's buckets. */
function bucketTable(h, caption) {
  const rows = h.counts.map((n, i) => [bucketRange(h.bounds, i), formatCount(n)]);
  return { caption, head: ['Time', 'Leases'], rows };
}
