// The dashboard in a real headless Chromium, driven over the DevTools protocol (puppeteer-core
// with Debian's /usr/bin/chromium) — or, with CLAW_UI_BROWSER=firefox (`npm run test:firefox`),
// in Firefox ESR over WebDriver BiDi — against a real `claw serve` (target/debug/claw) on
// 127.0.0.1 with a `command` provider, so tasks run locally. Every network peer is loopback:
// the server, and a webhook receiver this test runs. Screenshots of each page are written to
// target/ui-screenshots/ (CLAW_UI_SCREENSHOTS overrides).
//
// Run: (cd tests/ui && npm ci && npm test), after `cargo build`.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import puppeteer from 'puppeteer-core';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CLAW = process.env.CLAW_BIN || join(ROOT, 'target/debug/claw');
// chromium (the default, over the DevTools protocol) or firefox (Firefox ESR, over WebDriver BiDi).
const BROWSER = process.env.CLAW_UI_BROWSER || 'chromium';
const FIREFOX = BROWSER === 'firefox';
const EXECUTABLE = process.env.CLAW_UI_BROWSER_PATH || (FIREFOX ? '/usr/bin/firefox-esr' : '/usr/bin/chromium');
const SHOTS = process.env.CLAW_UI_SCREENSHOTS || join(ROOT, 'target/ui-screenshots', FIREFOX ? 'firefox' : '');
const WAIT = 15000; // the bound on anything the page must show

// The agent: prints its progress slowly (so the page sees live output), creates a file, and
// for a prompt containing SLOW waits long enough to be cancelled.
const AGENT = [
  'prompt=$(cat)',
  'echo "agent starting"',
  'case "$prompt" in *SLOW*) echo "waiting to be cancelled"; sleep 120;; *LONG*) seq 1 20000; exit 0;; esac',
  'for i in 1 2 3 4; do echo "step $i"; sleep 0.5; done',
  'echo "made by the agent" > created.txt',
  'printf "done: %s\\n" "$prompt"',
].join('\n');

const CONFIG = `apiVersion: openclaw.dev/v1
kind: Config
metadata:
  name: default
spec:
  model:
    provider: command
    command: ["sh", "-c", ${JSON.stringify(AGENT)}]
  tasks:
    concurrency: 4
`;

// An invalid manifest: the overview must show where it is broken.
const BROKEN = `apiVersion: openclaw.dev/v1
kind: Token
metadata:
  name: broken
spec:
  scope: superuser
  sha256: "${'0'.repeat(64)}"
`;

// A webhook whose secret cannot be resolved: declared, but not Ready.
const UNREADY = `apiVersion: openclaw.dev/v1
kind: Webhook
metadata:
  name: unready
spec:
  url: http://127.0.0.1:9/hook
  events: ["task.completed"]
  secret: {fromEnv: CLAW_UI_TEST_MISSING_SECRET}
`;

const XSS = '<img src=x onerror=alert(1)>';

let dir; let server; let base; let browser; let page;
let admin; let reader;
const dialogs = [];
const received = []; // webhook requests the receiver got
let receiver; let receiverUrl;

