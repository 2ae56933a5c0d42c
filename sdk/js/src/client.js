// The client: one `OpenClaw` object holding the base URL, the token and the retry policy,
// with one namespace per resource of the API (`tasks`, `skills`, `config`, `webhooks`,
// `schedules`, `mcpServers`, `resources`) and the single calls `status()` and `reconcile()`.
//
// Request and response bodies are the API's JSON as is (snake_case, as the tutorial shows
// them); only the client's own options are camelCase.

import { randomUUID } from "node:crypto";

import {
  ConnectionError,
  OpenClawError,
  TimeoutError,
  errorFromResponse,
} from "./errors.js";
import { readEvents } from "./sse.js";

/** The package version, sent in `User-Agent`. */
export const VERSION = "0.1.0";

/** Statuses a task never leaves. */
export const TERMINAL_STATUSES = Object.freeze(["completed", "failed", "cancelled"]);

const env = globalThis.process?.env ?? {};

/** The client of one claw / OpenClaw server. */
export class OpenClaw {
  /**
   * @param {import("../index.js").ClientOptions} [options]
   */
  constructor(options = {}) {
    const baseUrl = options.baseUrl ?? env.OPENCLAW_BASE_URL ?? "http://localhost:3000";
    const token = options.token ?? env.OPENCLAW_TOKEN;
    if (typeof token !== "string" || token.length === 0) {
      throw new TypeError(
        "OpenClaw: no token; pass { token } or set OPENCLAW_TOKEN (create one with `claw token create --name NAME`)",
      );
    }
    const fetchImpl = options.fetch ?? globalThis.fetch;
    if (typeof fetchImpl !== "function") {
      throw new TypeError("OpenClaw: no fetch(); use Node.js 18 or later, or pass { fetch }");
    }
    /** @readonly */
    this.baseUrl = String(baseUrl).replace(/\/+$/, "");
    /** Retries of a request answered 429 (after `Retry-After`); 0 disables them. */
    this.maxRetries = options.maxRetries ?? 3;
    /** Longest `Retry-After` (seconds) the client waits out; a longer one is thrown at once. */
    this.maxRetryAfter = options.maxRetryAfter ?? 60;
    /** Per-request timeout in milliseconds (for SSE: until the response headers arrive). */
    this.timeout = options.timeout ?? 30_000;
    this.#token = token;
    this.#fetch = fetchImpl;
    this.#headers = { ...(options.headers ?? {}) };

    this.tasks = new Tasks(this);
    this.skills = new Skills(this);
    this.config = new ConfigApi(this);
    this.webhooks = new Webhooks(this);
    this.schedules = new Schedules(this);
    this.mcpServers = new McpServers(this);
    this.resources = new Resources(this);
  }

  #token;
  #fetch;
  #headers;

  /** `GET /status`: health, version, uptime, MCP servers, reconciler state, task counts. */
  status(opts = {}) {
    return this.request("GET", "/status", opts);
  }

  /**
   * `POST /reconcile`: a full reconcile now. `confirmPrune: true` lets deletes held back by
   * the prune guard go ahead once.
   */
  reconcile({ confirmPrune = false, ...opts } = {}) {
    return this.request("POST", "/reconcile", { ...opts, body: confirmPrune ? { confirm_prune: true } : undefined });
  }

  /**
   * One API call; resolves to the parsed JSON body (undefined for an empty one).
   * @param {string} method
   * @param {string} path below `/api/v1`, e.g. `/tasks`
   * @param {import("../index.js").RequestOptions} [opts]
   */
  async request(method, path, opts = {}) {
    const { data } = await this.requestWithResponse(method, path, opts);
    return data;
  }

