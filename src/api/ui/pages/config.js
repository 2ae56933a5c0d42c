// Config: the active Config spec (secrets redacted by the API); full-scope tokens edit it with a
// JSON merge patch sent with If-Match, so a concurrent change is a clear 412, and a refused
// privileged setting (403 manifest_only) is shown with the server's message.

import { h, replace, heading, errorBox } from '../dom.js';
import { call, can } from '../api.js';

export async function render(main, _params, ctx) {
  const view = h('pre', { class: 'json', id: 'config-json' });
  const tag = h('code', { id: 'config-etag' });
  const notice = h('div', { id: 'config-notice', 'aria-live': 'polite' });
  let etag = null;

  const load = async () => {
    const r = await call('GET', '/config', { signal: ctx.signal });
    etag = r.headers.get('ETag');
    view.textContent = JSON.stringify(r.data, null, 2);
    tag.textContent = etag || '(none)';
  };

  const editor = h('textarea', { id: 'config-patch', rows: 8, spellcheck: 'false', value: '{\n  \n}' });
  const form = h('form', { class: 'card form', id: 'config-form' },
    h('h2', {}, 'Change'),
    h('label', { for: 'config-patch' }, 'JSON merge patch (RFC 7396): the fields to set; null removes one'),
    editor,
    h('p', { class: 'muted' }, 'Sent with If-Match: the version shown here. Settings that run programs or reach host paths are manifest-only.'),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Apply patch')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    let body;
    try {
      body = JSON.parse(editor.value);
    } catch (err) {
      replace(notice, errorBox({ message: `The patch is not valid JSON: ${err.message}` }, 'Not sent'));
      return;
    }
    try {
      await call('PATCH', '/config', { body, headers: etag ? { 'If-Match': etag } : {} });
      replace(notice, h('p', { class: 'ok-line' }, 'Config updated; the manifest was written back.'));
      await load();
    } catch (err) {
      let why = 'Not applied';
      if (err.status === 412) why = 'Conflict — the config changed since you loaded it; reload to see the current version, then apply again';
      else if (err.status === 403 && err.code === 'manifest_only') why = 'Refused — this setting can only be changed by a reviewed commit to the manifests';
      else if (err.status === 403) why = 'Not allowed';
      replace(notice, errorBox(err, why), err.status === 412
        ? h('button', { type: 'button', class: 'secondary', id: 'config-reload', onclick: () => { replace(notice); load(); } }, 'Reload')
        : null);
    }
  });

  replace(main, heading('Config'), notice,
    h('div', { class: 'cards wide' },
      h('section', { class: 'card' }, h('h2', {}, 'Active config'), h('p', { class: 'muted' }, 'Version (ETag) ', tag), view),
      can('full') ? form : null));
  await load();
}
