"""``mcp-autoscale policy check FILE`` and ``policy explain FILE --tool T --args JSON``."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from mcp_autoscale.commands._common import echo_out, exit_on_error
from mcp_autoscale.errors import InvalidInput, NotFound
from mcp_autoscale.models import (
    Action,
    Autoscaler,
    AutoscalerKind,
    NodePoolState,
    PoolSignals,
    PoolSnapshot,
    PoolState,
    SloStatus,
    SloTargets,
    Verdict,
)
from mcp_autoscale.policy import Policy, PolicyContext, evaluate, load_policy, policy_json_schema
from mcp_autoscale.policy.evaluate import trace

policy_app = typer.Typer(
    help="Validate a policy file, or explain its verdict for one tool call.", no_args_is_help=True
)


def _fleet_state(
    action: Action,
) -> tuple[PoolState | None, NodePoolState | None, PoolSignals | None, str]:
    """Current state and signals (with their ages) from the simulated fleet, when the target exists there."""
    from mcp_autoscale.sim import Twin

    twin = Twin()
    backend = twin.backend
    if action.target is not None:
        try:
            pool = backend.get_pool(action.target)
        except NotFound:
            known = ", ".join(p.ref.key for p in backend.list_pools())
            return None, None, None, f"{action.target.key} is not in the simulated fleet (pools: {known})"
        signals = twin.signals.collect([pool]).pools.get(pool.ref.key)
        return pool, None, signals, "simulated fleet"
    name = getattr(action.params, "node_pool", None)
    for np_ in backend.list_node_pools():
        if np_.name == name:
            return None, np_, None, "simulated fleet"
    known = ", ".join(n.name for n in backend.list_node_pools())
    return None, None, None, f"node pool {name} is not in the simulated fleet (node pools: {known})"


def _synthetic_pool(action: Action, current: int, owner_min: int | None, owner_max: int | None) -> PoolState:
    assert action.target is not None
    owner = None
    if owner_min is not None or owner_max is not None:
        owner = Autoscaler(
            kind=AutoscalerKind.HPA,
            name=action.target.name,
            min_replicas=owner_min if owner_min is not None else 1,
            max_replicas=owner_max if owner_max is not None else max(current, 1),
        )
    return PoolState(
        ref=action.target, model="unknown", gpu_type="unknown", desired_replicas=current,
        ready_replicas=current, autoscaler=owner,
    )  # fmt: skip


def _snapshot(
    pool: PoolState,
    kv: float | None,
    queue: float | None,
    age: float | None,
    measured: PoolSignals | None = None,
) -> PoolSnapshot:
    """The pool's signals: the simulated fleet's (values and ages) when known, overridden by the options."""
    base = measured or PoolSignals()
    kv = base.kv_usage if kv is None else kv
    queue = base.queue_depth if queue is None else queue
    ages = dict(base.age_s)
    if age is not None:
        ages = {k: age for k in ages} or {"kv_usage": age, "queue_depth": age}
    missing = {}
    if kv is None:
        missing["kv_usage"] = "not given (use --kv)"
    if queue is None:
        missing["queue_depth"] = "not given (use --queue)"
    replicas = {"desired": pool.desired_replicas, "ready": pool.ready_replicas, "starting": 0, "pending": 0}
    return PoolSnapshot(
        namespace=pool.ref.namespace,
        name=pool.ref.name,
        model=pool.model,
        engine=pool.engine,
        role=pool.role,
        gpu_type=pool.gpu_type,
        gpus_per_replica=pool.gpus_per_replica,
        replicas=replicas,
        owner=pool.autoscaler,
        signals=PoolSignals(kv_usage=kv, queue_depth=queue, age_s=ages, missing=missing),
        slo=SloStatus.UNKNOWN,
        slo_targets=SloTargets(),
    )


def _render(
    policy: Policy, source: Path, action: Action, verdict: Verdict, ctx_line: str, rows: list[Any]
) -> str:
    params = json.dumps(action.params.model_dump(mode="json", exclude={"kind"}, exclude_none=True))
    lines = [
        f"policy:   {policy.name} ({source})",
        f"action:   {action.kind.value} {params}" + (f" on {action.target.key}" if action.target else ""),
        f"context:  {ctx_line}",
        f"decision: {verdict.decision.value.upper()}",
        f"decided by: {', '.join(verdict.rules) or '-'}",
    ]
    lines += [f"  - {r}" for r in verdict.reasons]
    if verdict.hint:
        lines.append(f"hint:     {verdict.hint}")
    if verdict.approvers:
        lines.append(f"approvers: {', '.join(verdict.approvers)}")
    lines.append("rules:")
    lines += [f"  {t.status:<12} {t.rule}" + (f": {t.detail}" if t.detail else "") for t in rows]
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy")


@policy_app.command("check")
def check(file: Annotated[Path, typer.Argument(help="Policy YAML file")]) -> None:
    """Validate a policy file: exit 0 if valid, 2 with FILE:LINE: field: message if not."""
    with exit_on_error():
        policy = load_policy(file)
        echo_out(
            f"{file}: OK: policy '{policy.name}', {len(policy.rules)} rules, "
            f"tools {[t.value for t in policy.tools] or 'none (read-only)'}"
        )


@policy_app.command("schema")
def schema() -> None:
    """Print the policy JSON Schema (the source of policies/schema.json)."""
    echo_out(json.dumps(policy_json_schema(), indent=2, sort_keys=True))


@policy_app.command("explain")
def explain(
    file: Annotated[Path, typer.Argument(help="Policy YAML file")],
    tool: Annotated[str, typer.Option("--tool", help="scale_deployment | patch_hpa | request_gpu_nodes")],
    args: Annotated[str, typer.Option("--args", help="Tool arguments as JSON")] = "{}",
    current: Annotated[
        int | None, typer.Option("--current", help="Current replicas (else: sim fleet)", min=0)
    ] = None,
    owner_min: Annotated[
        int | None, typer.Option("--owner-min", help="Current HPA minReplicas", min=0)
    ] = None,
    owner_max: Annotated[
        int | None, typer.Option("--owner-max", help="Current HPA maxReplicas", min=1)
    ] = None,
    kv: Annotated[
        float | None, typer.Option("--kv", help="KV-cache usage 0-1 (else: sim fleet)", min=0.0, max=1.0)
    ] = None,
    queue: Annotated[
        float | None, typer.Option("--queue", help="Waiting requests, pool total (else: sim fleet)", min=0.0)
    ] = None,
    age: Annotated[
        float | None, typer.Option("--age", help="Age of the signals, seconds (else: sim fleet)", min=0.0)
    ] = None,
    cost: Annotated[float | None, typer.Option("--cost", help="USD/h the action adds")] = None,
    at: Annotated[str | None, typer.Option("--at", help="Evaluate at this ISO time (default: now)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Print the verdict for one tool call under FILE, and which rules decided it."""
    from mcp_autoscale.actions import action_from_call, ownership_verdict

    with exit_on_error():
        policy = load_policy(file)
        try:
            arguments = json.loads(args)
        except ValueError as err:
            raise InvalidInput(f"--args is not valid JSON: {err}") from None
        if not isinstance(arguments, dict):
            raise InvalidInput("--args must be a JSON object")
        try:
            now = datetime.fromisoformat(at) if at else datetime.now(UTC)
        except ValueError:
            raise InvalidInput(f"--at {at!r} is not an ISO 8601 time") from None
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        for name, value in (("--kv", kv), ("--queue", queue), ("--age", age), ("--cost", cost)):
            if value is not None and not math.isfinite(value):
                raise InvalidInput(f"{name} must be a finite number, not {value}")
        action = action_from_call(tool, arguments, "policy explain", caller="cli:policy-explain", now=now)
        pool, node_pool, measured, origin = (None, None, None, "given")
        if current is None and owner_min is None and owner_max is None:
            pool, node_pool, measured, origin = _fleet_state(action)
        elif action.target is not None:
            pool = _synthetic_pool(action, current if current is not None else 1, owner_min, owner_max)
        if cost is None and (pool is not None or node_pool is not None):
            from mcp_autoscale.cost import action_cost_delta, load_catalogue

            cost = action_cost_delta(action, pool, node_pool, load_catalogue(None))
        snap = _snapshot(pool, kv, queue, age, measured) if pool is not None else None
        if snap is not None:
            kv, queue = snap.signals.kv_usage, snap.signals.queue_depth
            age = max(snap.signals.age_s.values()) if snap.signals.age_s else age
        ctx = PolicyContext(pool=pool, node_pool=node_pool, snapshot=snap, now=now, cost_delta_per_hour=cost)
        verdict = ownership_verdict(action, pool) or evaluate(policy, action, ctx)
        rows = trace(policy, action, ctx)
        ctx_line = (
            f"replicas {pool.desired_replicas if pool else '?'} ({origin}), "
            f"kv {'?' if kv is None else f'{kv:.2f}'}, "
            f"queue {'?' if queue is None else f'{queue:g}'}, data age {'?' if age is None else f'{age:g}'} s, "
            f"cost {'?' if cost is None else f'{cost:+.2f} $/h'}, at {now.isoformat(timespec='seconds')}"
        )
        if as_json:
            echo_out(json.dumps({
                "verdict": verdict.model_dump(mode="json"),
                "rules": [t.model_dump() for t in rows],
                "context": ctx_line,
            }, indent=2))  # fmt: skip
        else:
            echo_out(_render(policy, file, action, verdict, ctx_line, rows))
