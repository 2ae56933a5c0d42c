// Type declarations of openclaw-sdk (hand-written; `npm run typecheck` checks them against a
// typed usage file, and the tests run the JavaScript they describe against a real server).

export declare const VERSION: string;
export declare const TERMINAL_STATUSES: readonly ["completed", "failed", "cancelled"];

// ---------------------------------------------------------------------------------------------
// Client options

export interface ClientOptions {
  /** Server URL without `/api/v1`. Default: `OPENCLAW_BASE_URL`, else `http://localhost:3000`. */
  baseUrl?: string;
  /** Bearer token (`ocl_...`). Default: `OPENCLAW_TOKEN`. */
  token?: string;
  /** Retries of a call answered 429, each after `Retry-After`. Default 3; 0 disables them. */
  maxRetries?: number;
  /** Longest `Retry-After` in seconds the client waits out; a longer one is thrown. Default 60. */
  maxRetryAfter?: number;
  /** Per-request timeout in milliseconds (SSE: until the headers arrive). Default 30000. */
  timeout?: number;
  /** A fetch implementation (default: the global one). */
  fetch?: typeof fetch;
  /** Extra headers sent with every request. */
  headers?: Record<string, string>;
}

export interface CallOptions {
  signal?: AbortSignal;
  /** Per-request timeout in milliseconds, overriding the client's. */
  timeout?: number;
  headers?: Record<string, string>;
}

export interface CreateOptions extends CallOptions {
  /** `Idempotency-Key` header; default a fresh UUID, reused on this call's own retries. */
  idempotencyKey?: string;
}

export interface RequestOptions extends CreateOptions {
  query?: Record<string, string | number | boolean | Date | string[] | null | undefined>;
  body?: unknown;
  /** Return the response without reading its body (Server-Sent Events). */
  stream?: boolean;
}

export interface IterateOptions {
  signal?: AbortSignal;
}

// ---------------------------------------------------------------------------------------------
// Wire types (the API's JSON, as is)

export interface Page<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}

export interface PageParams {
  /** 1..100, default 20 (for `iterate`: the page size, default 100). */
  limit?: number;
  offset?: number;
}

/** The `{"error": {...}}` body of every failure. */
export interface ErrorBody {
  error: {
    code: string;
    message: string;
    details?: FieldError[];
    retry_after?: number;
    [key: string]: unknown;
  };
}

export interface FieldError {
  field: string;
  pointer: string;
  message: string;
  file?: string;
  line?: number;
}

export interface McpServerState {
  name: string;
  transport: "stdio" | "http";
  status: "connected" | "starting" | "failed" | "disabled" | string;
  tools: number;
  last_error: string | null;
  since: string | null;
  restarts: number;
}

export interface Status {
  status: "ok" | "degraded" | "starting";
  version: string;
  uptime_seconds: number;
  mcp_servers: McpServerState[];
  reconciler: Record<string, unknown>;
  tasks: Record<string, number>;
  /** The replicas serving the deployment (one on SQLite); `leader` is true for exactly one. */
  replicas: Replica[];
}

export interface Replica {
  id: string;
  address: string;
  version: string;
  leader: boolean;
  last_seen: string;
}

export type TaskStatus = "queued" | "running" | "completed" | "failed" | "cancelled";

export interface TaskOptions {
  model?: string;
  max_tokens?: number;
  working_directory?: string;
  timeout_seconds?: number;
  mcp_servers?: string[];
  [key: string]: unknown;
}

export interface TaskCreateParams {
  prompt: string;
  options?: TaskOptions;
}

export interface TaskCreated {
  id: string;
  status: TaskStatus;
  created_at: string;
}

export interface Task {
  id: string;
  status: TaskStatus;
  prompt: string;
  options: TaskOptions;
  model: string | null;
  max_tokens: number | null;
  working_directory: string | null;
  timeout_seconds: number | null;
  created_by: string | null;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
  duration_ms: number | null;
  error: string | null;
  /** The Schedule that started the task (absent otherwise). */
  schedule?: string;
  /** The slot it was started for (RFC 3339); absent for a manual run. */
  schedule_slot?: string;
}

export interface TaskFile {
  path: string;
  change: "created" | "modified" | "deleted";
}

export interface TaskResult {
  id: string;
  status: TaskStatus;
  output: string;
  files: TaskFile[];
  usage: { input_tokens: number; output_tokens: number };
  error: string | null;
  duration_ms: number | null;
}

export interface TaskListParams extends PageParams {
  /** One status or several (sent comma-separated). */
  status?: TaskStatus | TaskStatus[];
  /** RFC 3339 time (or a Date). */
  created_after?: string | Date;
  created_before?: string | Date;
  /** Text search in prompts (at most 200 characters). */
  q?: string;
}

