// Test helper: runs the real `claw` binary (target/debug/claw, or $CLAW_BIN) over a temp
// manifests dir and data dir, on 127.0.0.1:0, and stops it (and removes the dirs) afterwards.
// Tasks run with the `command` model provider and the shell script below, so they complete
// without any network: the output is "done: <prompt>"; a prompt starting with "slow" prints
// "working..." and takes a second, "block" runs until cancelled, "fail" exits 3.

import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const CLAW = process.env.CLAW_BIN ?? join(REPO, "target/debug/claw");

export const AGENT = [
  'p=$(cat)',
  'case "$p" in',
  '  slow*) printf "working...\\n"; sleep 1 ;;',
  '  block*) printf "blocking\\n"; sleep 60 ;;',
  '  fail*) echo "failed on purpose" >&2; exit 3 ;;',
  "esac",
  'printf "done: %s" "$p"',
].join("\n");

/** The Config manifest the servers run with (`extra` is appended under `spec:`). */
export function configYaml(extra = "") {
  return [
    "apiVersion: openclaw.dev/v1",
    "kind: Config",
    "metadata:",
    "  name: default",
    "spec:",
    "  model:",
    "    provider: command",
    `    command: ["sh", "-c", ${JSON.stringify(AGENT)}]`,
    "  tasks:",
    "    concurrency: 4",
    extra,
  ].join("\n");
}

function claw(args, opts = {}) {
  return execFileSync(CLAW, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], ...opts });
}

/**
 * Prepares a manifests dir (Config, admin token from `claw init`, read and execute tokens
 * from `claw token create`) without starting a server.
 * @param {{ config?: string, files?: Record<string, string> }} [opts]
 */
export function prepare(opts = {}) {
  if (!existsSync(CLAW)) {
    throw new Error(`${CLAW} does not exist: build it first (cargo build), or set CLAW_BIN`);
  }
  const root = mkdtempSync(join(tmpdir(), "claw-sdk-js-"));
  const manifests = join(root, "manifests");
  const data = join(root, "data");
  const admin = claw(["init", manifests]).trim();
  const token = (name, scope) =>
    claw(["token", "create", "--manifests", manifests, "--name", name, "--scope", scope]).trim();
  const tokens = { admin, read: token("reader", "read"), execute: token("runner", "execute") };
  writeFileSync(join(manifests, "configs/default.yaml"), opts.config ?? configYaml());
  for (const [rel, text] of Object.entries(opts.files ?? {})) {
    mkdirSync(dirname(join(manifests, rel)), { recursive: true });
    writeFileSync(join(manifests, rel), text);
  }
  return { root, manifests, data, tokens };
}

/**
 * Starts `claw serve` over a prepared (or fresh) dir; resolves once it listens.
 * @param {{ config?: string, files?: Record<string, string>, listen?: string, prepared?: ReturnType<typeof prepare> }} [opts]
 */
export async function startServer(opts = {}) {
  const dirs = opts.prepared ?? prepare(opts);
  const child = spawn(
    CLAW,
    ["serve", "--manifests", dirs.manifests, "--data", dirs.data, "--listen", opts.listen ?? "127.0.0.1:0", "--debounce-ms", "20"],
    { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, NO_COLOR: "1", RUST_LOG: "warn" } },
  );
  let log = "";
  const url = await new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`claw serve did not start within 20 s:\n${log}`)), 20_000);
    child.stderr.setEncoding("utf8");
    // Kept reading to the end, so the server never blocks on a full pipe.
    child.stderr.on("data", (chunk) => {
      log = (log + chunk).slice(-20_000);
      const m = /listening on (http:\/\/\S+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolveUrl(m[1]);
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`claw serve exited with ${code}:\n${log}`));
    });
  });
  const exited = new Promise((r) => child.once("exit", r));
  const kill = () => child.kill("SIGKILL");
  process.once("exit", kill);
  return {
    url,
    ...dirs,
    log: () => log,
    /** Stops the server (SIGTERM, then SIGKILL after 5 s) and removes its dirs. */
    async stop() {
      process.removeListener("exit", kill);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dirs.root, { recursive: true, force: true });
    },
  };
}

/** Polls `check` (every 50 ms, at most `ms`) until it returns a truthy value. */
export async function eventually(what, check, ms = 10_000) {
  const end = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
