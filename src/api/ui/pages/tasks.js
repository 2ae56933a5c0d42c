// Tasks: the list (status, date range, search, paging; kept in the URL), a task's page (prompt,
// options, timings, live output from the SSE stream, result and changed files, cancel) and
// the "new task" form.

import { h, replace, append, badge, time, duration, facts, table, heading, link, longText, errorBox } from '../dom.js';
import { get, post, can, stream } from '../api.js';

const STATUSES = ['queued', 'running', 'completed', 'failed', 'cancelled'];
const FINAL = new Set(['completed', 'failed', 'cancelled']);
const PAGE = 20;

// <input type="datetime-local"> works in local time; the API wants RFC 3339.
function toIso(local) {
  if (!local) return '';
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}
function toLocalInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function short(text, n = 100) {
  const one = String(text || '').replace(/\s+/g, ' ').trim();
  return one.length > n ? `${one.slice(0, n)}…` : one;
}

export async function list(main, _params, ctx) {
  const q = new URLSearchParams(location.search);
  const offset = Math.max(0, Number(q.get('offset')) || 0);
  const status = h('select', { id: 'f-status', name: 'status' },
    h('option', { value: '' }, 'any status'),
    STATUSES.map((st) => h('option', { value: st, selected: q.get('status') === st }, st)));
  const after = h('input', { id: 'f-after', type: 'datetime-local', value: toLocalInput(q.get('created_after')) });
  const before = h('input', { id: 'f-before', type: 'datetime-local', value: toLocalInput(q.get('created_before')) });
  const search = h('input', { id: 'f-q', type: 'search', placeholder: 'text in the prompt', value: q.get('q') || '', maxlength: 200 });
  const filters = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter tasks' },
    h('label', {}, 'Status ', status),
    h('label', {}, 'Created after ', after),
    h('label', {}, 'Created before ', before),
    h('label', { class: 'grow' }, 'Search ', search),
    h('button', { type: 'submit' }, 'Apply'));
  filters.addEventListener('submit', (e) => {
    e.preventDefault();
    const next = new URLSearchParams();
    if (status.value) next.set('status', status.value);
    if (toIso(after.value)) next.set('created_after', toIso(after.value));
    if (toIso(before.value)) next.set('created_before', toIso(before.value));
    if (search.value.trim()) next.set('q', search.value.trim());
    ctx.navigate(`/ui/tasks${next.toString() ? `?${next}` : ''}`);
  });
  const results = h('div', { id: 'task-list' });
  replace(main,
    heading('Tasks', can('execute') ? h('a', { href: '/ui/tasks/new', class: 'button', id: 'new-task' }, 'New task') : null),
    filters, results);

  const api = new URLSearchParams();
  for (const key of ['status', 'created_after', 'created_before', 'q']) if (q.get(key)) api.set(key, q.get(key));
  api.set('limit', PAGE);
  api.set('offset', offset);
  const pageLink = (off) => {
    const p = new URLSearchParams(q);
    p.set('offset', off);
    return `/ui/tasks?${p}`;
  };

  await ctx.poll(async () => {
    const page = await get(`/tasks?${api}`, { signal: ctx.signal });
    const rows = page.items.map((t) => [
      link(`/ui/tasks/${encodeURIComponent(t.id)}`, h('code', {}, t.id)),
      badge(t.status),
      h('span', { class: 'prompt-cell' }, short(t.prompt)),
      time(t.created_at),
      duration(t.duration_ms),
    ]);
    const from = page.total ? page.offset + 1 : 0;
    const to = page.offset + page.items.length;
    replace(results,
      table(['Task', 'Status', 'Prompt', 'Created', 'Duration'], rows, 'No tasks match.'),
      h('nav', { class: 'pager', 'aria-label': 'Pages' },
        h('span', {}, `${from}–${to} of ${page.total}`),
        offset > 0 ? link(pageLink(Math.max(0, offset - PAGE)), '← Newer') : null,
        to < page.total ? link(pageLink(offset + PAGE), 'Older →') : null));
  }, 5000);
}

export async function create(main, _params, ctx) {
  const prompt = h('textarea', { id: 'prompt', name: 'prompt', rows: 8, required: true });
  const model = h('input', { id: 'model', name: 'model', placeholder: 'the Config default' });
  const maxTokens = h('input', { id: 'max-tokens', type: 'number', min: 1, placeholder: 'default' });
  const timeout = h('input', { id: 'timeout', type: 'number', min: 1, placeholder: 'default' });
  const cwd = h('input', { id: 'cwd', placeholder: 'a directory under tasks.allowed_roots' });
  const problem = h('div');
  const form = h('form', { class: 'card form', id: 'new-task-form' },
    h('label', { for: 'prompt' }, 'Prompt'), prompt,
    h('details', {}, h('summary', {}, 'Options'),
      h('div', { class: 'grid2' },
        h('label', {}, 'Model', model),
        h('label', {}, 'Max tokens', maxTokens),
        h('label', {}, 'Timeout (seconds)', timeout),
        h('label', {}, 'Working directory', cwd))),
    problem,
    h('button', { type: 'submit' }, 'Run task'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const options = {};
    if (model.value.trim()) options.model = model.value.trim();
    if (maxTokens.value) options.max_tokens = Number(maxTokens.value);
    if (timeout.value) options.timeout_seconds = Number(timeout.value);
    if (cwd.value.trim()) options.working_directory = cwd.value.trim();
    const body = { prompt: prompt.value };
    if (Object.keys(options).length) body.options = options;
    try {
      const task = await post('/tasks', body);
      ctx.navigate(`/ui/tasks/${encodeURIComponent(task.id)}`);
    } catch (err) {
      replace(problem, errorBox(err, 'The task was not created'));
    }
  });
  replace(main, heading('New task'), can('execute') ? form : h('p', {}, 'Your token may not run tasks (it needs the execute scope).'));
  prompt.focus();
}

