// The example end to end: a real claw server (sdk/js's test helper), a stand-in for Slack on
// loopback, the receiver (server.js) and the setup script (setup.js) as a user runs them.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";

import { startServer } from "../../../sdk/js/test/server.js";

const DIR = fileURLToPath(new URL("..", import.meta.url));
const children = [];
let claw;
let slack;
const messages = [];
const waiting = [];

function run(script, env) {
  const child = spawn(process.execPath, [script], { cwd: DIR, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let stderr = "";
  child.stderr.on("data", (c) => (stderr += c));
  child.stderrText = () => stderr;
  return child;
}

function nextMessage(ms = 15_000) {
  if (messages.length) return Promise.resolve(messages.shift());
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no Slack message")), ms);
    waiting.push((m) => {
      clearTimeout(timer);
      resolve(m);
    });
  });
}

before(async () => {
  claw = await startServer();
  slack = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      res.end("ok");
      const text = JSON.parse(body).text;
      const w = waiting.shift();
      if (w) w(text);
      else messages.push(text);
    });
  });
  await new Promise((r) => slack.listen(0, "127.0.0.1", r));
});

after(async () => {
  for (const c of children) if (c.exitCode === null) c.kill();
  await new Promise((r) => slack?.close(r));
  await claw?.stop();
});

async function startReceiver(secret) {
  const receiver = run("server.js", {
    OPENCLAW_WEBHOOK_SECRET: secret,
    SLACK_WEBHOOK_URL: `http://127.0.0.1:${slack.address().port}/slack`,
    PORT: "0",
  });
  const [line] = await Promise.race([
    createInterface({ input: receiver.stdout })[Symbol.asyncIterator]().next().then((r) => [r.value]),
    new Promise((_, reject) => receiver.once("exit", (code) => reject(new Error(`receiver exited ${code}: ${receiver.stderrText()}`)))),
  ]);
  const m = /^Webhook receiver on port (\d+)$/.exec(line);
  assert.ok(m, line);
  return `http://127.0.0.1:${m[1]}/openclaw-webhook`;
}

async function setup(env) {
  const child = run("setup.js", { OPENCLAW_URL: claw.url, OPENCLAW_TOKEN: claw.tokens.admin, ...env });
  let stdout = "";
  child.stdout.on("data", (c) => (stdout += c));
  const code = await new Promise((r) => child.on("close", r));
  return { code, stdout, stderr: child.stderrText() };
}

test("setup.js registers the receiver and runs a task; the receiver verifies it and posts to Slack", async () => {
  const url = await startReceiver("your-secret-here");
  const first = await setup({ RECEIVER_URL: url, OPENCLAW_WEBHOOK_SECRET: "your-secret-here" });
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /^webhook wh-\S+ -> http:\/\/127\.0\.0\.1:\d+\/openclaw-webhook\ntask task_\S+ completed\n$/);
  const taskId = /task (task_\S+) completed/.exec(first.stdout)[1];
  const text = await nextMessage();
  const { duration_ms } = await fetch(`${claw.url}/api/v1/tasks/${taskId}`, { headers: { Authorization: `Bearer ${claw.tokens.admin}` } }).then((r) => r.json());
  assert.equal(text, `OpenClaw task completed: "List the files in the current directory" (${duration_ms}ms)`);

  // Run again: the webhook is found, not created twice.
  const second = await setup({ RECEIVER_URL: url, OPENCLAW_WEBHOOK_SECRET: "your-secret-here", PROMPT: "Say hi to Zoë 👋" });
  assert.equal(second.code, 0, second.stderr);
  assert.equal(/webhook (\S+)/.exec(second.stdout)[1], /webhook (\S+)/.exec(first.stdout)[1]);
  assert.match(await nextMessage(), /^OpenClaw task completed: "Say hi to Zoë 👋" \(\d+ms\)$/);

  // Leave only the next test's subscription behind.
  const hookId = /webhook (\S+)/.exec(first.stdout)[1];
  const gone = await fetch(`${claw.url}/api/v1/webhooks/${hookId}`, { method: "DELETE", headers: { Authorization: `Bearer ${claw.tokens.admin}` } });
  assert.equal(gone.status, 204);
});

test("a delivery signed with another secret is refused (401) and never reaches Slack", async () => {
  const url = await startReceiver("the-receivers-secret");
  const r = await setup({ RECEIVER_URL: url, OPENCLAW_WEBHOOK_SECRET: "not-the-secret" });
  assert.equal(r.code, 0, r.stderr);
  const hookId = /webhook (\S+)/.exec(r.stdout)[1];
  const headers = { Authorization: `Bearer ${claw.tokens.admin}` };
  for (const end = Date.now() + 15_000; ; ) {
    const { items } = await fetch(`${claw.url}/api/v1/webhooks/${hookId}/deliveries`, { headers }).then((x) => x.json());
    const attempt = items[0]?.attempts?.[0];
    if (attempt) {
      assert.equal(attempt.status_code, 401);
      break;
    }
    assert.ok(Date.now() < end, "no delivery attempt recorded");
    await new Promise((res) => setTimeout(res, 50));
  }
  assert.equal(messages.length, 0);
});
