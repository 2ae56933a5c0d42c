// Resources: every declared resource with its kind, name, Ready, reason, message, applied
// revision and file:line; filtered by kind and readiness (kept in the URL).

import { h, replace, badge, time, table, heading } from '../dom.js';
import { all } from '../api.js';

const KINDS = ['Config', 'Token', 'Skill', 'Webhook', 'McpServer', 'Schedule'];

export async function render(main, _params, ctx) {
  const q = new URLSearchParams(location.search);
  const kind = h('select', { id: 'f-kind' }, h('option', { value: '' }, 'every kind'),
    KINDS.map((k) => h('option', { value: k, selected: q.get('kind') === k }, k)));
  const ready = h('select', { id: 'f-ready' },
    h('option', { value: '' }, 'ready or not'),
    h('option', { value: 'true', selected: q.get('ready') === 'true' }, 'ready'),
    h('option', { value: 'false', selected: q.get('ready') === 'false' }, 'not ready'));
  const apply = () => {
    const next = new URLSearchParams();
    if (kind.value) next.set('kind', kind.value);
    if (ready.value) next.set('ready', ready.value);
    ctx.navigate(`/ui/resources${next.toString() ? `?${next}` : ''}`);
  };
  kind.addEventListener('change', apply);
  ready.addEventListener('change', apply);
  const results = h('div', { id: 'resource-list' });
  replace(main, heading('Resources'),
    h('form', { class: 'filters', 'aria-label': 'Filter resources' }, h('label', {}, 'Kind ', kind), h('label', {}, 'Readiness ', ready)),
    results);

  await ctx.poll(async () => {
    const path = q.get('kind') ? `/resources?kind=${encodeURIComponent(q.get('kind'))}` : '/resources';
    let items = await all(path, { signal: ctx.signal });
    if (q.get('ready')) items = items.filter((r) => String(r.ready) === q.get('ready'));
    replace(results, h('p', { class: 'muted' }, `${items.length} resource${items.length === 1 ? '' : 's'}`),
      table(['Kind', 'Name', 'Ready', 'Reason', 'Message', 'Applied revision', 'Since', 'File'], items.map((r) => [
        r.kind,
        h('strong', {}, r.name),
        badge(r.ready ? 'ready' : 'not ready'),
        r.reason,
        h('span', { class: 'message' }, r.message),
        h('code', { title: r.applied_revision || '' }, (r.applied_revision || '—').slice(0, 14)),
        time(r.last_transition_time),
        h('code', {}, r.line ? `${r.file}:${r.line}` : String(r.file || '')),
      ]), 'No resources match.'));
  }, 5000);
}
