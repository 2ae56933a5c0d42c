// Step 1 of the tutorial's Slack integration, on openclaw-sdk: receive OpenClaw webhooks,
// check X-OpenClaw-Signature with the SDK's verifyWebhook over the raw body bytes, and post
// completed tasks to a Slack incoming webhook.
import express from "express";
import { verifyWebhook } from "openclaw-sdk";

const app = express();
// The raw body: the signature covers the exact bytes the server sent.
app.use(express.raw({ type: "application/json" }));

const WEBHOOK_SECRET = process.env.OPENCLAW_WEBHOOK_SECRET;
const SLACK_WEBHOOK_URL = process.env.SLACK_WEBHOOK_URL;
const PORT = Number(process.env.PORT ?? 4000);
if (!WEBHOOK_SECRET || !SLACK_WEBHOOK_URL) {
  console.error("set OPENCLAW_WEBHOOK_SECRET and SLACK_WEBHOOK_URL");
  process.exit(2);
}

app.post("/openclaw-webhook", async (req, res) => {
  if (!verifyWebhook(req.body, req.headers["x-openclaw-signature"], WEBHOOK_SECRET)) {
    return res.status(401).json({ error: "Invalid signature" });
  }
  const { event, data } = JSON.parse(req.body.toString("utf8"));
  if (event === "task.completed") {
    await fetch(SLACK_WEBHOOK_URL, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        text: `OpenClaw task completed: "${data.prompt}" (${data.duration_ms}ms)`,
      }),
    });
  }
  res.json({ received: true });
});

const listener = app.listen(PORT, () => console.log(`Webhook receiver on port ${listener.address().port}`));