function claw(args) {
  return execFileSync(CLAW, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

async function api(method, path, token, body) {
  const res = await fetch(`${base}/api/v1${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
}

async function shot(name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/**
 * Polls `check` (in this process, reading the page through the protocol) until it is true,
 * failing after `timeout`. (Not page.waitForFunction: that builds its predicate with
 * `new Function` inside the page, which our CSP rightly blocks in Firefox.)
 */
async function until(check, what, timeout = WAIT) {
  const end = Date.now() + timeout;
  let last = null;
  for (;;) {
    try {
      if (await check()) return;
    } catch (e) { last = e; }
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what}${last ? ` (${last.message})` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits until the text of `selector` matches `re`; returns the text. */
async function waitText(selector, re, timeout = WAIT) {
  let text = '';
  await until(async () => {
    text = await page.$eval(selector, (el) => el.textContent);
    return re.test(text);
  }, `${selector} to match ${re} (last: ${JSON.stringify(text.slice(0, 300))})`, timeout);
  return text;
}

/** The page's URL as the page sees it (Firefox's BiDi does not report history.pushState). */
function href() {
  return page.evaluate(() => location.href);
}

async function go(path) {
  // Client-side navigation through a real link click would need the link on screen; a full
  // load of the URL exercises the server's /ui/... fallback as well.
  await page.goto(`${base}${path}`, { waitUntil: 'domcontentloaded' });
}

async function signIn(token) {
  await page.goto(`${base}/`, { waitUntil: 'domcontentloaded' });
  await page.waitForSelector('#token', { timeout: WAIT });
  await page.type('#token', token);
  await page.keyboard.press('Enter'); // Enter signs in
  await page.waitForSelector('#sign-out', { timeout: WAIT });
}

async function signOut() {
  await page.click('#sign-out');
  await page.waitForSelector('#token', { timeout: WAIT });
}

async function buttons() {
  return page.$$eval('button, a.button', (els) => els.map((e) => e.textContent.trim()));
}

before(async () => {
  assert.ok(existsSync(CLAW), `${CLAW} is missing: run cargo build first`);
  assert.ok(existsSync(EXECUTABLE), `${EXECUTABLE} is missing: apt-get install ${FIREFOX ? 'firefox-esr' : 'chromium'}`);
  mkdirSync(SHOTS, { recursive: true });
  dir = mkdtempSync(join(tmpdir(), 'claw-ui-'));
  const manifests = join(dir, 'm');
  admin = claw(['init', manifests]);
  reader = claw(['token', 'create', '--name', 'viewer', '--scope', 'read', '--manifests', manifests]);
  assert.match(admin, /^ocl_/);
  assert.match(reader, /^ocl_/);
  writeFileSync(join(manifests, 'configs/default.yaml'), CONFIG);
  writeFileSync(join(manifests, 'tokens/broken.yaml'), BROKEN);
  mkdirSync(join(manifests, 'webhooks'), { recursive: true });
  writeFileSync(join(manifests, 'webhooks/unready.yaml'), UNREADY);

  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end('thanks <b>from the receiver</b>');
    });
  });
  await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
  receiverUrl = `http://127.0.0.1:${receiver.address().port}/hook`;

  server = spawn(CLAW, ['serve', '--listen', '127.0.0.1:0', '--manifests', manifests, '--data', join(dir, 'data')], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, RUST_LOG: 'warn' },
  });
  base = await new Promise((res, rej) => {
    const lines = createInterface({ input: server.stderr });
    const timer = setTimeout(() => rej(new Error('claw serve did not start')), 30000);
    lines.on('line', (line) => {
      const m = line.match(/listening on (\S+)/);
      if (m) { clearTimeout(timer); res(m[1].replace(/\/$/, '')); }
    });
    server.on('exit', (code) => rej(new Error(`claw serve exited (${code})`)));
  });

  browser = await puppeteer.launch(FIREFOX
    // Firefox ESR's BiDi lacks the viewport emulation puppeteer uses: size the window instead.
    ? { browser: 'firefox', executablePath: EXECUTABLE, headless: true, defaultViewport: null, args: ['--width=1280', '--height=900'] }
    : {
      executablePath: EXECUTABLE,
      headless: true,
      // CI runs as root, where Chromium's sandbox cannot start.
      args: ['--no-sandbox', '--disable-dev-shm-usage', '--no-first-run', '--disable-gpu'],
    });
  page = await browser.newPage();
  if (!FIREFOX) await page.setViewport({ width: 1280, height: 900 });
  page.on('dialog', async (d) => { dialogs.push(d.message()); await d.dismiss(); });
  page.on('pageerror', (e) => dialogs.push(`page error: ${e.message}`));
});

after(async () => {
  if (browser) await browser.close();
  if (server) {
    server.kill('SIGTERM');
    await new Promise((r) => (server.exitCode !== null ? r() : server.on('exit', r)));
  }
  if (receiver) receiver.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the page carries a strict CSP and the other security headers', async () => {
  const res = await page.goto(`${base}/`, { waitUntil: 'domcontentloaded' });
  const h = res.headers();
  assert.match(h['content-security-policy'], /default-src 'self'/);
  assert.match(h['content-security-policy'], /frame-ancestors 'none'/);
  assert.doesNotMatch(h['content-security-policy'], /unsafe-inline/);
  assert.equal(h['x-frame-options'], 'DENY');
  assert.equal(h['x-content-type-options'], 'nosniff');
  await page.waitForSelector('#token', { timeout: WAIT });
  await shot('sign-in');
  // A token that is not accepted: the sign-in form says so.
  await page.type('#token', 'ocl_not_a_real_token');
  await page.keyboard.press('Enter');
  await waitText('#signin .error', /401/);
});

