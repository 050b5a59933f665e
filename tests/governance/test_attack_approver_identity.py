"""Issue 13, item 8: the approver is who the operating system says, not what `--as` or `$USER` claims."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mcp_autoscale.actions import action_from_call
from mcp_autoscale.app import build_app
from mcp_autoscale.cli import app as cli
from mcp_autoscale.config import Settings
from mcp_autoscale.identity import local_user, os_user

POLICY = """
version: 1
tools: [scale_deployment]
namespaces: [batch]
{extra}
rules:
  - name: batch
    match: {{namespaces: [batch]}}
    approval: {{via: [cli], approvers: [carol, {me}]}}
"""


def setup(tmp_path: Path, extra: str = "") -> tuple[dict[str, str], str]:
    pol = tmp_path / "policy.yaml"
    pol.write_text(POLICY.format(extra=extra, me=os_user()))
    env = {
        "MCP_AUTOSCALE_POLICY_FILE": str(pol),
        "MCP_AUTOSCALE_AUDIT_FILE": str(tmp_path / "audit.jsonl"),
        "MCP_AUTOSCALE_STATE_DIR": str(tmp_path / "state"),
        "MCP_AUTOSCALE_SIM_CLOCK": "manual",
        "MCP_AUTOSCALE_BACKEND": "sim",
    }
    gate = build_app(
        Settings(policy_file=pol, audit_file=tmp_path / "audit.jsonl", state_dir=tmp_path / "state")
    ).gate
    call = {"namespace": "batch", "deployment": "qwen-7b", "replicas": 3}
    res = gate.submit(action_from_call("scale_deployment", call, "burst"))
    assert res.proposal_id
    return env, res.proposal_id


def proposal(env: dict[str, str], pid: str) -> dict[str, object]:
    data: dict[str, object] = json.loads(
        (Path(env["MCP_AUTOSCALE_STATE_DIR"]) / "proposals" / f"{pid}.json").read_text()
    )
    return data


def test_as_is_refused_without_delegation(tmp_path: Path) -> None:
    env, pid = setup(tmp_path)
    res = CliRunner(env=env).invoke(cli, ["approve", pid, "--defer", "--as", "carol"])
    assert res.exit_code == 1 and "does not allow delegated approvals" in res.stderr
    assert proposal(env, pid)["status"] == "pending"
    res = CliRunner(env=env).invoke(cli, ["reject", pid, "--reason", "no", "--as", "carol"])
    assert res.exit_code == 1 and proposal(env, pid)["status"] == "pending"


def test_environment_cannot_rename_the_approver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env, pid = setup(tmp_path)
    monkeypatch.setenv("USER", "carol")
    monkeypatch.setenv("LOGNAME", "carol")
    assert local_user() == f"local:{os_user()}"
    res = CliRunner(env={**env, "USER": "carol", "LOGNAME": "carol"}).invoke(cli, ["approve", pid, "--defer"])
    assert res.exit_code == 0, res.output
    assert proposal(env, pid)["decided_by"] == f"cli:{os_user()}"


def test_delegation_where_the_policy_allows_it_names_both(tmp_path: Path) -> None:
    env, pid = setup(tmp_path, "approvals: {allow_delegation: true}")
    res = CliRunner(env=env).invoke(cli, ["approve", pid, "--defer", "--as", "carol"])
    assert res.exit_code == 0, res.output
    assert proposal(env, pid)["decided_by"] == f"cli:carol (delegated by cli:{os_user()})"


def test_delegation_is_still_checked_against_the_approvers(tmp_path: Path) -> None:
    env, pid = setup(tmp_path, "approvals: {allow_delegation: true}")
    res = CliRunner(env=env).invoke(cli, ["approve", pid, "--defer", "--as", "mallory"])
    assert res.exit_code == 1 and "mallory may not approve" in res.stderr


def test_cli_approval_is_bound_to_the_digest_shown(tmp_path: Path) -> None:
    """Item 1 at the terminal: `pending` shows the command with the digest; another digest approves nothing."""
    env, pid = setup(tmp_path)
    runner = CliRunner(env=env)
    listed = runner.invoke(cli, ["pending"]).stdout
    digest = str(proposal(env, pid)["digest"])
    assert f"mcp-autoscale approve {pid} --digest {digest[:12]}" in listed
    wrong = runner.invoke(cli, ["approve", pid, "--defer", "--digest", "0" * 12])
    assert wrong.exit_code == 1 and "not the action that was shown" in wrong.stderr
    short = runner.invoke(cli, ["approve", pid, "--defer", "--digest", digest[:4]])
    assert short.exit_code == 1 and proposal(env, pid)["status"] == "pending"
    ok = runner.invoke(cli, ["approve", pid, "--defer", "--digest", digest[:12]])
    assert ok.exit_code == 0, ok.output
    assert proposal(env, pid)["status"] == "approved"
