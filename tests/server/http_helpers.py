"""Start the real server over streamable HTTP for a test, and speak raw MCP-over-HTTP to it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

INIT: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "0"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    base: str
    proc: subprocess.Popen[bytes]
    audit: Path

    @property
    def port(self) -> int:
        return int(self.base.rsplit(":", 1)[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], deadline_s: float = 60.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # polling interval while waiting for start-up, not a timing assumption
    raise AssertionError(f"server not healthy at {url} within {deadline_s}s")


@contextmanager
def serve_http(tmp_path: Path, env: dict[str, str], *extra: str, port: int | None = None) -> Iterator[Served]:
    port = port or free_port()
    audit = tmp_path / "audit.jsonl"
    args = [
        sys.executable, "-m", "mcp_autoscale", "serve", "--sim-clock", "manual", "--audit", str(audit),
        "--log-level", "warning", "--transport", "http", "--port", str(port), *extra,
    ]  # fmt: skip
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MCP_AUTOSCALE_")}
    proc = subprocess.Popen(args, env={**clean, **env}, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    served = Served(f"http://127.0.0.1:{port}", proc, audit)
    try:
        wait_healthy(f"{served.base}/healthz", proc)
        yield served
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=15)


HTTP = httpx.Client(timeout=30)
"""One keep-alive client for the raw exchanges (a flood of sessions is many requests)."""


def initialize(base: str, headers: dict[str, str]) -> str:
    """Open a session with a raw ``initialize``; returns its session id."""
    r = HTTP.post(f"{base}/mcp", json=INIT, headers={**MCP_HEADERS, **headers})
    assert r.status_code == 200, (r.status_code, r.text)
    sid = r.headers["mcp-session-id"]
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    headers = {**MCP_HEADERS, **headers, "mcp-session-id": sid, "mcp-protocol-version": "2025-11-25"}
    assert HTTP.post(f"{base}/mcp", json=note, headers=headers).status_code == 202
    return sid


def ping(base: str, headers: dict[str, str], sid: str) -> int:
    """The HTTP status of a ``ping`` in session ``sid`` (404 once the session is gone)."""
    body = {"jsonrpc": "2.0", "id": 9, "method": "ping"}
    h = {**MCP_HEADERS, **headers, "mcp-session-id": sid, "mcp-protocol-version": "2025-11-25"}
    return HTTP.post(f"{base}/mcp", json=body, headers=h).status_code
