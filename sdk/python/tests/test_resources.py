"""Status, skills, config (ETag / If-Match), MCP servers, resources and reconcile against a
real server. The MCP server is the real @modelcontextprotocol/server-everything that
tests/mcp installs (`npm ci` there; sdk/test.sh does it)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import pytest

from conftest import CLAW, EVERYTHING, Server, config_yaml, start_server
from openclaw_client import (
    Client,
    ConflictError,
    PreconditionFailedError,
    UnprocessableEntityError,
)

T = TypeVar("T")


def eventually(what: str, check: Callable[[], T], seconds: float = 15) -> T:
    """Polls the API (every 50 ms) until ``check`` gives a truthy value."""
    end = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not EVERYTHING.exists():
        raise RuntimeError(f"{EVERYTHING} is missing: run `npm ci` in tests/mcp")
    tmp = tmp_path_factory.mktemp("registry")
    skill = tmp / "git-helper"
    skill.mkdir()
    (skill / "SKILL.md").write_text(
        "---\nname: openclaw-skill-git-helper\ndescription: Helps with git\nversion: 1.2.0\n---\n# Git helper\n"
    )
    registry = tmp / "registry"
    subprocess.run([str(CLAW), "skill", "pack", str(skill), "--registry", str(registry)], check=True, capture_output=True)
    s = start_server(
        config=config_yaml(f"  skills:\n    registry: {json.dumps(str(registry))}\n"),
        files={
            "mcp/everything.yaml": "apiVersion: openclaw.dev/v1\nkind: McpServer\nmetadata:\n  name: everything\n"
            f"spec:\n  command: {json.dumps(str(EVERYTHING))}\n  args: [stdio]\n  timeout_seconds: 20\n"
        },
    )
    c = Client(base_url=s.url, token=s.tokens["admin"])
    yield c
    c.close()
    s.stop()


def test_status(env: Client) -> None:
    status = env.status()
    assert status.status in ("ok", "degraded")
    assert status.version.count(".") >= 2
    assert isinstance(status.uptime_seconds, int)
    assert isinstance(status.reconciler, dict)
    assert isinstance(status.tasks, dict)


def test_skills_create_get_list_iterate_delete(env: Client) -> None:
    created = env.skills.create("openclaw-skill-git-helper", version="latest")
    assert (created.name, created.version) == ("openclaw-skill-git-helper", "latest")

    def installed() -> Any:
        s = env.skills.get("openclaw-skill-git-helper")
        return s if s.installed and s.status and s.status.ready else None

    ready = eventually("the skill to be installed", installed)
    assert ready.resolved_version == "1.2.0"
    assert [s.name for s in env.skills.list().items] == ["openclaw-skill-git-helper"]
    assert [s.name for s in env.skills.iterate()] == ["openclaw-skill-git-helper"]
    with pytest.raises(ConflictError) as e:
        env.skills.create("openclaw-skill-git-helper")
    assert e.value.code == "already_exists"
    assert env.skills.delete("openclaw-skill-git-helper") is None
    assert env.skills.list().total == 0


def test_an_unknown_skill_is_422_and_nothing_is_written(env: Client) -> None:
    with pytest.raises(UnprocessableEntityError) as e:
        env.skills.create("openclaw-skill-nope", version="latest")
    assert e.value.code == "skill_unresolvable"
    assert e.value.details[0]["field"] == "version"
    assert env.skills.list().total == 0


def test_config_get_and_patch_with_if_match(env: Client) -> None:
    current = env.config.get()
    assert current.config["model"]["provider"] == "command"
    assert current.etag and len(current.etag) == 66
    patched = env.config.patch({"tasks": {"concurrency": 3}}, if_match=current.etag)
    assert patched.config["tasks"]["concurrency"] == 3
    assert patched.etag != current.etag
    assert env.config.get().etag == patched.etag


def test_a_stale_if_match_is_412_and_changes_nothing(env: Client) -> None:
    stale = env.config.get().etag
    env.config.patch({"tasks": {"concurrency": 5}})
    with pytest.raises(PreconditionFailedError) as e:
        env.config.patch({"tasks": {"concurrency": 9}}, if_match=stale)
    assert (e.value.status, e.value.code) == (412, "precondition_failed")
    assert env.config.get().config["tasks"]["concurrency"] == 5


def test_mcp_servers_list_get_tools(env: Client) -> None:
    def connected() -> Any:
        s = env.mcp_servers.get("everything")
        return s if s.status == "connected" else None

    server = eventually("server-everything to connect", connected, 30)
    assert server.transport == "stdio"
    assert server.tools > 0
    assert [s.name for s in env.mcp_servers.list().items] == ["everything"]
    assert [s.name for s in env.mcp_servers.iterate()] == ["everything"]
    tools = env.mcp_servers.tools("everything")
    assert tools.server == "everything"
    assert tools.total == len(tools.items)
    assert any(t["name"] == "echo" for t in tools.items)


def test_resources_and_reconcile(env: Client) -> None:
    tokens = env.resources.list(kind="Token")
    assert sorted(r.name for r in tokens.items) == ["admin", "reader", "runner"]
    assert all(r.kind == "Token" and r.ready for r in tokens.items)
    names = [f"{r.kind}/{r.name}" for r in env.resources.iterate(page_size=2)]
    assert "Config/default" in names and "McpServer/everything" in names
    assert len(set(names)) == len(names) == env.resources.list().total
    report = env.reconcile()
    assert isinstance(report.revision, str) and report.revision
    assert report.errors == 0
