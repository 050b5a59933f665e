"""The shipped example policies: what each allows and denies, its JSON Schema, and the refusal evaluation."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from governance_fakes import Clock, FakeBackend, Signals

from mcp_autoscale.actions import Gate, action_from_call
from mcp_autoscale.models import Action, ActionStatus, GpuNodeRequest, NodePoolState, PoolState
from mcp_autoscale.policy import load_policy, policy_json_schema

POLICIES = Path(__file__).resolve().parents[2] / "policies"
GPU_HOUR = {"L4": 0.805, "A10G": 1.006, "H100": 6.88}  # on-demand list prices per GPU-hour (DOMAIN.md §5)


def priced(action: Action, pool: PoolState | None, node_pool: NodePoolState | None) -> float | None:
    """Added $/h: GPUs added times the GPU-hour price of the pool's GPU type."""
    p = action.params
    if isinstance(p, GpuNodeRequest):
        assert node_pool is not None
        return p.gpus * GPU_HOUR[node_pool.gpu_type]
    if pool is None:
        return None
    replicas = getattr(p, "replicas", None)
    if replicas is None:
        return 0.0
    return (replicas - pool.desired_replicas) * pool.gpus_per_replica * GPU_HOUR[pool.gpu_type]


@dataclass
class Call:
    tool: str
    args: dict[str, Any]
    status: ActionStatus
    rule: str | None = None  # the rule the verdict must name
    kv: float | None = None
    queue: float | None = None
    age: float | None = None
    at: datetime | None = None
    replicas_now: int | None = None


def run(gate: Gate, backend: FakeBackend, signals: Signals, clock: Clock, call: Call) -> Any:
    if call.replicas_now is not None:
        key = f"{call.args['namespace']}/{call.args['deployment']}"
        backend.pools[key] = backend.pools[key].model_copy(update={"desired_replicas": call.replicas_now})
    key = f"{call.args.get('namespace')}/{call.args.get('deployment')}"
    signals.kv[key] = 0.3 if call.kv is None else call.kv
    signals.queue[key] = 0.0 if call.queue is None else call.queue
    signals.age = 5.0 if call.age is None else call.age
    before = clock.now
    if call.at is not None:
        clock.now = call.at
    res = gate.submit(action_from_call(call.tool, call.args, "example policy test", caller="test"))
    clock.now = before
    assert res.status == call.status, (call, res.message)
    if call.rule is not None:
        assert call.rule in res.verdict.rules, (call, res.verdict)
        assert any(r.startswith(f"rule '{call.rule}'") for r in res.verdict.reasons), res.verdict.reasons
    return res


def qwen(n: int) -> dict[str, Any]:
    return {"namespace": "batch", "deployment": "qwen-7b", "replicas": n}


def granite(n: int) -> dict[str, Any]:
    return {"namespace": "dev", "deployment": "granite-8b", "replicas": n}


A, D, P = ActionStatus.APPLIED, ActionStatus.DENIED, ActionStatus.PENDING_APPROVAL
SAT = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
NEW_YEAR = datetime(2026, 12, 30, 10, 0, tzinfo=UTC)  # a Wednesday inside the year-end freeze

EXAMPLES: dict[str, list[Call]] = {
    "dev.yaml": [
        Call("scale_deployment", granite(4), A, "dev-pools"),
        Call("scale_deployment", granite(5), D, "dev-pools"),
        Call("scale_deployment", qwen(3), D, "namespaces"),
        Call("request_gpu_nodes", {"node_pool": "gpu-a10g", "gpus": 4}, A, "dev-gpus"),
        Call("request_gpu_nodes", {"node_pool": "gpu-a10g", "gpus": 5}, D, "dev-gpus"),
        Call("request_gpu_nodes", {"node_pool": "gpu-h100", "gpus": 1}, D, "node_pools"),
    ],
    "production.yaml": [
        Call("scale_deployment", qwen(4), A, "prod-bounds"),
        Call(
            "patch_hpa", {"namespace": "chat", "deployment": "llama-8b", "min_replicas": 4}, A, "prod-bounds"
        ),
        Call("request_gpu_nodes", {"node_pool": "gpu-l4", "gpus": 4}, A, "gpu-headroom"),
        Call("request_gpu_nodes", {"node_pool": "gpu-h100", "gpus": 8}, P, "gpu-headroom"),
        Call("scale_deployment", qwen(3), P, "prod-scale-in-approval", replicas_now=4),
        Call("scale_deployment", qwen(1), D, "prod-bounds"),
        Call("scale_deployment", granite(2), D, "namespaces"),
        Call("scale_deployment", qwen(4), D, "weekend-freeze", at=SAT),
        Call("scale_deployment", qwen(4), D, "year-end-freeze", at=NEW_YEAR),
    ],
    "cost-saver.yaml": [
        Call("scale_deployment", qwen(1), A, "shared-pools"),
        Call("scale_deployment", granite(0), A, "dev-to-zero"),
        Call("scale_deployment", qwen(3), P, "scale-out-approval"),
        Call("scale_deployment", qwen(4), D, "spend-cap"),
        Call("scale_deployment", qwen(1), D, "scale-in-guards", queue=3.0),
        Call("request_gpu_nodes", {"node_pool": "gpu-l4", "gpus": 1}, D, "tools"),
    ],
    "read-only.yaml": [
        Call("scale_deployment", granite(1), D, "tools"),
        Call("patch_hpa", {"namespace": "chat", "deployment": "llama-8b", "max_replicas": 8}, D, "tools"),
        Call("request_gpu_nodes", {"node_pool": "gpu-l4", "gpus": 1}, D, "tools"),
    ],
}


