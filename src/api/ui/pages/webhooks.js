// Webhooks: subscriptions; a subscription's page with its deliveries and every attempt
// (status, duration, response excerpt), redeliver and send test; create / edit / delete for
// full-scope tokens. Secrets are write-only: the API never returns them.

import { h, replace, badge, time, facts, table, heading, link, longText, errorBox } from '../dom.js';
import { get, post, patch, del, all, can } from '../api.js';

const enc = encodeURIComponent;

function status(w) {
  if (w.disabled_reason) return badge('disabled');
  if (w.status && !w.status.ready) return badge('not ready');
  return badge(w.enabled ? 'ready' : 'disabled');
}

export async function list(main, _params, ctx) {
  const results = h('div', { id: 'webhook-list' });
  replace(main,
    heading('Webhooks', can('full') ? h('a', { href: '/ui/webhooks/new', class: 'button', id: 'new-webhook' }, 'New webhook') : null),
    results);
  await ctx.poll(async () => {
    const items = await all('/webhooks', { signal: ctx.signal });
    replace(results, table(['Webhook', 'URL', 'Events', 'State', 'File'], items.map((w) => [
      link(`/ui/webhooks/${enc(w.id)}`, h('strong', {}, w.id)),
      h('code', { class: 'url' }, w.url),
      (w.events || []).join(', '),
      status(w),
      h('code', {}, w.file || ''),
    ]), 'No webhooks declared.'));
  }, 5000);
}

/** The create / edit form; `current` is the webhook being edited (or null). */
function webhookForm(current, onDone) {
  const name = current ? null : h('input', { id: 'wh-name', required: true, pattern: '[a-z0-9][a-z0-9\\-_.]{0,62}', placeholder: 'e.g. slack-notifier' });
  const url = h('input', { id: 'wh-url', type: 'url', required: true, value: current ? current.url : '', placeholder: 'https://example.com/hooks/claw' });
  const events = h('input', { id: 'wh-events', required: true, value: current ? current.events.join(', ') : 'task.completed, task.failed', placeholder: 'task.completed, task.failed or *' });
  const secret = h('input', { id: 'wh-secret', type: 'password', autocomplete: 'new-password', required: !current, placeholder: current ? 'leave empty to keep the current secret' : 'the key receivers verify signatures with' });
  const description = h('input', { id: 'wh-description', value: (current && current.description) || '' });
  const enabled = h('input', { id: 'wh-enabled', type: 'checkbox', checked: current ? current.enabled : true });
  const problem = h('div');
  const form = h('form', { class: 'card form', id: 'webhook-form' },
    name ? [h('label', { for: 'wh-name' }, 'Name'), name] : null,
    h('label', { for: 'wh-url' }, 'URL'), url,
    h('label', { for: 'wh-events' }, 'Events (comma-separated)'), events,
    h('label', { for: 'wh-secret' }, 'Secret'), secret,
    h('label', { for: 'wh-description' }, 'Description'), description,
    h('label', { class: 'check' }, enabled, ' Enabled'),
    problem,
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, current ? 'Save' : 'Create webhook')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = {
      url: url.value.trim(),
      events: events.value.split(',').map((x) => x.trim()).filter(Boolean),
      enabled: enabled.checked,
    };
    if (description.value.trim() || current) body.description = description.value.trim() || null;
    if (secret.value) body.secret = secret.value;
    try {
      const saved = current
        ? await patch(`/webhooks/${enc(current.id)}`, body)
        : await post('/webhooks', { name: name.value.trim(), ...body });
      onDone(saved);
    } catch (err) {
      replace(problem, errorBox(err, 'Not saved'));
    }
  });
  return form;
}

export async function create(main, _params, ctx) {
  replace(main, heading('New webhook'),
    can('full') ? webhookForm(null, (w) => ctx.navigate(`/ui/webhooks/${enc(w.id)}`)) : h('p', {}, 'Creating webhooks needs a full-scope token.'));
  const first = main.querySelector('input');
  if (first) first.focus();
}

function attemptsTable(d) {
  return table(['#', 'At', 'Status', 'Duration', 'Error', 'Response'], (d.attempts || []).map((a) => [
    String(a.attempt),
    time(a.at),
    a.status_code ? badge(String(a.status_code), a.status_code < 300 ? 'ok' : 'bad') : badge('no answer', 'bad'),
    `${a.duration_ms} ms`,
    a.error || '',
    a.response_body ? longText(a.response_body, 300, 'excerpt') : h('span', { class: 'muted' }, '—'),
  ]), 'No attempt yet.');
}

