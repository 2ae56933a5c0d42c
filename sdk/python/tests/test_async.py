"""The async client against a real server: the same calls as the sync one, awaited."""

from __future__ import annotations

import time
from typing import AsyncIterator, Dict, List

import httpx
import pytest

from conftest import Server, config_yaml, start_server
from openclaw_client import (
    APITimeoutError,
    AsyncClient,
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
    RateLimitError,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(server: Server) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(base_url=server.url, token=server.tokens["admin"]) as c:
        yield c


async def test_the_tutorial_flow_awaited(server: Server) -> None:
    async with AsyncClient(base_url=server.url, token=server.tokens["admin"]) as client:
        task = await client.tasks.create(prompt="Analyze the error logs from today")
        result = await client.tasks.wait_for_completion(task.id)
        assert result.output == "done: Analyze the error logs from today"


async def test_wait_over_sse_by_polling_and_with_a_timeout(client: AsyncClient) -> None:
    chunks: List[str] = []
    task = await client.tasks.create(prompt="slow async")
    result = await client.tasks.wait_for_completion(task.id, on_output=chunks.append, poll_interval=60)
    assert result.output == "working...\ndone: slow async" == "".join(chunks)
    polled = await client.tasks.create(prompt="slow polled")
    assert (await client.tasks.wait_for_completion(polled.id, stream=False, poll_interval=0.1)).output == "working...\ndone: slow polled"
    blocked = await client.tasks.create(prompt="block async")
    started = time.monotonic()
    with pytest.raises(APITimeoutError):
        await client.tasks.wait_for_completion(blocked.id, timeout=0.3)
    assert time.monotonic() - started < 5
    with pytest.raises(ConflictError):
        await client.tasks.result(blocked.id)
    cancelled = await client.tasks.cancel(blocked.id)
    assert cancelled.id == blocked.id
    assert (await client.tasks.wait_for_completion(blocked.id)).status == "cancelled"


async def test_wait_falls_back_to_polling(server: Server) -> None:
    class Broken(httpx.AsyncHTTPTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/events"):
                return httpx.Response(502, text="bad gateway")
            return await super().handle_async_request(request)

    http = httpx.AsyncClient(transport=Broken())
    async with AsyncClient(base_url=server.url, token=server.tokens["admin"], http_client=http) as client:
        task = await client.tasks.create(prompt="slow async fallback")
        result = await client.tasks.wait_for_completion(task.id, poll_interval=0.1)
        assert result.output == "working...\ndone: slow async fallback"
    await http.aclose()


async def test_events_list_and_iterate(client: AsyncClient) -> None:
    tag = f"async-{time.time_ns()}"
    ids = [(await client.tasks.create(prompt=f"{tag} {i}")).id for i in range(5)]
    events = [e async for e in client.tasks.events(ids[-1])]
    assert events[-1].event == "status" and events[-1].data["status"] == "completed"
    for task_id in ids:
        await client.tasks.wait_for_completion(task_id)
    page = await client.tasks.list(q=tag, limit=2)
    assert (page.total, [t.id for t in page.items]) == (5, ids[-2:][::-1])
    assert [t.id async for t in client.tasks.iterate(q=tag, status="completed", page_size=2)] == ids[::-1]
    assert (await client.tasks.get(ids[0])).status == "completed"


async def test_config_resources_mcp_skills_and_reconcile(client: AsyncClient) -> None:
    current = await client.config.get()
    patched = await client.config.patch({"tasks": {"concurrency": 6}}, if_match=current.etag)
    assert patched.config["tasks"]["concurrency"] == 6
    with pytest.raises(PreconditionFailedError):
        await client.config.patch({"tasks": {"concurrency": 7}}, if_match=current.etag)
    kinds = {r.kind async for r in client.resources.iterate()}
    assert {"Config", "Token"} <= kinds
    assert (await client.resources.list(kind="Token")).total == 3
    assert (await client.mcp_servers.list()).total == 0
    assert [s async for s in client.mcp_servers.iterate()] == []
    assert (await client.skills.list()).total == 0
    assert [s async for s in client.skills.iterate()] == []
    with pytest.raises(NotFoundError):
        await client.skills.get("nope")
    with pytest.raises(NotFoundError):
        await client.mcp_servers.tools("nope")
    assert (await client.reconcile()).errors == 0
    assert (await client.status()).status == "ok"


async def test_webhooks_crud_and_test(client: AsyncClient) -> None:
    hook = await client.webhooks.create(name="async-hook", url="http://127.0.0.1:9/hook", events=["*"], secret="s")
    assert (await client.webhooks.get("async-hook")).url == hook.url
    assert "async-hook" in [w.id async for w in client.webhooks.iterate()]
    assert (await client.webhooks.update("async-hook", enabled=False)).enabled is False
    assert (await client.webhooks.deliveries("async-hook")).total == 0
    assert [d async for d in client.webhooks.iterate_deliveries("async-hook")] == []
    with pytest.raises(NotFoundError):
        await client.webhooks.redeliver("async-hook", "dlv_missing")
    await client.webhooks.delete("async-hook")
    with pytest.raises(NotFoundError):
        await client.webhooks.test("async-hook")


async def test_errors_by_scope_and_token(server: Server) -> None:
    async with AsyncClient(base_url=server.url, token="ocl_nope") as bad:
        with pytest.raises(AuthenticationError):
            await bad.status()
    async with AsyncClient(base_url=server.url, token=server.tokens["read"]) as reader:
        with pytest.raises(PermissionDeniedError):
            await reader.tasks.create(prompt="no")


async def test_429_retried_with_the_same_idempotency_key() -> None:
    s = start_server(config=config_yaml("  rate_limit:\n    requests_per_minute: 30\n    burst: 2\n"))
    try:
        sent: List[Dict[str, str]] = []

        async def record(response: httpx.Response) -> None:
            sent.append({"path": response.request.url.path, "status": str(response.status_code), "key": response.request.headers.get("idempotency-key", "")})

        http = httpx.AsyncClient(event_hooks={"response": [record]})
        async with AsyncClient(base_url=s.url, token=s.tokens["admin"], http_client=http) as client:
            await client.status()
            await client.status()
            task = await client.tasks.create(prompt="async after the limit")
            assert task.id.startswith("task_")
        creates = [x for x in sent if x["path"] == "/api/v1/tasks"]
        assert [c["status"] for c in creates][0] == "429" and creates[-1]["status"] == "201"
        assert len({c["key"] for c in creates}) == 1
        async with AsyncClient(base_url=s.url, token=s.tokens["read"], max_retries=0) as strict:
            await strict.status()
            await strict.status()
            with pytest.raises(RateLimitError) as e:
                await strict.status()
            assert e.value.retry_after and e.value.retry_after >= 1
        await http.aclose()
    finally:
        s.stop()
