// DOM helpers. Everything the server sends is shown through text nodes (h() turns strings into
// text nodes and sets attributes with setAttribute); nothing here parses HTML.

const SVG_NS = 'http://www.w3.org/2000/svg';

function build(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'text') {
      el.textContent = String(value);
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key === 'value' && 'value' in el) {
      el.value = value;
    } else if (key === 'checked' || key === 'disabled' || key === 'selected') {
      el[key] = Boolean(value);
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

/** Appends children: strings and numbers become text nodes; arrays are flattened; null skipped. */
export function append(el, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** An HTML element: h('a', {href: '/ui'}, 'text', otherNode). */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** Replaces an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const hourOnly = new Intl.DateTimeFormat(undefined, { hour: 'numeric' });

/** An RFC 3339 time in the browser's zone, in a <time> element carrying the exact value. */
export function time(iso) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return h('span', {}, iso);
  return h('time', { datetime: iso, title: d.toISOString() }, dateTime.format(d));
}

export function hourLabel(iso) {
  return hourOnly.format(new Date(iso));
}

/** Milliseconds as "850 ms", "12.3 s", "4 min 5 s", "2 h 3 min". */
export function duration(ms) {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.floor(s % 60)} s`;
  const hours = Math.floor(m / 60);
  if (hours < 48) return `${hours} h ${m % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

/** A status word as a coloured badge (colour by CSS class, the word itself as text). */
export function badge(word, kind) {
  const cls = kind || {
    completed: 'ok', delivered: 'ok', ready: 'ok', ok: 'ok', connected: 'ok', succeeded: 'ok',
    running: 'busy', queued: 'wait', pending: 'wait', starting: 'wait', progressing: 'wait',
    failed: 'bad', error: 'bad', degraded: 'bad', 'not ready': 'bad', cancelled: 'off', disabled: 'off',
    created: 'ok', modified: 'wait', deleted: 'bad',
  }[String(word).toLowerCase()] || 'off';
  return h('span', { class: `badge badge-${cls}` }, String(word));
}

/** Long text cut at `max` characters, with a button that shows the rest. */
export function longText(text, max = 4000, cls = 'output') {
  const value = text ?? '';
  const pre = h('pre', { class: cls }, value.length > max ? value.slice(0, max) : value);
  if (value.length <= max) return pre;
  const more = h('button', {
    type: 'button',
    class: 'link',
    onclick: () => { pre.textContent = value; more.remove(); },
  }, `Show all (${value.length.toLocaleString()} characters)`);
  return h('div', {}, pre, more);
}

/** A definition list from [label, value] pairs (values may be nodes). */
export function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v ?? '—')]));
}

/** A table: headers and rows of cells (strings or nodes). */
export function table(headers, rows, empty = 'Nothing here yet.') {
  if (!rows.length) return h('p', { class: 'empty' }, empty);
  return h('div', { class: 'table-wrap' },
    h('table', {},
      h('thead', {}, h('tr', {}, headers.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows.map((cells) => (cells instanceof Node ? cells : h('tr', {}, cells.map((c) => h('td', {}, c))))))));
}

/** An error box naming the API's code and message (and field details). */
export function errorBox(err, prefix) {
  const details = (err && err.details) || [];
  return h('div', { class: 'error', role: 'alert' },
    h('strong', {}, prefix ? `${prefix}: ` : '', err.status ? `${err.status} ${err.code || ''}` : 'Error'),
    h('p', {}, err.message || String(err)),
    details.length ? h('ul', {}, details.map((d) => h('li', {},
      h('code', {}, [d.file, d.line].filter((x) => x !== undefined && x !== null).join(':') || d.field || d.pointer || ''),
      ' ', d.message || ''))) : null);
}

/** A page heading with optional actions on the right. */
export function heading(title, ...actions) {
  return h('div', { class: 'page-head' }, h('h1', {}, title), h('div', { class: 'actions' }, actions));
}

/** A link handled by the client-side router. */
export function link(href, ...children) {
  return h('a', { href }, children);
}