test('a read token sees the overview with its charts and the broken manifest, and no write buttons', async () => {
  await signIn(reader);
  await waitText('.who', /viewer/);
  await page.waitForSelector('#chart-tasks rect', { timeout: WAIT });
  await page.waitForSelector('#chart-deliveries', { timeout: WAIT });
  await waitText('#version', /\d+\.\d+\.\d+/);
  // The invalid manifest's file:line:column and field, as the reconciler reports them.
  const errors = await waitText('#reconcile-errors', /broken\.yaml:6:\d+/);
  assert.match(errors, /\/spec\/scope/);
  await waitText('#health', /degraded/);
  await shot('overview-read');

  await go('/ui/tasks');
  await page.waitForSelector('#task-list', { timeout: WAIT });
  assert.equal(await page.$('#new-task'), null, 'no New task for a read token');
  await go('/ui/webhooks');
  await page.waitForSelector('#webhook-list', { timeout: WAIT });
  assert.equal(await page.$('#new-webhook'), null);
  await go('/ui/config');
  await waitText('#config-json', /"model"/);
  assert.equal(await page.$('#config-form'), null, 'no config editor for a read token');
  const labels = await buttons();
  assert.deepEqual(labels, ['Sign out'], `only Sign out: ${labels}`);
  await signOut();
});

test('a full token creates a task and watches its live output and result files; the prompt stays text', async () => {
  await signIn(admin);
  await waitText('.who', /admin/);
  await go('/ui/tasks');
  await page.waitForSelector('#new-task', { timeout: WAIT });
  await page.click('#new-task'); // client-side navigation
  await page.waitForSelector('#prompt', { timeout: WAIT });
  await shot('task-new');
  await page.type('#prompt', `Say hi ${XSS}`);
  await page.click('#new-task-form button[type=submit]');
  await page.waitForSelector('#live-output', { timeout: WAIT });
  assert.match(await href(), /\/ui\/tasks\/task_/);
  // Live: output arrives while the task still runs.
  await waitText('#live-output', /step 1/);
  const statusWhileRunning = await page.$eval('#task-status', (e) => e.textContent);
  assert.equal(statusWhileRunning, 'running');
  await shot('task-running');
  await waitText('#task-status', /completed/);
  const files = await waitText('#result-files', /created\.txt/);
  assert.match(files, /created/);
  const output = await page.$eval('pre.output', (e) => e.textContent);
  assert.match(output, /done: Say hi <img src=x onerror=alert\(1\)>/);
  // The prompt is shown as text: no element was made from it and no script ran.
  const prompt = await page.$eval('pre.prompt', (e) => e.textContent);
  assert.equal(prompt, `Say hi ${XSS}`);
  assert.equal(await page.$$eval('img', (els) => els.length), 0);
  await shot('task-completed');

  await go(`/ui/tasks?q=${encodeURIComponent('Say hi')}&status=completed`);
  await waitText('#task-list', /Say hi <img src=x onerror=alert\(1\)>/);
  assert.equal(await page.$$eval('img', (els) => els.length), 0);
  await shot('tasks');
  assert.deepEqual(dialogs, [], 'no dialog or page error');
});

test('a running task is cancelled from its page', async () => {
  const created = await api('POST', '/tasks', admin, { prompt: 'SLOW job' });
  assert.equal(created.status, 201);
  await go(`/ui/tasks/${created.body.id}`);
  await waitText('#live-output', /waiting to be cancelled/);
  await waitText('#task-status', /running/);
  await page.click('#cancel-task');
  await waitText('#task-status', /cancelled/);
  assert.equal(await page.$('#cancel-task'), null);
  await shot('task-cancelled');
  const task = await api('GET', `/tasks/${created.body.id}`, admin);
  assert.equal(task.body.status, 'cancelled');
});

