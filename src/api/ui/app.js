// The dashboard's shell: sign-in, navigation, the client-side router, and the screens for an
// ended session (401) and a rate limit (429). Pages live in pages/*.js; each exports a
// function (main, params, ctx) that renders into `main` and uses ctx.poll / ctx.signal so that
// its timers and streams stop when the user navigates away.

import { h, replace, badge, errorBox } from './dom.js';
import { session, signIn, signOut, get } from './api.js';
import * as overview from './pages/overview.js';
import * as tasks from './pages/tasks.js';
import * as resources from './pages/resources.js';
import * as webhooks from './pages/webhooks.js';
import * as catalog from './pages/catalog.js';
import * as config from './pages/config.js';

const NAV = [
  ['/ui/', 'Overview'],
  ['/ui/tasks', 'Tasks'],
  ['/ui/resources', 'Resources'],
  ['/ui/webhooks', 'Webhooks'],
  ['/ui/schedules', 'Schedules'],
  ['/ui/skills', 'Skills'],
  ['/ui/mcp', 'MCP servers'],
  ['/ui/config', 'Config'],
];

const ROUTES = [
  [/^\/(ui\/?)?$/, overview.render],
  [/^\/ui\/tasks\/?$/, tasks.list],
  [/^\/ui\/tasks\/new$/, tasks.create],
  [/^\/ui\/tasks\/([^/]+)$/, tasks.show],
  [/^\/ui\/resources\/?$/, resources.render],
  [/^\/ui\/webhooks\/?$/, webhooks.list],
  [/^\/ui\/webhooks\/new$/, webhooks.create],
  [/^\/ui\/webhooks\/([^/]+)$/, webhooks.show],
  [/^\/ui\/schedules\/?$/, catalog.schedules],
  [/^\/ui\/skills\/?$/, catalog.skills],
  [/^\/ui\/mcp\/?$/, catalog.mcp],
  [/^\/ui\/config\/?$/, config.render],
];

const app = document.getElementById('app');
let current = null; // { controller: AbortController, timers: [] } of the page on screen
let blocked = false; // a 401 or 429 screen is up

function stopPage() {
  if (!current) return;
  current.controller.abort();
  current.timers.forEach(clearInterval);
  current = null;
}

export function navigate(path, replaceState = false) {
  if (replaceState) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  route();
}

function isPageError(err) {
  return err && err.name !== 'AbortError' && err.status !== 401 && err.status !== 429;
}

function shell() {
  const here = location.pathname.replace(/\/$/, '') || '/ui';
  const nav = h('nav', { 'aria-label': 'Main' }, h('ul', {}, NAV.map(([href, label]) => {
    const target = href.replace(/\/$/, '');
    const active = target === '/ui' ? (here === '/ui' || here === '') : here.startsWith(target);
    return h('li', {}, h('a', { href, 'aria-current': active ? 'page' : null }, label));
  })));
  const me = session.me;
  const who = h('div', { class: 'who' },
    h('span', { class: 'token-name', title: 'Signed in with this token' }, me.name),
    ' ', badge(me.scope, me.scope === 'full' ? 'ok' : me.scope === 'execute' ? 'busy' : 'off'),
    ' ', h('button', { type: 'button', class: 'secondary', id: 'sign-out', onclick: () => { signOut(); route(); } }, 'Sign out'));
  const main = h('main', { id: 'main', tabindex: '-1' });
  replace(app,
    h('a', { href: '#main', class: 'skip' }, 'Skip to content'),
    h('header', { class: 'top' }, h('a', { href: '/ui/', class: 'brand' }, 'claw'), nav, who),
    main);
  return main;
}

