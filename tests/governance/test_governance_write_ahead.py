"""Write-ahead audit: no intent record, no write; an intent left open by a crash is reconciled at start-up
and counts for cooldowns meanwhile; audit records are rate-limited per caller."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from governance_fakes import Clock, FakeBackend, FileBackend, snapshot_for

from mcp_autoscale.actions import Gate, action_from_call
from mcp_autoscale.audit import AuditLog, verify_file
from mcp_autoscale.config import Settings
from mcp_autoscale.errors import AuditUnavailable, NotFound, RateLimited
from mcp_autoscale.models import ActionStatus
from mcp_autoscale.policy import parse_policy
from mcp_autoscale.ratelimit import TokenBucket

HERE = Path(__file__).resolve().parent

POLICY = """
version: 1
tools: [scale_deployment]
namespaces: [dev, batch]
rules:
  - name: pools
    match: {namespaces: [dev, batch]}
    replicas: {min: 0, max: 8}
    cooldown_s: 300
"""


def scale(replicas: int, caller: str = "alice", ns: str = "dev", name: str = "granite-8b", **kw: Any) -> Any:
    args = {"namespace": ns, "deployment": name, "replicas": replicas}
    return action_from_call("scale_deployment", args, "queue is growing", caller=caller, **kw)


def failing_write(monkeypatch: pytest.MonkeyPatch, when: Callable[[bytes], bool]) -> None:
    """The disk is full for the records ``when`` picks (the real ``os.write`` of the audit log fails)."""
    real = os.write

    def write(fd: int, data: bytes) -> int:
        if when(bytes(data)):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    monkeypatch.setattr("mcp_autoscale.audit.log.os.write", write)


def test_applied_change_is_written_ahead(make_gate: Callable[..., Gate], backend: FakeBackend) -> None:
    gate = make_gate(POLICY)
    res = gate.submit(scale(3))
    assert res.status == ActionStatus.APPLIED
    intent, outcome = gate.audit.records(intents=True)
    assert intent.status == ActionStatus.INTENT and outcome.intent_id == intent.id
    assert intent.inverse == outcome.inverse and intent.seq + 1 == outcome.seq
    assert gate.audit.records() == [outcome]  # one record per decision in the trail
    assert gate.audit.open_intents() == []
    dry = gate.submit(scale(4, ns="batch", name="qwen-7b", dry_run=True))
    assert dry.status == ActionStatus.DRY_RUN
    assert [r.status for r in gate.audit.records(intents=True)][2:] == [ActionStatus.DRY_RUN]  # no intent
    assert verify_file(gate.audit.path).ok


def test_intent_append_failure_means_no_write(
    make_gate: Callable[..., Gate], backend: FakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = make_gate(POLICY)
    failing_write(monkeypatch, lambda line: b'"status":"intent"' in line)
    with pytest.raises(AuditUnavailable, match=r"could not be written.*nothing was changed"):
        gate.submit(scale(3))
    assert backend.writes == [] and backend.pools["dev/granite-8b"].desired_replicas == 1
    assert gate.audit.records(intents=True) == []


def test_outcome_append_failure_keeps_the_intent_counting(
    make_gate: Callable[..., Gate], backend: FakeBackend, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = make_gate(POLICY)
    failing_write(monkeypatch, lambda line: b'"status":"applied"' in line)
    res = gate.submit(scale(3))
    assert res.status == ActionStatus.APPLIED and "could not be written" in res.message
    assert backend.pools["dev/granite-8b"].desired_replicas == 3
    (intent,) = gate.audit.open_intents()
    assert res.audit_id == intent.id
    monkeypatch.undo()
    clock.advance(60)
    again = gate.submit(scale(4))  # the open intent counts as applied: the cooldown holds (fail closed)
    assert again.status == ActionStatus.DENIED and f"audit {intent.id}" in again.message
    (rec,) = make_gate(POLICY).reconcile()  # the next start-up settles it from the live object
    assert rec.status == ActionStatus.RECONCILED and rec.intent_id == intent.id
    assert "shows replicas=3" in rec.message and "was applied" in rec.message and rec.counts_as_applied
    assert gate.audit.open_intents() == [] and verify_file(gate.audit.path).ok
    clock.advance(600)
    undo = gate.rollback(rec.id, "the crash hid it; undo", caller="alice", dry_run=True)
    assert undo.status == ActionStatus.DRY_RUN and "3 -> 1" in undo.message  # the stored inverse


def test_crash_before_the_write_reconciles_as_not_applied(
    make_gate: Callable[..., Gate], backend: FakeBackend, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = make_gate(POLICY)

    def crash(*a: Any, **kw: Any) -> None:
        raise KeyboardInterrupt  # the process stops between the intent and the write

    monkeypatch.setattr(backend, "scale_deployment", crash)
    with pytest.raises(KeyboardInterrupt):
        gate.submit(scale(3))
    monkeypatch.undo()
    (intent,) = gate.audit.open_intents()
    (rec,) = make_gate(POLICY).reconcile()
    assert rec.intent_id == intent.id
    assert "shows replicas=1" in rec.message and "not applied" in rec.message
    assert rec.changes == [] and not rec.counts_as_applied
    clock.advance(1)
    assert gate.submit(scale(3)).status == ActionStatus.APPLIED  # no cooldown from a change never made


CRASHER = """
import os, sys, pathlib
sys.path.insert(0, {here!r})
from governance_fakes import FileBackend, snapshot_for
from mcp_autoscale.actions import Gate, action_from_call
from mcp_autoscale.audit import AuditLog
from mcp_autoscale.config import Settings
from mcp_autoscale.policy import parse_policy
base = pathlib.Path(sys.argv[1])

