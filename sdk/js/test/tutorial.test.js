// The tutorial's SDK example, verbatim (test/tutorial-example.mjs), against a real server.
//
// The example hardcodes http://localhost:3000. Where the machine allows it (root, or user
// namespaces), the server and the example run in a network namespace of their own
// (`unshare -n`), so port 3000 is free there whatever else runs here and the file runs byte for
// byte. Elsewhere the test runs a copy with only the base URL replaced, and says so.

import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "node:test";

import { REPO, startServer } from "./server.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const EXAMPLE = join(HERE, "tutorial-example.mjs");
const OUTPUT = "done: Analyze the error logs from today\n";

function netnsAvailable() {
  // CLAW_SDK_TEST_NO_NETNS=1 takes the other path (to test it where namespaces work).
  if (process.env.CLAW_SDK_TEST_NO_NETNS) return false;
  const r = spawnSync("unshare", ["-n", "ip", "link", "set", "lo", "up"], { stdio: "ignore" });
  return r.status === 0;
}

/** The tutorial, where the workspace keeps it (next to the repository, in shared/seed). */
function tutorialText() {
  for (let dir = REPO; dir !== dirname(dir); dir = dirname(dir)) {
    const file = join(dir, "shared/seed/openclaw-api-tutorial.txt");
    if (existsSync(file)) return readFileSync(file, "utf8");
  }
  return null;
}

test("the committed example is the tutorial's SDK snippet, verbatim", (t) => {
  const tutorial = tutorialText();
  if (tutorial === null) return t.skip("shared/seed/openclaw-api-tutorial.txt is not next to this checkout");
  const example = readFileSync(EXAMPLE, "utf8");
  assert.ok(tutorial.includes(example), "test/tutorial-example.mjs differs from the tutorial's snippet");
  assert.ok(example.includes('import { OpenClaw } from "openclaw-sdk";'));
});

test("the tutorial's SDK example runs unchanged and prints the task's output", async (t) => {
  if (netnsAvailable()) {
    t.diagnostic("mode: verbatim, server on 127.0.0.1:3000 inside a private network namespace");
    const out = execFileSync("unshare", ["-n", process.execPath, join(HERE, "tutorial-netns.js")], {
      encoding: "utf8",
      timeout: 60_000,
    });
    const run = JSON.parse(out.trim().split("\n").at(-1));
    assert.equal(run.url, "http://127.0.0.1:3000");
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, OUTPUT);
    return;
  }
  t.diagnostic("mode: no network namespace here; the snippet runs with only its baseUrl replaced");
  const server = await startServer();
  const copy = join(HERE, `.tutorial-example-${process.pid}.mjs`);
  try {
    const text = readFileSync(EXAMPLE, "utf8");
    assert.ok(text.includes('"http://localhost:3000"'));
    writeFileSync(copy, text.replace('"http://localhost:3000"', JSON.stringify(server.url)));
    const child = spawn(process.execPath, [copy], {
      env: { ...process.env, OPENCLAW_TOKEN: server.tokens.admin },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let stdout = "";
    child.stdout.on("data", (c) => (stdout += c));
    const code = await new Promise((r) => child.on("close", r));
    assert.equal(code, 0);
    assert.equal(stdout, OUTPUT);
  } finally {
    rmSync(copy, { force: true });
    await server.stop();
  }
});