export type TaskEvent =
  | { event: "status"; data: { id: string; status: TaskStatus; error?: string; duration_ms?: number } }
  | { event: "output"; data: { text: string } };

export interface WaitOptions {
  /** Give up after this many milliseconds with a `TimeoutError`. Default 600000; 0 or Infinity: never. */
  timeout?: number;
  /** Milliseconds between polls when the event stream cannot be used. Default 1000. */
  pollInterval?: number;
  /** Follow the SSE stream (default); false polls only. */
  stream?: boolean;
  /** Called with each piece of output as the stream delivers it. */
  onOutput?: (text: string) => void;
  signal?: AbortSignal;
}

export interface ResourceCondition {
  ready: boolean;
  reason: string;
  message: string;
}

export type SkillSource =
  | { path: string }
  | { git: { url: string; ref?: string } }
  | { archive: { url: string; sha256: string } };

export interface Skill {
  name: string;
  version: string;
  resolved_version: string | null;
  description: string | null;
  enabled: boolean;
  source: SkillSource | null;
  installed: boolean;
  digest: string | null;
  installed_at: string | null;
  status: ResourceCondition | null;
  file: string;
}

export interface SkillCreateParams {
  name: string;
  version?: string;
  source?: SkillSource;
  enabled?: boolean;
  description?: string;
}

export type SecretRef = { fromEnv: string } | { fromFile: string } | { ref: string };

export interface ConfigSpec {
  model?: {
    provider?: "anthropic" | "openai" | "command";
    name?: string;
    max_tokens?: number;
    max_context?: number;
    base_url?: string | null;
    api_key?: SecretRef | null;
    command?: string[];
    [key: string]: unknown;
  };
  tasks?: {
    concurrency?: number;
    timeout_seconds?: number;
    max_timeout_seconds?: number;
    max_prompt_bytes?: number;
    max_turns?: number;
    allowed_roots?: string[];
    allow_commands?: boolean;
    mcp_servers?: string[] | null;
    [key: string]: unknown;
  };
  rate_limit?: { requests_per_minute?: number; burst?: number };
  webhooks?: {
    timeout_seconds?: number;
    max_attempts?: number;
    allow_networks?: string[];
    deny_networks?: string[];
    retention_days?: number;
    [key: string]: unknown;
  };
  skills?: { registry?: string | null; [key: string]: unknown };
  git?: { auto_commit?: boolean; author_name?: string; author_email?: string };
  [key: string]: unknown;
}

/** A JSON merge patch (RFC 7396): `null` removes a field. */
export type MergePatch<T> = { [K in keyof T]?: (T[K] extends object ? MergePatch<T[K]> : T[K]) | null };

export interface ConfigWithEtag {
  config: ConfigSpec;
  /** The `ETag` header: send it back as `ifMatch`. */
  etag: string | null;
}

export interface PatchConfigOptions extends CallOptions {
  /** An `etag` from `config.get()`: the patch fails with 412 if the config changed since. */
  ifMatch?: string;
}

export type WebhookEvent =
  | "task.completed"
  | "task.failed"
  | "task.started"
  | "skill.installed"
  | "skill.removed"
  | "system.error"
  | "*";

export interface Webhook {
  id: string;
  url: string;
  events: string[];
  enabled: boolean;
  description: string | null;
  created_at: string | null;
  updated_at: string | null;
  disabled_reason: string | null;
  status: ResourceCondition | null;
  file: string;
}

export interface WebhookCreateParams {
  url: string;
  events: WebhookEvent[] | string[];
  /** Key of `X-OpenClaw-Signature`; stored by the server, never returned. */
  secret: string;
  /** The id (manifest name); default `wh-<random>`. */
  name?: string;
  enabled?: boolean;
  description?: string;
}

export type WebhookUpdateParams = Partial<Omit<WebhookCreateParams, "name">>;

// Schedules

export interface ScheduleTiming {
  /** 5-field cron expression (one of `cron`, `every`, `at`). */
  cron?: string;
  /** IANA zone of `cron` (default UTC). */
  timezone?: string;
  /** Interval, e.g. `15m`, `1h30m`. */
  every?: string;
  /** One-shot instant (RFC 3339). */
  at?: string;
}

export interface ScheduleSpec extends ScheduleTiming {
  prompt: string;
  options?: TaskOptions;
  concurrency?: "allow" | "forbid" | "replace";
  suspend?: boolean;
  starting_deadline_seconds?: number;
  history_limit?: number;
  description?: string;
}

export interface ScheduleRun {
  /** RFC 3339; null for a manual run. */
  slot: string | null;
  trigger: "slot" | "manual";
  task_id: string | null;
  /** The task's status, or `skipped` / `failed` when no task was started. */
  outcome: string;
  message: string | null;
  fired_at: string;
  completed_at: string | null;
  error: string | null;
}

