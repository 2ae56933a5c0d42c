// Webhooks against a real server and a real loopback receiver: CRUD, deliveries of a task's
// events, verifyWebhook on the signature the server sent, test events and redelivery.

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { createServer } from "node:http";
import { after, before, describe, test } from "node:test";

import { NotFoundError, OpenClaw, verifyWebhook } from "openclaw-sdk";
import { eventually, startServer } from "./server.js";

/** A receiver on 127.0.0.1:0 that records each request (raw body, headers) and answers 200. */
async function receiver() {
  const received = [];
  const waiters = [];
  const http = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const hit = { path: req.url, headers: req.headers, body: Buffer.concat(chunks) };
      received.push(hit);
      res.writeHead(200, { "content-type": "application/json" }).end('{"received":true}');
      for (const w of waiters.splice(0)) w();
    });
  });
  await new Promise((r) => http.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${http.address().port}`,
    received,
    /** Resolves with the first request matching `match`, waiting for it to arrive. */
    async next(match, ms = 15_000) {
      const end = Date.now() + ms;
      for (;;) {
        const hit = received.find(match);
        if (hit) return hit;
        const left = end - Date.now();
        if (left <= 0) throw new Error(`no matching delivery within ${ms} ms; got ${received.map((h) => h.headers["x-openclaw-event"]).join(", ")}`);
        await new Promise((r) => {
          const timer = setTimeout(r, left);
          waiters.push(() => {
            clearTimeout(timer);
            r();
          });
        });
      }
    },
    close: () => new Promise((r) => http.close(r)),
  };
}

let server;
let client;
let hooks;

before(async () => {
  server = await startServer();
  client = new OpenClaw({ baseUrl: server.url, token: server.tokens.admin });
  hooks = await receiver();
});
after(async () => {
  await server?.stop();
  await hooks?.close();
});

describe("webhooks", () => {
  test("create, get, list, iterate, update, delete; the secret is never returned", async () => {
    const created = await client.webhooks.create({
      name: "crud",
      url: `${hooks.url}/crud`,
      events: ["task.completed", "task.failed"],
      secret: "crud-secret",
    });
    assert.equal(created.id, "crud");
    assert.equal(created.url, `${hooks.url}/crud`);
    assert.deepEqual(created.events, ["task.completed", "task.failed"]);
    assert.ok(!JSON.stringify(created).includes("crud-secret"));
    assert.equal((await client.webhooks.get("crud")).url, created.url);

    const generated = await client.webhooks.create({ url: `${hooks.url}/other`, events: ["*"], secret: "x" });
    assert.match(generated.id, /^wh-/);
    const page = await client.webhooks.list({ limit: 1 });
    assert.equal(page.total, 2);
    assert.equal(page.items.length, 1);
    const ids = [];
    for await (const w of client.webhooks.iterate({ limit: 1 })) ids.push(w.id);
    assert.deepEqual(ids.sort(), ["crud", generated.id].sort());

    const updated = await client.webhooks.update("crud", { events: ["*"], description: "all events" });
    assert.deepEqual(updated.events, ["*"]);
    assert.equal(updated.description, "all events");

    assert.equal(await client.webhooks.delete("crud"), undefined);
    assert.equal(await client.webhooks.delete(generated.id), undefined);
    await assert.rejects(client.webhooks.get("crud"), NotFoundError);
    assert.equal((await client.webhooks.list()).total, 0);
  });

  test("a task's events are delivered signed; verifyWebhook accepts the real signature; deliveries list them", async () => {
    const secret = "your-secret-here";
    await client.webhooks.create({ name: "tasks", url: `${hooks.url}/tasks`, events: ["task.completed"], secret });
    const { id } = await client.tasks.create({ prompt: "notify me" });
    await client.tasks.waitForCompletion(id);

    const hit = await hooks.next((h) => h.path === "/tasks" && JSON.parse(h.body).data?.task_id === id);
    const signature = hit.headers["x-openclaw-signature"];
    assert.equal(hit.headers["x-openclaw-event"], "task.completed");
    assert.ok(verifyWebhook(hit.body, signature, secret), "raw bytes");
    assert.ok(verifyWebhook(hit.body.toString("utf8"), signature, secret), "string");
    assert.ok(verifyWebhook(JSON.parse(hit.body), signature, secret), "parsed, as the tutorial's receiver does");
    assert.ok(!verifyWebhook(hit.body, signature, "another-secret"));
    assert.ok(!verifyWebhook(Buffer.concat([hit.body, Buffer.from(" ")]), signature, secret));
    assert.ok(!verifyWebhook(hit.body, undefined, secret));
    assert.ok(!verifyWebhook(hit.body, "abc", secret), "a short signature is false, not an exception");
    const event = JSON.parse(hit.body);
    assert.equal(event.event, "task.completed");
    assert.equal(event.data.prompt, "notify me");
    assert.equal(event.data.status, "completed");

    const deliveries = await client.webhooks.deliveries("tasks");
    const delivery = deliveries.items.find((d) => d.id === hit.headers["x-openclaw-delivery"]);
    assert.ok(delivery, JSON.stringify(deliveries));
    assert.equal(delivery.event, "task.completed");
    const mine = await eventually("the delivery to be recorded as delivered", async () => {
      const d = (await client.webhooks.deliveries("tasks")).items.find((d) => d.id === delivery.id);
      return d.status === "delivered" ? d : null;
    });
    assert.equal(mine.attempts[0].status_code, 200);
    const all = [];
    for await (const d of client.webhooks.iterateDeliveries("tasks", { limit: 1 })) all.push(d.id);
    assert.ok(all.includes(delivery.id));
    assert.equal(all.length, deliveries.total);

    // Redelivery sends the same delivery (same id, same body, same signature) again.
    const again = await client.webhooks.redeliver("tasks", delivery.id);
    assert.deepEqual(again, { id: delivery.id, status: "pending" });
    const hits = () => hooks.received.filter((h) => h.headers["x-openclaw-delivery"] === delivery.id);
    await hooks.next(() => hits().length >= 2);
    const [first, second] = hits();
    assert.equal(second.body.toString(), first.body.toString());
    assert.ok(verifyWebhook(second.body, second.headers["x-openclaw-signature"], secret));
    await assert.rejects(client.webhooks.redeliver("tasks", "dlv_missing"), NotFoundError);
  });

  test("test() sends a signed webhook.test event", async () => {
    const secret = "test-secret";
    await client.webhooks.create({ name: "pinged", url: `${hooks.url}/ping`, events: ["task.failed"], secret });
    const { delivery_id, status } = await client.webhooks.test("pinged");
    assert.equal(status, "pending");
    const hit = await hooks.next((h) => h.headers["x-openclaw-delivery"] === delivery_id);
    assert.equal(hit.headers["x-openclaw-event"], "webhook.test");
    assert.ok(verifyWebhook(hit.body, hit.headers["x-openclaw-signature"], secret));
    assert.equal(JSON.parse(hit.body).data.webhook_id, "pinged");
  });
});

describe("verifyWebhook", () => {
  test("is the tutorial's HMAC-SHA256 hex check", () => {
    const payload = '{"event":"task.completed","timestamp":"2026-03-02T10:35:00Z","data":{"task_id":"task_abc123"}}';
    // The tutorial's function, as printed there.
    const expected = createHmac("sha256", "s3cret").update(payload).digest("hex");
    assert.ok(verifyWebhook(payload, expected, "s3cret"));
    assert.ok(verifyWebhook(payload, expected.toUpperCase(), "s3cret"), "hex case does not matter");
    assert.ok(!verifyWebhook(payload, expected, "other"));
    assert.ok(!verifyWebhook(payload, "", "s3cret"));
    assert.throws(() => verifyWebhook(payload, expected, ""), /secret is empty/);
  });
});
