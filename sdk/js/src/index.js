// openclaw-sdk: a client for the OpenClaw API as `claw serve` implements it.
// No runtime dependencies: Node.js 18+ (global fetch, node:crypto).

export { OpenClaw, VERSION, TERMINAL_STATUSES } from "./client.js";
export {
  OpenClawError,
  BadRequestError,
  AuthenticationError,
  PermissionDeniedError,
  NotFoundError,
  ConflictError,
  PreconditionFailedError,
  UnprocessableEntityError,
  RateLimitError,
  InternalServerError,
  ConnectionError,
  TimeoutError,
} from "./errors.js";
export { verifyWebhook } from "./webhook.js";
export { OpenClaw as default } from "./client.js";