export interface Schedule {
  name: string;
  spec: ScheduleSpec;
  status: {
    condition: ResourceCondition | null;
    suspended: boolean;
    /** The next run times (RFC 3339), at most 5. */
    next_runs: string[];
    last_runs: ScheduleRun[];
    skipped: number;
    consecutive_failures: number;
    backoff_until: string | null;
    since: string | null;
  };
  file: string;
}

export interface ScheduleCreateParams extends ScheduleSpec {
  name: string;
}

export type ScheduleUpdateParams = MergePatch<ScheduleSpec>;

export interface DeliveryAttempt {
  attempt: number;
  at: string;
  status_code: number | null;
  duration_ms: number | null;
  error: string | null;
  response_body: string | null;
}

export interface Delivery {
  id: string;
  event: string;
  event_id: string | null;
  status: "pending" | "delivered" | "failed" | string;
  attempt_count: number;
  created_at: string;
  completed_at: string | null;
  next_attempt_at: string | null;
  last_status: number | null;
  last_error: string | null;
  attempts: DeliveryAttempt[];
}

export interface McpServer extends McpServerState {
  description: string | null;
  enabled: boolean;
  resource: ResourceCondition | null;
  file: string;
}

export interface McpTool {
  name: string;
  description?: string | null;
  input_schema?: unknown;
  [key: string]: unknown;
}

export interface McpTools {
  server: string;
  status: string;
  items: McpTool[];
  total: number;
}

export type Kind = "Config" | "Token" | "Skill" | "Webhook" | "McpServer" | "Schedule";

export interface ResourceStatus {
  kind: Kind;
  name: string;
  file: string;
  line: number;
  ready: boolean;
  reason: string;
  message: string;
  applied_revision: string | null;
  last_transition_time: string;
}

export interface ResourceListParams extends PageParams {
  kind?: Kind;
}

export interface ReconcileReport {
  revision: string;
  errors: number;
  duration_ms: number;
  [key: string]: unknown;
}

// ---------------------------------------------------------------------------------------------
// The client

export declare class OpenClaw {
  constructor(options?: ClientOptions);
  readonly baseUrl: string;
  maxRetries: number;
  maxRetryAfter: number;
  timeout: number;

  readonly tasks: Tasks;
  readonly skills: Skills;
  readonly config: ConfigApi;
  readonly webhooks: Webhooks;
  readonly schedules: Schedules;
  readonly mcpServers: McpServers;
  readonly resources: Resources;

  /** `GET /status`. */
  status(opts?: CallOptions): Promise<Status>;
  /** `POST /reconcile`; `confirmPrune` lets deletes held by the prune guard go ahead once. */
  reconcile(opts?: CallOptions & { confirmPrune?: boolean }): Promise<ReconcileReport>;

  /** Any call below `/api/v1`, with the client's auth, errors and retries. */
  request<T = unknown>(method: string, path: string, opts?: RequestOptions): Promise<T>;
  requestWithResponse<T = unknown>(
    method: string,
    path: string,
    opts?: RequestOptions,
  ): Promise<{ data: T; response: Response }>;
  /** Every item of a list endpoint, page by page. */
  paginate<T = unknown>(
    path: string,
    query?: Record<string, unknown>,
    opts?: { pageSize?: number; signal?: AbortSignal; key?: (item: T) => string | undefined },
  ): AsyncGenerator<T, void, undefined>;
}

export interface Tasks {
  create(params: TaskCreateParams, opts?: CreateOptions): Promise<TaskCreated>;
  get(id: string, opts?: CallOptions): Promise<Task>;
  result(id: string, opts?: CallOptions): Promise<TaskResult>;
  list(params?: TaskListParams, opts?: CallOptions): Promise<Page<Task>>;
  iterate(params?: Omit<TaskListParams, "offset"> & { offset?: number }, opts?: IterateOptions): AsyncGenerator<Task, void, undefined>;
  cancel(id: string, opts?: CallOptions): Promise<Task>;
  events(id: string, opts?: CallOptions): AsyncGenerator<TaskEvent, void, undefined>;
  waitForCompletion(id: string, opts?: WaitOptions): Promise<TaskResult>;
}

export interface Skills {
  list(params?: PageParams, opts?: CallOptions): Promise<Page<Skill>>;
  iterate(params?: { limit?: number }, opts?: IterateOptions): AsyncGenerator<Skill, void, undefined>;
  get(name: string, opts?: CallOptions): Promise<Skill>;
  create(params: SkillCreateParams, opts?: CreateOptions): Promise<Skill>;
  delete(name: string, opts?: CallOptions): Promise<void>;
}

