// Tasks against a real server: create, get, result, list with filters, the page iterator,
// cancel, the event stream, and waitForCompletion over SSE, by polling, by falling back to
// polling, and with a timeout.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { ConflictError, OpenClaw, BadRequestError, NotFoundError, TimeoutError } from "openclaw-sdk";
import { startServer } from "./server.js";

let server;
let client;

before(async () => {
  server = await startServer();
  client = new OpenClaw({ baseUrl: server.url, token: server.tokens.admin });
});
after(async () => {
  await server?.stop();
});

describe("tasks", () => {
  test("create answers {id, status, created_at}; get, result and waitForCompletion follow it", async () => {
    const created = await client.tasks.create({ prompt: "hello there" });
    assert.match(created.id, /^task_/);
    assert.ok(["queued", "running"].includes(created.status), created.status);
    assert.ok(!Number.isNaN(Date.parse(created.created_at)));

    const result = await client.tasks.waitForCompletion(created.id);
    assert.equal(result.status, "completed");
    assert.equal(result.output, "done: hello there");
    assert.deepEqual(result.files, []);
    assert.equal(typeof result.usage.input_tokens, "number");

    const task = await client.tasks.get(created.id);
    assert.equal(task.status, "completed");
    assert.equal(task.prompt, "hello there");
    assert.equal(task.created_by, "admin");
    assert.equal(typeof task.duration_ms, "number");
    assert.deepEqual(await client.tasks.result(created.id), result);
  });

  test("waitForCompletion over SSE passes the output as it streams", async () => {
    const { id } = await client.tasks.create({ prompt: "slow but steady" });
    const chunks = [];
    const result = await client.tasks.waitForCompletion(id, { onOutput: (t) => chunks.push(t), pollInterval: 60_000 });
    assert.equal(result.status, "completed");
    assert.equal(result.output, "working...\ndone: slow but steady");
    assert.equal(chunks.join(""), result.output, "the stream carried the whole output");
  });

  test("waitForCompletion by polling only (stream: false)", async () => {
    const requests = [];
    const polling = new OpenClaw({
      baseUrl: server.url,
      token: server.tokens.admin,
      fetch: (url, init) => {
        requests.push(new URL(url).pathname);
        return fetch(url, init);
      },
    });
    const { id } = await polling.tasks.create({ prompt: "slow poll" });
    const result = await polling.tasks.waitForCompletion(id, { stream: false, pollInterval: 100 });
    assert.equal(result.output, "working...\ndone: slow poll");
    assert.ok(!requests.some((p) => p.endsWith("/events")), "no event stream was opened");
    assert.ok(requests.filter((p) => p === `/api/v1/tasks/${id}`).length >= 2, "it polled");
  });

  test("waitForCompletion falls back to polling when the event stream is unusable", async () => {
    // A proxy that answers the stream with an error page: the client must poll instead.
    const polled = [];
    const proxied = new OpenClaw({
      baseUrl: server.url,
      token: server.tokens.admin,
      fetch: (url, init) => {
        const path = new URL(url).pathname;
        if (path.endsWith("/events")) {
          return Promise.resolve(new Response("<html>bad gateway</html>", { status: 502, headers: { "content-type": "text/html" } }));
        }
        polled.push(path);
        return fetch(url, init);
      },
    });
    const { id } = await proxied.tasks.create({ prompt: "slow fallback" });
    const result = await proxied.tasks.waitForCompletion(id, { pollInterval: 100 });
    assert.equal(result.output, "working...\ndone: slow fallback");
    assert.ok(polled.includes(`/api/v1/tasks/${id}`), "it polled the task");
  });

  test("waitForCompletion gives up with a TimeoutError", async () => {
    const { id } = await client.tasks.create({ prompt: "block for a while" });
    const started = Date.now();
    await assert.rejects(client.tasks.waitForCompletion(id, { timeout: 300 }), (e) => {
      assert.ok(e instanceof TimeoutError, e);
      assert.equal(e.code, "timeout");
      return true;
    });
    assert.ok(Date.now() - started < 5000);
    // ... and by polling too.
    await assert.rejects(client.tasks.waitForCompletion(id, { timeout: 300, stream: false, pollInterval: 50 }), TimeoutError);
    await client.tasks.cancel(id);
  });

  test("cancel ends a running task; its result says cancelled", async () => {
    const { id } = await client.tasks.create({ prompt: "block until cancelled" });
    // Wait (on the event stream) until it runs.
    for await (const ev of client.tasks.events(id)) {
      if (ev.event === "status" && ev.data.status === "running") break;
    }
    const cancelled = await client.tasks.cancel(id);
    assert.equal(cancelled.id, id);
    const result = await client.tasks.waitForCompletion(id);
    assert.equal(result.status, "cancelled");
    await assert.rejects(client.tasks.cancel(id), (e) => e instanceof ConflictError && e.code === "task_finished");
  });

  test("result of an unfinished task is a ConflictError (409 task_not_finished)", async () => {
    const { id } = await client.tasks.create({ prompt: "block the result" });
    await assert.rejects(client.tasks.result(id), (e) => {
      assert.ok(e instanceof ConflictError);
      assert.equal(e.status, 409);
      assert.equal(e.code, "task_not_finished");
      return true;
    });
    await client.tasks.cancel(id);
  });

  test("a failed task: waitForCompletion returns its result with the error", async () => {
    const { id } = await client.tasks.create({ prompt: "fail now" });
    const result = await client.tasks.waitForCompletion(id);
    assert.equal(result.status, "failed");
    assert.match(result.error, /failed on purpose/);
  });

  test("events yields status and output events, ending after the final status", async () => {
    const { id } = await client.tasks.create({ prompt: "slow events" });
    const events = [];
    for await (const ev of client.tasks.events(id)) events.push(ev);
    const last = events.at(-1);
    assert.equal(last.event, "status");
    assert.equal(last.data.status, "completed");
    assert.equal(typeof last.data.duration_ms, "number");
    const output = events.filter((e) => e.event === "output").map((e) => e.data.text).join("");
    assert.equal(output, "working...\ndone: slow events");
  });

  test("list filters by status and q; iterate walks every page once", async () => {
    const tag = `batch-${Date.now()}`;
    const ids = [];
    for (let i = 0; i < 7; i++) ids.push((await client.tasks.create({ prompt: `${tag} ${i}` })).id);
    for (const id of ids) await client.tasks.waitForCompletion(id);

    const page = await client.tasks.list({ q: tag, status: "completed", limit: 3 });
    assert.equal(page.total, 7);
    assert.equal(page.limit, 3);
    assert.equal(page.offset, 0);
    assert.deepEqual(page.items.map((t) => t.id), ids.slice(-3).reverse(), "newest first");
    const second = await client.tasks.list({ q: tag, limit: 3, offset: 3 });
    assert.deepEqual(second.items.map((t) => t.id), ids.slice(1, 4).reverse());
    assert.equal((await client.tasks.list({ q: tag, status: ["failed", "cancelled"] })).total, 0);
    const future = new Date(Date.now() + 3_600_000);
    assert.equal((await client.tasks.list({ q: tag, created_after: future })).total, 0);
    assert.equal((await client.tasks.list({ q: tag, created_before: future })).total, 7);

    const seen = [];
    for await (const task of client.tasks.iterate({ q: tag, limit: 2 })) seen.push(task.id);
    assert.deepEqual(seen, [...ids].reverse(), "all seven, newest first, in pages of two");
  });

  test("iterate skips a task pushed onto a later page by a new one", async () => {
    const tag = `shift-${Date.now()}`;
    for (let i = 0; i < 3; i++) await client.tasks.create({ prompt: `${tag} ${i}` });
    const seen = [];
    for await (const task of client.tasks.iterate({ q: tag, limit: 2 })) {
      seen.push(task.id);
      if (seen.length === 1) await client.tasks.create({ prompt: `${tag} late` });
    }
    assert.equal(new Set(seen).size, seen.length, "no task twice");
    assert.ok(seen.length >= 3);
  });

  test("an invalid request is a BadRequestError with field details; an unknown task a NotFoundError", async () => {
    await assert.rejects(client.tasks.create({ prompt: "x", options: { timeout_seconds: -1 } }), (e) => {
      assert.ok(e instanceof BadRequestError, e);
      assert.equal(e.code, "validation_failed");
      assert.equal(e.details[0].field, "options.timeout_seconds");
      return true;
    });
    await assert.rejects(client.tasks.list({ status: "sleeping" }), (e) => e instanceof BadRequestError && e.code === "invalid_parameter");
    await assert.rejects(client.tasks.get("task_nope"), (e) => e instanceof NotFoundError && e.status === 404 && e.code === "not_found");
    await assert.rejects(client.tasks.waitForCompletion("task_nope"), NotFoundError);
  });
});