test('a long output is cut, with a button that shows all of it', async () => {
  const created = await api('POST', '/tasks', admin, { prompt: 'LONG output' });
  assert.equal(created.status, 201);
  await go(`/ui/tasks/${created.body.id}`);
  await waitText('#task-status', /completed/);
  const full = (await api('GET', `/tasks/${created.body.id}/result`, admin)).body.output;
  assert.ok(full.length > 100000);
  const more = await page.waitForSelector('#h-output ~ div button.link', { timeout: WAIT });
  const label = await more.evaluate((b) => b.textContent);
  assert.equal(label, `Show all (${full.length.toLocaleString('en-US')} characters)`);
  const cut = await page.$eval('pre.output', (e) => e.textContent);
  assert.ok(cut.length < full.length && full.startsWith(cut), `cut to ${cut.length} characters`);
  await more.click();
  await until(async () => (await page.$eval('pre.output', (e) => e.textContent)) === full, 'the whole output');
  assert.equal(await page.$('#h-output ~ div button.link'), null);
});

test('a webhook is created, sent a test, a delivery redelivered with its attempts shown, and edited', async () => {
  await go('/ui/webhooks/new');
  await page.waitForSelector('#wh-name', { timeout: WAIT });
  await page.type('#wh-name', 'receiver');
  await page.type('#wh-url', receiverUrl);
  await page.$eval('#wh-events', (e) => { e.value = ''; });
  await page.type('#wh-events', '*');
  await page.type('#wh-secret', 'a-test-secret');
  await page.click('#webhook-form button[type=submit]');
  await page.waitForSelector('#send-test', { timeout: WAIT });
  assert.match(await href(), /\/ui\/webhooks\/receiver$/);

  await page.click('#send-test');
  await until(() => page.$$eval('#deliveries tr[data-delivery]', (rows) => rows
    .some((tr) => tr.textContent.includes('webhook.test') && tr.textContent.includes('delivered'))),
  'the test delivery to be delivered');
  assert.ok(received.some((r) => r.headers['x-openclaw-event'] === 'webhook.test'));
  const before = received.length;
  const id = await page.$$eval('#deliveries tr[data-delivery]',
    (rows) => rows.find((tr) => tr.textContent.includes('webhook.test')).dataset.delivery);
  await page.click(`button.redeliver[data-delivery="${id}"]`);
  // The second attempt is listed; open the attempts to see status, duration and response.
  await waitText(`#deliveries tr[data-delivery="${id}"]`, /2 attempts/);
  assert.ok(received.length > before, 'the receiver got the redelivery');
  const redelivered = received.filter((r) => r.headers['x-openclaw-delivery'] === id);
  assert.equal(redelivered.length, 2, 'the same delivery id on both attempts');
  await page.evaluate((d) => {
    document.querySelector(`#deliveries tr[data-delivery="${d}"] button[aria-expanded]`).click();
  }, id);
  const attempts = await waitText('#deliveries tr.attempts', /200/);
  assert.match(attempts, /thanks <b>from the receiver<\/b>/, 'the response excerpt, as text');
  assert.match(attempts, /ms/);
  await shot('webhook');
  // Edit: the form starts from the current values; the change is written back.
  await page.click('#edit-webhook');
  await page.waitForSelector('#webhook-form', { timeout: WAIT });
  assert.equal(await page.$eval('#wh-url', (e) => e.value), receiverUrl);
  await page.$eval('#wh-events', (e) => { e.value = ''; });
  await page.type('#wh-events', 'task.completed, task.failed');
  await page.click('#webhook-form button[type=submit]');
  await waitText('dl.facts', /task\.completed, task\.failed/);
  const saved = await api('GET', '/webhooks/receiver', admin);
  assert.deepEqual(saved.body.events, ['task.completed', 'task.failed']);
  await go('/ui/webhooks');
  await waitText('#webhook-list', /receiver/);
  await shot('webhooks');
});

