// Errors thrown by the client. Every failure the server answers is an `OpenClawError` (or one
// of its subclasses, chosen by HTTP status) carrying the server's `{"error": {...}}` body:
// `status`, `code`, `message`, `details` and, on 429, `retryAfter` (seconds).

/** An error answered by the server, or raised by the client on its behalf. */
export class OpenClawError extends Error {
  /**
   * @param {object} init
   * @param {number} init.status HTTP status (0 when no response was received)
   * @param {string} init.code stable machine-readable code, e.g. "not_found"
   * @param {string} init.message human-readable message
   * @param {Array<object>} [init.details] field-level problems (validation errors)
   * @param {number|null} [init.retryAfter] seconds to wait before retrying (429)
   * @param {Headers|null} [init.headers] response headers
   * @param {unknown} [init.body] the parsed response body
   * @param {unknown} [init.cause] the underlying error (network failures)
   */
  constructor({ status, code, message, details = [], retryAfter = null, headers = null, body = undefined, cause = undefined }) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = new.target.name;
    this.status = status;
    this.code = code;
    this.details = details;
    this.retryAfter = retryAfter;
    this.headers = headers;
    this.body = body;
    /** The server's request id (`X-Request-Id`), for its log. */
    this.requestId = headers?.get?.("x-request-id") ?? null;
  }
}

/** 400: the request was invalid (`details` names the fields). */
export class BadRequestError extends OpenClawError {}
/** 401: missing, unknown, expired or revoked token. */
export class AuthenticationError extends OpenClawError {}
/** 403: the token's scope does not allow the call (or a manifest-only setting). */
export class PermissionDeniedError extends OpenClawError {}
/** 404: no such resource or route. */
export class NotFoundError extends OpenClawError {}
/** 409: already exists, or not in a state that allows the call (e.g. result of a running task). */
export class ConflictError extends OpenClawError {}
/** 412: `If-Match` named a version that is no longer current. */
export class PreconditionFailedError extends OpenClawError {}
/** 422: well-formed but not processable (e.g. an unresolvable skill, a reused idempotency key). */
export class UnprocessableEntityError extends OpenClawError {}
/** 429: rate limited, and the retries allowed were used up (`retryAfter` says how long to wait). */
export class RateLimitError extends OpenClawError {}
/** 5xx: the server failed; its log has the details (`requestId`). */
export class InternalServerError extends OpenClawError {}
/** No response: the server could not be reached or the connection broke (`cause` says why). */
export class ConnectionError extends OpenClawError {}
/** A request or a wait took longer than allowed. */
export class TimeoutError extends OpenClawError {}

const BY_STATUS = {
  400: BadRequestError,
  401: AuthenticationError,
  403: PermissionDeniedError,
  404: NotFoundError,
  409: ConflictError,
  412: PreconditionFailedError,
  422: UnprocessableEntityError,
  429: RateLimitError,
};

/**
 * The error for a non-2xx response with its (possibly absent or non-JSON) body.
 * @param {Response} response
 * @param {unknown} body parsed JSON body, or the text when it was not JSON
 * @returns {OpenClawError}
 */
export function errorFromResponse(response, body) {
  const error = body && typeof body === "object" && body.error && typeof body.error === "object" ? body.error : null;
  const status = response.status;
  const Class = BY_STATUS[status] ?? (status >= 500 ? InternalServerError : OpenClawError);
  return new Class({
    status,
    code: typeof error?.code === "string" ? error.code : `http_${status}`,
    message:
      typeof error?.message === "string"
        ? error.message
        : `${response.status} ${response.statusText || "error"}${typeof body === "string" && body ? `: ${body.slice(0, 200)}` : ""}`,
    details: Array.isArray(error?.details) ? error.details : [],
    retryAfter: retryAfterSeconds(response.headers, error),
    headers: response.headers,
    body,
  });
}

/**
 * Seconds to wait from `Retry-After` (delta-seconds or an HTTP date), else the body's
 * `retry_after`; null when neither says.
 * @param {Headers} headers
 * @param {any} [error] the `error` object of the body
 * @returns {number|null}
 */
export function retryAfterSeconds(headers, error) {
  const header = headers?.get?.("retry-after");
  if (header != null && header.trim() !== "") {
    const secs = Number(header.trim());
    if (Number.isFinite(secs) && secs >= 0) return secs;
    const at = Date.parse(header);
    if (!Number.isNaN(at)) return Math.max(0, Math.ceil((at - Date.now()) / 1000));
  }
  if (typeof error?.retry_after === "number" && error.retry_after >= 0) return error.retry_after;
  return null;
}
