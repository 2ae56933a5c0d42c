"""Errors and retries against real servers: typed 401 / 403 / 404 / 400, a 429 retried after
Retry-After with the same Idempotency-Key, the retry bound, and connection failures."""

from __future__ import annotations

import re
import time
from typing import Dict, Iterator, List

import httpx
import pytest

from conftest import Server, config_yaml, start_server
from openclaw_client import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    Client,
    NotFoundError,
    OpenClawError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
)


def test_401_unknown_token(server: Server) -> None:
    with pytest.raises(AuthenticationError) as e:
        Client(base_url=server.url, token="ocl_not_a_real_token").status()
    err = e.value
    assert isinstance(err, OpenClawError)
    assert (err.status, err.code) == (401, "unauthorized")
    assert "invalid or revoked token" in err.message
    assert err.request_id


def test_403_by_scope(server: Server) -> None:
    reader = Client(base_url=server.url, token=server.tokens["read"])
    assert reader.status().status == "ok"
    with pytest.raises(PermissionDeniedError) as e:
        reader.tasks.create(prompt="no")
    assert (e.value.status, e.value.code) == (403, "forbidden")
    assert "scope read" in e.value.message
    runner = Client(base_url=server.url, token=server.tokens["execute"])
    task = runner.tasks.create(prompt="allowed")
    assert runner.tasks.wait_for_completion(task.id).output == "done: allowed"
    with pytest.raises(PermissionDeniedError):
        runner.config.patch({"tasks": {"concurrency": 2}})


def test_404s(server: Server) -> None:
    c = Client(base_url=server.url, token=server.tokens["admin"])
    for call in (
        lambda: c.tasks.get("task_missing"),
        lambda: c.skills.get("missing"),
        lambda: c.webhooks.get("missing"),
        lambda: c.mcp_servers.get("missing"),
        lambda: c.request("GET", "/no-such-route"),
    ):
        with pytest.raises(NotFoundError) as e:
            call()
        assert (e.value.status, e.value.code) == (404, "not_found")


def test_400_with_field_details(server: Server) -> None:
    c = Client(base_url=server.url, token=server.tokens["admin"])
    with pytest.raises(BadRequestError) as e:
        c.tasks.list(limit=1000)
    assert e.value.code == "invalid_parameter"
    with pytest.raises(BadRequestError) as v:
        c.request("POST", "/webhooks", json={"url": "http://127.0.0.1:9/x", "events": ["task.completed"]})
    assert v.value.code == "validation_failed"
    assert v.value.details[0]["field"] == "secret"


def test_no_server_is_a_connection_error() -> None:
    with pytest.raises(APIConnectionError) as e:
        Client(base_url="http://127.0.0.1:9", token="ocl_x").status()
    assert (e.value.status, e.value.code) == (0, "connection_error")


def test_a_token_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENCLAW_TOKEN", raising=False)
    with pytest.raises(ValueError, match="no token"):
        Client(base_url="http://127.0.0.1:9")


@pytest.fixture(scope="module")
def limited() -> Iterator[Server]:
    """A server allowing a burst of 2 requests, then 1 every 2 s, per token (slow enough that the third call is refused even on a busy machine)."""
    s = start_server(config=config_yaml("  rate_limit:\n    requests_per_minute: 30\n    burst: 2\n"))
    yield s
    s.stop()


def test_429_is_retried_after_retry_after_with_the_same_idempotency_key(limited: Server) -> None:
    sent: List[Dict[str, str]] = []

    def record(response: httpx.Response) -> None:
        sent.append(
            {
                "path": response.request.url.path,
                "key": response.request.headers.get("idempotency-key", ""),
                "status": str(response.status_code),
                "retry_after": response.headers.get("retry-after", ""),
            }
        )

    http = httpx.Client(event_hooks={"response": [record]})
    c = Client(base_url=limited.url, token=limited.tokens["admin"], http_client=http)
    c.status()
    c.status()
    started = time.monotonic()
    task = c.tasks.create(prompt="after the limit")
    elapsed = time.monotonic() - started
    assert task.id.startswith("task_")
    creates = [s for s in sent if s["path"] == "/api/v1/tasks"]
    assert creates[0]["status"] == "429", sent
    assert int(creates[0]["retry_after"]) >= 1
    assert creates[-1]["status"] == "201"
    assert re.fullmatch(r"[0-9a-f-]{36}", creates[0]["key"])
    assert all(s["key"] == creates[0]["key"] for s in creates)
    assert elapsed >= 0.9
    first = c.tasks.create(prompt="another", idempotency_key="my-key-1")
    assert [s for s in sent if s["path"] == "/api/v1/tasks"][-1]["key"] == "my-key-1"
    # The server honours the key: the same create again is the first one, another is refused.
    assert c.tasks.create(prompt="another", idempotency_key="my-key-1").id == first.id
    with pytest.raises(UnprocessableEntityError) as reused:
        c.tasks.create(prompt="not the same", idempotency_key="my-key-1")
    assert reused.value.code == "idempotency_key_reused"


def test_past_the_retry_bound_429_is_a_rate_limit_error(limited: Server) -> None:
    c = Client(base_url=limited.url, token=limited.tokens["read"], max_retries=0)
    c.status()
    c.status()
    with pytest.raises(RateLimitError) as e:
        c.status()
    assert (e.value.status, e.value.code) == (429, "rate_limited")
    assert e.value.retry_after is not None and e.value.retry_after >= 1
    assert re.fullmatch(r"Rate limit exceeded\. Try again in \d+ seconds?\.", e.value.message)
    impatient = Client(base_url=limited.url, token=limited.tokens["read"], max_retries=5, max_retry_after=0)
    started = time.monotonic()
    with pytest.raises(RateLimitError):
        impatient.status()
    assert time.monotonic() - started < 0.9
