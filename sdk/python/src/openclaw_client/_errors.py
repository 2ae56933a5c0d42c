"""Errors raised by the client.

Every failure the server answers is an :class:`OpenClawError` (or the subclass for its HTTP
status) carrying the server's ``{"error": {...}}`` body: ``status``, ``code``, ``message``,
``details`` and, on 429, ``retry_after`` (seconds).
"""

from __future__ import annotations

import email.utils
import time
from typing import Any, Dict, List, Mapping, Optional, Type


class OpenClawError(Exception):
    """An error answered by the server, or raised by the client on its behalf."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        code: str = "error",
        details: Optional[List[Dict[str, Any]]] = None,
        retry_after: Optional[float] = None,
        headers: Optional[Mapping[str, str]] = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        #: HTTP status; 0 when no response was received.
        self.status = status
        #: Stable machine-readable code, e.g. ``not_found``, ``rate_limited``.
        self.code = code
        #: Field-level problems of a validation error (empty otherwise).
        self.details: List[Dict[str, Any]] = list(details or [])
        #: Seconds to wait before retrying (429), from ``Retry-After``.
        self.retry_after = retry_after
        self.headers = headers
        #: The parsed response body.
        self.body = body
        #: ``X-Request-Id`` of the response, for the server's log.
        self.request_id: Optional[str] = headers.get("x-request-id") if headers is not None else None

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}" if self.status else self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, message={self.message!r})"


class BadRequestError(OpenClawError):
    """400: the request was invalid (``details`` names the fields)."""


class AuthenticationError(OpenClawError):
    """401: missing, unknown, expired or revoked token."""


class PermissionDeniedError(OpenClawError):
    """403: the token's scope does not allow the call."""


class NotFoundError(OpenClawError):
    """404: no such resource or route."""


class ConflictError(OpenClawError):
    """409: already exists, or not in a state that allows the call."""


class PreconditionFailedError(OpenClawError):
    """412: ``If-Match`` named a version that is no longer current."""


class UnprocessableEntityError(OpenClawError):
    """422: well-formed but not processable (an unresolvable skill, a reused idempotency key)."""


class RateLimitError(OpenClawError):
    """429: rate limited, and the retries allowed were used up (see ``retry_after``)."""


class InternalServerError(OpenClawError):
    """5xx: the server failed; its log has the details (``request_id``)."""


class APIConnectionError(OpenClawError):
    """No response: the server could not be reached or the connection broke."""


class APITimeoutError(APIConnectionError):
    """A request, or a wait for a task, took longer than allowed."""


_BY_STATUS: Dict[int, Type[OpenClawError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    412: PreconditionFailedError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def retry_after_seconds(headers: Mapping[str, str], error: Any = None) -> Optional[float]:
    """Seconds from ``Retry-After`` (delta-seconds or an HTTP date), else the body's ``retry_after``."""
    header = headers.get("retry-after")
    if header is not None and header.strip():
        try:
            secs = float(header.strip())
            if secs >= 0:
                return secs
        except ValueError:
            try:
                at = email.utils.parsedate_to_datetime(header)
                return max(0.0, at.timestamp() - time.time())
            except (TypeError, ValueError):
                pass
    if isinstance(error, dict) and isinstance(error.get("retry_after"), (int, float)):
        return float(error["retry_after"])
    return None


def error_from_response(status: int, reason: str, headers: Mapping[str, str], body: Any) -> OpenClawError:
    """The error for a non-2xx response with its parsed (or text, or absent) body."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {}
    cls = _BY_STATUS.get(status) or (InternalServerError if status >= 500 else OpenClawError)
    message = error.get("message")
    if not isinstance(message, str):
        message = f"{status} {reason or 'error'}"
        if isinstance(body, str) and body:
            message += f": {body[:200]}"
    code = error.get("code")
    details = error.get("details")
    return cls(
        message,
        status=status,
        code=code if isinstance(code, str) else f"http_{status}",
        details=details if isinstance(details, list) else [],
        retry_after=retry_after_seconds(headers, error),
        headers=headers,
        body=body,
    )
