// Schedules, skills and MCP servers (with their tools): read-only views of what is declared
// and running.

import { h, replace, badge, time, table, heading } from '../dom.js';
import { get, all } from '../api.js';

const enc = encodeURIComponent;

function ready(st) {
  if (!st) return badge('pending');
  return h('span', { title: `${st.reason}: ${st.message}` }, badge(st.ready ? 'ready' : 'not ready'), ' ', st.reason);
}

function when(spec) {
  if (spec.cron) return `cron ${spec.cron} (${spec.timezone || 'UTC'})`;
  if (spec.every) return `every ${spec.every}`;
  return `at ${spec.at}`;
}

export async function schedules(main, _params, ctx) {
  const results = h('div', { id: 'schedule-list' });
  replace(main, heading('Schedules'), results);
  await ctx.poll(async () => {
    const items = await all('/schedules', { signal: ctx.signal });
    replace(results, table(['Schedule', 'When', 'Prompt', 'State', 'Next run', 'Last run', 'Skipped', 'File'], items.map((s) => {
      const last = s.status.last_runs[0];
      return [
        h('strong', {}, s.name),
        h('code', {}, when(s.spec)),
        h('span', { class: 'message' }, s.spec.prompt),
        s.status.suspended ? badge('suspended') : ready(s.status.condition),
        s.status.next_runs.length ? time(s.status.next_runs[0]) : h('span', { class: 'muted' }, 'none'),
        last
          ? [time(last.fired_at), ' ', last.task_id ? h('a', { href: `/ui/tasks/${enc(last.task_id)}` }, badge(last.outcome)) : badge(last.outcome)]
          : h('span', { class: 'muted' }, 'never'),
        String(s.status.skipped),
        h('code', {}, s.file || ''),
      ];
    }), 'No schedules declared.'));
  }, 5000);
}

export async function skills(main, _params, ctx) {
  const results = h('div', { id: 'skill-list' });
  replace(main, heading('Skills'), results);
  await ctx.poll(async () => {
    const items = await all('/skills', { signal: ctx.signal });
    replace(results, table(['Skill', 'Version', 'Installed', 'Description', 'State', 'Message', 'File'], items.map((s) => [
      h('strong', {}, s.name),
      [s.version, s.resolved_version && s.resolved_version !== s.version ? ` → ${s.resolved_version}` : ''],
      s.installed ? time(s.installed_at) : h('span', { class: 'muted' }, 'no'),
      s.description || '',
      s.enabled === false ? badge('disabled') : ready(s.status),
      h('span', { class: 'message' }, (s.status && !s.status.ready && s.status.message) || ''),
      h('code', {}, s.file || ''),
    ]), 'No skills declared.'));
  }, 5000);
}

export async function mcp(main, _params, ctx) {
  const results = h('div', { id: 'mcp-list' });
  replace(main, heading('MCP servers'), results);
  const toolCache = new Map(); // name -> [tools], refetched when the tool count changes
  await ctx.poll(async () => {
    const items = await all('/mcp-servers', { signal: ctx.signal });
    const sections = await Promise.all(items.map(async (m) => {
      let tools = [];
      const cached = toolCache.get(m.name);
      if (cached && cached.count === m.tools) tools = cached.tools;
      else if (m.tools > 0) {
        tools = (await get(`/mcp-servers/${enc(m.name)}/tools`, { signal: ctx.signal })).items;
        toolCache.set(m.name, { count: m.tools, tools });
      }
      return h('section', { class: 'card', 'aria-label': `MCP server ${m.name}` },
        h('h2', {}, m.name, ' ', badge(m.status), ' ', h('span', { class: 'muted' }, `${m.transport}, ${m.tools} tools`)),
        m.description ? h('p', {}, m.description) : null,
        m.last_error ? h('p', { class: 'error-text' }, m.last_error) : null,
        h('p', { class: 'muted' }, 'Since ', time(m.since), `, ${m.restarts} restarts; manifest `, h('code', {}, m.file || '')),
        tools.length
          ? h('details', {}, h('summary', {}, `Tools (${tools.length})`),
            table(['Tool', 'Description'], tools.map((t) => [h('code', {}, t.name), t.description || ''])))
          : null);
    }));
    replace(results, sections.length ? sections : h('p', { class: 'empty' }, 'No MCP servers declared.'));
  }, 5000);
}
