// Schedules against a real server: create (written back as a manifest), get with next run
// times, update, run now (a task that names its schedule), list, delete, and the errors.

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { BadRequestError, NotFoundError, OpenClaw } from "openclaw-sdk";
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

test("schedules: create, get, update, run now, list, delete", async () => {
  const created = await client.schedules.create({
    name: "js-nightly",
    prompt: "nightly report",
    cron: "30 2 * * *",
    timezone: "Europe/Berlin",
    suspend: true,
  });
  assert.equal(created.name, "js-nightly");
  assert.equal(created.status.suspended, true);
  assert.deepEqual(created.status.next_runs, []);
  assert.ok(existsSync(join(server.manifests, "schedules/js-nightly.yaml")));

  const updated = await client.schedules.update("js-nightly", { suspend: false });
  assert.equal(updated.status.suspended, false);
  const got = await client.schedules.get("js-nightly");
  assert.equal(got.status.next_runs.length, 5);

  const run = await client.schedules.run("js-nightly");
  const result = await client.tasks.waitForCompletion(run.id);
  assert.equal(result.status, "completed");
  const task = await client.tasks.get(run.id);
  assert.equal(task.schedule, "js-nightly");
  assert.equal(task.schedule_slot, undefined);
  const after = await client.schedules.get("js-nightly");
  assert.deepEqual(
    after.status.last_runs.map((r) => [r.trigger, r.task_id]),
    [["manual", run.id]],
  );

  const names = [];
  for await (const s of client.schedules.iterate()) names.push(s.name);
  assert.ok(names.includes("js-nightly"));
  await client.schedules.delete("js-nightly");
  await assert.rejects(client.schedules.get("js-nightly"), NotFoundError);
});

test("schedules: a bad cron expression is refused, naming the field", async () => {
  await assert.rejects(
    client.schedules.create({ name: "js-bad", prompt: "p", cron: "61 * * * *" }),
    (e) => e instanceof BadRequestError && JSON.stringify(e.details).includes("/spec/cron"),
  );
});
