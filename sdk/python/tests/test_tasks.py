"""Tasks against a real server (sync client): the tutorial's flow in Python, create, get,
result, list with filters, the page iterator, cancel, events, and wait_for_completion over
SSE, by polling, by falling back to polling, and with a timeout."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import List

import httpx
import pytest

from openclaw_client import (
    APITimeoutError,
    BadRequestError,
    Client,
    ConflictError,
    NotFoundError,
    TaskResult,
)


@pytest.fixture(scope="module")
def client(server):  # type: ignore[no-untyped-def]
    with Client(base_url=server.url, token=server.tokens["admin"]) as c:
        yield c


def test_the_tutorial_flow_in_python(server) -> None:  # type: ignore[no-untyped-def]
    # The tutorial's SDK example in this package's idiom.
    client = Client(base_url=server.url, token=server.tokens["admin"])
    task = client.tasks.create(prompt="Analyze the error logs from today")
    result = client.tasks.wait_for_completion(task.id)
    assert result.output == "done: Analyze the error logs from today"
    client.close()


def test_create_get_result(client: Client) -> None:
    created = client.tasks.create(prompt="hello there")
    assert created.id.startswith("task_")
    assert created.status in ("queued", "running")
    result = client.tasks.wait_for_completion(created.id)
    assert isinstance(result, TaskResult)
    assert (result.status, result.output, result.files) == ("completed", "done: hello there", [])
    assert isinstance(result.usage.input_tokens, int)
    task = client.tasks.get(created.id)
    assert (task.status, task.prompt, task.created_by) == ("completed", "hello there", "admin")
    assert isinstance(task.duration_ms, int)
    assert client.tasks.result(created.id) == result


def test_wait_over_sse_streams_the_output(client: Client) -> None:
    task = client.tasks.create(prompt="slow but steady")
    chunks: List[str] = []
    result = client.tasks.wait_for_completion(task.id, on_output=chunks.append, poll_interval=60)
    assert result.output == "working...\ndone: slow but steady"
    assert "".join(chunks) == result.output


class Recorder(httpx.HTTPTransport):
    """A real transport that records paths, and can answer the event stream like a broken proxy."""

    def __init__(self, break_events: bool = False) -> None:
        super().__init__()
        self.paths: List[str] = []
        self.break_events = break_events

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        if self.break_events and request.url.path.endswith("/events"):
            return httpx.Response(502, text="<html>bad gateway</html>", headers={"content-type": "text/html"})
        return super().handle_request(request)


def test_wait_by_polling_only(server) -> None:  # type: ignore[no-untyped-def]
    rec = Recorder()
    with Client(base_url=server.url, token=server.tokens["admin"], http_client=httpx.Client(transport=rec)) as c:
        task = c.tasks.create(prompt="slow poll")
        result = c.tasks.wait_for_completion(task.id, stream=False, poll_interval=0.1)
    assert result.output == "working...\ndone: slow poll"
    assert not any(p.endswith("/events") for p in rec.paths)
    assert rec.paths.count(f"/api/v1/tasks/{task.id}") >= 2


def test_wait_falls_back_to_polling_when_the_stream_is_unusable(server) -> None:  # type: ignore[no-untyped-def]
    rec = Recorder(break_events=True)
    with Client(base_url=server.url, token=server.tokens["admin"], http_client=httpx.Client(transport=rec)) as c:
        task = c.tasks.create(prompt="slow fallback")
        result = c.tasks.wait_for_completion(task.id, poll_interval=0.1)
    assert result.output == "working...\ndone: slow fallback"
    assert f"/api/v1/tasks/{task.id}/events" in rec.paths
    assert f"/api/v1/tasks/{task.id}" in rec.paths


def test_wait_times_out(client: Client) -> None:
    task = client.tasks.create(prompt="block for a while")
    started = time.monotonic()
    with pytest.raises(APITimeoutError) as e:
        client.tasks.wait_for_completion(task.id, timeout=0.3)
    assert e.value.code == "timeout"
    with pytest.raises(APITimeoutError):
        client.tasks.wait_for_completion(task.id, timeout=0.3, stream=False, poll_interval=0.05)
    assert time.monotonic() - started < 5
    client.tasks.cancel(task.id)


def test_cancel_and_the_result_of_a_cancelled_task(client: Client) -> None:
    task = client.tasks.create(prompt="block until cancelled")
    for event in client.tasks.events(task.id):
        if event.event == "status" and event.data["status"] == "running":
            break
    assert client.tasks.cancel(task.id).id == task.id
    assert client.tasks.wait_for_completion(task.id).status == "cancelled"
    with pytest.raises(ConflictError) as e:
        client.tasks.cancel(task.id)
    assert e.value.code == "task_finished"


def test_result_of_an_unfinished_task_is_a_conflict(client: Client) -> None:
    task = client.tasks.create(prompt="block the result")
    with pytest.raises(ConflictError) as e:
        client.tasks.result(task.id)
    assert (e.value.status, e.value.code) == (409, "task_not_finished")
    client.tasks.cancel(task.id)


def test_a_failed_task_returns_its_result_with_the_error(client: Client) -> None:
    task = client.tasks.create(prompt="fail now")
    result = client.tasks.wait_for_completion(task.id)
    assert result.status == "failed"
    assert "failed on purpose" in (result.error or "")


def test_events_end_after_the_final_status(client: Client) -> None:
    task = client.tasks.create(prompt="slow events")
    events = list(client.tasks.events(task.id))
    assert events[-1].event == "status"
    assert events[-1].data["status"] == "completed"
    output = "".join(e.data["text"] for e in events if e.event == "output")
    assert output == "working...\ndone: slow events"


def test_list_filters_and_iterate(client: Client) -> None:
    tag = f"batch-{time.time_ns()}"
    ids = [client.tasks.create(prompt=f"{tag} {i}").id for i in range(7)]
    for task_id in ids:
        client.tasks.wait_for_completion(task_id)
    page = client.tasks.list(q=tag, status="completed", limit=3)
    assert (page.total, page.limit, page.offset) == (7, 3, 0)
    assert [t.id for t in page.items] == ids[-3:][::-1]
    assert [t.id for t in client.tasks.list(q=tag, limit=3, offset=3).items] == ids[1:4][::-1]
    assert client.tasks.list(q=tag, status=["failed", "cancelled"]).total == 0
    future = datetime.now(timezone.utc) + timedelta(hours=1)
    assert client.tasks.list(q=tag, created_after=future).total == 0
    assert client.tasks.list(q=tag, created_before=future).total == 7
    assert [t.id for t in client.tasks.iterate(q=tag, page_size=2)] == ids[::-1]


def test_iterate_yields_each_task_once_while_new_ones_arrive(client: Client) -> None:
    tag = f"shift-{time.time_ns()}"
    for i in range(3):
        client.tasks.create(prompt=f"{tag} {i}")
    seen: List[str] = []
    for task in client.tasks.iterate(q=tag, page_size=2):
        seen.append(task.id)
        if len(seen) == 1:
            client.tasks.create(prompt=f"{tag} late")
    assert len(set(seen)) == len(seen) >= 3


def test_invalid_requests_and_unknown_tasks(client: Client) -> None:
    with pytest.raises(BadRequestError) as e:
        client.tasks.create(prompt="x", options={"timeout_seconds": -1})
    assert e.value.code == "validation_failed"
    assert e.value.details[0]["field"] == "options.timeout_seconds"
    with pytest.raises(BadRequestError):
        client.tasks.list(status="sleeping")
    with pytest.raises(NotFoundError) as nf:
        client.tasks.get("task_nope")
    assert (nf.value.status, nf.value.code) == (404, "not_found")
    with pytest.raises(NotFoundError):
        client.tasks.wait_for_completion("task_nope")
