"""Property tests: random tool calls never pass a policy they should not, and never crash the gate."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from governance_fakes import T0, FakeBackend, snapshot_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_autoscale.actions import Gate, action_from_call
from mcp_autoscale.audit import AuditLog, verify_file
from mcp_autoscale.config import Settings
from mcp_autoscale.errors import InvalidInput
from mcp_autoscale.models import ActionStatus, Decision, PoolRef
from mcp_autoscale.policy import PolicyContext, builtin_policy, evaluate, load_policy

POLICIES = Path(__file__).resolve().parents[2] / "policies"
PRODUCTION = load_policy(POLICIES / "production.yaml")
QWEN6 = (
    FakeBackend()
    .get_pool(PoolRef(namespace="batch", name="qwen-7b"))
    .model_copy(update={"desired_replicas": 6})
)
NAMESPACES = st.one_of(
    st.sampled_from(["chat", "batch", "dev", "kube-system", "dev-x"]), st.text(max_size=12)
)
DEPLOYMENTS = st.one_of(
    st.sampled_from(["llama-8b", "llama-70b-prefill", "llama-70b-decode", "qwen-7b", "granite-8b", "nope"]),
    st.text(max_size=12),
)
NUMBERS = st.one_of(st.integers(-10, 5000), st.none(), st.text(max_size=4), st.floats(allow_nan=True))
NODE_POOLS = st.one_of(st.sampled_from(["gpu-l4", "gpu-h100", "gpu-a10g", "gpu-x"]), st.text(max_size=10))


@st.composite
def tool_calls(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    tool = draw(st.sampled_from(["scale_deployment", "patch_hpa", "request_gpu_nodes", "delete_everything"]))
    args: dict[str, Any] = {}
    if tool == "request_gpu_nodes":
        args = {"node_pool": draw(NODE_POOLS), "gpus": draw(NUMBERS)}
        if draw(st.booleans()):
            args["method"] = draw(st.sampled_from(["auto", "limit", "balloon", "magic"]))
    else:
        args = {"namespace": draw(NAMESPACES), "deployment": draw(DEPLOYMENTS)}
        keys = ["replicas"] if tool == "scale_deployment" else ["min_replicas", "max_replicas", "paused"]
        for key in keys:
            if draw(st.booleans()) or key == "replicas":
                args[key] = draw(st.one_of(NUMBERS, st.booleans()))
    return tool, args


def fresh_gate(policy_name: str, tmp: Path, dry_run: bool = False) -> tuple[Gate, FakeBackend]:
    backend = FakeBackend()
    policy = (
        builtin_policy("read-only") if policy_name == "read-only" else load_policy(POLICIES / policy_name)
    )
    gate = Gate(
        backend=backend,
        policy=policy,
        audit=AuditLog(tmp / "audit.jsonl"),
        settings=Settings(backend="sim", state_dir=tmp / "state", dry_run=dry_run),
        evidence=lambda ref: snapshot_for(backend.get_pool(ref)),
        cost_delta=lambda a, p, n: 1.0,
        clock=lambda: T0,
    )
    return gate, backend


def submit(gate: Gate, tool: str, args: dict[str, Any], dry: bool) -> Any:
    try:
        action = action_from_call(tool, args, "property test", dry_run=dry, caller="hypothesis")
    except InvalidInput:
        return None  # malformed calls are rejected before the gate, as tool errors
    return gate.submit(action)  # must never raise


FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PURE = settings(max_examples=400, deadline=None)


@FAST
@given(calls=st.lists(tool_calls(), min_size=1, max_size=4), dry=st.booleans())
def test_read_only_never_lets_anything_through(calls: list[tuple[str, dict[str, Any]]], dry: bool) -> None:
    with tempfile.TemporaryDirectory() as d:
        gate, backend = fresh_gate("read-only", Path(d))
        for tool, args in calls:
            res = submit(gate, tool, args, dry)
            if res is not None:
                assert res.status in (ActionStatus.DENIED, ActionStatus.FAILED)
                assert res.verdict.decision == Decision.DENY and res.verdict.reasons
        assert backend.writes == []
        assert verify_file(gate.audit.path).ok if gate.audit.path.exists() else True


@FAST
@given(calls=st.lists(tool_calls(), min_size=1, max_size=4))
def test_dev_policy_only_lets_small_dev_changes_through(calls: list[tuple[str, dict[str, Any]]]) -> None:
    with tempfile.TemporaryDirectory() as d:
        gate, backend = fresh_gate("dev.yaml", Path(d))
        for tool, args in calls:
            before = {k: p.desired_replicas for k, p in backend.pools.items()}
            res = submit(gate, tool, args, False)
            if res is None or res.status != ActionStatus.APPLIED:
                continue
            if tool == "request_gpu_nodes":
                assert args["gpus"] <= 4 and args["node_pool"] in ("gpu-a10g", "gpu-l4")
            else:
                assert args["namespace"] == "dev" or args["namespace"].startswith("dev-")
                if tool == "scale_deployment":
                    key = f"{args['namespace']}/{args['deployment']}"
                    assert 0 <= args["replicas"] <= 4 and abs(args["replicas"] - before[key]) <= 4
        allowed = {"dev/granite-8b", "gpu-a10g", "gpu-l4"}
        for _, what, dry in backend.writes:
            name = what.node_pool if hasattr(what, "node_pool") else what[0]
            assert name in allowed and not dry


@FAST
@given(calls=st.lists(tool_calls(), min_size=1, max_size=3))
def test_production_never_applies_a_scale_in_and_server_dry_run_never_writes(
    calls: list[tuple[str, dict[str, Any]]],
) -> None:
    with tempfile.TemporaryDirectory() as d:
        gate, backend = fresh_gate("production.yaml", Path(d))
        for tool, args in calls:
            before = {k: p.desired_replicas for k, p in backend.pools.items()}
            res = submit(gate, tool, args, False)
            if res is not None and res.status == ActionStatus.APPLIED and tool == "scale_deployment":
                assert args["replicas"] >= before[f"{args['namespace']}/{args['deployment']}"]
                assert 2 <= args["replicas"] <= 16
    with tempfile.TemporaryDirectory() as d:
        gate, backend = fresh_gate("production.yaml", Path(d), dry_run=True)
        for tool, args in calls:
            submit(gate, tool, args, False)
        assert backend.applied_writes() == []


@PURE
@given(
    kv=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    queue=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    age=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    cost=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    replicas=st.integers(0, 1000),
    minutes=st.integers(0, 60 * 24 * 14),
)
def test_evaluator_never_crashes_and_never_trusts_nonsense(
    kv: float | None, queue: float | None, age: float | None, cost: float | None, replicas: int, minutes: int
) -> None:
    pool = QWEN6
    snap = snapshot_for(pool, kv=kv, queue=queue, age=age)
    action = action_from_call(
        "scale_deployment", {"namespace": "batch", "deployment": "qwen-7b", "replicas": replicas}, "p"
    )
    ctx = PolicyContext(
        pool=pool, snapshot=snap, now=T0 + timedelta(minutes=minutes), cost_delta_per_hour=cost
    )
    verdict = evaluate(PRODUCTION, action, ctx)
    assert verdict.reasons and all(r.startswith("rule '") for r in verdict.reasons)
    if verdict.decision != Decision.DENY:
        assert age is not None and age <= 120  # stale or unknown data never passes
        if replicas < 6:  # scale-in: only with measured, low KV and queue, and never without a human
            assert kv is not None and kv <= 0.75 and queue is not None and queue <= 5
            assert verdict.decision == Decision.NEEDS_APPROVAL
        if replicas > 6:
            assert cost is not None and cost <= 60
