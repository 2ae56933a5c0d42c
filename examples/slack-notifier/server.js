import express from "express";
import crypto from "crypto";
const app = express();
app.use(express.json());
const WEBHOOK_SECRET = process.env.OPENCLAW_WEBHOOK_SECRET;
const SLACK_WEBHOOK_URL = process.env.SLACK_WEBHOOK_URL;
app.post("/openclaw-webhook", async (req, res) => {
// Verify signature
const signature = req.headers["x-openclaw-signature"];
const expected = crypto
.createHmac("sha256", WEBHOOK_SECRET)
.update(JSON.stringify(req.body))
.digest("hex");
if (!crypto.timingSafeEqual(Buffer.from(signature), Buffer.from(expected))) {
return res.status(401).json({ error: "Invalid signature" });
}
const { event, data } = req.body;
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
app.listen(4000, () => console.log("Webhook receiver on port 4000"));