  /**
   * Like `request`, also giving the `Response` (its body already read unless `opts.stream`).
   * Retries a 429 (and a 409 `idempotency_key_in_progress`: the first request with this
   * key is still running) after `Retry-After`, at most `maxRetries` times, with the same
   * `Idempotency-Key` on every attempt.
   */
  async requestWithResponse(method, path, opts = {}) {
    const url = this.#url(path, opts.query);
    const headers = {
      Accept: opts.stream ? "text/event-stream" : "application/json",
      "User-Agent": `openclaw-sdk-js/${VERSION}`,
      ...this.#headers,
      ...(opts.headers ?? {}),
      Authorization: `Bearer ${this.#token}`,
    };
    let body;
    if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.body);
    }
    if (opts.idempotencyKey) headers["Idempotency-Key"] = opts.idempotencyKey;
    const timeout = opts.timeout ?? this.timeout;

    for (let attempt = 0; ; attempt++) {
      const { response, text } = await this.#send(url, { method, headers, body }, timeout, opts.signal, opts.stream);
      if (response.ok) {
        return { data: opts.stream ? undefined : parseBody(response, text), response };
      }
      const error = errorFromResponse(response, parseBody(response, text ?? (await response.text().catch(() => ""))));
      const retryable =
        response.status === 429 || (response.status === 409 && error.code === "idempotency_key_in_progress");
      if (retryable && attempt < this.maxRetries) {
        const wait = error.retryAfter ?? Math.min(2 ** attempt, 30);
        if (wait <= this.maxRetryAfter) {
          await sleep(wait * 1000, opts.signal);
          continue;
        }
      }
      throw error;
    }
  }

  async #send(url, init, timeout, signal, stream) {
    signal?.throwIfAborted();
    const controller = new AbortController();
    const onAbort = () => controller.abort(signal.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    let timedOut = false;
    const timer =
      timeout > 0 && Number.isFinite(timeout)
        ? setTimeout(() => {
            timedOut = true;
            controller.abort();
          }, timeout)
        : null;
    try {
      const response = await this.#fetch(url, { ...init, signal: controller.signal });
      // Reading the body also counts against the timeout (a stream's body is read by its caller).
      const text = stream ? undefined : await response.text();
      return { response, text };
    } catch (e) {
      if (signal?.aborted) throw signal.reason ?? e;
      if (timedOut) {
        throw new TimeoutError({
          status: 0,
          code: "timeout",
          message: `${init.method} ${url} took longer than ${timeout} ms`,
          cause: e,
        });
      }
      throw new ConnectionError({
        status: 0,
        code: "connection_error",
        message: `${init.method} ${url} failed: ${e?.cause?.message ?? e?.message ?? e}`,
        cause: e,
      });
    } finally {
      if (timer) clearTimeout(timer);
      // A stream keeps following the caller's signal until it is read to the end.
      if (!stream) signal?.removeEventListener("abort", onAbort);
    }
  }

  #url(path, query) {
    const url = new URL(`${this.baseUrl}/api/v1${path}`);
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value === undefined || value === null || value === "") continue;
      url.searchParams.set(key, Array.isArray(value) ? value.join(",") : value instanceof Date ? value.toISOString() : String(value));
    }
    return url.toString();
  }

  /**
   * Every item of a list endpoint, page after page (`limit` per request). Items already seen
   * are skipped, so an item that moves to a later page while iterating (a new task pushes
   * older ones down) is yielded once.
   * @param {string} path
   * @param {object} [query]
   * @param {{ pageSize?: number, signal?: AbortSignal, key?: (item: any) => string }} [opts]
   */
  async *paginate(path, query = {}, opts = {}) {
    const limit = opts.pageSize ?? 100;
    const key = opts.key ?? ((item) => item.id ?? item.name);
    const seen = new Set();
    for (let offset = query.offset ?? 0; ; ) {
      const page = await this.request("GET", path, { query: { ...query, limit, offset }, signal: opts.signal });
      for (const item of page.items) {
        const k = key(item);
        if (k !== undefined && seen.has(k)) continue;
        if (k !== undefined) seen.add(k);
        yield item;
      }
      offset += page.items.length;
      if (page.items.length === 0 || offset >= page.total) return;
    }
  }
}

/** `/tasks`: create, read, list, cancel, follow. */
class Tasks {
  #c;
  constructor(client) {
    this.#c = client;
  }

