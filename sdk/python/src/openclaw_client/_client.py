"""The sync :class:`Client` and the async :class:`AsyncClient` (httpx), with one namespace per
resource: ``tasks``, ``skills``, ``config``, ``webhooks``, ``schedules``, ``mcp_servers``,
``resources``.

Both send the calls :class:`~openclaw_client._core.Calls` describes; a 429 is retried after
``Retry-After`` (at most ``max_retries`` times, the same ``Idempotency-Key`` on every attempt).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import (
    Any,
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Dict,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Optional,
    Set,
    TypeVar,
    Union,
)

import anyio
import httpx

from ._core import _MISSING, Calls, QueryValue, Req, Settings, SseParser, item_key, page_query, query_params
from ._errors import APITimeoutError, OpenClawError
from .models import (
    TERMINAL_STATUSES,
    ConfigWithEtag,
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

T = TypeVar("T")
Statuses = Union[str, Iterable[str], None]
When = Union[str, datetime, None]

#: Errors a wait does not fall back to polling for: polling would say the same.
_FINAL_STATUSES = (401, 403, 404)


def _task_filters(status: Statuses, created_after: When, created_before: When, q: Optional[str]) -> Dict[str, QueryValue]:
    return {"status": status, "created_after": created_after, "created_before": created_before, "q": q}


def _timeout_error(task_id: str, timeout: float) -> APITimeoutError:
    return APITimeoutError(f"task {task_id} did not finish within {timeout} s", code="timeout")


# ==========================================================================================
# Sync


class Client:
    """A client of one claw / OpenClaw server.

    ``base_url`` defaults to ``OPENCLAW_BASE_URL`` or ``http://localhost:3000``, ``token`` to
    ``OPENCLAW_TOKEN``. ``timeout`` is per request, in seconds. Use it as a context manager,
    or call :meth:`close`, to release its connections.
    """

    def __init__(
        self,
        base_url: Optional[str] = None,
        token: Optional[str] = None,
        *,
        max_retries: int = 3,
        max_retry_after: float = 60.0,
        timeout: Optional[float] = 30.0,
        headers: Optional[Mapping[str, str]] = None,
        http_client: Optional[httpx.Client] = None,
    ) -> None:
        self._s = Settings(base_url, token, max_retries, max_retry_after, timeout, headers)
        self._http = http_client or httpx.Client()
        self._owns_http = http_client is None
        self.tasks = Tasks(self)
        self.skills = Skills(self)
        self.config = ConfigApi(self)
        self.webhooks = Webhooks(self)
        self.schedules = Schedules(self)
        self.mcp_servers = McpServers(self)
        self.resources = Resources(self)

    @property
    def base_url(self) -> str:
        return self._s.base_url

    def status(self) -> Status:
        """``GET /status``: health, version, uptime, MCP servers, reconciler, task counts."""
        return self._run(Calls.status())

    def reconcile(self, *, confirm_prune: bool = False) -> ReconcileReport:
        """``POST /reconcile``: a full reconcile now (``confirm_prune`` lifts the prune guard once)."""
        return self._run(Calls.reconcile(confirm_prune))

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Optional[Dict[str, QueryValue]] = None,
        json: Any = _MISSING,
        headers: Optional[Dict[str, str]] = None,
        idempotency_key: Optional[str] = None,
    ) -> Any:
        """Any call below ``/api/v1``, with the client's auth, errors and retries; the parsed JSON."""
        return self._run(Req(method, path, query=query, body=json, headers=headers or {}, idempotency_key=idempotency_key))

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _send(self, req: Req[Any], stream: bool = False) -> httpx.Response:
        s = self._s
        url = s.url(req.path)
        headers = s.headers_for(req, stream)
        content = s.content(req)
        params = query_params(req.query)
        timeout = req.timeout if req.timeout is not None else s.timeout
        attempt = 0
        while True:
            try:
                request = self._http.build_request(req.method, url, params=params, headers=headers, content=content, timeout=timeout)
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as e:
                raise s.transport_error(req, url, e) from e
            if response.is_success:
                return response
            if stream:
                response.read()
                response.close()
            error = s.error(response)
            wait = s.retry_wait(error, attempt)
            if wait is None:
                raise error
            time.sleep(wait)
            attempt += 1

    def _run(self, req: Req[T]) -> T:
        return self._s.result(req, self._send(req))

    def _paginate(self, make: Callable[[Dict[str, QueryValue]], Req[Page[T]]], filters: Dict[str, QueryValue], page_size: int) -> Iterator[T]:
        seen: Set[str] = set()
        offset = 0
        while True:
            page = self._run(make({**filters, "limit": page_size, "offset": offset}))
            for item in page.items:
                key = item_key(item)
                if key is not None:
                    if key in seen:
                        continue
                    seen.add(key)
                yield item
            offset += len(page.items)
            if not page.items or offset >= page.total:
                return


