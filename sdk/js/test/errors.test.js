// Errors and retries against real servers: typed 401 / 403 / 404 / 400, a 429 retried after
// Retry-After with the same Idempotency-Key, the retry bound, and connection failures.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  AuthenticationError,
  BadRequestError,
  ConnectionError,
  NotFoundError,
  OpenClaw,
  OpenClawError,
  PermissionDeniedError,
  RateLimitError,
  UnprocessableEntityError,
} from "openclaw-sdk";
import { configYaml, startServer } from "./server.js";

describe("typed errors", () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server?.stop();
  });

  const client = (token) => new OpenClaw({ baseUrl: server.url, token });

  test("401: an unknown token is an AuthenticationError", async () => {
    await assert.rejects(client("ocl_not_a_real_token").status(), (e) => {
      assert.ok(e instanceof AuthenticationError);
      assert.ok(e instanceof OpenClawError);
      assert.equal(e.status, 401);
      assert.equal(e.code, "unauthorized");
      assert.match(e.message, /invalid or revoked token/);
      assert.ok(e.requestId, "the request id is kept for the server log");
      return true;
    });
  });

  test("403: a read token may read but not create tasks; an execute token may not patch config", async () => {
    const reader = client(server.tokens.read);
    assert.equal((await reader.status()).status, "ok");
    await assert.rejects(reader.tasks.create({ prompt: "no" }), (e) => {
      assert.ok(e instanceof PermissionDeniedError);
      assert.equal(e.status, 403);
      assert.equal(e.code, "forbidden");
      assert.match(e.message, /scope read/);
      return true;
    });
    const runner = client(server.tokens.execute);
    const { id } = await runner.tasks.create({ prompt: "allowed" });
    assert.equal((await runner.tasks.waitForCompletion(id)).output, "done: allowed");
    await assert.rejects(runner.config.patch({ tasks: { concurrency: 2 } }), PermissionDeniedError);
    await assert.rejects(runner.webhooks.create({ url: "http://127.0.0.1:9/x", events: ["*"], secret: "s" }), PermissionDeniedError);
  });

  test("404: unknown resources and routes are NotFoundErrors", async () => {
    const admin = client(server.tokens.admin);
    for (const call of [
      () => admin.tasks.get("task_missing"),
      () => admin.skills.get("missing"),
      () => admin.webhooks.get("missing"),
      () => admin.mcpServers.get("missing"),
      () => admin.request("GET", "/no-such-route"),
    ]) {
      await assert.rejects(call(), (e) => e instanceof NotFoundError && e.status === 404 && e.code === "not_found");
    }
  });

  test("400: validation errors carry field details", async () => {
    const admin = client(server.tokens.admin);
    await assert.rejects(admin.tasks.list({ limit: 1000 }), (e) => {
      assert.ok(e instanceof BadRequestError);
      assert.equal(e.code, "invalid_parameter");
      return true;
    });
    await assert.rejects(admin.webhooks.create({ url: "http://127.0.0.1:9/x", events: ["task.completed"] }), (e) => {
      assert.ok(e instanceof BadRequestError);
      assert.equal(e.code, "validation_failed");
      assert.equal(e.details[0].field, "secret");
      return true;
    });
  });

  test("no server: a ConnectionError with status 0", async () => {
    const nobody = new OpenClaw({ baseUrl: "http://127.0.0.1:9", token: "ocl_x" });
    await assert.rejects(nobody.status(), (e) => e instanceof ConnectionError && e.status === 0 && e.code === "connection_error");
  });

  test("a token is required", () => {
    const saved = process.env.OPENCLAW_TOKEN;
    delete process.env.OPENCLAW_TOKEN;
    try {
      assert.throws(() => new OpenClaw({ baseUrl: server.url }), /no token/);
    } finally {
      if (saved !== undefined) process.env.OPENCLAW_TOKEN = saved;
    }
  });
});

describe("rate limits (a server allowing a burst of 2, then 1 request every 2 s)", () => {
  let server;
  before(async () => {
    server = await startServer({ config: configYaml("  rate_limit:\n    requests_per_minute: 30\n    burst: 2\n") });
  });
  after(async () => {
    await server?.stop();
  });

  test("a 429 is retried after Retry-After, with the same Idempotency-Key", async () => {
    const sent = [];
    const client = new OpenClaw({
      baseUrl: server.url,
      token: server.tokens.admin,
      fetch: async (url, init) => {
        const response = await fetch(url, init);
        sent.push({ path: new URL(url).pathname, key: init.headers["Idempotency-Key"], status: response.status, retryAfter: response.headers.get("retry-after") });
        return response;
      },
    });
    await client.status();
    await client.status();
    const started = Date.now();
    const task = await client.tasks.create({ prompt: "after the limit" });
    const elapsed = Date.now() - started;
    assert.match(task.id, /^task_/);
    const creates = sent.filter((s) => s.path === "/api/v1/tasks");
    assert.equal(creates[0].status, 429, JSON.stringify(sent));
    assert.ok(Number(creates[0].retryAfter) >= 1);
    assert.equal(creates.at(-1).status, 201);
    assert.match(creates[0].key, /^[0-9a-f-]{36}$/);
    assert.ok(creates.every((c) => c.key === creates[0].key), "one key for every attempt of one create");
    assert.ok(elapsed >= 900, `waited ${elapsed} ms, Retry-After was ${creates[0].retryAfter} s`);

    // A second create gets a key of its own.
    const other = await client.tasks.create({ prompt: "another" }, { idempotencyKey: "my-key-1" });
    assert.match(other.id, /^task_/);
    assert.equal(sent.filter((s) => s.path === "/api/v1/tasks").at(-1).key, "my-key-1");
    // The server honours the key: the same create again is the first one, another is refused.
    const again = await client.tasks.create({ prompt: "another" }, { idempotencyKey: "my-key-1" });
    assert.equal(again.id, other.id);
    await assert.rejects(client.tasks.create({ prompt: "not the same" }, { idempotencyKey: "my-key-1" }), (e) => {
      assert.ok(e instanceof UnprocessableEntityError);
      assert.equal(e.code, "idempotency_key_reused");
      return true;
    });
  });

  test("past the retry bound the 429 is thrown as a RateLimitError with retryAfter", async () => {
    const client = new OpenClaw({ baseUrl: server.url, token: server.tokens.read, maxRetries: 0 });
    await client.status();
    await client.status();
    await assert.rejects(client.status(), (e) => {
      assert.ok(e instanceof RateLimitError);
      assert.equal(e.status, 429);
      assert.equal(e.code, "rate_limited");
      assert.ok(e.retryAfter >= 1);
      assert.match(e.message, /Rate limit exceeded. Try again in \d+ seconds?\./);
      return true;
    });
    // A Retry-After longer than the client will wait is thrown at once, retries or not.
    const impatient = new OpenClaw({ baseUrl: server.url, token: server.tokens.read, maxRetries: 5, maxRetryAfter: 0 });
    const started = Date.now();
    await assert.rejects(impatient.status(), RateLimitError);
    assert.ok(Date.now() - started < 900);
  });
});