export async function show(main, [id], ctx) {
  const head = h('div');
  const details = h('div');
  const notice = h('div', { 'aria-live': 'polite' });
  const deliveries = h('div', { id: 'deliveries' });
  replace(main, head, notice, details, h('h2', {}, 'Deliveries'), deliveries);
  const open = new Set(); // deliveries whose attempts are shown

  const say = (node) => replace(notice, node);
  const drawHead = (w) => {
    const actions = [];
    if (can('full')) {
      actions.push(h('button', {
        type: 'button', id: 'send-test', class: 'secondary',
        onclick: async () => {
          try { const r = await post(`/webhooks/${enc(id)}/test`); say(h('p', { class: 'ok-line' }, `Test event queued (delivery ${r.delivery_id}).`)); refresh(); } catch (err) { say(errorBox(err, 'Test not sent')); }
        },
      }, 'Send test'));
      actions.push(h('button', {
        type: 'button', id: 'edit-webhook', class: 'secondary',
        onclick: () => replace(details, webhookForm(w, () => { say(h('p', { class: 'ok-line' }, 'Saved.')); refreshHead(); })),
      }, 'Edit'));
      const remove = h('button', {
        type: 'button', id: 'delete-webhook', class: 'danger',
        onclick: () => {
          // An in-page confirmation (no window.confirm dialog).
          const sure = h('button', {
            type: 'button', class: 'danger', id: 'confirm-delete',
            onclick: async () => {
              try { await del(`/webhooks/${enc(id)}`); ctx.navigate('/ui/webhooks'); } catch (err) { say(errorBox(err, 'Not deleted')); }
            },
          }, `Delete ${id} and its manifest`);
          const keep = h('button', { type: 'button', class: 'secondary', onclick: () => say('') }, 'Keep it');
          say(h('div', { class: 'confirm', role: 'alertdialog', 'aria-label': 'Confirm delete' }, h('p', {}, 'Delete this webhook? Its manifest is removed.'), sure, ' ', keep));
          sure.focus();
        },
      }, 'Delete');
      actions.push(remove);
    }
    replace(head, heading(h('span', {}, 'Webhook ', h('code', {}, w.id)), status(w), actions));
    replace(details, h('section', { class: 'card' }, facts([
      ['URL', h('code', { class: 'url' }, w.url)],
      ['Events', (w.events || []).join(', ')],
      ['Enabled', w.enabled ? 'yes' : 'no'],
      w.disabled_reason ? ['Disabled because', h('span', { class: 'error-text' }, w.disabled_reason)] : null,
      w.status ? ['Status', [w.status.reason, ': ', w.status.message]] : null,
      ['Description', w.description || '—'],
      ['Manifest', h('code', {}, w.file || '')],
      ['Created', time(w.created_at)],
      ['Updated', time(w.updated_at)],
    ])));
  };
  const refreshHead = async () => drawHead(await get(`/webhooks/${enc(id)}`, { signal: ctx.signal }));

  const refresh = async () => {
    const page = await get(`/webhooks/${enc(id)}/deliveries?limit=50`, { signal: ctx.signal });
    const rows = page.items.map((d) => {
      const toggle = h('button', {
        type: 'button', class: 'link', 'aria-expanded': String(open.has(d.id)),
        onclick: () => { if (open.has(d.id)) open.delete(d.id); else open.add(d.id); refresh(); },
      }, `${d.attempt_count} attempt${d.attempt_count === 1 ? '' : 's'}`);
      const redeliver = can('full') && d.status !== 'pending'
        ? h('button', {
          type: 'button', class: 'secondary redeliver', dataset: { delivery: d.id },
          onclick: async (e) => {
            e.target.disabled = true;
            try { await post(`/webhooks/${enc(id)}/deliveries/${enc(d.id)}/redeliver`); say(h('p', { class: 'ok-line' }, `Delivery ${d.id} queued again.`)); refresh(); } catch (err) { say(errorBox(err, 'Not redelivered')); e.target.disabled = false; }
          },
        }, 'Redeliver')
        : null;
      const row = [h('tr', { dataset: { delivery: d.id } },
        h('td', {}, h('code', {}, d.id)),
        h('td', {}, d.event),
        h('td', {}, badge(d.status)),
        h('td', {}, d.last_status ? String(d.last_status) : (d.last_error || '—')),
        h('td', {}, time(d.created_at)),
        h('td', {}, toggle),
        h('td', {}, redeliver))];
      if (open.has(d.id)) row.push(h('tr', { class: 'attempts' }, h('td', { colspan: 7 }, attemptsTable(d))));
      return row;
    });
    if (!rows.length) return replace(deliveries, h('p', { class: 'empty' }, 'No deliveries yet.'));
    replace(deliveries, h('p', { class: 'muted' }, `${page.items.length} of ${page.total} deliveries, newest first`),
      h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, ['Delivery', 'Event', 'Status', 'Last answer', 'Created', 'Attempts', ''].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, rows.flat()))));
  };

  await refreshHead();
  await ctx.poll(refresh, 3000);
}
