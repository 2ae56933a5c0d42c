"""Every operation of the committed OpenAPI description (schemas/openapi.json) has a method in
this package: each method is called against a stand-in transport that records the request,
and each operation of the spec must have been requested."""

from __future__ import annotations

import json
import re
from typing import Any, Callable, List

import httpx
import pytest

from conftest import REPO
from openclaw_client import Client

SPEC = REPO / "schemas/openapi.json"

#: Operations an integrator's client has no use for, and why.
NOT_IN_SDK = {
    "GET /healthz": "liveness probe for orchestrators",
    "GET /readyz": "readiness probe for orchestrators",
    "GET /metrics": "Prometheus scrape target",
    "POST /api/v1/hooks/git": "git push webhook, called by the git host",
    "GET /api/v1/openapi.json": "the description itself",
    "GET /api/v1/whoami": "the dashboard's (not in the SDKs yet)",
    "GET /api/v1/stats/hourly": "the dashboard's charts (not in the SDKs yet)",
    "POST /v1/chat/completions": "OpenAI-compatible: for OpenAI's own clients",
    "GET /v1/models": "OpenAI-compatible: for OpenAI's own clients",
    "GET /v1/models/{model}": "OpenAI-compatible: for OpenAI's own clients",
}


def test_every_operation_of_the_spec_has_a_method() -> None:
    if not SPEC.exists():
        pytest.skip("schemas/openapi.json is not in this checkout")
    spec = json.loads(SPEC.read_text())
    seen: List[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if request.url.path.endswith("/events"):
            return httpx.Response(200, text='event: status\ndata: {"status":"completed"}\n\n', headers={"content-type": "text/event-stream"})
        if request.method == "DELETE":
            return httpx.Response(204)
        body = {"items": [], "total": 0, "limit": 20, "offset": 0, "id": "ID", "status": "completed", "output": "",
                "prompt": "", "created_at": "", "version": "", "uptime_seconds": 0, "server": "NAME", "name": "NAME", "url": ""}
        if re.match(r"^/api/v1/(skills|webhooks|schedules)(/[^/]+)?$", request.url.path):
            body["status"] = None  # there it is an object (the resource's condition)
        return httpx.Response(200, json=body, headers={"etag": '"e"'})

    c = Client(base_url="http://127.0.0.1:9", token="ocl_x", http_client=httpx.Client(transport=httpx.MockTransport(handler)))
    calls: List[Callable[[], Any]] = [
        c.status,
        c.reconcile,
        lambda: c.tasks.create(prompt="p"),
        lambda: c.tasks.get("ID"),
        lambda: c.tasks.result("ID"),
        c.tasks.list,
        lambda: list(c.tasks.iterate()),
        lambda: c.tasks.cancel("ID"),
        lambda: list(c.tasks.events("ID")),
        lambda: c.tasks.wait_for_completion("ID"),
        c.skills.list,
        lambda: list(c.skills.iterate()),
        lambda: c.skills.get("NAME"),
        lambda: c.skills.create("NAME"),
        lambda: c.skills.delete("NAME"),
        c.config.get,
        lambda: c.config.patch({}),
        c.webhooks.list,
        lambda: list(c.webhooks.iterate()),
        lambda: c.webhooks.get("ID"),
        lambda: c.webhooks.create(url="u", events=[], secret="s"),
        lambda: c.webhooks.update("ID"),
        lambda: c.webhooks.delete("ID"),
        lambda: c.webhooks.deliveries("ID"),
        lambda: list(c.webhooks.iterate_deliveries("ID")),
        lambda: c.webhooks.redeliver("ID", "DID"),
        lambda: c.webhooks.test("ID"),
        c.schedules.list,
        lambda: list(c.schedules.iterate()),
        lambda: c.schedules.get("NAME"),
        lambda: c.schedules.create(name="NAME", prompt="p", every="1h"),
        lambda: c.schedules.update("NAME", suspend=True),
        lambda: c.schedules.delete("NAME"),
        lambda: c.schedules.run("NAME"),
        c.mcp_servers.list,
        lambda: list(c.mcp_servers.iterate()),
        lambda: c.mcp_servers.get("NAME"),
        lambda: c.mcp_servers.tools("NAME"),
        c.resources.list,
        lambda: list(c.resources.iterate()),
    ]
    for call in calls:
        call()

    missing = []
    for template, ops in spec["paths"].items():
        pattern = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$")
        for method in (m for m in ops if m in ("get", "post", "put", "patch", "delete")):
            op = f"{method.upper()} {template}"
            if op in NOT_IN_SDK:
                continue
            if not any(s.startswith(method.upper() + " ") and pattern.match(s.split(" ", 1)[1]) for s in seen):
                missing.append(op)
    assert missing == [], "operations of the spec without an SDK method"