export interface ConfigApi {
  get(opts?: CallOptions): Promise<ConfigWithEtag>;
  patch(patch: MergePatch<ConfigSpec>, opts?: PatchConfigOptions): Promise<ConfigWithEtag>;
}

export interface Webhooks {
  list(params?: PageParams, opts?: CallOptions): Promise<Page<Webhook>>;
  iterate(params?: { limit?: number }, opts?: IterateOptions): AsyncGenerator<Webhook, void, undefined>;
  get(id: string, opts?: CallOptions): Promise<Webhook>;
  create(params: WebhookCreateParams, opts?: CreateOptions): Promise<Webhook>;
  update(id: string, patch: WebhookUpdateParams, opts?: CallOptions): Promise<Webhook>;
  delete(id: string, opts?: CallOptions): Promise<void>;
  deliveries(id: string, params?: PageParams, opts?: CallOptions): Promise<Page<Delivery>>;
  iterateDeliveries(id: string, params?: { limit?: number }, opts?: IterateOptions): AsyncGenerator<Delivery, void, undefined>;
  redeliver(id: string, deliveryId: string, opts?: CallOptions): Promise<{ id: string; status: string }>;
  test(id: string, opts?: CallOptions): Promise<{ delivery_id: string; status: string }>;
}

export interface Schedules {
  list(params?: PageParams, opts?: CallOptions): Promise<Page<Schedule>>;
  iterate(params?: { limit?: number }, opts?: IterateOptions): AsyncGenerator<Schedule, void, undefined>;
  get(name: string, opts?: CallOptions): Promise<Schedule>;
  create(params: ScheduleCreateParams, opts?: CreateOptions): Promise<Schedule>;
  update(name: string, patch: ScheduleUpdateParams, opts?: CallOptions): Promise<Schedule>;
  delete(name: string, opts?: CallOptions): Promise<void>;
  /** `POST /schedules/:name/run`: start one task now (even when suspended). */
  run(name: string, opts?: CallOptions): Promise<TaskCreated>;
}

export interface McpServers {
  list(params?: PageParams, opts?: CallOptions): Promise<Page<McpServer>>;
  iterate(params?: { limit?: number }, opts?: IterateOptions): AsyncGenerator<McpServer, void, undefined>;
  get(name: string, opts?: CallOptions): Promise<McpServer>;
  tools(name: string, opts?: CallOptions): Promise<McpTools>;
}

export interface Resources {
  list(params?: ResourceListParams, opts?: CallOptions): Promise<Page<ResourceStatus>>;
  iterate(params?: { kind?: Kind; limit?: number }, opts?: IterateOptions): AsyncGenerator<ResourceStatus, void, undefined>;
}

export default OpenClaw;

// ---------------------------------------------------------------------------------------------
// Errors

export declare class OpenClawError extends Error {
  constructor(init: {
    status: number;
    code: string;
    message: string;
    details?: FieldError[];
    retryAfter?: number | null;
    headers?: Headers | null;
    body?: unknown;
    cause?: unknown;
  });
  /** HTTP status; 0 when no response was received. */
  readonly status: number;
  /** Stable code, e.g. `not_found`, `rate_limited`, `precondition_failed`. */
  readonly code: string;
  /** Field-level problems of a validation error (empty otherwise). */
  readonly details: FieldError[];
  /** Seconds to wait before retrying (429), from `Retry-After`. */
  readonly retryAfter: number | null;
  readonly headers: Headers | null;
  /** The parsed response body. */
  readonly body: unknown;
  /** `X-Request-Id` of the response, for the server's log. */
  readonly requestId: string | null;
}
export declare class BadRequestError extends OpenClawError {}
export declare class AuthenticationError extends OpenClawError {}
export declare class PermissionDeniedError extends OpenClawError {}
export declare class NotFoundError extends OpenClawError {}
export declare class ConflictError extends OpenClawError {}
export declare class PreconditionFailedError extends OpenClawError {}
export declare class UnprocessableEntityError extends OpenClawError {}
export declare class RateLimitError extends OpenClawError {}
export declare class InternalServerError extends OpenClawError {}
export declare class ConnectionError extends OpenClawError {}
export declare class TimeoutError extends OpenClawError {}

// ---------------------------------------------------------------------------------------------
// Webhooks

/**
 * True when `signature` (`X-OpenClaw-Signature`) is the hex HMAC-SHA256 of `payload` keyed
 * with `secret` (constant-time comparison). Pass the raw body; a parsed object is hashed as
 * `JSON.stringify(payload)`.
 */
export declare function verifyWebhook(
  payload: string | Uint8Array | object,
  signature: string | string[] | null | undefined,
  secret: string | Uint8Array,
): boolean;
