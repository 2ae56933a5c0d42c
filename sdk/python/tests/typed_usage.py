"""Type-checked use of the package (mypy --strict, run by sdk/test.sh): the calls a user
makes, with the types they get back. Not collected by pytest (no test functions)."""

from __future__ import annotations

import os
from typing import List, Optional

from openclaw_client import (
    AsyncClient,
    Client,
    OpenClawError,
    RateLimitError,
    Task,
    TaskResult,
    verify_webhook,
)


def tutorial() -> str:
    client = Client(base_url="http://localhost:3000", token=os.environ["OPENCLAW_TOKEN"])
    task = client.tasks.create(prompt="Analyze the error logs from today")
    result: TaskResult = client.tasks.wait_for_completion(task.id)
    return result.output


def everything(client: Client) -> None:
    version: str = client.status().version
    created = client.tasks.create(prompt="p", options={"model": "m"}, idempotency_key="k")
    task: Task = client.tasks.get(created.id)
    duration: Optional[int] = task.duration_ms
    page_total: int = client.tasks.list(status=["completed"], q="git", limit=5).total
    ids: List[str] = [t.id for t in client.tasks.iterate(status="completed")]
    for event in client.tasks.events(task.id):
        name: str = event.event
    files = [f.path for f in client.tasks.wait_for_completion(task.id, timeout=60, on_output=print).files]
    client.tasks.cancel(task.id)
    skill = client.skills.create("openclaw-skill-git-helper", version="latest")
    skill_ready: Optional[bool] = skill.status.ready if skill.status else None
    conf = client.config.get()
    client.config.patch({"model": {"provider": "anthropic", "max_context": 8192}}, if_match=conf.etag)
    hook = client.webhooks.create(url="http://localhost:4000/openclaw-webhook", events=["task.completed"], secret="s")
    codes = [a.status_code for d in client.webhooks.deliveries(hook.id).items for a in d.attempts]
    client.webhooks.redeliver(hook.id, "dlv_1")
    delivery: Optional[str] = client.webhooks.test(hook.id).delivery_id
    tools = client.mcp_servers.tools("everything").items
    kinds = [r.kind for r in client.resources.iterate(kind="Token")]
    errors: int = client.reconcile(confirm_prune=True).errors


async def awaited(client: AsyncClient) -> str:
    task = await client.tasks.create(prompt="p")
    ids = [t.id async for t in client.tasks.iterate()]
    return (await client.tasks.wait_for_completion(task.id)).output


def handle(e: Exception) -> Optional[float]:
    if isinstance(e, RateLimitError):
        return e.retry_after
    if isinstance(e, OpenClawError):
        return float(e.status) + len(e.code) + len(e.details)
    return None


signed: bool = verify_webhook(b"{}", "abc", "secret")