async function route() {
  stopPage();
  if (blocked) return;
  if (!session.token) return signInScreen();
  if (!session.me) {
    try {
      session.me = await get('/whoami');
    } catch (err) {
      if (isPageError(err)) signInScreen(err);
      return;
    }
  }
  const path = location.pathname;
  const main = shell();
  const found = ROUTES.map(([re, page]) => [path.match(re), page]).find(([m]) => m);
  const page = { controller: new AbortController(), timers: [] };
  current = page;
  const ctx = {
    signal: page.controller.signal,
    navigate,
    /** Runs fn now and every `ms` while the page is shown; errors show once, then retry. */
    poll(fn, ms) {
      let running = false;
      const tick = async () => {
        if (running || page.controller.signal.aborted) return;
        running = true;
        try {
          await fn();
          main.querySelector(':scope > .page-error')?.remove(); // recovered
        } catch (err) {
          if (isPageError(err)) ctx.fail(err);
        } finally {
          running = false;
        }
      };
      page.timers.push(setInterval(tick, ms));
      return tick();
    },
    fail(err) {
      const box = main.querySelector(':scope > .page-error');
      const next = h('div', { class: 'page-error' }, errorBox(err));
      if (box) box.replaceWith(next); else main.prepend(next);
    },
  };
  if (!found) {
    replace(main, h('h1', {}, 'Not found'), h('p', {}, 'No dashboard page at ', h('code', {}, path), '.'));
    return;
  }
  try {
    await found[1](main, found[0].slice(1).map(decodeURIComponent), ctx);
  } catch (err) {
    if (isPageError(err)) ctx.fail(err);
  }
  if (document.activeElement === document.body) main.focus({ preventScroll: true });
}

function signInScreen(err) {
  const input = h('input', {
    id: 'token', name: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false',
    required: true, placeholder: 'ocl_…', 'aria-describedby': 'token-help',
  });
  const form = h('form', { class: 'card signin', id: 'signin' },
    h('h1', {}, 'Sign in to claw'),
    h('label', { for: 'token' }, 'API token'),
    input,
    h('p', { id: 'token-help', class: 'muted' },
      'Paste a token (from `claw init` or `claw token create`). It is kept in this tab only (sessionStorage) and sent as a bearer header.'),
    err ? errorBox(err, 'Not signed in') : null,
    h('button', { type: 'submit' }, 'Sign in'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    signIn(input.value.trim());
    session.me = null;
    try {
      session.me = await get('/whoami');
      if (location.pathname === '/' || location.pathname === '') history.replaceState(null, '', '/ui/');
      route();
    } catch (error) {
      // Rate limited: keep the token; the wait screen retries the sign-in.
      if (error.status === 429) return;
      signOut();
      signInScreen(error);
    }
  });
  replace(app, h('main', { class: 'center' }, form));
  input.focus();
}

function blockingScreen(title, err, action) {
  stopPage();
  blocked = true;
  const box = h('div', { class: 'card blocking', role: 'alert' },
    h('h1', {}, title), h('p', {}, err.message), action);
  replace(app, h('main', { class: 'center' }, box));
  return box;
}

window.addEventListener('claw:unauthorized', (e) => {
  if (!session.me) return; // the sign-in form shows the error itself
  const again = h('button', { type: 'button', id: 'sign-in-again', onclick: () => { blocked = false; signOut(); route(); } }, 'Sign in again');
  blockingScreen('Your session has ended', e.detail, h('div', {},
    h('p', {}, 'The token was refused (401): it may have expired or been revoked. Sign in with a valid token.'), again));
  again.focus();
});

window.addEventListener('claw:ratelimited', (e) => {
  if (blocked) return;
  let left = Math.max(1, Math.ceil(e.detail.retryAfter || 1));
  const count = h('strong', { id: 'retry-in' }, String(left));
  const retry = () => { clearInterval(timer); blocked = false; route(); };
  const now = h('button', { type: 'button', onclick: retry }, 'Retry now');
  blockingScreen('Too many requests', e.detail, h('div', {},
    h('p', {}, 'This token hit its rate limit (429). Retrying in ', count, ' s.'), now));
  const timer = setInterval(() => {
    left -= 1;
    count.textContent = String(left);
    if (left <= 0) retry();
  }, 1000);
  now.focus();
});

// Client-side navigation for same-origin links under /ui (modifier clicks open tabs as usual).
document.addEventListener('click', (e) => {
  const a = e.target.closest && e.target.closest('a[href]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !(url.pathname === '/' || url.pathname.startsWith('/ui'))) return;
  if (url.hash && url.pathname === location.pathname && url.search === location.search) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener('popstate', route);

route();
