// Stacked bar charts as inline SVG built with DOM calls (no library, no inline style: colours
// come from CSS classes per series). Each bar carries a <title> so hovering shows the numbers,
// and the figure has a text summary for screen readers.

import { h, s, hourLabel } from './dom.js';

const W = 720;
const H = 220;
const PAD = { left: 36, right: 8, top: 10, bottom: 26 };

function niceMax(n) {
  if (n <= 4) return 4;
  const mag = 10 ** Math.floor(Math.log10(n));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * mag >= n) return step * mag;
  return 10 * mag;
}

/**
 * buckets: [{hour, values: {series: count}}]; series: [{key, label}].
 * Returns a <figure> with the chart, a legend and a caption.
 */
export function stackedBars({ id, title, buckets, series }) {
  const totals = buckets.map((b) => series.reduce((sum, x) => sum + (b.values[x.key] || 0), 0));
  const max = niceMax(Math.max(0, ...totals));
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const slot = plotW / Math.max(1, buckets.length);
  const barW = Math.max(2, slot * 0.72);
  const y = (v) => PAD.top + plotH - (v / max) * plotH;

  const grid = [0, 0.5, 1].map((f) => {
    const v = Math.round(max * f);
    return s('g', { class: 'grid' },
      s('line', { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v) }),
      s('text', { x: PAD.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, String(v)));
  });

  const bars = buckets.map((b, i) => {
    const x = PAD.left + i * slot + (slot - barW) / 2;
    let base = 0;
    const parts = series.map((ser) => {
      const v = b.values[ser.key] || 0;
      if (!v) return null;
      const rect = s('rect', {
        class: `bar series-${ser.key}`, x: x.toFixed(1), width: barW.toFixed(1),
        y: y(base + v).toFixed(1), height: Math.max(1, y(base) - y(base + v)).toFixed(1),
      });
      base += v;
      return rect;
    });
    const label = `${hourLabel(b.hour)}: ${series.map((x) => `${b.values[x.key] || 0} ${x.label}`).join(', ')}`;
    // An invisible full-height rect makes the whole column hoverable.
    return s('g', { class: 'column' },
      s('title', {}, label),
      s('rect', { class: 'hit', x: (PAD.left + i * slot).toFixed(1), y: PAD.top, width: slot.toFixed(1), height: plotH }),
      parts);
  });

  const every = Math.max(1, Math.ceil(buckets.length / 6));
  const last = buckets.length - 1;
  const ticks = buckets.map((b, i) => ((i % every === 0 && last - i >= every / 2) || i === last
    ? s('text', {
      class: 'tick', x: (PAD.left + i * slot + slot / 2).toFixed(1), y: H - 6,
      'text-anchor': i === last ? 'end' : 'middle',
    }, hourLabel(b.hour))
    : null));

  const total = totals.reduce((a, b) => a + b, 0);
  const svg = s('svg', {
    viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-labelledby': `${id}-title`, id,
  }, s('title', { id: `${id}-title` }, `${title}: ${total} in the last ${buckets.length} hours`), grid, bars, ticks,
  s('line', { class: 'axis', x1: PAD.left, x2: W - PAD.right, y1: y(0), y2: y(0) }));

  const sums = series.map((ser) => [ser, buckets.reduce((sum, b) => sum + (b.values[ser.key] || 0), 0)]);
  const legend = h('ul', { class: 'legend' }, sums.map(([ser, n]) => h('li', {},
    s('svg', { viewBox: '0 0 10 10', class: 'swatch', 'aria-hidden': 'true' }, s('rect', { class: `series-${ser.key}`, width: 10, height: 10, rx: 2 })),
    ` ${ser.label} `, h('strong', {}, String(n)))));
  return h('figure', { class: 'card chart-card' }, h('figcaption', {}, h('h2', {}, title)), svg, legend);
}