class Crashing(FileBackend):
    def scale_deployment(self, ref, replicas, *, dry_run):
        out = super().scale_deployment(ref, replicas, dry_run=dry_run)
        os._exit(9)  # killed after the cluster write, before the outcome record

backend = Crashing(base / "cluster.json")
gate = Gate(backend=backend, policy=parse_policy(sys.argv[2], "<t>"), audit=AuditLog(base / "audit.jsonl"),
            settings=Settings(backend="sim", state_dir=base / "state"),
            evidence=lambda ref: snapshot_for(backend.get_pool(ref)))
gate.submit(action_from_call("scale_deployment", {{"namespace": "batch", "deployment": "qwen-7b",
            "replicas": 5}}, "crash test", caller="agent"))
"""


def test_crash_after_the_write_is_reconciled_at_start_up(tmp_path: Path) -> None:
    FileBackend(tmp_path / "cluster.json")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-c", CRASHER.format(here=str(HERE)), str(tmp_path), POLICY],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 9, proc.stderr.decode()[-2000:]
    audit = AuditLog(tmp_path / "audit.jsonl")
    (intent,) = audit.open_intents()
    backend = FileBackend(tmp_path / "cluster.json")
    gate = Gate(
        backend=backend,
        policy=parse_policy(POLICY, "<t>"),
        audit=audit,
        settings=Settings(backend="sim", state_dir=tmp_path / "state"),
        evidence=lambda ref: snapshot_for(backend.get_pool(ref)),
    )
    before = gate.submit(scale(3, ns="batch", name="qwen-7b"))  # open intent: cooldown holds
    assert before.status == ActionStatus.DENIED and intent.id in before.message
    (rec,) = gate.reconcile()
    assert rec.intent_id == intent.id and "shows replicas=5" in rec.message and rec.counts_as_applied
    assert gate.reconcile() == [] and verify_file(tmp_path / "audit.jsonl").ok


def test_build_app_reconciles_at_start_up(tmp_path: Path) -> None:
    from mcp_autoscale.app import build_app

    settings = Settings(backend="sim", audit_file=tmp_path / "audit.jsonl", state_dir=tmp_path / "state")
    app = build_app(settings)
    pool = app.backend.list_pools()[0]
    app.audit.append(
        action_id="act-crashed",
        tool="scale_deployment",
        target=pool.ref.key,
        arguments={"namespace": pool.ref.namespace, "deployment": pool.ref.name, "replicas": 99},
        rationale="left open by a crash",
        caller="agent",
        dry_run=False,
        verdict={"decision": "allow"},
        status=ActionStatus.INTENT,
    )
    again = build_app(settings)
    last = again.audit.records()[-1]
    assert last.status == ActionStatus.RECONCILED and "not applied" in last.message
    assert again.audit.open_intents() == []


def test_rate_limit_per_caller_refuses_and_records_nothing(
    make_gate: Callable[..., Gate], backend: FakeBackend
) -> None:
    now = [0.0]
    gate = make_gate(POLICY, rate_limit=TokenBucket(2.0, 3, clock=lambda: now[0]))
    for _ in range(3):
        assert gate.submit(scale(2, dry_run=True)).status == ActionStatus.DRY_RUN
    with pytest.raises(
        RateLimited, match=r"rate limited: caller alice .*nothing was done or recorded.*0\.5 s"
    ):
        gate.submit(scale(2, dry_run=True))
    assert len(gate.audit.records()) == 3
    assert gate.submit(scale(2, caller="bob", dry_run=True)).status == ActionStatus.DRY_RUN  # per caller
    now[0] += 0.5
    assert gate.submit(scale(2, dry_run=True)).status == ActionStatus.DRY_RUN
    assert len(gate.audit.records()) == 5


def test_rate_limit_is_a_tool_error_over_mcp(tmp_path: Path) -> None:
    import anyio
    from mcp import Client

    from mcp_autoscale.app import build_app
    from mcp_autoscale.server import create_server

    settings = Settings(
        backend="sim",
        audit_file=tmp_path / "audit.jsonl",
        state_dir=tmp_path / "state",
        audit_rate_per_s=0.01,
        audit_burst=2,
    )
    app = build_app(settings)
    pool = app.backend.list_pools()[0]
    args = {
        "namespace": pool.ref.namespace,
        "deployment": pool.ref.name,
        "replicas": pool.desired_replicas,
        "rationale": "check",
        "dry_run": True,
    }

    async def run() -> list[Any]:
        async with Client(create_server(app)) as client:
            return [await client.call_tool("scale_deployment", args) for _ in range(3)]

    results = anyio.run(run)
    assert [r.is_error for r in results] == [False, False, True]
    assert "rate limited" in results[2].content[0].text
    assert len(app.audit.records()) == 2


def test_bogus_rollback_id_does_not_reveal_the_audit_path(
    make_gate: Callable[..., Gate], tmp_path: Path
) -> None:
    gate = make_gate(POLICY)
    with pytest.raises(NotFound) as err:
        gate.rollback("aud-000042-deadbeef", "undo", caller="alice", dry_run=True)
    assert str(tmp_path) not in str(err.value) and "audit.jsonl" not in str(err.value)


def test_empty_hmac_key_is_a_start_up_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from mcp_autoscale.cli import app
    from mcp_autoscale.commands._common import build_settings
    from mcp_autoscale.errors import InvalidInput

    monkeypatch.setenv("MCP_AUTOSCALE_AUDIT_HMAC_KEY", "")
    with pytest.raises(InvalidInput, match="HMAC_KEY is set but empty"):
        build_settings()
    res = CliRunner().invoke(app, ["pending"])  # any command that builds the settings
    assert res.exit_code == 2 and "set but empty" in res.stderr
