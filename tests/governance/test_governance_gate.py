"""The action gate: ownership, policy verdicts, dry runs, failures; one audit record per submit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from governance_fakes import Clock, FakeBackend, Signals

from mcp_autoscale.actions import Gate, action_from_call, new_action
from mcp_autoscale.audit import verify_file
from mcp_autoscale.config import Settings
from mcp_autoscale.errors import Conflict, Forbidden, InvalidInput
from mcp_autoscale.models import ActionKind, ActionStatus, Decision, PoolRef, ScaleDeploymentParams

POLICY = """
version: 1
name: gate-test
tools: [scale_deployment, patch_hpa, request_gpu_nodes]
namespaces: [chat, batch, dev]
node_pools: ["gpu-*"]
rules:
  - name: prod
    match: {namespaces: [chat, batch]}
    replicas: {min: 1, max: 16}
    max_step: 4
  - name: prod-scale-in-approval
    match: {namespaces: [batch]}
    approval: {when: scale_in, via: [cli]}
  - name: dev
    match: {namespaces: [dev]}
    replicas: {min: 0, max: 4}
  - name: gpus
    match: {tools: [request_gpu_nodes]}
    budget: {max_gpus: 8}
"""


def call(tool: str, rationale: str = "load is rising", **args: Any) -> Any:
    return action_from_call(tool, args, rationale, caller="alice")


def scale(ns: str, name: str, replicas: int, **kw: Any) -> Any:
    return action_from_call(
        "scale_deployment",
        {"namespace": ns, "deployment": name, "replicas": replicas},
        "queue is growing",
        caller="alice",
        **kw,
    )


def test_allowed_scale_applies_and_is_audited(make_gate: Callable[..., Gate], backend: FakeBackend) -> None:
    gate = make_gate(POLICY)
    res = gate.submit(scale("dev", "granite-8b", 3))
    assert res.status == ActionStatus.APPLIED and res.verdict.decision == Decision.ALLOW
    assert backend.applied_writes() == [("scale", ("dev/granite-8b", 3), False)]
    assert res.changes[0].before == 1 and res.changes[0].after == 3
    rec = gate.audit.get(res.audit_id or "")
    assert (
        rec.rationale == "queue is growing" and rec.caller == "alice" and rec.status == ActionStatus.APPLIED
    )
    assert rec.inverse == {
        "tool": "scale_deployment",
        "arguments": {"namespace": "dev", "deployment": "granite-8b", "replicas": 1},
    }
    assert rec.evidence is not None and rec.evidence["name"] == "granite-8b"
    assert rec.arguments == {"namespace": "dev", "deployment": "granite-8b", "replicas": 3}
    assert "rollback_action" in res.message and "90 s" in res.message
    assert backend.events and backend.events[0][0] == "dev/granite-8b"


def test_denied_never_touches_the_backend(make_gate: Callable[..., Gate], backend: FakeBackend) -> None:
    gate = make_gate(POLICY)
    res = gate.submit(scale("dev", "granite-8b", 9))
    assert res.status == ActionStatus.DENIED and backend.writes == []
    assert (
        "rule 'dev': replicas 9 > max 4" in res.message
        and "allowed range for dev/granite-8b: 0..4" in res.message
    )
    assert gate.audit.get(res.audit_id or "").status == ActionStatus.DENIED


def test_scaling_an_autoscaled_pool_is_refused_with_the_owner(
    make_gate: Callable[..., Gate], backend: FakeBackend
) -> None:
    res = make_gate(POLICY).submit(scale("chat", "llama-8b", 6))
    assert res.status == ActionStatus.DENIED and res.verdict.rules == ["ownership"]
    assert "ScaledObject 'llama-8b' (min 2, max 16)" in res.verdict.reasons[0]
    assert res.verdict.hint is not None and "patch_hpa" in res.verdict.hint and "pause" in res.verdict.hint
    hpa = make_gate(POLICY).submit(scale("chat", "llama-70b-prefill", 3))
    assert "HorizontalPodAutoscaler 'llama-70b-prefill' (min 1, max 4)" in hpa.verdict.reasons[0]
    assert "pause" not in (hpa.verdict.hint or "")
    assert backend.writes == []


def test_patch_without_autoscaler_points_at_scale_deployment(make_gate: Callable[..., Gate]) -> None:
    res = make_gate(POLICY).submit(call("patch_hpa", namespace="batch", deployment="qwen-7b", max_replicas=4))
    assert res.status == ActionStatus.DENIED and res.verdict.rules == ["ownership"]
    assert "scale_deployment" in (res.verdict.hint or "")


def test_patch_hpa_applies_with_inverse(make_gate: Callable[..., Gate], backend: FakeBackend) -> None:
    gate = make_gate(POLICY)
    res = gate.submit(call("patch_hpa", namespace="chat", deployment="llama-8b", min_replicas=4))
    assert res.status == ActionStatus.APPLIED
    rec = gate.audit.get(res.audit_id or "")
    assert rec.inverse == {
        "tool": "patch_hpa",
        "arguments": {"namespace": "chat", "deployment": "llama-8b", "min_replicas": 2},
    }
    owner = backend.pools["chat/llama-8b"].autoscaler
    assert owner is not None and owner.min_replicas == 4


def test_unknown_pool_fails_clearly_and_is_audited(make_gate: Callable[..., Gate]) -> None:
    gate = make_gate(POLICY)
    res = gate.submit(scale("dev", "nope-9b", 1))
    assert res.status == ActionStatus.FAILED and "nope-9b" in res.message and res.verdict.rules == ["target"]
    gpu = gate.submit(call("request_gpu_nodes", node_pool="gpu-nope", gpus=1))
    assert gpu.status == ActionStatus.FAILED and "gpu-nope" in gpu.message and "gpu-l4" in gpu.message
    assert [r.status for r in gate.audit.records()] == [ActionStatus.FAILED, ActionStatus.FAILED]


def test_dry_run_per_call(make_gate: Callable[..., Gate], backend: FakeBackend) -> None:
    gate = make_gate(POLICY)
    res = gate.submit(scale("dev", "granite-8b", 2, dry_run=True))
    assert res.status == ActionStatus.DRY_RUN and "dry_run was requested" in res.message
    assert backend.writes == [("scale", ("dev/granite-8b", 2), True)]
    assert backend.pools["dev/granite-8b"].desired_replicas == 1
    rec = gate.audit.get(res.audit_id or "")
    assert rec.dry_run and rec.inverse is None and rec.changes[0].after == 2


def test_server_dry_run_turns_everything_into_proposals(
    make_gate: Callable[..., Gate], backend: FakeBackend, settings: Settings
) -> None:
    gate = make_gate(POLICY, settings=settings.model_copy(update={"dry_run": True}))
    res = gate.submit(scale("dev", "granite-8b", 2))
    assert res.status == ActionStatus.DRY_RUN and "--dry-run" in res.message
    pend = gate.submit(scale("batch", "qwen-7b", 1))  # would need approval; still only a proposal
    assert pend.status == ActionStatus.DRY_RUN and "would need human approval" in pend.message
    assert backend.applied_writes() == []


def test_needs_approval_pends_without_acting(make_gate: Callable[..., Gate], backend: FakeBackend) -> None:
    res = make_gate(POLICY).submit(scale("batch", "qwen-7b", 1))
    assert res.status == ActionStatus.PENDING_APPROVAL and backend.writes == []
    assert "mcp-autoscale approve" in res.message


def test_backend_errors_become_failed_results(make_gate: Callable[..., Gate], backend: FakeBackend) -> None:
    gate = make_gate(POLICY)
    backend.fail_with, backend.fail_times = Forbidden("RBAC: cannot patch deployments/scale in dev"), 1
    res = gate.submit(scale("dev", "granite-8b", 2))
    assert res.status == ActionStatus.FAILED and "cannot patch deployments/scale" in res.message


def test_conflicts_are_retried(make_gate: Callable[..., Gate], backend: FakeBackend) -> None:
    gate = make_gate(POLICY)
    backend.fail_with, backend.fail_times = Conflict("409"), 2
    res = gate.submit(scale("dev", "granite-8b", 2))
    assert res.status == ActionStatus.APPLIED and gate.audit.get(res.audit_id or "").attempts == 3
    backend.fail_with, backend.fail_times = Conflict("409 again"), 99
    res = gate.submit(scale("dev", "granite-8b", 3))
    assert res.status == ActionStatus.FAILED and "409 again" in res.message


def test_check_has_no_side_effects(make_gate: Callable[..., Gate], backend: FakeBackend) -> None:
    gate = make_gate(POLICY)
    assert gate.check(scale("dev", "granite-8b", 3)).decision == Decision.ALLOW
    assert gate.check(scale("dev", "granite-8b", 30)).decision == Decision.DENY
    assert gate.check(scale("chat", "llama-8b", 5)).rules == ["ownership"]
    assert gate.check(scale("dev", "nope", 1)).rules == ["target"]
    assert backend.writes == [] and gate.audit.records() == []


def test_every_submit_writes_exactly_one_record(make_gate: Callable[..., Gate]) -> None:
    gate = make_gate(POLICY)
    actions = [
        scale("dev", "granite-8b", 2),
        scale("dev", "granite-8b", 40),
        scale("dev", "x", 1),
        scale("dev", "granite-8b", 1, dry_run=True),
        scale("batch", "qwen-7b", 1),
    ]
    for i, a in enumerate(actions, start=1):
        gate.submit(a)
        assert len(gate.audit.records()) == i
    assert verify_file(gate.audit.path).ok


def test_idempotent_retry_does_not_act_twice(make_gate: Callable[..., Gate], backend: FakeBackend) -> None:
    gate = make_gate(POLICY)
    first = gate.submit(scale("dev", "granite-8b", 3, idempotency_key="req-1"))
    again = gate.submit(scale("dev", "granite-8b", 3, idempotency_key="req-1"))
    assert again.action_id == first.action_id and again.audit_id == first.audit_id
    assert any("idempotent retry" in n for n in again.notes)
    assert len(backend.applied_writes()) == 1 and len(gate.audit.records()) == 1
    other = gate.submit(scale("dev", "granite-8b", 2, idempotency_key="req-2"))
    assert other.action_id != first.action_id and len(backend.applied_writes()) == 2


def test_evidence_failure_fails_guards_not_the_call(
    make_gate: Callable[..., Gate], signals: Signals, clock: Clock
) -> None:
    def broken(ref: PoolRef) -> None:
        raise RuntimeError("prometheus down")

    gate = make_gate(
        POLICY.replace("    max_step: 4\n", "    max_step: 4\n    guards: {max_data_age_s: 30}\n")
    )
    gate.evidence = broken
    res = gate.submit(scale("batch", "qwen-7b", 3))
    assert res.status == ActionStatus.DENIED and "no live signals" in res.message


def test_new_action_requires_rationale() -> None:
    for blank in ("", "   ", "\n"):
        with pytest.raises(InvalidInput, match="rationale is required"):
            new_action(
                ActionKind.SCALE_DEPLOYMENT,
                PoolRef(namespace="dev", name="g"),
                ScaleDeploymentParams(replicas=1),
                blank,
                dry_run=False,
                caller="x",
            )
    with pytest.raises(InvalidInput, match="needs a target"):
        new_action(
            ActionKind.SCALE_DEPLOYMENT,
            None,
            ScaleDeploymentParams(replicas=1),
            "r",
            dry_run=False,
            caller="x",
        )


def test_action_from_call_reports_bad_arguments() -> None:
    with pytest.raises(InvalidInput, match="unknown tool"):
        action_from_call("delete_cluster", {}, "r")
    with pytest.raises(InvalidInput, match="replicas"):
        action_from_call("scale_deployment", {"namespace": "a", "deployment": "b", "replicas": -1}, "r")
    with pytest.raises(InvalidInput, match="namespace"):
        action_from_call("scale_deployment", {"replicas": 1}, "r")