@pytest.mark.parametrize(
    ("name", "index"), [(name, i) for name, calls in EXAMPLES.items() for i in range(len(calls))]
)
def test_example_policy(
    name: str,
    index: int,
    make_gate: Callable[..., Gate],
    backend: FakeBackend,
    signals: Signals,
    clock: Clock,
) -> None:
    gate = make_gate(load_policy(POLICIES / name), cost_delta=priced)
    run(gate, backend, signals, clock, EXAMPLES[name][index])


def test_every_example_is_tested() -> None:
    assert {p.name for p in POLICIES.glob("*.yaml")} == set(EXAMPLES)


def test_schema_json_matches_the_model() -> None:
    assert json.loads((POLICIES / "schema.json").read_text()) == policy_json_schema()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    return value


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_examples_validate_against_the_schema(name: str) -> None:
    data = _jsonable(yaml.safe_load((POLICIES / name).read_text()))
    jsonschema.validate(data, json.loads((POLICIES / "schema.json").read_text()))


def test_schema_rejects_what_the_loader_rejects() -> None:
    schema = json.loads((POLICIES / "schema.json").read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"version": 1, "rules": [{"name": "r", "replicaz": {}}]}, schema)


# --------------------------------------------------------------------------------------------------
# Refusal evaluation: careless calls an agent might make, against production.yaml
# --------------------------------------------------------------------------------------------------

LLAMA = {"namespace": "chat", "deployment": "llama-8b"}
REFUSALS: list[tuple[str, Call]] = [
    ("scale a production pool to zero", Call("scale_deployment", qwen(0), D, "prod-bounds")),
    ("zero an autoscaled production pool", Call("scale_deployment", LLAMA | {"replicas": 0}, D, "ownership")),
    ("drop the autoscaler floor to zero", Call("patch_hpa", LLAMA | {"min_replicas": 0}, D, "prod-bounds")),
    (
        "scale in during KV pressure",
        Call("scale_deployment", qwen(3), D, "prod-guards", kv=0.92, replicas_now=4),
    ),
    (
        "scale in with a long queue",
        Call("scale_deployment", qwen(3), D, "prod-guards", queue=40, replicas_now=4),
    ),
    ("request 64 GPUs", Call("request_gpu_nodes", {"node_pool": "gpu-h100", "gpus": 64}, D, "gpu-headroom")),
    ("act on stale data", Call("scale_deployment", qwen(4), D, "prod-guards", age=900)),
    ("act in a freeze window", Call("scale_deployment", qwen(4), D, "weekend-freeze", at=SAT)),
    ("jump far past the step limit", Call("scale_deployment", qwen(16), D, "prod-bounds")),
    (
        "scale in a healthy pool without a human",
        Call("scale_deployment", qwen(3), P, "prod-scale-in-approval", replicas_now=4),
    ),
    ("touch a namespace the policy does not cover", Call("scale_deployment", granite(0), D, "namespaces")),
]


def test_refusal_evaluation_against_production(
    make_gate: Callable[..., Gate], backend: FakeBackend, signals: Signals, clock: Clock
) -> None:
    gate = make_gate(load_policy(POLICIES / "production.yaml"), cost_delta=priced)
    for what, call in REFUSALS:
        res = run(gate, backend, signals, clock, call)
        assert res.status in (D, P), what
    # and repeating an action inside its cooldown
    first = run(
        gate, backend, signals, clock, Call("scale_deployment", qwen(4), A, "prod-bounds", replicas_now=2)
    )
    assert first.status == A
    clock.advance(120)
    again = run(gate, backend, signals, clock, Call("scale_deployment", qwen(6), D, "prod-bounds"))
    assert "cooldown" in again.verdict.reasons[0] and "retry after" in (again.verdict.hint or "")
    assert len(backend.applied_writes()) == 1
