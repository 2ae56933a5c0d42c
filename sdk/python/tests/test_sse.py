"""The event-stream parser on its own (httpx splits the lines; the parser makes events)."""

from __future__ import annotations

from typing import List

from openclaw_client import TaskEvent
from openclaw_client._core import SseParser


def parse(lines: List[str]) -> List[TaskEvent]:
    parser = SseParser()
    return [e for e in (parser.feed(line) for line in lines) if e is not None]


def test_events_comments_multiline_data_and_json() -> None:
    lines = [
        ": keep-alive",
        "event: status",
        'data: {"status":"running"}',
        "",
        "event: output",
        "data: line one",
        "data: line two",
        "",
        "data:no space",
        "",
        "event: ignored-without-data",
        "",
        'event: status\r',
        'data: {"status":"completed"}\r',
        "\r",
    ]
    assert parse(lines) == [
        TaskEvent("status", {"status": "running"}),
        TaskEvent("output", "line one\nline two"),
        TaskEvent("message", "no space"),
        TaskEvent("status", {"status": "completed"}),
    ]


def test_an_unterminated_event_is_not_dispatched() -> None:
    assert parse(["data: cut off"]) == []
