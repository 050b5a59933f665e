"""Approval flow through the CLI (`pending`, `approve`, `reject`, `rollback`) on the simulated fleet."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mcp_autoscale.actions import action_from_call
from mcp_autoscale.app import build_app
from mcp_autoscale.audit import verify_file
from mcp_autoscale.cli import app as cli
from mcp_autoscale.config import Settings
from mcp_autoscale.models import ActionStatus

POLICY = """
version: 1
name: cli-approvals
tools: [scale_deployment]
namespaces: [batch, dev]
approvals: {allow_delegation: true}
rules:
  - name: batch
    match: {namespaces: [batch]}
    replicas: {min: 1, max: 8}
    max_step: 4
  - name: batch-scale-in
    effect: limit
    reason: scale-in is reviewed
    match: {namespaces: [batch]}
    approval: {when: scale_in, via: [cli]}
  - name: dev
    match: {namespaces: [dev]}
    replicas: {min: 0, max: 4}
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    pol = tmp_path / "policy.yaml"
    pol.write_text(POLICY)
    return {
        "MCP_AUTOSCALE_POLICY_FILE": str(pol),
        "MCP_AUTOSCALE_AUDIT_FILE": str(tmp_path / "audit.jsonl"),
        "MCP_AUTOSCALE_STATE_DIR": str(tmp_path / "state"),
        "MCP_AUTOSCALE_SIM_CLOCK": "manual",
        "MCP_AUTOSCALE_BACKEND": "sim",
    }


def propose(env: dict[str, str], replicas: int = 1) -> str:
    settings = Settings(
        policy_file=Path(env["MCP_AUTOSCALE_POLICY_FILE"]),
        audit_file=Path(env["MCP_AUTOSCALE_AUDIT_FILE"]),
        state_dir=Path(env["MCP_AUTOSCALE_STATE_DIR"]),
        sim_clock="manual",
    )
    gate = build_app(settings).gate
    action = action_from_call(
        "scale_deployment",
        {"namespace": "batch", "deployment": "qwen-7b", "replicas": replicas},
        "idle at night",
    )
    res = gate.submit(action)
    assert res.status == ActionStatus.PENDING_APPROVAL and res.proposal_id
    return res.proposal_id


def test_pending_then_approve_from_the_terminal(env: dict[str, str]) -> None:
    runner = CliRunner(env=env)
    pid = propose(env)
    listed = runner.invoke(cli, ["pending"])
    assert listed.exit_code == 0, listed.output
    assert pid in listed.stdout and "scale_deployment(replicas=1) on batch/qwen-7b" in listed.stdout
    assert (
        "why (the agent's words, unverified) «idle at night»" in listed.stdout
        and "approve via cli" in listed.stdout
    )
    ok = runner.invoke(cli, ["approve", pid, "--as", "carol"])
    assert ok.exit_code == 0, ok.output
    # On the simulator the fleet lives inside the running server: the CLI records the approval and the
    # server (here: a fresh app on the same state dir, as `serve` would be) runs it on its next call.
    assert "approved by cli:carol" in ok.stdout and "server" in ok.stdout
    server = build_app(
        Settings(
            policy_file=Path(env["MCP_AUTOSCALE_POLICY_FILE"]),
            audit_file=Path(env["MCP_AUTOSCALE_AUDIT_FILE"]),
            state_dir=Path(env["MCP_AUTOSCALE_STATE_DIR"]),
            sim_clock="manual",
        )
    )
    [result] = server.run_approved()
    assert result.status == ActionStatus.APPLIED and "2 -> 1" in result.message
    records = [line for line in Path(env["MCP_AUTOSCALE_AUDIT_FILE"]).read_text().splitlines()]
    assert '"approver":"cli:carol (delegated by cli:' in records[-1] and '"status":"applied"' in records[-1]
    assert verify_file(Path(env["MCP_AUTOSCALE_AUDIT_FILE"])).ok
    again = runner.invoke(cli, ["approve", pid])
    assert again.exit_code == 2 and "already executed" in again.stderr
    assert runner.invoke(cli, ["pending"]).stdout.strip() == "no pending proposals"


