// Status, skills, config (ETag / If-Match), MCP servers, resources and reconcile against a
// real server. The MCP server is the real @modelcontextprotocol/server-everything that
// tests/mcp installs (`npm ci` there; sdk/test.sh does it).

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import { OpenClaw, PreconditionFailedError, UnprocessableEntityError, ConflictError, VERSION } from "openclaw-sdk";
import { CLAW, REPO, configYaml, eventually, prepare, startServer } from "./server.js";

const EVERYTHING = join(REPO, "tests/mcp/node_modules/.bin/mcp-server-everything");

let server;
let client;
let registry;

before(async () => {
  if (!existsSync(EVERYTHING)) throw new Error(`${EVERYTHING} is missing: run \`npm ci\` in tests/mcp`);
  const prepared = prepare();
  // A skills registry with one skill, made by `claw skill pack`.
  registry = join(prepared.root, "registry");
  const skill = join(prepared.root, "git-helper");
  mkdirSync(skill);
  writeFileSync(
    join(skill, "SKILL.md"),
    "---\nname: openclaw-skill-git-helper\ndescription: Helps with git\nversion: 1.2.0\n---\n# Git helper\n",
  );
  execFileSync(CLAW, ["skill", "pack", skill, "--registry", registry], { stdio: "ignore" });
  writeFileSync(join(prepared.manifests, "configs/default.yaml"), configYaml(`  skills:\n    registry: ${JSON.stringify(registry)}\n`));
  mkdirSync(join(prepared.manifests, "mcp"));
  writeFileSync(
    join(prepared.manifests, "mcp/everything.yaml"),
    `apiVersion: openclaw.dev/v1\nkind: McpServer\nmetadata:\n  name: everything\nspec:\n  command: ${JSON.stringify(EVERYTHING)}\n  args: [stdio]\n  timeout_seconds: 20\n`,
  );
  server = await startServer({ prepared });
  client = new OpenClaw({ baseUrl: server.url, token: server.tokens.admin });
});
after(async () => {
  await server?.stop();
});

test("status: health, version, uptime, MCP servers, reconciler, task counts", async () => {
  const status = await client.status();
  assert.ok(["ok", "degraded"].includes(status.status), status.status);
  assert.match(status.version, /^\d+\.\d+\.\d+/);
  assert.equal(typeof status.uptime_seconds, "number");
  assert.ok(Array.isArray(status.mcp_servers));
  assert.equal(typeof status.reconciler, "object");
  assert.equal(typeof status.tasks, "object");
});

describe("skills", () => {
  test("create installs from the registry; get, list, iterate; delete removes it", async () => {
    const created = await client.skills.create({ name: "openclaw-skill-git-helper", version: "latest" });
    assert.equal(created.name, "openclaw-skill-git-helper");
    assert.equal(created.version, "latest");
    const ready = await eventually("the skill to be installed", async () => {
      const s = await client.skills.get("openclaw-skill-git-helper");
      return s.installed && s.status?.ready ? s : null;
    });
    assert.equal(ready.resolved_version, "1.2.0");
    assert.match(ready.digest, /^sha256:|^[0-9a-f]{64}$/);

    const page = await client.skills.list();
    assert.deepEqual(page.items.map((s) => s.name), ["openclaw-skill-git-helper"]);
    assert.equal(page.total, 1);
    const all = [];
    for await (const s of client.skills.iterate()) all.push(s.name);
    assert.deepEqual(all, ["openclaw-skill-git-helper"]);

    await assert.rejects(client.skills.create({ name: "openclaw-skill-git-helper" }), (e) => e instanceof ConflictError && e.code === "already_exists");
    assert.equal(await client.skills.delete("openclaw-skill-git-helper"), undefined);
    assert.equal((await client.skills.list()).total, 0);
  });

  test("an unknown skill is a 422 and nothing is written", async () => {
    await assert.rejects(client.skills.create({ name: "openclaw-skill-nope", version: "latest" }), (e) => {
      assert.ok(e instanceof UnprocessableEntityError);
      assert.equal(e.code, "skill_unresolvable");
      assert.equal(e.details[0].field, "version");
      return true;
    });
    assert.equal((await client.skills.list()).total, 0);
  });
});

describe("config", () => {
  test("get gives the spec and its ETag; patch with ifMatch applies and gives the new ETag", async () => {
    const { config, etag } = await client.config.get();
    assert.equal(config.model.provider, "command");
    assert.match(etag, /^"[0-9a-f]{64}"$/);
    const patched = await client.config.patch({ tasks: { concurrency: 3 } }, { ifMatch: etag });
    assert.equal(patched.config.tasks.concurrency, 3);
    assert.notEqual(patched.etag, etag);
    const again = await client.config.get();
    assert.equal(again.config.tasks.concurrency, 3);
    assert.equal(again.etag, patched.etag);
  });

  test("a stale If-Match is a 412 PreconditionFailedError and changes nothing", async () => {
    const { etag: stale } = await client.config.get();
    await client.config.patch({ tasks: { concurrency: 5 } });
    await assert.rejects(client.config.patch({ tasks: { concurrency: 9 } }, { ifMatch: stale }), (e) => {
      assert.ok(e instanceof PreconditionFailedError);
      assert.equal(e.status, 412);
      assert.equal(e.code, "precondition_failed");
      return true;
    });
    assert.equal((await client.config.get()).config.tasks.concurrency, 5);
  });

  test("an invalid patch is refused with field details", async () => {
    await assert.rejects(client.config.patch({ tasks: { concurrency: "many" } }), (e) => e.status === 400 && e.code === "validation_failed" && e.details.length > 0);
  });
});

describe("MCP servers", () => {
  test("list, get and tools of a real MCP server", async () => {
    const connected = await eventually("server-everything to connect", async () => {
      const s = await client.mcpServers.get("everything");
      return s.status === "connected" ? s : null;
    }, 30_000);
    assert.equal(connected.transport, "stdio");
    assert.ok(connected.tools > 0);
    const page = await client.mcpServers.list();
    assert.deepEqual(page.items.map((s) => s.name), ["everything"]);
    const names = [];
    for await (const s of client.mcpServers.iterate()) names.push(s.name);
    assert.deepEqual(names, ["everything"]);
    const tools = await client.mcpServers.tools("everything");
    assert.equal(tools.server, "everything");
    assert.equal(tools.total, tools.items.length);
    assert.ok(tools.items.some((t) => t.name === "echo"), JSON.stringify(tools.items.map((t) => t.name)));
  });
});

describe("resources and reconcile", () => {
  test("list by kind, iterate all, and a reconcile now", async () => {
    const tokens = await client.resources.list({ kind: "Token" });
    assert.deepEqual(tokens.items.map((r) => r.name).sort(), ["admin", "reader", "runner"]);
    assert.ok(tokens.items.every((r) => r.kind === "Token" && r.ready === true));
    const all = [];
    for await (const r of client.resources.iterate({ limit: 2 })) all.push(`${r.kind}/${r.name}`);
    assert.ok(all.includes("Config/default") && all.includes("McpServer/everything"), all.join(", "));
    assert.equal(new Set(all).size, all.length);
    assert.equal(all.length, (await client.resources.list()).total);

    const report = await client.reconcile();
    assert.equal(typeof report.revision, "string");
    assert.equal(report.errors, 0);
  });
});

test("the package version matches package.json", () => {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
  assert.equal(VERSION, pkg.version);
  assert.equal(pkg.name, "openclaw-sdk");
  assert.deepEqual(pkg.dependencies ?? {}, {}, "no runtime dependencies");
});