test('resources, skills, MCP servers and config pages render; a stale config edit is a clear 412', async () => {
  await go('/ui/resources');
  await waitText('#resource-list', /unready/);
  await waitText('#resource-list', /admin/);
  await page.select('#f-ready', 'false');
  await until(async () => (await href()).includes('ready=false'), 'the filter in the URL');
  const shown = await waitText('#resource-list', /^1 resource(?!s)/);
  assert.match(shown, /unready/);
  assert.doesNotMatch(shown, /\badmin\b/, 'the ready admin token is filtered out');
  await shot('resources');
  await go('/ui/skills');
  await page.waitForSelector('#skill-list', { timeout: WAIT });
  await shot('skills');
  await go('/ui/mcp');
  await page.waitForSelector('#mcp-list', { timeout: WAIT });
  await shot('mcp');
  const created = await api('POST', '/schedules', admin, {
    name: 'nightly', cron: '30 2 * * *', timezone: 'Europe/Berlin', prompt: 'nightly report',
  });
  assert.equal(created.status, 201);
  await go('/ui/schedules');
  const listed = await waitText('#schedule-list', /nightly/);
  assert.match(listed, /cron 30 2 \* \* \* \(Europe\/Berlin\)/);
  assert.match(listed, /never/, 'no run yet');
  await shot('schedules');

  await go('/ui/config');
  await waitText('#config-json', /"model"/);
  // Someone else changes the config after the page loaded it.
  const changed = await api('PATCH', '/config', admin, { rate_limit: { requests_per_minute: 6000, burst: 200 } });
  assert.equal(changed.status, 200);
  await page.$eval('#config-patch', (e) => { e.value = ''; });
  await page.type('#config-patch', '{"rate_limit": {"burst": 300}}');
  await page.click('#config-form button[type=submit]');
  const notice = await waitText('#config-notice', /412/);
  assert.match(notice, /Conflict/);
  await shot('config-conflict');
  await page.click('#config-reload');
  await waitText('#config-json', /6000/);
  await page.click('#config-form button[type=submit]');
  await waitText('#config-notice', /updated/);
});

test('dark theme and a phone-width viewport stay readable', { skip: FIREFOX && 'no media or viewport emulation over BiDi in Firefox ESR' }, async () => {
  await page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: 'dark' }]);
  await go('/ui/');
  await page.waitForSelector('#chart-tasks', { timeout: WAIT });
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.notEqual(bg, 'rgb(246, 247, 249)', 'the dark palette applies');
  await shot('overview-dark');
  await page.setViewport({ width: 390, height: 844 });
  await page.waitForSelector('#chart-deliveries', { timeout: WAIT });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `no horizontal scrolling at phone width (${overflow}px)`);
  await shot('overview-phone');
  await page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: 'light' }]);
  await page.setViewport({ width: 1280, height: 900 });
});

test('an execute token runs tasks but changes nothing else; revoking it ends the session with a clear screen', async () => {
  const manifests = join(dir, 'm');
  const temp = claw(['token', 'create', '--name', 'temp', '--scope', 'execute', '--manifests', manifests]);
  await signOut();
  await signIn(temp);
  // An execute token may run tasks, but not change declared resources.
  await go('/ui/tasks');
  await page.waitForSelector('#new-task', { timeout: WAIT });
  await go('/ui/webhooks/receiver');
  await waitText('#deliveries', /webhook\.test/);
  assert.equal(await page.$('#send-test'), null);
  assert.equal(await page.$('button.redeliver'), null);
  await go('/ui/');
  await page.waitForSelector('#chart-tasks', { timeout: WAIT });
  claw(['token', 'revoke', '--name', 'temp', '--manifests', manifests]);
  // The overview polls; the next call is refused.
  await page.waitForSelector('#sign-in-again', { timeout: WAIT });
  await shot('session-ended');
  await page.click('#sign-in-again');
  await page.waitForSelector('#token', { timeout: WAIT });
  assert.equal(await page.evaluate(() => sessionStorage.getItem('claw.token')), null);
  assert.deepEqual(dialogs, [], 'no dialog or page error');
});

test('a rate limit shows a wait-and-retry screen that counts down from Retry-After', async () => {
  const limited = await api('PATCH', '/config', admin, { rate_limit: { requests_per_minute: 6, burst: 2 } });
  assert.equal(limited.status, 200);
  try {
    await page.goto(`${base}/`, { waitUntil: 'domcontentloaded' });
    await page.waitForSelector('#token', { timeout: WAIT });
    await page.type('#token', reader);
    await page.keyboard.press('Enter');
    await page.waitForSelector('#retry-in', { timeout: WAIT });
    const text = await page.$eval('.blocking', (e) => e.textContent);
    assert.match(text, /Too many requests/);
    assert.match(text, /Retrying in \d+ s/);
    await shot('rate-limited');
  } finally {
    const restored = await api('PATCH', '/config', admin, { rate_limit: null });
    assert.equal(restored.status, 200);
  }
  // After the wait the page retries by itself and recovers.
  await page.waitForSelector('#sign-out, #token', { timeout: 30000 });
  assert.deepEqual(dialogs, [], 'no dialog or page error');
});
