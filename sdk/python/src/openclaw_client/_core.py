"""What the sync and async clients share: settings, how each call is described (a
:class:`Req`), the retry decision, and parsing. The two clients only differ in how they send."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Dict, Generic, Iterable, List, Mapping, Optional, Type, TypeVar, Union

import httpx

from ._errors import APIConnectionError, APITimeoutError, OpenClawError, error_from_response
from .models import (
    ConfigWithEtag,
    Model,
    Delivery,
    DeliveryQueued,
    McpServer,
    McpTools,
    Page,
    ReconcileReport,
    ResourceStatus,
    Schedule,
    Skill,
    Status,
    Task,
    TaskCreated,
    TaskEvent,
    TaskResult,
    Webhook,
)

__version__ = "0.1.0"

T = TypeVar("T")
M = TypeVar("M", bound=Model)
_MISSING: Any = object()

#: Turns a response's JSON and headers into what a call returns.
Parse = Callable[[Any, httpx.Headers], T]
QueryValue = Union[str, int, float, bool, datetime, Iterable[str], None]


@dataclass
class Req(Generic[T]):
    """One API call, before it is sent; ``parse`` makes its result (the JSON when None)."""

    method: str
    path: str
    query: Optional[Dict[str, QueryValue]] = None
    body: Any = _MISSING
    headers: Dict[str, str] = field(default_factory=dict)
    idempotency_key: Optional[str] = None
    parse: Optional[Parse[T]] = None
    timeout: Optional[float] = None


def seg(value: str) -> str:
    """A path segment (an id or name), percent-encoded."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a non-empty id or name, got {value!r}")
    from urllib.parse import quote

    return quote(value, safe="")


def query_params(query: Optional[Mapping[str, QueryValue]]) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for key, value in (query or {}).items():
        if value is None or value == "":
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, datetime):
            out[key] = value.isoformat().replace("+00:00", "Z")
        elif isinstance(value, (list, tuple, set, frozenset)):
            out[key] = ",".join(str(v) for v in value)
        else:
            out[key] = str(value)
    return out


def parse_body(response: httpx.Response) -> Any:
    text = response.text
    if not text:
        return None
    if "json" in response.headers.get("content-type", ""):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def new_key() -> str:
    return str(uuid.uuid4())


class Settings:
    """The settings both clients hold."""

    def __init__(
        self,
        base_url: Optional[str],
        token: Optional[str],
        max_retries: int,
        max_retry_after: float,
        timeout: Optional[float],
        headers: Optional[Mapping[str, str]],
    ) -> None:
        base_url = base_url or os.environ.get("OPENCLAW_BASE_URL") or "http://localhost:3000"
        token = token or os.environ.get("OPENCLAW_TOKEN")
        if not token:
            raise ValueError(
                "no token: pass token=... or set OPENCLAW_TOKEN (create one with `claw token create --name NAME`)"
            )
        #: Server URL without ``/api/v1``.
        self.base_url = base_url.rstrip("/")
        #: Retries of a call answered 429 (each after ``Retry-After``); 0 disables them.
        self.max_retries = max_retries
        #: Longest ``Retry-After`` (seconds) waited out; a longer one is raised at once.
        self.max_retry_after = max_retry_after
        #: Per-request timeout in seconds (SSE: for the connection and each read).
        self.timeout = timeout
        self._token = token
        self._headers = dict(headers or {})

    def url(self, path: str) -> str:
        return f"{self.base_url}/api/v1{path}"

    def headers_for(self, req: "Req[Any]", stream: bool = False) -> Dict[str, str]:
        headers = {
            "Accept": "text/event-stream" if stream else "application/json",
            "User-Agent": f"openclaw-client-python/{__version__}",
            **self._headers,
            **req.headers,
            "Authorization": f"Bearer {self._token}",
        }
        if req.body is not _MISSING:
            headers["Content-Type"] = "application/json"
        if req.idempotency_key:
            headers["Idempotency-Key"] = req.idempotency_key
        return headers

    def content(self, req: "Req[Any]") -> Optional[bytes]:
        return None if req.body is _MISSING else json.dumps(req.body).encode("utf-8")

    def retry_wait(self, error: OpenClawError, attempt: int) -> Optional[float]:
        """Seconds to wait before retrying after ``error``, or None to raise it: a 429, or a 409
        ``idempotency_key_in_progress`` (the first request with this key is still running)."""
        in_progress = error.status == 409 and error.code == "idempotency_key_in_progress"
        if not (error.status == 429 or in_progress) or attempt >= self.max_retries:
            return None
        wait = error.retry_after if error.retry_after is not None else min(2.0**attempt, 30.0)
        return wait if wait <= self.max_retry_after else None

    @staticmethod
    def error(response: httpx.Response) -> OpenClawError:
        return error_from_response(response.status_code, response.reason_phrase, response.headers, parse_body(response))

    @staticmethod
    def transport_error(req: "Req[Any]", url: str, e: Exception) -> OpenClawError:
        if isinstance(e, httpx.TimeoutException):
            return APITimeoutError(f"{req.method} {url} timed out ({e})", code="timeout")
        return APIConnectionError(f"{req.method} {url} failed: {e}", code="connection_error")

    @staticmethod
    def result(req: "Req[T]", response: httpx.Response) -> T:
        data = parse_body(response)
        return req.parse(data, response.headers) if req.parse else data


