"""`mcp-autoscale config claude-desktop` prints a ready claude_desktop_config.json entry (and no secrets)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from mcp_autoscale.cli import app


def test_claude_desktop_entry_defaults_to_a_dry_run_on_the_simulator() -> None:
    out = CliRunner().invoke(app, ["config", "claude-desktop"])
    assert out.exit_code == 0, out.output
    entry = json.loads(out.stdout)["mcpServers"]["autoscale"]
    assert entry["command"].endswith("mcp-autoscale")
    assert entry["args"] == ["serve", "--backend", "sim", "--dry-run"]
    assert entry["env"] == {}


def test_claude_desktop_entry_for_a_cluster(tmp_path: Path) -> None:
    policy = tmp_path / "prod.yaml"
    policy.write_text("version: 1\n")
    out = CliRunner(env={"MCP_AUTOSCALE_HTTP_TOKEN": "s3cret-should-not-leak"}).invoke(
        app,
        ["config", "claude-desktop", "--name", "prod", "--backend", "kubernetes", "--no-dry-run",
         "--policy", str(policy), "--prometheus", "http://prometheus:9090"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    entry = json.loads(out.stdout)["mcpServers"]["prod"]
    assert entry["args"] == [
        "serve", "--backend", "kubernetes", "--policy", str(policy.resolve()), "--prometheus", "http://prometheus:9090",
    ]  # fmt: skip
    assert "s3cret" not in out.stdout
