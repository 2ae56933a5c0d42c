// Runs inside a network namespace of its own (see tutorial.test.js): there 127.0.0.1:3000 is
// ours whatever runs on the machine, so the tutorial's example runs byte for byte, with its
// hardcoded http://localhost:3000. Prints one JSON line: the example's exit code and output.

import { execFileSync, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

import { startServer } from "./server.js";

execFileSync("ip", ["link", "set", "lo", "up"]);
const server = await startServer({ listen: "127.0.0.1:3000" });
try {
  const example = fileURLToPath(new URL("./tutorial-example.mjs", import.meta.url));
  const child = spawn(process.execPath, [example], {
    env: { ...process.env, OPENCLAW_TOKEN: server.tokens.admin },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c) => (stdout += c));
  child.stderr.on("data", (c) => (stderr += c));
  const code = await new Promise((r) => child.on("close", r));
  console.log(JSON.stringify({ code, stdout, stderr, url: server.url }));
} finally {
  await server.stop();
}
