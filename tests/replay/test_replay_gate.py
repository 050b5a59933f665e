"""The replayed planner acts through the one gate: every write is a gated Action with an audit record."""

from __future__ import annotations

from pathlib import Path

from mcp_autoscale.actions import Gate, action_from_call
from mcp_autoscale.audit import AuditLog, verify_file
from mcp_autoscale.config import Settings
from mcp_autoscale.cost import load_catalogue
from mcp_autoscale.models import ActionStatus, PoolRef
from mcp_autoscale.replay import KedaPlusPlanner, ReplayConfig, run_strategy
from mcp_autoscale.replay.evaluate import POOL, _quiet_twin
from mcp_autoscale.replay.strategies import replay_policy
from mcp_autoscale.replay.trace import synthetic_trace

CAT = load_catalogue()


def test_planner_writes_go_through_the_gate_and_are_audited(tmp_path: Path) -> None:
    cfg = ReplayConfig(seed=3, audit_dir=tmp_path)
    # a busy afternoon on a pool that starts at 4 replicas: the planner must raise KEDA's min
    trace = synthetic_trace(25 * 60, seed=3, peak_rps=10.0, start_hour=14.0)
    result = run_strategy(trace, KedaPlusPlanner(CAT, cfg.slo, audit_dir=tmp_path), cfg, CAT)
    assert result.gated_actions > 0
    assert sum(result.verdicts.values()) == result.gated_actions
    assert result.verdicts.get(ActionStatus.APPLIED.value, 0) == result.outer_actions
    audit = tmp_path / "audit.jsonl"
    records = [r.model_dump(mode="json") for r in AuditLog(audit).records()]  # one per decision
    assert len(records) == result.gated_actions
    assert verify_file(audit).ok
    for rec in records:
        assert rec["caller"] == "replay-planner" and rec["target"] == POOL.key
        assert rec["tool"] == "patch_hpa" and rec["rationale"].startswith(POOL.key)
        assert rec["verdict"]["rules"] == ["replay-pool"]
        assert rec["evidence"]["name"] == POOL.name  # the snapshot the planner decided on
    applied = [r for r in records if r["status"] == "applied"]
    assert applied and all(r["inverse"]["tool"] == "patch_hpa" for r in applied)


def test_replay_policy_denies_a_target_outside_the_pools_bounds(tmp_path: Path) -> None:
    twin = _quiet_twin(1, 1.0)
    gate = Gate(
        backend=twin.backend,
        policy=replay_policy(POOL, 2, 24),
        audit=AuditLog(tmp_path / "audit.jsonl"),
        settings=Settings(state_dir=tmp_path / "state", dry_run=False),
        clock=lambda: twin.now,
    )
    args = {"namespace": POOL.namespace, "deployment": POOL.name}
    too_many = action_from_call("patch_hpa", {**args, "min_replicas": 30, "max_replicas": 30}, "test")
    assert gate.submit(too_many).status == ActionStatus.DENIED
    other = PoolRef(namespace="batch", name="qwen-7b")
    elsewhere = action_from_call(
        "scale_deployment", {"namespace": other.namespace, "deployment": other.name, "replicas": 3}, "test"
    )
    assert gate.submit(elsewhere).status == ActionStatus.DENIED
    ok = action_from_call("patch_hpa", {**args, "min_replicas": 6}, "test")
    assert gate.submit(ok).status == ActionStatus.APPLIED
    assert twin.backend.get_pool(POOL).autoscaler.min_replicas == 6  # type: ignore[union-attr]
    assert len(AuditLog(tmp_path / "audit.jsonl").records()) == 3