class SseParser:
    """Server-Sent Events, line by line (WHATWG rules): ``feed`` returns the event a blank line
    completes, if any. Comment lines (the server's keep-alives) are skipped."""

    def __init__(self) -> None:
        self.event = ""
        self.data: List[str] = []

    def feed(self, line: str) -> Optional[TaskEvent]:
        line = line.rstrip("\r\n")
        if line == "":
            if not self.data:
                self.event = ""
                return None
            raw = "\n".join(self.data)
            name = self.event or "message"
            self.event, self.data = "", []
            try:
                data: Any = json.loads(raw)
            except ValueError:
                data = raw
            return TaskEvent(event=name, data=data)
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "event":
            self.event = value
        elif name == "data":
            self.data.append(value)
        return None


# ------------------------------------------------------------------------------------------
# The calls, described once for both clients.


def _model(cls: Type[M]) -> Parse[M]:
    return lambda data, _headers: cls.from_dict(data)


def _page(cls: Type[M]) -> Parse[Page[M]]:
    return lambda data, _headers: Page.parse(data, cls.from_dict)


def _none(_data: Any, _headers: httpx.Headers) -> None:
    return None


def _config(data: Any, headers: httpx.Headers) -> ConfigWithEtag:
    return ConfigWithEtag(config=data, etag=headers.get("etag"))


def page_query(limit: Optional[int], offset: Optional[int], **filters: QueryValue) -> Dict[str, QueryValue]:
    return {**filters, "limit": limit, "offset": offset}


