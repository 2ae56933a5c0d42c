"""claw's OpenAI-compatible API driven by the official `openai` Python package.

Run by tests/it/openai.rs against a real server: `python client_test.py SCENARIO`, with
OPENAI_BASE_URL (the server's /v1), OPENAI_API_KEY (a claw token), CLAW_URL (the server) and
CLAW_MODEL (the Config's model) in the environment. Exits non-zero (with a traceback) when an
expectation fails; prints one `ok SCENARIO` line when all held.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from typing import Any, Dict

import openai
from openai import OpenAI

BASE = os.environ["CLAW_URL"]
TOKEN = os.environ["OPENAI_API_KEY"]
MODEL = os.environ["CLAW_MODEL"]

# No retries: a test must see each answer as the server gave it.
client = OpenAI(max_retries=0, timeout=30)


def claw_get(path: str) -> Dict[str, Any]:
    request = urllib.request.Request(BASE + path, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def task_id(completion_id: str) -> str:
    assert completion_id.startswith("chatcmpl-task_"), completion_id
    return completion_id[len("chatcmpl-"):]


def wait_for_end(task: str) -> Dict[str, Any]:
    """The task's final status event, read from its Server-Sent Events (no polling)."""
    request = urllib.request.Request(
        f"{BASE}/api/v1/tasks/{task}/events",
        headers={"Authorization": f"Bearer {TOKEN}", "Accept": "text/event-stream"},
    )
    last: Dict[str, Any] = {}
    with urllib.request.urlopen(request, timeout=30) as response:
        event = ""
        for raw in response:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[len("event: "):]
            elif line.startswith("data: ") and event == "status":
                last = json.loads(line[len("data: "):])
    return last


def plain() -> None:
    models = client.models.list()
    assert [m.id for m in models.data] == [MODEL], models
    assert models.data[0].object == "model"
    assert client.models.retrieve(MODEL).id == MODEL

    completion = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "say hello"}],
    )
    assert completion.object == "chat.completion", completion
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Echo: say hello", choice.message.content
    assert choice.finish_reason == "stop"
    assert completion.model == MODEL
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 11, completion.usage
    assert completion.usage.completion_tokens == 5
    assert completion.usage.total_tokens == 16

    # The completion is an ordinary task: listed, with the prompt the message gave.
    task = claw_get(f"/api/v1/tasks/{task_id(completion.id)}")
    assert task["status"] == "completed", task
    assert task["prompt"] == "say hello", task
    listed = claw_get("/api/v1/tasks?limit=100")
    assert task["id"] in [t["id"] for t in listed["items"]]

    # Several messages become a transcript; the raw response names the task.
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "list files"},
        ],
        max_completion_tokens=64,
    )
    completion = raw.parse()
    assert raw.headers["x-openclaw-task-id"] == task_id(completion.id)
    task = claw_get(f"/api/v1/tasks/{raw.headers['x-openclaw-task-id']}")
    assert task["prompt"] == "[system]\nbe brief\n\n[user]\nlist files", task
    assert task["max_tokens"] == 64, task


def stream() -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "stream please"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert all(c.object == "chat.completion.chunk" for c in chunks), chunks
    assert len({c.id for c in chunks}) == 1, "one id for every chunk"
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: stream please", text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"], finishes
    # include_usage: a last chunk with no choices and the usage; the others have none.
    assert chunks[-1].choices == [] and chunks[-1].usage is not None, chunks[-1]
    assert chunks[-1].usage.total_tokens == 16
    assert all(c.usage is None for c in chunks[:-1])
    assert claw_get(f"/api/v1/tasks/{task_id(chunks[0].id)}")["status"] == "completed"

    # Without stream_options, no usage chunk.
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "again"}], stream=True
        )
    )
    assert all(c.choices for c in chunks), chunks
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Echo: again"


def errors() -> None:
    bad = OpenAI(api_key="ocl_not_a_real_token", max_retries=0)
    try:
        bad.models.list()
        raise AssertionError("an unknown token was accepted")
    except openai.AuthenticationError as e:
        assert e.status_code == 401
        assert isinstance(e.body, dict) and set(e.body) == {"message", "type", "param", "code"}, e.body
        assert e.code == "invalid_api_key", e.body
        assert e.type == "authentication_error"
    try:
        client.chat.completions.create(model="gpt-unknown", messages=[{"role": "user", "content": "x"}])
        raise AssertionError("an unknown model was accepted")
    except openai.NotFoundError as e:
        assert e.code == "model_not_found", e.body
    try:
        client.chat.completions.create(model=MODEL, messages=[])
        raise AssertionError("no messages was accepted")
    except openai.BadRequestError as e:
        assert e.type == "invalid_request_error", e.body
        assert e.param == "messages", e.body
    try:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x" * (64 * 1024)}])
        raise AssertionError("a body over the limit was accepted")
    except openai.APIStatusError as e:
        assert e.status_code == 413, e
        assert e.type == "invalid_request_error", e.body


def failures() -> None:
    # The provider refuses this prompt: the task fails, and so does the completion.
    try:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "please fail"}])
        raise AssertionError("a failed task answered a completion")
    except openai.InternalServerError as e:
        assert e.code == "task_failed", e.body
        assert e.type == "server_error", e.body
        assert e.response.headers["x-should-retry"] == "false"
        task = claw_get(f"/api/v1/tasks/{e.response.headers['x-openclaw-task-id']}")
        assert task["status"] == "failed", task
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "please fail"}], stream=True
    )
    try:
        for _ in stream:
            pass
        raise AssertionError("a failed task ended its stream normally")
    except openai.APIError as e:
        assert isinstance(e.body, dict) and e.body["code"] == "task_failed", e.body
    try:
        client.models.retrieve("gpt-unknown")
        raise AssertionError("an unknown model was found")
    except openai.NotFoundError as e:
        assert e.code == "model_not_found", e.body


def disconnect() -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "run forever"}],
        stream=True,
    )
    task = ""
    for chunk in stream:
        task = task_id(chunk.id)
        if chunk.choices and chunk.choices[0].delta.content:
            break  # the task runs and has answered something
    assert claw_get(f"/api/v1/tasks/{task}")["status"] == "running"
    stream.close()
    end = wait_for_end(task)
    assert end.get("status") == "cancelled", end
    row = claw_get(f"/api/v1/tasks/{task}")
    assert row["status"] == "cancelled", row
    assert "disconnected" in (row["error"] or ""), row


SCENARIOS = {"plain": plain, "stream": stream, "errors": errors, "failures": failures, "disconnect": disconnect}

if __name__ == "__main__":
    for name in sys.argv[1:]:
        SCENARIOS[name]()
        print(f"ok {name}")
