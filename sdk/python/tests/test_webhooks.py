"""Webhooks against a real server and a real loopback receiver: CRUD, deliveries of a task's
events, verify_webhook on the signature the server sent, test events and redelivery."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

from conftest import Server
from openclaw_client import Client, NotFoundError, verify_webhook


class Hit:
    def __init__(self, path: str, headers: Dict[str, str], body: bytes) -> None:
        self.path, self.headers, self.body = path, headers, body


class Receiver:
    """Records each request (raw body, headers) and answers 200; ``next`` waits for one."""

    def __init__(self) -> None:
        self.hits: List[Hit] = []
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"received":true}')
                with receiver.arrived:
                    receiver.hits.append(Hit(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    receiver.arrived.notify_all()

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def next(self, match: Callable[[Hit], bool], seconds: float = 15) -> Hit:
        with self.arrived:
            found: Optional[Hit] = None

            def ready() -> bool:
                nonlocal found
                found = next((h for h in self.hits if match(h)), None)
                return found is not None

            if not self.arrived.wait_for(ready, timeout=seconds):
                raise AssertionError(f"no matching delivery in {seconds} s; got {[h.headers.get('x-openclaw-event') for h in self.hits]}")
            assert found is not None
            return found

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture(scope="module")
def hooks() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[Client]:
    with Client(base_url=server.url, token=server.tokens["admin"]) as c:
        yield c


def test_crud_and_the_secret_is_never_returned(client: Client, hooks: Receiver) -> None:
    created = client.webhooks.create(name="crud", url=f"{hooks.url}/crud", events=["task.completed", "task.failed"], secret="crud-secret")
    assert (created.id, created.url, created.events) == ("crud", f"{hooks.url}/crud", ["task.completed", "task.failed"])
    assert "crud-secret" not in json.dumps(created.to_dict())
    assert client.webhooks.get("crud").url == created.url
    other = client.webhooks.create(url=f"{hooks.url}/other", events=["*"], secret="x")
    assert other.id.startswith("wh-")
    page = client.webhooks.list(limit=1)
    assert (page.total, len(page.items)) == (2, 1)
    assert sorted(w.id for w in client.webhooks.iterate(page_size=1)) == sorted(["crud", other.id])
    updated = client.webhooks.update("crud", events=["*"], description="all events")
    assert (updated.events, updated.description) == (["*"], "all events")
    assert client.webhooks.delete("crud") is None
    client.webhooks.delete(other.id)
    with pytest.raises(NotFoundError):
        client.webhooks.get("crud")
    assert client.webhooks.list().total == 0


def test_deliveries_signatures_and_redelivery(client: Client, hooks: Receiver) -> None:
    secret = "your-secret-here"
    client.webhooks.create(name="tasks", url=f"{hooks.url}/tasks", events=["task.completed"], secret=secret)
    task = client.tasks.create(prompt="notify me")
    client.tasks.wait_for_completion(task.id)
    hit = hooks.next(lambda h: h.path == "/tasks" and json.loads(h.body)["data"].get("task_id") == task.id)
    signature = hit.headers["x-openclaw-signature"]
    assert hit.headers["x-openclaw-event"] == "task.completed"
    assert verify_webhook(hit.body, signature, secret)
    assert verify_webhook(hit.body.decode(), signature, secret)
    assert verify_webhook(json.loads(hit.body), signature, secret), "parsed, as the tutorial's receiver does"
    assert not verify_webhook(hit.body, signature, "another-secret")
    assert not verify_webhook(hit.body + b" ", signature, secret)
    assert not verify_webhook(hit.body, None, secret)
    assert not verify_webhook(hit.body, "abc", secret)
    event = json.loads(hit.body)
    assert (event["event"], event["data"]["prompt"], event["data"]["status"]) == ("task.completed", "notify me", "completed")

    delivery_id = hit.headers["x-openclaw-delivery"]
    deadline = time.monotonic() + 15
    while True:
        d = next(d for d in client.webhooks.deliveries("tasks").items if d.id == delivery_id)
        if d.status == "delivered" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert d.status == "delivered"
    assert d.event == "task.completed"
    assert d.attempts[0].status_code == 200
    all_ids = [x.id for x in client.webhooks.iterate_deliveries("tasks", page_size=1)]
    assert delivery_id in all_ids and len(all_ids) == client.webhooks.deliveries("tasks").total

    queued = client.webhooks.redeliver("tasks", delivery_id)
    assert (queued.id, queued.status) == (delivery_id, "pending")
    same = lambda: [h for h in hooks.hits if h.headers.get("x-openclaw-delivery") == delivery_id]  # noqa: E731
    hooks.next(lambda _h: len(same()) >= 2)
    first, second = same()[:2]
    assert second.body == first.body
    assert verify_webhook(second.body, second.headers["x-openclaw-signature"], secret)
    with pytest.raises(NotFoundError):
        client.webhooks.redeliver("tasks", "dlv_missing")


def test_test_sends_a_signed_webhook_test_event(client: Client, hooks: Receiver) -> None:
    client.webhooks.create(name="pinged", url=f"{hooks.url}/ping", events=["task.failed"], secret="test-secret")
    queued = client.webhooks.test("pinged")
    assert queued.status == "pending" and queued.delivery_id
    hit = hooks.next(lambda h: h.headers.get("x-openclaw-delivery") == queued.delivery_id)
    assert hit.headers["x-openclaw-event"] == "webhook.test"
    assert verify_webhook(hit.body, hit.headers["x-openclaw-signature"], "test-secret")
    assert json.loads(hit.body)["data"]["webhook_id"] == "pinged"


def test_verify_webhook_is_the_tutorials_hmac_check() -> None:
    payload = b'{"event":"task.completed","timestamp":"2026-03-02T10:35:00Z","data":{"task_id":"task_abc123"}}'
    expected = hmac.new(b"s3cret", payload, hashlib.sha256).hexdigest()
    assert verify_webhook(payload, expected, "s3cret")
    assert verify_webhook(payload, expected.upper(), "s3cret")
    assert not verify_webhook(payload, expected, "other")
    assert not verify_webhook(payload, "", "s3cret")
    with pytest.raises(ValueError, match="secret is empty"):
        verify_webhook(payload, expected, "")
