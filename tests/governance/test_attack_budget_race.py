"""Issue 13, item 3: a daily budget spans pools, so two calls on different pools must never both spend it.

Each call alone fits the $10/day budget ($6 and $5); together they exceed it. A rendezvous right after
each decision has read the audit log (the spend so far) makes both calls decide on the same history when
nothing serialises them; with the budget's scope locked, the second call waits (the rendezvous times
out), then reads the first one's spend and is denied.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from governance_fakes import FakeBackend, snapshot_for

from mcp_autoscale.actions import Gate, action_from_call
from mcp_autoscale.actions.gate import lock_keys
from mcp_autoscale.audit import AuditLog
from mcp_autoscale.config import Settings
from mcp_autoscale.models import Action, ActionStatus, AuditRecord, NodePoolState, PoolState
from mcp_autoscale.policy import parse_policy

HERE = Path(__file__).resolve().parent
RENDEZVOUS_S = 0.5  # how long a caller waits for the other inside its decision (only reached when locked)

POLICY = """
version: 1
tools: [scale_deployment]
namespaces: [batch, dev]
rules:
  - name: pools
    match: {namespaces: [batch, dev]}
    budget: {max_added_usd_per_day: 10}
"""
CALLS = {
    "batch": {"namespace": "batch", "deployment": "qwen-7b", "replicas": 8},  # 2 -> 8: +$6/h
    "dev": {"namespace": "dev", "deployment": "granite-8b", "replicas": 6},  # 1 -> 6: +$5/h
}


def cost(action: Action, pool: PoolState | None, node_pool: NodePoolState | None) -> float | None:
    assert pool is not None and action.params.kind.value == "scale_deployment"
    return float(action.params.replicas - pool.desired_replicas)  # type: ignore[union-attr]


class RendezvousLog(AuditLog):
    """Waits (bounded) for the other caller after reading the history a decision uses."""

    def __init__(self, path: Path, barrier: threading.Barrier) -> None:
        super().__init__(path)
        self.barrier = barrier

    def records(self, *args: Any, **kw: Any) -> list[AuditRecord]:
        out = super().records(*args, **kw)
        with contextlib.suppress(threading.BrokenBarrierError):
            self.barrier.wait(timeout=RENDEZVOUS_S)
        return out


def test_the_lock_covers_the_budget_scope_not_only_the_pool() -> None:
    policy = parse_policy(POLICY, "<t>")
    keys = {n: lock_keys(policy, action_from_call("scale_deployment", c, "x")) for n, c in CALLS.items()}
    assert keys["batch"] == ["batch/qwen-7b", "scope/pools"]
    assert keys["dev"] == ["dev/granite-8b", "scope/pools"]


def race_in_threads(base: Path) -> tuple[list[ActionStatus], FakeBackend]:
    backend = FakeBackend()
    barrier = threading.Barrier(2)
    results: list[ActionStatus] = []

    def run(name: str) -> None:
        gate = Gate(  # one gate per "agent": shared audit log and state dir, as two sessions have
            backend=backend,
            policy=parse_policy(POLICY, "<t>"),
            audit=RendezvousLog(base / "audit.jsonl", barrier),
            settings=Settings(backend="sim", state_dir=base / "state"),
            evidence=lambda ref: snapshot_for(backend.get_pool(ref)),
            cost_delta=cost,
        )
        results.append(gate.submit(action_from_call("scale_deployment", CALLS[name], "burst")).status)

    threads = [threading.Thread(target=run, args=(n,)) for n in CALLS]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results, backend


def test_two_threads_on_different_pools_never_both_spend_the_budget(tmp_path: Path) -> None:
    for round_ in range(3):
        results, backend = race_in_threads(tmp_path / f"r{round_}")
        assert sorted(s.value for s in results) == ["applied", "denied"], (round_, results)
        assert len(backend.applied_writes()) == 1


AGENT = """
import sys, threading, time, pathlib
sys.path.insert(0, {here!r})
from governance_fakes import FileBackend, snapshot_for
from mcp_autoscale.actions import Gate, action_from_call
from mcp_autoscale.audit import AuditLog
from mcp_autoscale.config import Settings
from mcp_autoscale.policy import parse_policy
base = pathlib.Path(sys.argv[1]); me, other = sys.argv[2], sys.argv[3]
backend = FileBackend(base / "cluster.json")
class RendezvousLog(AuditLog):
    def records(self, *args, **kw):
        out = super().records(*args, **kw)
        (base / f"in-{{me}}").touch()  # rendezvous: wait (bounded) for the other process to have read too
        end = time.monotonic() + {wait}
        while not (base / f"in-{{other}}").exists() and time.monotonic() < end:
            threading.Event().wait(0.002)
        return out
def cost(action, pool, node_pool):
    return float(action.params.replicas - pool.desired_replicas)
gate = Gate(backend=backend, policy=parse_policy(sys.argv[4], "<race>"),
            audit=RendezvousLog(base / "audit.jsonl"), settings=Settings(backend="sim", state_dir=base / "state"),
            evidence=lambda ref: snapshot_for(backend.get_pool(ref)), cost_delta=cost)
action = action_from_call("scale_deployment", {calls}[me], "burst", caller=f"server-{{me}}")
(base / f"ready-{{me}}").touch()
while not (base / "go").exists():
    threading.Event().wait(0.002)
print(gate.submit(action).status.value)
"""


def test_two_processes_on_one_state_dir_never_both_spend_the_budget(tmp_path: Path) -> None:
    from governance_fakes import FileBackend

    FileBackend(tmp_path / "cluster.json")
    script = AGENT.format(here=str(HERE), wait=RENDEZVOUS_S, calls=repr(CALLS))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    names = list(CALLS)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path), me, other, POLICY],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        for me, other in (names, names[::-1])
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready-{n}").exists() for n in names):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        threading.Event().wait(0.005)
    (tmp_path / "go").touch()
    outs = [p.communicate(timeout=60) for p in procs]
    assert sorted(o.strip() for o, _ in outs) == ["applied", "denied"], [e[-500:] for _, e in outs]
    denied = [r for r in AuditLog(tmp_path / "audit.jsonl").records() if r.status == ActionStatus.DENIED]
    assert len(denied) == 1 and "max_added_usd_per_day" in denied[0].message
