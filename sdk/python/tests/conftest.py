"""Fixtures: the real ``claw`` binary (target/debug/claw, or $CLAW_BIN) serving a temp
manifests dir on 127.0.0.1:0, stopped (and its dirs removed) at the end of the session.

Tasks run with the ``command`` model provider and the shell script below, so they complete
without any network: the output is "done: <prompt>"; a prompt starting with "slow" prints
"working..." and takes a second, "block" runs until cancelled, "fail" exits 3.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

REPO = Path(__file__).resolve().parents[3]
CLAW = Path(os.environ.get("CLAW_BIN", REPO / "target/debug/claw"))
EVERYTHING = REPO / "tests/mcp/node_modules/.bin/mcp-server-everything"

AGENT = "\n".join(
    [
        "p=$(cat)",
        'case "$p" in',
        '  slow*) printf "working...\\n"; sleep 1 ;;',
        '  block*) printf "blocking\\n"; sleep 60 ;;',
        '  fail*) echo "failed on purpose" >&2; exit 3 ;;',
        "esac",
        'printf "done: %s" "$p"',
    ]
)


def config_yaml(extra: str = "") -> str:
    return "\n".join(
        [
            "apiVersion: openclaw.dev/v1",
            "kind: Config",
            "metadata:",
            "  name: default",
            "spec:",
            "  model:",
            "    provider: command",
            f"    command: [\"sh\", \"-c\", {json.dumps(AGENT)}]",
            "  tasks:",
            "    concurrency: 4",
            extra,
        ]
    )


def claw(*args: str) -> str:
    return subprocess.run([str(CLAW), *args], check=True, capture_output=True, text=True).stdout


@dataclass
class Server:
    url: str
    root: Path
    manifests: Path
    tokens: Dict[str, str]
    process: subprocess.Popen  # type: ignore[type-arg]
    log: List[str] = field(default_factory=list)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def start_server(config: Optional[str] = None, files: Optional[Dict[str, str]] = None, listen: str = "127.0.0.1:0") -> Server:
    if not CLAW.exists():
        raise RuntimeError(f"{CLAW} does not exist: build it first (cargo build), or set CLAW_BIN")
    root = Path(tempfile.mkdtemp(prefix="claw-sdk-py-"))
    manifests = root / "manifests"
    admin = claw("init", str(manifests)).strip()
    tokens = {
        "admin": admin,
        "read": claw("token", "create", "--manifests", str(manifests), "--name", "reader", "--scope", "read").strip(),
        "execute": claw("token", "create", "--manifests", str(manifests), "--name", "runner", "--scope", "execute").strip(),
    }
    (manifests / "configs/default.yaml").write_text(config if config is not None else config_yaml())
    for rel, text in (files or {}).items():
        (manifests / rel).parent.mkdir(parents=True, exist_ok=True)
        (manifests / rel).write_text(text)
    process = subprocess.Popen(
        [str(CLAW), "serve", "--manifests", str(manifests), "--data", str(root / "data"), "--listen", listen, "--debounce-ms", "20"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1", "RUST_LOG": "warn"},
    )
    log: List[str] = []
    found = threading.Event()
    url: List[str] = []

    def drain() -> None:
        # Read to the end, so the server never blocks on a full pipe.
        assert process.stderr is not None
        for line in process.stderr:
            log.append(line)
            del log[:-200]
            m = re.search(r"listening on (http://\S+)", line)
            if m and not found.is_set():
                url.append(m.group(1))
                found.set()
        found.set()

    threading.Thread(target=drain, daemon=True).start()
    if not found.wait(20) or not url:
        process.kill()
        process.wait()
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError("claw serve did not start:\n" + "".join(log))
    return Server(url=url[0], root=root, manifests=manifests, tokens=tokens, process=process, log=log)


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    s = start_server()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"