  /**
   * `POST /tasks` with `{prompt, options}`; resolves to `{id, status, created_at}`.
   * Sends an `Idempotency-Key` (a new UUID unless given), the same on each retry.
   */
  create(params, opts = {}) {
    return this.#c.request("POST", "/tasks", {
      ...opts,
      body: params,
      idempotencyKey: opts.idempotencyKey ?? randomUUID(),
    });
  }

  /** `GET /tasks/:id`. */
  get(id, opts = {}) {
    return this.#c.request("GET", `/tasks/${seg(id)}`, opts);
  }

  /** `GET /tasks/:id/result`: output, files, usage (a `ConflictError` while not finished). */
  result(id, opts = {}) {
    return this.#c.request("GET", `/tasks/${seg(id)}/result`, opts);
  }

  /** `GET /tasks`: one page, newest first, filtered by `status`, `created_after`, `created_before`, `q`. */
  list(params = {}, opts = {}) {
    return this.#c.request("GET", "/tasks", { ...opts, query: params });
  }

  /** Every task matching the filters, newest first, fetching pages as needed. */
  iterate(params = {}, opts = {}) {
    const { limit, ...filters } = params;
    return this.#c.paginate("/tasks", filters, { pageSize: limit, ...opts });
  }

  /** `POST /tasks/:id/cancel`; resolves to the task. */
  cancel(id, opts = {}) {
    return this.#c.request("POST", `/tasks/${seg(id)}/cancel`, opts);
  }

  /**
   * `GET /tasks/:id/events`: the task's Server-Sent Events (`status` and `output`), parsed;
   * ends after the final status. Read with fetch, so the token stays in a header.
   * @returns {AsyncGenerator<import("../index.js").TaskEvent>}
   */
  async *events(id, opts = {}) {
    const { response } = await this.#c.requestWithResponse("GET", `/tasks/${seg(id)}/events`, { ...opts, stream: true });
    if (!response.body) return;
    const events = readEvents(response.body);
    try {
      yield* this.#parsed(id, events, opts.signal);
    } finally {
      // A consumer's `break` ends this generator: release the connection too.
      await events.return(undefined);
    }
  }

  async *#parsed(id, events, signal) {
    for (;;) {
      let next;
      try {
        next = await events.next();
      } catch (e) {
        if (signal?.aborted) throw e;
        throw new ConnectionError({
          status: 0,
          code: "connection_error",
          message: `the event stream of task ${id} broke: ${e?.cause?.message ?? e?.message ?? e}`,
          cause: e,
        });
      }
      if (next.done) return;
      let data;
      try {
        data = JSON.parse(next.value.data);
      } catch {
        data = next.value.data;
      }
      yield { event: next.value.event, data };
    }
  }

  /**
   * Waits until the task has finished (completed, failed or cancelled) and resolves to its
   * result. Follows the SSE stream; if the stream cannot be used (a proxy that buffers it,
   * a dropped connection) it polls `GET /tasks/:id` every `pollInterval` ms instead.
   * Throws a `TimeoutError` after `timeout` ms (default 10 minutes; 0 or Infinity: none).
   * The result of a failed or cancelled task is returned too: check `result.status`.
   */
  async waitForCompletion(id, opts = {}) {
    const { timeout = 600_000, pollInterval = 1000, stream = true, onOutput, signal } = opts;
    const controller = new AbortController();
    const onAbort = () => controller.abort(signal.reason);
    signal?.throwIfAborted();
    signal?.addEventListener("abort", onAbort, { once: true });
    let timedOut = false;
    const timer =
      timeout > 0 && Number.isFinite(timeout)
        ? setTimeout(() => {
            timedOut = true;
            controller.abort();
          }, timeout)
        : null;
    const inner = { signal: controller.signal };
    try {
      let finished = false;
      if (stream) {
        try {
          finished = await this.#followEvents(id, onOutput, inner);
        } catch (e) {
          if (controller.signal.aborted) throw e;
          // The task is not there or we may not see it: polling would say the same.
          if (e instanceof OpenClawError && [401, 403, 404].includes(e.status)) throw e;
        }
      }
      if (!finished) await this.#poll(id, pollInterval, inner);
      return await this.result(id, inner);
    } catch (e) {
      if (timedOut) {
        throw new TimeoutError({
          status: 0,
          code: "timeout",
          message: `task ${id} did not finish within ${timeout} ms`,
          cause: e,
        });
      }
      throw e;
    } finally {
      if (timer) clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /** True once the stream reported a final status; false if it ended without one. */
  async #followEvents(id, onOutput, opts) {
    for await (const { event, data } of this.events(id, opts)) {
      if (event === "output" && onOutput && typeof data?.text === "string") onOutput(data.text);
      if (event === "status" && TERMINAL_STATUSES.includes(data?.status)) return true;
    }
    return false;
  }

  async #poll(id, interval, opts) {
    for (;;) {
      const task = await this.get(id, opts);
      if (TERMINAL_STATUSES.includes(task.status)) return task;
      await sleep(interval, opts.signal);
    }
  }
}