class Tasks:
    """``/tasks``: create, read, list, cancel, follow."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def create(
        self,
        prompt: str,
        *,
        options: Optional[Mapping[str, Any]] = None,
        idempotency_key: Optional[str] = None,
        **extra: Any,
    ) -> TaskCreated:
        """``POST /tasks``; ``{id, status, created_at}``. Sends an ``Idempotency-Key``."""
        return self._c._run(Calls.task_create(prompt, options, extra, idempotency_key))

    def get(self, task_id: str) -> Task:
        return self._c._run(Calls.task_get(task_id))

    def result(self, task_id: str) -> TaskResult:
        """``GET /tasks/:id/result`` (a ``ConflictError`` while the task has not finished)."""
        return self._c._run(Calls.task_result(task_id))

    def list(
        self,
        *,
        status: Statuses = None,
        created_after: When = None,
        created_before: When = None,
        q: Optional[str] = None,
        limit: Optional[int] = None,
        offset: Optional[int] = None,
    ) -> Page[Task]:
        """One page of tasks, newest first."""
        return self._c._run(Calls.task_list(page_query(limit, offset, **_task_filters(status, created_after, created_before, q))))

    def iterate(
        self,
        *,
        status: Statuses = None,
        created_after: When = None,
        created_before: When = None,
        q: Optional[str] = None,
        page_size: int = 100,
    ) -> Iterator[Task]:
        """Every matching task, newest first, fetching pages as needed (each task once)."""
        return self._c._paginate(Calls.task_list, _task_filters(status, created_after, created_before, q), page_size)

    def cancel(self, task_id: str) -> Task:
        return self._c._run(Calls.task_cancel(task_id))

    def events(self, task_id: str, *, read_timeout: Optional[float] = None) -> Generator[TaskEvent, None, None]:
        """``GET /tasks/:id/events``: status and output events, ending after the final status."""
        req = Calls.task_events(task_id)
        if read_timeout is not None:
            req.timeout = read_timeout
        response = self._c._send(req, stream=True)
        try:
            parser = SseParser()
            try:
                for line in response.iter_lines():
                    event = parser.feed(line)
                    if event is not None:
                        yield event
            except httpx.TransportError as e:
                raise Settings.transport_error(req, str(response.url), e) from e
        finally:
            response.close()

    def wait_for_completion(
        self,
        task_id: str,
        *,
        timeout: Optional[float] = 600.0,
        poll_interval: float = 1.0,
        stream: bool = True,
        on_output: Optional[Callable[[str], Any]] = None,
    ) -> TaskResult:
        """Waits until the task has finished and returns its result (check ``result.status``:
        a failed or cancelled task's result is returned too). Follows the event stream, or
        polls every ``poll_interval`` s when the stream cannot be used; raises
        ``APITimeoutError`` after ``timeout`` seconds (None: never)."""
        deadline = None if timeout is None else time.monotonic() + timeout

        def left() -> Optional[float]:
            if deadline is None:
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _timeout_error(task_id, timeout or 0)
            return remaining

        finished = False
        if stream:
            try:
                remaining = left()
                # Keep-alives arrive every 15 s, so a read timeout below that only fires at the deadline.
                read = None if remaining is None else min(remaining, self._c._s.timeout or remaining)
                for event in self.events(task_id, read_timeout=read):
                    if event.event == "output" and on_output and isinstance(event.data, dict):
                        on_output(event.data.get("text", ""))
                    if event.event == "status" and isinstance(event.data, dict) and event.data.get("status") in TERMINAL_STATUSES:
                        finished = True
                        break
                    left()
            except OpenClawError as e:
                left()
                if e.status in _FINAL_STATUSES:
                    raise
        while not finished:
            if self.get(task_id).status in TERMINAL_STATUSES:
                break
            remaining = left()
            time.sleep(poll_interval if remaining is None else min(poll_interval, remaining))
        return self.result(task_id)


class Skills:
    """``/skills``: Skill manifests, installed by the server."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def list(self, *, limit: Optional[int] = None, offset: Optional[int] = None) -> Page[Skill]:
        return self._c._run(Calls.skill_list(page_query(limit, offset)))

    def iterate(self, *, page_size: int = 100) -> Iterator[Skill]:
        return self._c._paginate(Calls.skill_list, {}, page_size)

    def get(self, name: str) -> Skill:
        return self._c._run(Calls.skill_get(name))

    def create(self, name: str, *, version: Optional[str] = None, idempotency_key: Optional[str] = None, **spec: Any) -> Skill:
        """``POST /skills``; the install follows (see the skill's ``status``)."""
        body = {"name": name, **({"version": version} if version else {}), **spec}
        return self._c._run(Calls.skill_create(body, idempotency_key))

    def delete(self, name: str) -> None:
        return self._c._run(Calls.skill_delete(name))


class ConfigApi:
    """``/config``: the Config spec with its ``ETag``."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def get(self) -> ConfigWithEtag:
        return self._c._run(Calls.config_get())

    def patch(self, patch: Mapping[str, Any], *, if_match: Optional[str] = None) -> ConfigWithEtag:
        """A JSON merge patch; with ``if_match`` a ``PreconditionFailedError`` if it changed meanwhile."""
        return self._c._run(Calls.config_patch(patch, if_match))


class Webhooks:
    """``/webhooks``: subscriptions, their deliveries, redelivery and test events."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def list(self, *, limit: Optional[int] = None, offset: Optional[int] = None) -> Page[Webhook]:
        return self._c._run(Calls.webhook_list(page_query(limit, offset)))

    def iterate(self, *, page_size: int = 100) -> Iterator[Webhook]:
        return self._c._paginate(Calls.webhook_list, {}, page_size)

    def get(self, webhook_id: str) -> Webhook:
        return self._c._run(Calls.webhook_get(webhook_id))

    def create(
        self, *, url: str, events: Iterable[str], secret: str, idempotency_key: Optional[str] = None, **extra: Any
    ) -> Webhook:
        """``POST /webhooks`` (``name``, ``enabled``, ``description`` may be given too)."""
        body = {"url": url, "events": list(events), "secret": secret, **extra}
        return self._c._run(Calls.webhook_create(body, idempotency_key))

    def update(self, webhook_id: str, **patch: Any) -> Webhook:
        return self._c._run(Calls.webhook_update(webhook_id, patch))

    def delete(self, webhook_id: str) -> None:
        return self._c._run(Calls.webhook_delete(webhook_id))

    def deliveries(self, webhook_id: str, *, limit: Optional[int] = None, offset: Optional[int] = None) -> Page[Delivery]:
        return self._c._run(Calls.webhook_deliveries(webhook_id, page_query(limit, offset)))

    def iterate_deliveries(self, webhook_id: str, *, page_size: int = 100) -> Iterator[Delivery]:
        return self._c._paginate(lambda q: Calls.webhook_deliveries(webhook_id, q), {}, page_size)

    def redeliver(self, webhook_id: str, delivery_id: str) -> DeliveryQueued:
        return self._c._run(Calls.webhook_redeliver(webhook_id, delivery_id))

    def test(self, webhook_id: str) -> DeliveryQueued:
        return self._c._run(Calls.webhook_test(webhook_id))


class Schedules:
    """``/schedules``: Schedule manifests (tasks that run on their own), their runs, run-now."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def list(self, *, limit: Optional[int] = None, offset: Optional[int] = None) -> Page[Schedule]:
        return self._c._run(Calls.schedule_list(page_query(limit, offset)))

    def iterate(self, *, page_size: int = 100) -> Iterator[Schedule]:
        return self._c._paginate(Calls.schedule_list, {}, page_size)

    def get(self, name: str) -> Schedule:
        return self._c._run(Calls.schedule_get(name))

    def create(self, *, name: str, prompt: str, idempotency_key: Optional[str] = None, **spec: Any) -> Schedule:
        """``POST /schedules``: one of ``cron`` (with ``timezone``), ``every`` or ``at``, and
        ``options``, ``concurrency``, ``suspend``, ``starting_deadline_seconds``, ``history_limit``."""
        body = {"name": name, "prompt": prompt, **spec}
        return self._c._run(Calls.schedule_create(body, idempotency_key))

    def update(self, name: str, **patch: Any) -> Schedule:
        """A merge patch of the spec (``None`` removes a field)."""
        return self._c._run(Calls.schedule_update(name, patch))

    def delete(self, name: str) -> None:
        return self._c._run(Calls.schedule_delete(name))

    def run(self, name: str) -> TaskCreated:
        """``POST /schedules/:name/run``: start one task now, even when suspended."""
        return self._c._run(Calls.schedule_run(name))


class McpServers:
    """``/mcp-servers``: declared MCP servers, their live state and tools."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def list(self, *, limit: Optional[int] = None, offset: Optional[int] = None) -> Page[McpServer]:
        return self._c._run(Calls.mcp_list(page_query(limit, offset)))

    def iterate(self, *, page_size: int = 100) -> Iterator[McpServer]:
        return self._c._paginate(Calls.mcp_list, {}, page_size)

    def get(self, name: str) -> McpServer:
        return self._c._run(Calls.mcp_get(name))

    def tools(self, name: str) -> McpTools:
        return self._c._run(Calls.mcp_tools(name))


class Resources:
    """``/resources``: the status of every declared resource."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def list(self, *, kind: Optional[str] = None, limit: Optional[int] = None, offset: Optional[int] = None) -> Page[ResourceStatus]:
        return self._c._run(Calls.resource_list(page_query(limit, offset, kind=kind)))

    def iterate(self, *, kind: Optional[str] = None, page_size: int = 100) -> Iterator[ResourceStatus]:
        return self._c._paginate(Calls.resource_list, {"kind": kind}, page_size)


# ==========================================================================================
# Async


class AsyncClient:
    """The async client: the same calls as :class:`Client`, awaited (asyncio or trio, via anyio)."""

    def __init__(
        self,
        base_url: Optional[str] = None,
        token: Optional[str] = None,
        *,
        max_retries: int = 3,
        max_retry_after: float = 60.0,
        timeout: Optional[float] = 30.0,
        headers: Optional[Mapping[str, str]] = None,
        http_client: Optional[httpx.AsyncClient] = None,
    ) -> None:
        self._s = Settings(base_url, token, max_retries, max_retry_after, timeout, headers)
        self._http = http_client or httpx.AsyncClient()
        self._owns_http = http_client is None
        self.tasks = AsyncTasks(self)
        self.skills = AsyncSkills(self)
        self.config = AsyncConfigApi(self)
        self.webhooks = AsyncWebhooks(self)
        self.schedules = AsyncSchedules(self)
        self.mcp_servers = AsyncMcpServers(self)
        self.resources = AsyncResources(self)

    @property
    def base_url(self) -> str:
        return self._s.base_url

    async def status(self) -> Status:
        return await self._run(Calls.status())

    async def reconcile(self, *, confirm_prune: bool = False) -> ReconcileReport:
        return await self._run(Calls.reconcile(confirm_prune))

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Optional[Dict[str, QueryValue]] = None,
        json: Any = _MISSING,
        headers: Optional[Dict[str, str]] = None,
        idempotency_key: Optional[str] = None,
    ) -> Any:
        return await self._run(Req(method, path, query=query, body=json, headers=headers or {}, idempotency_key=idempotency_key))

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def _send(self, req: Req[Any], stream: bool = False) -> httpx.Response:
        s = self._s
        url = s.url(req.path)
        headers = s.headers_for(req, stream)
        content = s.content(req)
        params = query_params(req.query)
        timeout = req.timeout if req.timeout is not None else s.timeout
        attempt = 0
        while True:
            try:
                request = self._http.build_request(req.method, url, params=params, headers=headers, content=content, timeout=timeout)
                response = await self._http.send(request, stream=stream)
            except httpx.TransportError as e:
                raise s.transport_error(req, url, e) from e
            if response.is_success:
                return response
            if stream:
                await response.aread()
                await response.aclose()
            error = s.error(response)
            wait = s.retry_wait(error, attempt)
            if wait is None:
                raise error
            await anyio.sleep(wait)
            attempt += 1

    async def _run(self, req: Req[T]) -> T:
        return self._s.result(req, await self._send(req))

    async def _paginate(
        self, make: Callable[[Dict[str, QueryValue]], Req[Page[T]]], filters: Dict[str, QueryValue], page_size: int
    ) -> AsyncIterator[T]:
        seen: Set[str] = set()
        offset = 0
        while True:
            page = await self._run(make({**filters, "limit": page_size, "offset": offset}))
            for item in page.items:
                key = item_key(item)
                if key is not None:
                    if key in seen:
                        continue
                    seen.add(key)
                yield item
            offset += len(page.items)
            if not page.items or offset >= page.total:
                return


class AsyncTasks:
    """``/tasks`` (async)."""

    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def create(
        self,
        prompt: str,
        *,
        options: Optional[Mapping[str, Any]] = None,
        idempotency_key: Optional[str] = None,
        **extra: Any,
    ) -> TaskCreated:
        return await self._c._run(Calls.task_create(prompt, options, extra, idempotency_key))

    async def get(self, task_id: str) -> Task:
        return await self._c._run(Calls.task_get(task_id))

    async def result(self, task_id: str) -> TaskResult:
        return await self._c._run(Calls.task_result(task_id))

    async def list(
        self,
        *,
        status: Statuses = None,
        created_after: When = None,
        created_before: When = None,
        q: Optional[str] = None,
        limit: Optional[int] = None,
        offset: Optional[int] = None,
    ) -> Page[Task]:
        return await self._c._run(Calls.task_list(page_query(limit, offset, **_task_filters(status, created_after, created_before, q))))

    def iterate(
        self,
        *,
        status: Statuses = None,
        created_after: When = None,
        created_before: When = None,
        q: Optional[str] = None,
        page_size: int = 100,
    ) -> AsyncIterator[Task]:
        return self._c._paginate(Calls.task_list, _task_filters(status, created_after, created_before, q), page_size)

    async def cancel(self, task_id: str) -> Task:
        return await self._c._run(Calls.task_cancel(task_id))

    async def events(self, task_id: str) -> AsyncGenerator[TaskEvent, None]:
        req = Calls.task_events(task_id)
        response = await self._c._send(req, stream=True)
        try:
            parser = SseParser()
            try:
                async for line in response.aiter_lines():
                    event = parser.feed(line)
                    if event is not None:
                        yield event
            except httpx.TransportError as e:
                raise Settings.transport_error(req, str(response.url), e) from e
        finally:
            await response.aclose()

    async def wait_for_completion(
        self,
        task_id: str,
        *,
        timeout: Optional[float] = 600.0,
        poll_interval: float = 1.0,
        stream: bool = True,
        on_output: Optional[Callable[[str], Any]] = None,
    ) -> TaskResult:
        """As :meth:`Tasks.wait_for_completion`, awaited."""
        try:
            with anyio.fail_after(timeout):
                finished = False
                if stream:
                    try:
                        events = self.events(task_id)
                        try:
                            async for event in events:
                                if event.event == "output" and on_output and isinstance(event.data, dict):
                                    on_output(event.data.get("text", ""))
                                if event.event == "status" and isinstance(event.data, dict) and event.data.get("status") in TERMINAL_STATUSES:
                                    finished = True
                                    break
                        finally:
                            await events.aclose()
                    except OpenClawError as e:
                        if e.status in _FINAL_STATUSES:
                            raise
                while not finished:
                    if (await self.get(task_id)).status in TERMINAL_STATUSES:
                        break
                    await anyio.sleep(poll_interval)
                return await self.result(task_id)
        except TimeoutError as e:  # anyio.fail_after's
            raise _timeout_error(task_id, timeout or 0) from e


class AsyncSkills:
    """``/skills`` (async)."""

    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def list(self, *, limit: Optional[int] = None, offset: Optional[int] = None) -> Page[Skill]:
        return await self._c._run(Calls.skill_list(page_query(limit, offset)))

    def iterate(self, *, page_size: int = 100) -> AsyncIterator[Skill]:
        return self._c._paginate(Calls.skill_list, {}, page_size)

    async def get(self, name: str) -> Skill:
        return await self._c._run(Calls.skill_get(name))

    async def create(self, name: str, *, version: Optional[str] = None, idempotency_key: Optional[str] = None, **spec: Any) -> Skill:
        body = {"name": name, **({"version": version} if version else {}), **spec}
        return await self._c._run(Calls.skill_create(body, idempotency_key))

    async def delete(self, name: str) -> None:
        return await self._c._run(Calls.skill_delete(name))


class AsyncConfigApi:
    """``/config`` (async)."""

    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def get(self) -> ConfigWithEtag:
        return await self._c._run(Calls.config_get())

    async def patch(self, patch: Mapping[str, Any], *, if_match: Optional[str] = None) -> ConfigWithEtag:
        return await self._c._run(Calls.config_patch(patch, if_match))


class AsyncWebhooks:
    """``/webhooks`` (async)."""

    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def list(self, *, limit: Optional[int] = None, offset: Optional[int] = None) -> Page[Webhook]:
        return await self._c._run(Calls.webhook_list(page_query(limit, offset)))

    def iterate(self, *, page_size: int = 100) -> AsyncIterator[Webhook]:
        return self._c._paginate(Calls.webhook_list, {}, page_size)

    async def get(self, webhook_id: str) -> Webhook:
        return await self._c._run(Calls.webhook_get(webhook_id))

    async def create(
        self, *, url: str, events: Iterable[str], secret: str, idempotency_key: Optional[str] = None, **extra: Any
    ) -> Webhook:
        body = {"url": url, "events": list(events), "secret": secret, **extra}
        return await self._c._run(Calls.webhook_create(body, idempotency_key))

    async def update(self, webhook_id: str, **patch: Any) -> Webhook:
        return await self._c._run(Calls.webhook_update(webhook_id, patch))

    async def delete(self, webhook_id: str) -> None:
        return await self._c._run(Calls.webhook_delete(webhook_id))

    async def deliveries(self, webhook_id: str, *, limit: Optional[int] = None, offset: Optional[int] = None) -> Page[Delivery]:
        return await self._c._run(Calls.webhook_deliveries(webhook_id, page_query(limit, offset)))

    def iterate_deliveries(self, webhook_id: str, *, page_size: int = 100) -> AsyncIterator[Delivery]:
        return self._c._paginate(lambda q: Calls.webhook_deliveries(webhook_id, q), {}, page_size)

    async def redeliver(self, webhook_id: str, delivery_id: str) -> DeliveryQueued:
        return await self._c._run(Calls.webhook_redeliver(webhook_id, delivery_id))

    async def test(self, webhook_id: str) -> DeliveryQueued:
        return await self._c._run(Calls.webhook_test(webhook_id))


class AsyncSchedules:
    """``/schedules`` (async)."""

    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def list(self, *, limit: Optional[int] = None, offset: Optional[int] = None) -> Page[Schedule]:
        return await self._c._run(Calls.schedule_list(page_query(limit, offset)))

    def iterate(self, *, page_size: int = 100) -> AsyncIterator[Schedule]:
        return self._c._paginate(Calls.schedule_list, {}, page_size)

    async def get(self, name: str) -> Schedule:
        return await self._c._run(Calls.schedule_get(name))

    async def create(self, *, name: str, prompt: str, idempotency_key: Optional[str] = None, **spec: Any) -> Schedule:
        body = {"name": name, "prompt": prompt, **spec}
        return await self._c._run(Calls.schedule_create(body, idempotency_key))

    async def update(self, name: str, **patch: Any) -> Schedule:
        return await self._c._run(Calls.schedule_update(name, patch))

    async def delete(self, name: str) -> None:
        return await self._c._run(Calls.schedule_delete(name))

    async def run(self, name: str) -> TaskCreated:
        return await self._c._run(Calls.schedule_run(name))


class AsyncMcpServers:
    """``/mcp-servers`` (async)."""

    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def list(self, *, limit: Optional[int] = None, offset: Optional[int] = None) -> Page[McpServer]:
        return await self._c._run(Calls.mcp_list(page_query(limit, offset)))

    def iterate(self, *, page_size: int = 100) -> AsyncIterator[McpServer]:
        return self._c._paginate(Calls.mcp_list, {}, page_size)

    async def get(self, name: str) -> McpServer:
        return await self._c._run(Calls.mcp_get(name))

    async def tools(self, name: str) -> McpTools:
        return await self._c._run(Calls.mcp_tools(name))


class AsyncResources:
    """``/resources`` (async)."""

    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def list(
        self, *, kind: Optional[str] = None, limit: Optional[int] = None, offset: Optional[int] = None
    ) -> Page[ResourceStatus]:
        return await self._c._run(Calls.resource_list(page_query(limit, offset, kind=kind)))

    def iterate(self, *, kind: Optional[str] = None, page_size: int = 100) -> AsyncIterator[ResourceStatus]:
        return self._c._paginate(Calls.resource_list, {"kind": kind}, page_size)
