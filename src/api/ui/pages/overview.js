// Overview: health, version, uptime, the reconciler (revision, last pass, every error with its
// file:line:column and field pointer), task counts, MCP servers, and two 24 h charts.

import { h, replace, badge, time, duration, facts, table, heading, link } from '../dom.js';
import { get } from '../api.js';
import { stackedBars } from '../chart.js';

function uptime(seconds) {
  return duration(seconds * 1000).replace(/\.\d s$/, ' s');
}

function where(e) {
  if (!e.file) return '(whole manifest set)';
  return e.line ? `${e.file}:${e.line}:${e.column}` : e.file;
}

function errors(rec) {
  const list = rec.errors || [];
  if (!list.length) return h('p', { class: 'ok-line' }, 'No reconcile errors.');
  return h('div', {},
    h('p', {}, `${rec.errors_total} error${rec.errors_total === 1 ? '' : 's'}; the last good state stays in force.`),
    h('ul', { class: 'diagnostics', id: 'reconcile-errors' }, list.map((e) => h('li', {},
      h('code', { class: 'where' }, where(e)),
      e.kind ? h('span', { class: 'muted' }, ` ${e.kind}/${e.name || '?'}`) : null,
      e.pointer ? [' ', h('code', { class: 'pointer', title: 'JSON pointer of the field' }, e.pointer)] : null,
      h('div', { class: 'message' }, e.message)))));
}

export async function render(main, _params, ctx) {
  const body = h('div', { class: 'overview' });
  const charts = h('div', { class: 'charts' });
  replace(main, heading('Overview'), body, charts);

  const refresh = async () => {
    const st = await get('/status', { signal: ctx.signal });
    const rec = st.reconciler || {};
    const kinds = Object.entries(rec.resources || {});
    const counts = st.tasks || {};
    replace(body,
      h('div', { class: 'cards' },
        h('section', { class: 'card', 'aria-labelledby': 'h-health' },
          h('h2', { id: 'h-health' }, 'Server'),
          facts([
            ['Health', h('span', { id: 'health' }, badge(st.status))],
            ['Version', h('span', { id: 'version' }, st.version)],
            ['Uptime', uptime(st.uptime_seconds)],
          ])),
        h('section', { class: 'card', 'aria-labelledby': 'h-rec' },
          h('h2', { id: 'h-rec' }, 'Reconciler'),
          facts([
            ['Revision', h('code', { class: 'revision', title: rec.revision || '' }, (rec.revision || '—').slice(0, 20))],
            ['Last pass', [time(rec.last_run_at), rec.last_duration_ms !== undefined ? ` (${duration(rec.last_duration_ms)})` : '']],
            ['Files', String(rec.files ?? '—')],
            ['Resources', kinds.length ? kinds.map(([k, c]) => h('span', { class: 'kind-count' }, `${k} ${c.ready}/${c.total}`)) : '—'],
            rec.prune_blocked ? ['Prune held', h('span', { class: 'badge badge-bad' }, `${rec.prune_blocked} deletes held`)] : null,
          ])),
        h('section', { class: 'card', 'aria-labelledby': 'h-tasks' },
          h('h2', { id: 'h-tasks' }, 'Tasks'),
          h('ul', { class: 'counts', id: 'task-counts' }, Object.entries(counts).map(([k, n]) => h('li', {},
            link(`/ui/tasks?status=${encodeURIComponent(k)}`, badge(k), ' ', h('strong', {}, String(n))))))),
        h('section', { class: 'card', 'aria-labelledby': 'h-mcp' },
          h('h2', { id: 'h-mcp' }, 'MCP servers'),
          (st.mcp_servers || []).length
            ? h('ul', { class: 'plain' }, st.mcp_servers.map((m) => h('li', {}, h('strong', {}, m.name), ' ', badge(m.status), ` ${m.tools} tools`)))
            : h('p', { class: 'empty' }, 'None declared.'))),
      h('section', { class: 'card', 'aria-labelledby': 'h-errors' },
        h('h2', { id: 'h-errors' }, 'Reconcile errors'), errors(rec)));
  };

  const refreshCharts = async () => {
    const stats = await get('/stats/hourly?hours=24', { signal: ctx.signal });
    replace(charts,
      stackedBars({
        id: 'chart-tasks',
        title: 'Tasks finished per hour',
        buckets: stats.buckets.map((b) => ({ hour: b.hour, values: b.tasks })),
        series: [
          { key: 'completed', label: 'completed' },
          { key: 'failed', label: 'failed' },
          { key: 'cancelled', label: 'cancelled' },
        ],
      }),
      stackedBars({
        id: 'chart-deliveries',
        title: 'Webhook delivery attempts per hour',
        buckets: stats.buckets.map((b) => ({ hour: b.hour, values: b.deliveries })),
        series: [
          { key: 'succeeded', label: '2xx' },
          { key: 'failed', label: 'other status' },
          { key: 'error', label: 'no answer' },
        ],
      }));
  };

  await Promise.all([ctx.poll(refresh, 5000), ctx.poll(refreshCharts, 30000)]);
}
