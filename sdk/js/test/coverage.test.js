// Every operation of the committed OpenAPI description (schemas/openapi.json) has a method in
// this SDK: each SDK method is called against a stand-in fetch that records the request, and
// each operation of the spec must have been requested. A route added to the server (and so to
// the spec) without an SDK method fails here.

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { OpenClaw } from "openclaw-sdk";
import { REPO } from "./server.js";

const SPEC = join(REPO, "schemas/openapi.json");

/** Operations an integrator's client has no use for, and why. */
const NOT_IN_SDK = {
  "GET /healthz": "liveness probe for orchestrators",
  "GET /readyz": "readiness probe for orchestrators",
  "GET /metrics": "Prometheus scrape target",
  "POST /api/v1/hooks/git": "git push webhook, called by the git host",
  "GET /api/v1/openapi.json": "the description itself",
  "GET /api/v1/whoami": "the dashboard's (not in the SDKs yet)",
  "GET /api/v1/stats/hourly": "the dashboard's charts (not in the SDKs yet)",
  "POST /v1/chat/completions": "OpenAI-compatible: for OpenAI's own clients",
  "GET /v1/models": "OpenAI-compatible: for OpenAI's own clients",
  "GET /v1/models/{model}": "OpenAI-compatible: for OpenAI's own clients",
};

function fakeFetch(seen) {
  return async (url, init) => {
    const path = new URL(url).pathname;
    seen.push(`${init.method} ${path}`);
    if (path.endsWith("/events")) {
      return new Response('event: status\ndata: {"status":"completed"}\n\n', { headers: { "content-type": "text/event-stream" } });
    }
    if (init.method === "DELETE") return new Response(null, { status: 204 });
    const body = { items: [], total: 0, limit: 20, offset: 0, id: "ID", status: "completed", output: "" };
    return new Response(JSON.stringify(body), { headers: { "content-type": "application/json", etag: '"e"' } });
  };
}

test("every operation of schemas/openapi.json has an SDK method", async (t) => {
  if (!existsSync(SPEC)) return t.skip("schemas/openapi.json is not in this checkout");
  const spec = JSON.parse(readFileSync(SPEC, "utf8"));
  const seen = [];
  const c = new OpenClaw({ baseUrl: "http://127.0.0.1:9", token: "ocl_x", fetch: fakeFetch(seen) });
  const drain = async (it) => {
    for await (const _ of it);
  };
  const calls = [
    () => c.status(),
    () => c.reconcile(),
    () => c.tasks.create({ prompt: "p" }),
    () => c.tasks.get("ID"),
    () => c.tasks.result("ID"),
    () => c.tasks.list(),
    () => drain(c.tasks.iterate()),
    () => c.tasks.cancel("ID"),
    () => drain(c.tasks.events("ID")),
    () => c.tasks.waitForCompletion("ID"),
    () => c.skills.list(),
    () => drain(c.skills.iterate()),
    () => c.skills.get("NAME"),
    () => c.skills.create({ name: "NAME" }),
    () => c.skills.delete("NAME"),
    () => c.config.get(),
    () => c.config.patch({}),
    () => c.webhooks.list(),
    () => drain(c.webhooks.iterate()),
    () => c.webhooks.get("ID"),
    () => c.webhooks.create({ url: "u", events: [], secret: "s" }),
    () => c.webhooks.update("ID", {}),
    () => c.webhooks.delete("ID"),
    () => c.webhooks.deliveries("ID"),
    () => drain(c.webhooks.iterateDeliveries("ID")),
    () => c.webhooks.redeliver("ID", "DID"),
    () => c.webhooks.test("ID"),
    () => c.schedules.list(),
    () => drain(c.schedules.iterate()),
    () => c.schedules.get("NAME"),
    () => c.schedules.create({ name: "NAME", every: "1h", prompt: "p" }),
    () => c.schedules.update("NAME", { suspend: true }),
    () => c.schedules.delete("NAME"),
    () => c.schedules.run("NAME"),
    () => c.mcpServers.list(),
    () => drain(c.mcpServers.iterate()),
    () => c.mcpServers.get("NAME"),
    () => c.mcpServers.tools("NAME"),
    () => c.resources.list(),
    () => drain(c.resources.iterate()),
  ];
  for (const call of calls) await call();

  const missing = [];
  for (const [template, ops] of Object.entries(spec.paths)) {
    const pattern = new RegExp(`^${template.replace(/\{[^}]+\}/g, "[^/]+")}$`);
    for (const method of Object.keys(ops).filter((m) => ["get", "post", "put", "patch", "delete"].includes(m))) {
      const op = `${method.toUpperCase()} ${template}`;
      if (op in NOT_IN_SDK) continue;
      if (!seen.some((s) => s.startsWith(`${method.toUpperCase()} `) && pattern.test(s.slice(method.length + 1)))) missing.push(op);
    }
  }
  assert.deepEqual(missing, [], "operations of the spec without an SDK method");
});
