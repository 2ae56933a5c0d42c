import { OpenClaw } from "openclaw-sdk";
const client = new OpenClaw({
baseUrl: "http://localhost:3000",
token: process.env.OPENCLAW_TOKEN,
});
const task = await client.tasks.create({
prompt: "Analyze the error logs from today",
});
const result = await client.tasks.waitForCompletion(task.id);
console.log(result.output);