function filesTable(files) {
  return table(['File', 'Change'], files.map((f) => [h('code', {}, f.path), badge(f.change)]), 'No files changed.');
}

export async function show(main, [id], ctx) {
  const head = h('div');
  const info = h('div', { class: 'cards' });
  const output = h('pre', { class: 'output live', id: 'live-output', 'aria-live': 'polite' });
  const outputBox = h('section', { class: 'card', 'aria-labelledby': 'h-output' }, h('h2', { id: 'h-output' }, 'Output'), output);
  const result = h('div', { id: 'result' });
  replace(main, head, info, outputBox, result);

  let task = await get(`/tasks/${encodeURIComponent(id)}`, { signal: ctx.signal });
  let live = '';
  const MAX_LIVE = 200000;

  const drawHead = () => {
    const cancel = can('execute') && !FINAL.has(task.status)
      ? h('button', {
        type: 'button', class: 'danger', id: 'cancel-task',
        onclick: async (e) => {
          e.target.disabled = true;
          try { task = await post(`/tasks/${encodeURIComponent(id)}/cancel`); drawHead(); } catch (err) { ctx.fail(err); e.target.disabled = false; }
        },
      }, 'Cancel task')
      : null;
    replace(head, heading(h('span', {}, 'Task ', h('code', {}, task.id)), h('span', { id: 'task-status' }, badge(task.status)), cancel));
    replace(info,
      h('section', { class: 'card', 'aria-labelledby': 'h-prompt' }, h('h2', { id: 'h-prompt' }, 'Prompt'), longText(task.prompt, 2000, 'prompt')),
      h('section', { class: 'card', 'aria-labelledby': 'h-details' }, h('h2', { id: 'h-details' }, 'Details'), facts([
        ['Created', [time(task.created_at), ' by ', task.created_by]],
        task.schedule
          ? ['Schedule', [h('a', { href: '/ui/schedules' }, task.schedule), task.schedule_slot ? [', slot ', time(task.schedule_slot)] : ' (run by hand)']]
          : null,
        ['Started', time(task.started_at)],
        ['Finished', time(task.completed_at)],
        ['Duration', duration(task.duration_ms)],
        ['Model', task.model],
        ['Max tokens', String(task.max_tokens)],
        ['Timeout', `${task.timeout_seconds} s`],
        ['Working directory', task.working_directory || '—'],
        ['Options', h('pre', { class: 'json' }, JSON.stringify(task.options, null, 2))],
        task.error ? ['Error', h('span', { class: 'error-text' }, task.error)] : null,
      ])));
  };
  drawHead();

  const showResult = async () => {
    const r = await get(`/tasks/${encodeURIComponent(id)}/result`, { signal: ctx.signal });
    replace(outputBox, h('h2', { id: 'h-output' }, 'Output'), longText(r.output, 20000));
    replace(result,
      h('section', { class: 'card', 'aria-labelledby': 'h-files' }, h('h2', { id: 'h-files' }, 'Changed files'), h('div', { id: 'result-files' }, filesTable(r.files || [])),
        facts([['Usage', `${r.usage.input_tokens} input / ${r.usage.output_tokens} output tokens`]])));
  };

  if (FINAL.has(task.status)) {
    await showResult();
    return;
  }
  // Live: the SSE stream sends the current status, the output so far, then each change.
  const follow = async () => {
    await stream(`/tasks/${encodeURIComponent(id)}/events`, (name, data) => {
      if (name === 'output') {
        live += data.text || '';
        output.textContent = live.length > MAX_LIVE ? `…${live.slice(-MAX_LIVE)}` : live;
        output.scrollTop = output.scrollHeight;
      } else if (name === 'status' && data.status !== task.status) {
        task = { ...task, status: data.status, error: data.error ?? task.error, duration_ms: data.duration_ms ?? task.duration_ms };
        drawHead();
      }
    }, ctx.signal);
    task = await get(`/tasks/${encodeURIComponent(id)}`, { signal: ctx.signal });
    drawHead();
    if (FINAL.has(task.status)) await showResult();
  };
  try {
    await follow();
  } catch (err) {
    if (err.name !== 'AbortError') append(outputBox, errorBox(err, 'Live output stopped'));
    else return;
  }
  if (!FINAL.has(task.status)) {
    // The stream ended early (a proxy, a restart): fall back to polling.
    let shown = false;
    await ctx.poll(async () => {
      if (shown) return;
      task = await get(`/tasks/${encodeURIComponent(id)}`, { signal: ctx.signal });
      drawHead();
      if (FINAL.has(task.status)) { shown = true; await showResult(); }
    }, 3000);
  }
}
