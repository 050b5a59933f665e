"""A dead Prometheus gives a partial snapshot that says what is missing, quickly, and the server keeps serving."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest
from mcp import Client

from mcp_autoscale.app import build_app
from mcp_autoscale.config import Settings
from mcp_autoscale.server import create_server

pytestmark = pytest.mark.anyio


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: nothing listens there


async def test_snapshot_is_partial_and_names_the_failure(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(prometheus_url=f"http://127.0.0.1:{closed_port()}", prometheus_timeout_s=2.0)
    app = build_app(settings)
    async with Client(create_server(app)) as c:
        start = time.monotonic()
        r = await c.call_tool("get_slo_snapshot", {})
        elapsed = time.monotonic() - start
        assert not r.is_error, r.content
        snap = r.structured_content
        assert snap is not None
        assert elapsed < settings.prometheus_timeout_s + 3
        assert snap["partial"] is True and snap["signal_source"] == "prometheus"
        pool = next(p for p in snap["pools"] if p["name"] == "llama-8b")
        assert pool["signals"].get("ttft_p90_s") is None  # missing (omitted, never zero)
        assert "unreachable" in pool["signals"]["missing"]["ttft_p90_s"]
        assert pool["slo"] == "unknown"
        assert pool["replicas"]["desired"] >= 1  # cluster state still there
        # a mutating call still works through the gate on the cluster side
        again = await c.call_tool("list_pools", {})
        assert not again.is_error
