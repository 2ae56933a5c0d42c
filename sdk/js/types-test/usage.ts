// Type-checked use of the declarations (`npm run typecheck`): every call a user makes, with
// the types they get back. Mistakes marked @ts-expect-error must stay errors.

import OpenClawDefault, {
  OpenClaw,
  OpenClawError,
  PreconditionFailedError,
  RateLimitError,
  verifyWebhook,
  type Task,
  type TaskResult,
  type Webhook,
  type Schedule,
} from "openclaw-sdk";

async function tutorial(): Promise<string> {
  const client = new OpenClaw({
    baseUrl: "http://localhost:3000",
    token: process.env.OPENCLAW_TOKEN,
  });
  const task = await client.tasks.create({
    prompt: "Analyze the error logs from today",
  });
  const result = await client.tasks.waitForCompletion(task.id);
  return result.output;
}

async function everything(client: OpenClaw): Promise<void> {
  const status = await client.status();
  const version: string = status.version;
  const created = await client.tasks.create(
    { prompt: "p", options: { model: "m", max_tokens: 10, working_directory: "/tmp", timeout_seconds: 5 } },
    { idempotencyKey: "k" },
  );
  const task: Task = await client.tasks.get(created.id);
  const page = await client.tasks.list({ status: ["completed", "failed"], q: "git", limit: 20, offset: 0, created_after: new Date() });
  const total: number = page.total;
  for await (const t of client.tasks.iterate({ status: "completed" })) {
    const duration: number | null = t.duration_ms;
  }
  for await (const ev of client.tasks.events(task.id)) {
    if (ev.event === "output") {
      const text: string = ev.data.text;
    } else {
      const s: string = ev.data.status;
    }
  }
  const result: TaskResult = await client.tasks.waitForCompletion(task.id, {
    timeout: 60_000,
    pollInterval: 500,
    stream: true,
    onOutput: (text) => text.length,
  });
  const files: string[] = result.files.map((f) => `${f.change} ${f.path}`);
  await client.tasks.cancel(task.id);
  await client.tasks.result(task.id);

  const skill = await client.skills.create({ name: "openclaw-skill-git-helper", version: "latest" });
  const ready: boolean | undefined = skill.status?.ready;
  await client.skills.get(skill.name);
  await client.skills.list({ limit: 5 });
  await client.skills.delete(skill.name);

  const { config, etag } = await client.config.get();
  const provider: string | undefined = config.model?.provider;
  await client.config.patch({ model: { provider: "anthropic", max_context: 8192 } }, { ifMatch: etag ?? undefined });
  await client.config.patch({ skills: { registry: null } });

  const hook: Webhook = await client.webhooks.create({
    url: "http://localhost:4000/openclaw-webhook",
    events: ["task.completed", "task.failed"],
    secret: "your-secret-here",
  });
  await client.webhooks.update(hook.id, { events: ["*"] });
  const deliveries = await client.webhooks.deliveries(hook.id);
  const code: number | null | undefined = deliveries.items[0]?.attempts[0]?.status_code;
  await client.webhooks.redeliver(hook.id, deliveries.items[0].id);
  const { delivery_id } = await client.webhooks.test(hook.id);
  await client.webhooks.delete(hook.id);

  const nightly: Schedule = await client.schedules.create({
    name: "nightly",
    prompt: "Summarize the latest git commits",
    cron: "0 9 * * 1-5",
    timezone: "Europe/Berlin",
    concurrency: "forbid",
  });
  const next: string | undefined = nightly.status.next_runs[0];
  await client.schedules.update(nightly.name, { suspend: true, timezone: null });
  const started = await client.schedules.run(nightly.name);
  const runTask: Task = await client.tasks.get(started.id);
  const from: string | undefined = runTask.schedule;
  // @ts-expect-error concurrency is allow | forbid | replace
  await client.schedules.create({ name: "x", prompt: "p", every: "1h", concurrency: "sometimes" });
  await client.schedules.delete(nightly.name);

  const servers = await client.mcpServers.list();
  const tools = await client.mcpServers.tools(servers.items[0].name);
  const toolName: string = tools.items[0].name;
  const resources = await client.resources.list({ kind: "Token" });
  const report = await client.reconcile({ confirmPrune: true });
  const errors: number = report.errors;

  // @ts-expect-error a prompt is required
  await client.tasks.create({});
  // @ts-expect-error the task statuses are known
  await client.tasks.list({ status: "sleeping" });
  // @ts-expect-error kinds are known
  await client.resources.list({ kind: "Pod" });
}

function errors(e: unknown): number | null {
  if (e instanceof RateLimitError) return e.retryAfter;
  if (e instanceof PreconditionFailedError) return e.status;
  if (e instanceof OpenClawError) {
    const s: string = `${e.status} ${e.code} ${e.message} ${e.details.map((d) => d.field).join()}`;
    return s.length;
  }
  return null;
}

const ok: boolean = verifyWebhook(Buffer.from("{}"), "abc", "secret");
const alsoOk: boolean = verifyWebhook({ event: "x" }, ["abc"], "secret");
const viaDefault = new OpenClawDefault({ token: "ocl_x", maxRetries: 0, maxRetryAfter: 10, timeout: 1000 });
export { tutorial, everything, errors, ok, alsoOk, viaDefault };