class Calls:
    """Builders of every call: the sync and async resource classes send what these describe."""

    @staticmethod
    def status() -> Req[Status]:
        return Req("GET", "/status", parse=_model(Status))

    @staticmethod
    def reconcile(confirm_prune: bool) -> Req[ReconcileReport]:
        return Req("POST", "/reconcile", body={"confirm_prune": True} if confirm_prune else _MISSING, parse=_model(ReconcileReport))

    # tasks
    @staticmethod
    def task_create(prompt: str, options: Optional[Mapping[str, Any]], extra: Mapping[str, Any], key: Optional[str]) -> Req[TaskCreated]:
        body: Dict[str, Any] = {"prompt": prompt, **extra}
        if options is not None:
            body["options"] = dict(options)
        return Req("POST", "/tasks", body=body, idempotency_key=key or new_key(), parse=_model(TaskCreated))

    @staticmethod
    def task_get(task_id: str) -> Req[Task]:
        return Req("GET", f"/tasks/{seg(task_id)}", parse=_model(Task))

    @staticmethod
    def task_result(task_id: str) -> Req[TaskResult]:
        return Req("GET", f"/tasks/{seg(task_id)}/result", parse=_model(TaskResult))

    @staticmethod
    def task_list(query: Dict[str, QueryValue]) -> Req[Page[Task]]:
        return Req("GET", "/tasks", query=query, parse=_page(Task))

    @staticmethod
    def task_cancel(task_id: str) -> Req[Task]:
        return Req("POST", f"/tasks/{seg(task_id)}/cancel", parse=_model(Task))

    @staticmethod
    def task_events(task_id: str) -> Req[Any]:
        return Req("GET", f"/tasks/{seg(task_id)}/events")

    # skills
    @staticmethod
    def skill_list(query: Dict[str, QueryValue]) -> Req[Page[Skill]]:
        return Req("GET", "/skills", query=query, parse=_page(Skill))

    @staticmethod
    def skill_get(name: str) -> Req[Skill]:
        return Req("GET", f"/skills/{seg(name)}", parse=_model(Skill))

    @staticmethod
    def skill_create(body: Dict[str, Any], key: Optional[str]) -> Req[Skill]:
        return Req("POST", "/skills", body=body, idempotency_key=key or new_key(), parse=_model(Skill))

    @staticmethod
    def skill_delete(name: str) -> Req[None]:
        return Req("DELETE", f"/skills/{seg(name)}", parse=_none)

    # config
    @staticmethod
    def config_get() -> Req[ConfigWithEtag]:
        return Req("GET", "/config", parse=_config)

    @staticmethod
    def config_patch(patch: Mapping[str, Any], if_match: Optional[str]) -> Req[ConfigWithEtag]:
        headers = {"If-Match": if_match} if if_match else {}
        return Req("PATCH", "/config", body=dict(patch), headers=headers, parse=_config)

    # webhooks
    @staticmethod
    def webhook_list(query: Dict[str, QueryValue]) -> Req[Page[Webhook]]:
        return Req("GET", "/webhooks", query=query, parse=_page(Webhook))

    @staticmethod
    def webhook_get(webhook_id: str) -> Req[Webhook]:
        return Req("GET", f"/webhooks/{seg(webhook_id)}", parse=_model(Webhook))

    @staticmethod
    def webhook_create(body: Dict[str, Any], key: Optional[str]) -> Req[Webhook]:
        return Req("POST", "/webhooks", body=body, idempotency_key=key or new_key(), parse=_model(Webhook))

    @staticmethod
    def webhook_update(webhook_id: str, patch: Mapping[str, Any]) -> Req[Webhook]:
        return Req("PATCH", f"/webhooks/{seg(webhook_id)}", body=dict(patch), parse=_model(Webhook))

    @staticmethod
    def webhook_delete(webhook_id: str) -> Req[None]:
        return Req("DELETE", f"/webhooks/{seg(webhook_id)}", parse=_none)

    @staticmethod
    def webhook_deliveries(webhook_id: str, query: Dict[str, QueryValue]) -> Req[Page[Delivery]]:
        return Req("GET", f"/webhooks/{seg(webhook_id)}/deliveries", query=query, parse=_page(Delivery))

    @staticmethod
    def webhook_redeliver(webhook_id: str, delivery_id: str) -> Req[DeliveryQueued]:
        return Req("POST", f"/webhooks/{seg(webhook_id)}/deliveries/{seg(delivery_id)}/redeliver", parse=_model(DeliveryQueued))

    @staticmethod
    def webhook_test(webhook_id: str) -> Req[DeliveryQueued]:
        return Req("POST", f"/webhooks/{seg(webhook_id)}/test", parse=_model(DeliveryQueued))

    # schedules
    @staticmethod
    def schedule_list(query: Dict[str, QueryValue]) -> Req[Page[Schedule]]:
        return Req("GET", "/schedules", query=query, parse=_page(Schedule))

    @staticmethod
    def schedule_get(name: str) -> Req[Schedule]:
        return Req("GET", f"/schedules/{seg(name)}", parse=_model(Schedule))

    @staticmethod
    def schedule_create(body: Dict[str, Any], key: Optional[str]) -> Req[Schedule]:
        return Req("POST", "/schedules", body=body, idempotency_key=key or new_key(), parse=_model(Schedule))

    @staticmethod
    def schedule_update(name: str, patch: Mapping[str, Any]) -> Req[Schedule]:
        return Req("PATCH", f"/schedules/{seg(name)}", body=dict(patch), parse=_model(Schedule))

    @staticmethod
    def schedule_delete(name: str) -> Req[None]:
        return Req("DELETE", f"/schedules/{seg(name)}", parse=_none)

    @staticmethod
    def schedule_run(name: str) -> Req[TaskCreated]:
        return Req("POST", f"/schedules/{seg(name)}/run", parse=_model(TaskCreated))

    # MCP servers
    @staticmethod
    def mcp_list(query: Dict[str, QueryValue]) -> Req[Page[McpServer]]:
        return Req("GET", "/mcp-servers", query=query, parse=_page(McpServer))

    @staticmethod
    def mcp_get(name: str) -> Req[McpServer]:
        return Req("GET", f"/mcp-servers/{seg(name)}", parse=_model(McpServer))

    @staticmethod
    def mcp_tools(name: str) -> Req[McpTools]:
        return Req("GET", f"/mcp-servers/{seg(name)}/tools", parse=_model(McpTools))

    # resources
    @staticmethod
    def resource_list(query: Dict[str, QueryValue]) -> Req[Page[ResourceStatus]]:
        return Req("GET", "/resources", query=query, parse=_page(ResourceStatus))


def item_key(item: Any) -> Optional[str]:
    """The identity of a listed item, to skip one seen on an earlier page."""
    if isinstance(item, ResourceStatus):
        return f"{item.kind}/{item.name}"
    for attr in ("id", "name"):
        value = getattr(item, attr, None)
        if isinstance(value, str):
            return value
    return None
