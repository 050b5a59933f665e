"""A SIGKILL in the middle of audit writes loses no complete record; racing agents act once per cooldown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from governance_fakes import T0, FakeBackend, snapshot_for

from mcp_autoscale.actions import Gate, action_from_call
from mcp_autoscale.audit import AuditLog, verify_file
from mcp_autoscale.config import Settings
from mcp_autoscale.models import ActionResult, ActionStatus, Decision, Verdict
from mcp_autoscale.policy import parse_policy

HERE = Path(__file__).resolve().parent

WRITER = """
import sys
from mcp_autoscale.audit import AuditLog
log = AuditLog(sys.argv[1])
i = 0
while True:
    i += 1
    log.append(action_id=f"act-{i}", tool="scale_deployment", target="dev/granite-8b",
               arguments={"i": i, "pad": "x" * 20000}, rationale="crash test", caller="writer", dry_run=False,
               verdict={"decision": "allow"}, status="applied")
"""


def complete_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def kill_while_writing(path: Path, at_least: int) -> None:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    try:
        while complete_lines(path) < at_least:  # poll (no fixed sleeps): kill once enough is written
            assert proc.poll() is None, "writer died on its own"
            assert time.monotonic() < deadline, "writer too slow"
            threading.Event().wait(0.002)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_sigkill_mid_write_keeps_every_complete_record(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    for round_ in range(1, 4):  # kill, restart, append, kill again ...
        kill_while_writing(path, at_least=complete_lines(path) + 60)
        complete = complete_lines(path)
        report = verify_file(path)
        assert report.records == complete, report
        assert report.ok or (report.truncated and report.first_bad_line == complete + 1), report
        log = AuditLog(path)  # the restart: recovers a torn tail, keeps everything before it
        assert (log.recovered is not None) == report.truncated
        rec = log.append(
            action_id=f"restart-{round_}",
            tool="scale_deployment",
            target="dev/granite-8b",
            arguments={},
            rationale="after restart",
            caller="test",
            dry_run=False,
            verdict=Verdict(decision=Decision.ALLOW),
            status=ActionStatus.APPLIED,
        )
        assert rec.seq == complete + 1
        after = verify_file(path)
        assert after.ok and after.records == complete + 1, after


POLICY = """
version: 1
tools: [scale_deployment]
namespaces: [batch]
rules:
  - name: batch
    match: {namespaces: [batch]}
    replicas: {min: 1, max: 8}
    max_step: 4
    cooldown_s: 300
"""


def race_round(base: Path) -> tuple[list[ActionResult], FakeBackend]:
    """Two gates (own audit handle, own lock handle, as two servers would have) start together."""
    backend = FakeBackend()
    settings = Settings(backend="sim", state_dir=base / "state")
    policy = parse_policy(POLICY, "<race>")
    barrier = threading.Barrier(2)
    results: list[ActionResult] = []

    def agent(replicas: int) -> None:
        gate = Gate(
            backend=backend,
            policy=policy,
            audit=AuditLog(base / "audit.jsonl"),
            settings=settings,
            evidence=lambda ref: snapshot_for(backend.get_pool(ref)),
            clock=lambda: T0,
        )
        args = {"namespace": "batch", "deployment": "qwen-7b", "replicas": replicas}
        action = action_from_call("scale_deployment", args, "race", caller=f"agent-{replicas}")
        barrier.wait()
        results.append(gate.submit(action))

    threads = [threading.Thread(target=agent, args=(n,)) for n in (3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results, backend


def test_two_gates_race_on_one_pool_exactly_one_acts(tmp_path: Path) -> None:
    for round_ in range(5):
        base = tmp_path / f"r{round_}"
        results, backend = race_round(base)
        statuses = sorted(r.status.value for r in results)
        assert statuses == ["applied", "denied"], [r.message for r in results]
        loser = next(r for r in results if r.status == ActionStatus.DENIED)
        assert "cooldown" in loser.message and loser.verdict.rules == ["batch"]
        assert len(backend.applied_writes()) == 1
        assert verify_file(base / "audit.jsonl").ok


AGENT = """
import sys, threading, pathlib
sys.path.insert(0, {here!r})
from governance_fakes import FileBackend, snapshot_for
from mcp_autoscale.actions import Gate, action_from_call
from mcp_autoscale.audit import AuditLog
from mcp_autoscale.config import Settings
from mcp_autoscale.policy import parse_policy
base = pathlib.Path(sys.argv[1]); replicas = int(sys.argv[2])
backend = FileBackend(base / "cluster.json")
gate = Gate(backend=backend, policy=parse_policy(sys.argv[3], "<race>"), audit=AuditLog(base / "audit.jsonl"),
            settings=Settings(backend="sim", state_dir=base / "state"),
            evidence=lambda ref: snapshot_for(backend.get_pool(ref)))
action = action_from_call("scale_deployment", {{"namespace": "batch", "deployment": "qwen-7b",
                          "replicas": replicas}}, "race", caller=f"server-{{replicas}}")
(base / f"ready-{{replicas}}").touch()
while not (base / "go").exists():
    threading.Event().wait(0.001)
print(gate.submit(action).status.value)
"""


def test_two_server_processes_race_exactly_one_acts(tmp_path: Path) -> None:
    from governance_fakes import FileBackend

    FileBackend(tmp_path / "cluster.json")
    script = AGENT.format(here=str(HERE))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path), str(n), POLICY],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
        )
        for n in (3, 4)
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready-{n}").exists() for n in (3, 4)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        threading.Event().wait(0.005)
    (tmp_path / "go").touch()
    outs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert outs == ["applied", "denied"]
    records = AuditLog(tmp_path / "audit.jsonl").records()
    assert sorted(r.status.value for r in records) == ["applied", "denied"]
    assert verify_file(tmp_path / "audit.jsonl").ok