def test_reject_from_the_terminal(env: dict[str, str]) -> None:
    runner = CliRunner(env=env)
    pid = propose(env)
    res = runner.invoke(cli, ["reject", pid, "--reason", "batch backlog tonight", "--as", "dave"])
    assert res.exit_code == 0 and res.stdout.startswith("rejected:") and "batch backlog tonight" in res.stdout
    assert runner.invoke(cli, ["approve", pid]).exit_code == 2


def test_approve_defer_records_without_running(env: dict[str, str]) -> None:
    runner = CliRunner(env=env)
    pid = propose(env)
    res = runner.invoke(cli, ["approve", pid, "--defer", "--as", "erin"])
    assert res.exit_code == 0 and "approved by cli:erin" in res.stdout
    listed = runner.invoke(cli, ["pending", "--json"])
    assert '"status": "approved"' in listed.stdout


def test_unknown_proposal_exit_code(env: dict[str, str]) -> None:
    res = CliRunner(env=env).invoke(cli, ["approve", "prop-000000000000"])
    assert res.exit_code == 1 and "no proposal" in res.stderr


def test_rollback_from_the_terminal(env: dict[str, str]) -> None:
    runner = CliRunner(env=env)
    settings = Settings(
        policy_file=Path(env["MCP_AUTOSCALE_POLICY_FILE"]),
        audit_file=Path(env["MCP_AUTOSCALE_AUDIT_FILE"]),
        state_dir=Path(env["MCP_AUTOSCALE_STATE_DIR"]),
        sim_clock="manual",
    )
    gate = build_app(settings).gate
    up = gate.submit(
        action_from_call(
            "scale_deployment", {"namespace": "dev", "deployment": "granite-8b", "replicas": 2}, "x"
        )
    )
    assert up.status == ActionStatus.APPLIED
    before = Path(env["MCP_AUTOSCALE_AUDIT_FILE"]).read_text()
    # The simulated fleet that was changed lives in that app (a server's memory): a fresh simulator in
    # the CLI is another fleet, so the CLI refuses instead of "applying" a no-op there (issue 19).
    for extra in ([], ["--dry-run"]):
        res = runner.invoke(cli, ["rollback", up.audit_id or "", "--rationale", "test over", *extra])
        assert res.exit_code == 2, res.output
        assert "sim backend" in res.stderr and "rollback_action" in res.stderr and up.audit_id in res.stderr
    assert Path(env["MCP_AUTOSCALE_AUDIT_FILE"]).read_text() == before  # nothing recorded
    # the server that owns the fleet does it, through the same gate
    back = gate.rollback(up.audit_id or "", "test over", caller="cli:test", dry_run=False)
    assert back.status == ActionStatus.APPLIED and "2 -> 1" in back.message
    # and a no-op is never recorded as applied
    again = gate.rollback(up.audit_id or "", "test over", caller="cli:test", dry_run=False)
    assert again.status == ActionStatus.NO_CHANGE and "the cluster is unchanged" in again.message
    last = Path(env["MCP_AUTOSCALE_AUDIT_FILE"]).read_text().splitlines()[-1]
    assert '"status":"no_change"' in last and '"inverse":null' in last


def test_second_approve_and_another_audit_log_are_refused(env: dict[str, str], tmp_path: Path) -> None:
    runner = CliRunner(env=env)
    pid = propose(env)
    other = runner.invoke(cli, ["approve", pid, "--as", "erin", "--audit", str(tmp_path / "other.jsonl")])
    assert other.exit_code == 2 and "another audit log" in other.stderr and "--audit" in other.stderr
    first = runner.invoke(cli, ["approve", pid, "--as", "erin"])
    assert first.exit_code == 0 and "nothing has changed yet" in first.stdout
    assert "the running server executes it" not in first.stdout and "if none is running" in first.stdout
    second = runner.invoke(cli, ["approve", pid, "--as", "frank"])
    assert second.exit_code == 2 and "already approved by cli:erin" in second.stderr
    rejected = runner.invoke(cli, ["reject", pid, "--reason", "x", "--audit", str(tmp_path / "b.jsonl")])
    assert rejected.exit_code == 2 and "another audit log" in rejected.stderr