/** `/skills`: Skill manifests, installed by the server. */
class Skills {
  #c;
  constructor(client) {
    this.#c = client;
  }
  /** `GET /skills`: one page. */
  list(params = {}, opts = {}) {
    return this.#c.request("GET", "/skills", { ...opts, query: params });
  }
  /** Every declared skill. */
  iterate(params = {}, opts = {}) {
    return this.#c.paginate("/skills", {}, { pageSize: params.limit, ...opts });
  }
  /** `GET /skills/:name`. */
  get(name, opts = {}) {
    return this.#c.request("GET", `/skills/${seg(name)}`, opts);
  }
  /** `POST /skills` with `{name, version, ...}`; the install follows (see the skill's `status`). */
  create(params, opts = {}) {
    return this.#c.request("POST", "/skills", {
      ...opts,
      body: params,
      idempotencyKey: opts.idempotencyKey ?? randomUUID(),
    });
  }
  /** `DELETE /skills/:name`: removes the manifest, which uninstalls the skill. */
  delete(name, opts = {}) {
    return this.#c.request("DELETE", `/skills/${seg(name)}`, opts);
  }
}

/** `/config`: the Config spec, with its `ETag` for optimistic concurrency. */
class ConfigApi {
  #c;
  constructor(client) {
    this.#c = client;
  }
  /** `GET /config`; resolves to `{config, etag}` (secrets appear only as references). */
  async get(opts = {}) {
    const { data, response } = await this.#c.requestWithResponse("GET", "/config", opts);
    return { config: data, etag: response.headers.get("etag") };
  }
  /**
   * `PATCH /config` with a JSON merge patch (RFC 7396). With `ifMatch` (an `etag` from `get`)
   * a `PreconditionFailedError` (412) is thrown if the config changed meanwhile.
   * Resolves to `{config, etag}` after the change.
   */
  async patch(patch, opts = {}) {
    const { ifMatch, ...rest } = opts;
    const headers = { ...(rest.headers ?? {}) };
    if (ifMatch) headers["If-Match"] = ifMatch;
    const { data, response } = await this.#c.requestWithResponse("PATCH", "/config", { ...rest, headers, body: patch });
    return { config: data, etag: response.headers.get("etag") };
  }
}

/** `/webhooks`: subscriptions (Webhook manifests), their deliveries, redelivery and tests. */
class Webhooks {
  #c;
  constructor(client) {
    this.#c = client;
  }
  /** `GET /webhooks`: one page. */
  list(params = {}, opts = {}) {
    return this.#c.request("GET", "/webhooks", { ...opts, query: params });
  }
  /** Every subscription. */
  iterate(params = {}, opts = {}) {
    return this.#c.paginate("/webhooks", {}, { pageSize: params.limit, ...opts });
  }
  /** `GET /webhooks/:id` (the secret is never returned). */
  get(id, opts = {}) {
    return this.#c.request("GET", `/webhooks/${seg(id)}`, opts);
  }
  /** `POST /webhooks` with `{url, events, secret, name?, enabled?, description?}`. */
  create(params, opts = {}) {
    return this.#c.request("POST", "/webhooks", {
      ...opts,
      body: params,
      idempotencyKey: opts.idempotencyKey ?? randomUUID(),
    });
  }
  /** `PATCH /webhooks/:id` with a merge patch (a new `secret` replaces the old one). */
  update(id, patch, opts = {}) {
    return this.#c.request("PATCH", `/webhooks/${seg(id)}`, { ...opts, body: patch });
  }
  /** `DELETE /webhooks/:id`. */
  delete(id, opts = {}) {
    return this.#c.request("DELETE", `/webhooks/${seg(id)}`, opts);
  }
  /** `GET /webhooks/:id/deliveries`: one page of deliveries, each with its attempts. */
  deliveries(id, params = {}, opts = {}) {
    return this.#c.request("GET", `/webhooks/${seg(id)}/deliveries`, { ...opts, query: params });
  }
  /** Every delivery of a subscription. */
  iterateDeliveries(id, params = {}, opts = {}) {
    return this.#c.paginate(`/webhooks/${seg(id)}/deliveries`, {}, { pageSize: params.limit, ...opts });
  }
  /** `POST /webhooks/:id/deliveries/:deliveryId/redeliver`: send a delivery again. */
  redeliver(id, deliveryId, opts = {}) {
    return this.#c.request("POST", `/webhooks/${seg(id)}/deliveries/${seg(deliveryId)}/redeliver`, opts);
  }
  /** `POST /webhooks/:id/test`: queue a `webhook.test` event; resolves to `{delivery_id, status}`. */
  test(id, opts = {}) {
    return this.#c.request("POST", `/webhooks/${seg(id)}/test`, opts);
  }
}

