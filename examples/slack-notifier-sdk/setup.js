// Steps 2 and 3 of the tutorial's Slack integration, on openclaw-sdk: register the receiver
// as a webhook (once), then run a task and wait for it; the receiver posts it to Slack.
//
//   OPENCLAW_TOKEN=ocl_... OPENCLAW_WEBHOOK_SECRET=... node setup.js
// Optional: OPENCLAW_URL (default http://localhost:3000), RECEIVER_URL (default
// http://localhost:4000/openclaw-webhook), PROMPT.
import { OpenClaw, OpenClawError } from "openclaw-sdk";

const client = new OpenClaw({
  baseUrl: process.env.OPENCLAW_URL ?? "http://localhost:3000",
  token: process.env.OPENCLAW_TOKEN,
});
const url = process.env.RECEIVER_URL ?? "http://localhost:4000/openclaw-webhook";

try {
  // Step 2: register the webhook, unless one already points at the receiver.
  let hook;
  for await (const w of client.webhooks.iterate()) if (w.url === url) hook = w;
  hook ??= await client.webhooks.create({
    url,
    events: ["task.completed", "task.failed"],
    secret: process.env.OPENCLAW_WEBHOOK_SECRET,
  });
  console.log(`webhook ${hook.id} -> ${hook.url}`);

  // Step 3: test it.
  const task = await client.tasks.create({ prompt: process.env.PROMPT ?? "List the files in the current directory" });
  const result = await client.tasks.waitForCompletion(task.id);
  console.log(`task ${task.id} ${result.status}`);
} catch (e) {
  if (e instanceof OpenClawError) {
    console.error(`OpenClaw said ${e.status} ${e.code}: ${e.message}`);
    process.exit(1);
  }
  throw e;
}
