"""The real server process over stdio and over streamable HTTP, driven by the MCP SDK's client."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import httpx2
import pytest
from http_helpers import free_port, wait_healthy
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

pytestmark = pytest.mark.anyio

FIVE_TOOLS = {"get_slo_snapshot", "patch_hpa", "scale_deployment", "request_gpu_nodes", "estimate_cost"}


def serve_args(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "-m",
        "mcp_autoscale",
        "serve",
        "--sim-clock",
        "manual",
        "--audit",
        str(tmp_path / "audit.jsonl"),
        "--log-level",
        "warning",
        *extra,
    ]


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    port = free_port()
    token = "test-token-123"
    env = {**os.environ, "MCP_AUTOSCALE_HTTP_TOKEN": token}
    proc = subprocess.Popen(
        [sys.executable, *serve_args(tmp_path, "--transport", "http", "--port", str(port))],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(f"{base}/healthz", proc)
        yield base, token
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def exercise_everything(c: Client, caller_marker: str) -> None:
    """What issue #3 asks of every transport: list tools with schemas, call each of the five tools, read
    each resource kind (static, template, runbook), get the prompt."""
    tools = {t.name: t for t in (await c.list_tools()).tools}
    assert set(tools) >= FIVE_TOOLS
    assert all(tools[n].input_schema and tools[n].output_schema for n in FIVE_TOOLS)
    dev = {"namespace": "dev", "deployment": "granite-8b"}
    calls: list[tuple[str, dict[str, object]]] = [
        ("get_slo_snapshot", {"namespace": "dev"}),
        ("estimate_cost", {}),
        ("scale_deployment", {**dev, "replicas": 2, "rationale": f"{caller_marker} scale", "dry_run": True}),
        ("patch_hpa", {"namespace": "chat", "deployment": "llama-8b", "max_replicas": 14,
                       "rationale": f"{caller_marker} bounds", "dry_run": True}),
        ("request_gpu_nodes", {"node_pool": "gpu-l4", "gpus": 1, "rationale": f"{caller_marker} gpus",
                               "dry_run": True}),
    ]  # fmt: skip
    for name, args in calls:
        r = await c.call_tool(name, args)
        assert not r.is_error, (name, r.content)
        assert r.structured_content, name
    for uri in (
        "autoscale://fleet/snapshot",
        "autoscale://cluster/state",
        "autoscale://pools/dev/granite-8b/metrics",
        "autoscale://runbooks/ttft-breach",
        "autoscale://policy/active",
        "autoscale://audit/recent",
    ):
        contents = (await c.read_resource(uri)).contents
        assert contents and contents[0].text, uri  # type: ignore[union-attr]
    recent = (await c.read_resource("autoscale://audit/recent")).contents[0].text  # type: ignore[union-attr]
    assert f"{caller_marker} gpus" in recent
    prompt = await c.get_prompt("diagnose_slo_breach", dev)
    assert prompt.messages


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_stdio_end_to_end(tmp_path: Path, mode: str) -> None:
    params = StdioServerParameters(command=sys.executable, args=serve_args(tmp_path))
    async with Client(params, mode=mode) as c:  # type: ignore[arg-type]
        names = {t.name for t in (await c.list_tools()).tools}
        assert names >= FIVE_TOOLS
        snap = await c.call_tool("get_slo_snapshot", {"namespace": "dev"})
        assert snap.structured_content["pools"][0]["name"] == "granite-8b"  # type: ignore[index]
        r = await c.call_tool(
            "scale_deployment",
            {
                "namespace": "dev",
                "deployment": "granite-8b",
                "replicas": 2,
                "rationale": "stdio test",
                "dry_run": True,
            },
        )
        assert r.structured_content["status"] == "dry_run"  # type: ignore[index]
        bad = await c.call_tool(
            "scale_deployment",
            {
                "namespace": "dev",
                "deployment": "granite-8b",
                "replicas": -3,
                "rationale": "x",
                "dry_run": False,
            },
        )
        assert bad.is_error
        res = await c.read_resource("autoscale://audit/recent")
        assert "stdio test" in res.contents[0].text  # type: ignore[union-attr]
        prompt = await c.get_prompt("diagnose_slo_breach", {"namespace": "dev", "deployment": "granite-8b"})
        assert prompt.messages


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_http_end_to_end_with_token(http_server: tuple[str, str], mode: str) -> None:
    base, token = http_server
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
        Client(streamable_http_client(f"{base}/mcp", http_client=http), mode=mode) as c,  # type: ignore[arg-type]
    ):
        names = {t.name for t in (await c.list_tools()).tools}
        assert names >= FIVE_TOOLS
        await exercise_everything(c, "http")
        r = await c.call_tool(
            "scale_deployment",
            {
                "namespace": "dev",
                "deployment": "granite-8b",
                "replicas": 2,
                "rationale": "http",
                "dry_run": True,
            },
        )
        assert r.structured_content["status"] == "dry_run"  # type: ignore[index]
        recent = (await c.read_resource("autoscale://audit/recent")).contents[0].text  # type: ignore[union-attr]
        assert "http:token-" in recent


INIT = {
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


def test_http_rejects_missing_or_wrong_token(http_server: tuple[str, str]) -> None:
    base, _ = http_server
    r = httpx.post(f"{base}/mcp", json=INIT, headers=MCP_HEADERS)
    assert r.status_code == 401 and "bearer" in r.headers["www-authenticate"].lower()
    r = httpx.post(f"{base}/mcp", json=INIT, headers={**MCP_HEADERS, "Authorization": "Bearer wrong"})
    assert r.status_code == 401


def test_http_rejects_foreign_origin_and_host(http_server: tuple[str, str]) -> None:
    base, token = http_server
    auth = {**MCP_HEADERS, "Authorization": f"Bearer {token}"}
    ok = httpx.post(f"{base}/mcp", json=INIT, headers=auth)
    assert ok.status_code == 200
    evil_origin = httpx.post(f"{base}/mcp", json=INIT, headers={**auth, "Origin": "http://evil.example"})
    assert evil_origin.status_code == 403
    evil_host = httpx.post(f"{base}/mcp", json=INIT, headers={**auth, "Host": "evil.example"})
    assert evil_host.status_code == 421


def test_http_beyond_loopback_requires_a_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MCP_AUTOSCALE_HTTP_TOKEN"}
    proc = subprocess.run(
        [
            sys.executable,
            *serve_args(tmp_path, "--transport", "http", "--host", "0.0.0.0", "--port", str(free_port())),
        ],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert b"MCP_AUTOSCALE_HTTP_TOKEN" in proc.stderr


def test_invalid_policy_stops_serve_with_file_line_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nrules:\n  - name: r\n    replicas:\n      min: -5\n")
    proc = subprocess.run(
        [sys.executable, *serve_args(tmp_path, "--policy", str(bad))],
        capture_output=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2
    err = proc.stderr.decode()
    assert f"{bad}:" in err and "min" in err
    line = err.split(f"{bad}:")[1].split(":")[0]
    assert line.isdigit() and int(line) in (4, 5), err