/** `/schedules`: Schedule manifests (tasks that run on their own), their runs, run-now. */
class Schedules {
  #c;
  constructor(client) {
    this.#c = client;
  }
  /** `GET /schedules`: one page. */
  list(params = {}, opts = {}) {
    return this.#c.request("GET", "/schedules", { ...opts, query: params });
  }
  /** Every schedule. */
  iterate(params = {}, opts = {}) {
    return this.#c.paginate("/schedules", {}, { pageSize: params.limit, ...opts });
  }
  /** `GET /schedules/:name`: spec, next run times, last runs. */
  get(name, opts = {}) {
    return this.#c.request("GET", `/schedules/${seg(name)}`, opts);
  }
  /** `POST /schedules` with `{name, prompt, cron (+ timezone) | every | at, ...}`. */
  create(params, opts = {}) {
    return this.#c.request("POST", "/schedules", {
      ...opts,
      body: params,
      idempotencyKey: opts.idempotencyKey ?? randomUUID(),
    });
  }
  /** `PATCH /schedules/:name` with a merge patch of the spec. */
  update(name, patch, opts = {}) {
    return this.#c.request("PATCH", `/schedules/${seg(name)}`, { ...opts, body: patch });
  }
  /** `DELETE /schedules/:name`. */
  delete(name, opts = {}) {
    return this.#c.request("DELETE", `/schedules/${seg(name)}`, opts);
  }
  /** `POST /schedules/:name/run`: start one task now; resolves to `{id, status, created_at}`. */
  run(name, opts = {}) {
    return this.#c.request("POST", `/schedules/${seg(name)}/run`, opts);
  }
}

/** `/mcp-servers`: declared MCP servers with their live state and tools. */
class McpServers {
  #c;
  constructor(client) {
    this.#c = client;
  }
  /** `GET /mcp-servers`: one page. */
  list(params = {}, opts = {}) {
    return this.#c.request("GET", "/mcp-servers", { ...opts, query: params });
  }
  /** Every declared MCP server. */
  iterate(params = {}, opts = {}) {
    return this.#c.paginate("/mcp-servers", {}, { pageSize: params.limit, ...opts });
  }
  /** `GET /mcp-servers/:name`. */
  get(name, opts = {}) {
    return this.#c.request("GET", `/mcp-servers/${seg(name)}`, opts);
  }
  /** `GET /mcp-servers/:name/tools`. */
  tools(name, opts = {}) {
    return this.#c.request("GET", `/mcp-servers/${seg(name)}/tools`, opts);
  }
}

/** `/resources`: the status of every declared resource. */
class Resources {
  #c;
  constructor(client) {
    this.#c = client;
  }
  /** `GET /resources?kind&limit&offset`: one page. */
  list(params = {}, opts = {}) {
    return this.#c.request("GET", "/resources", { ...opts, query: params });
  }
  /** Every resource (of `kind`, if given). */
  iterate(params = {}, opts = {}) {
    const { limit, ...filters } = params;
    return this.#c.paginate("/resources", filters, { pageSize: limit, key: (r) => `${r.kind}/${r.name}`, ...opts });
  }
}

function seg(value) {
  if (typeof value !== "string" || value.length === 0) {
    throw new TypeError(`expected a non-empty id or name, got ${JSON.stringify(value)}`);
  }
  return encodeURIComponent(value);
}

/** The JSON of a body (its text when it is not JSON; undefined when empty). */
function parseBody(response, text) {
  if (text === undefined || text === "") return undefined;
  const type = response.headers.get("content-type") ?? "";
  if (type.includes("json")) {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return text;
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
