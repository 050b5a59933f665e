"""The agent's decisions, as pure functions of what the server returned (no I/O, easy to test).

Two sources of proposals: the server's ``recommend_scaling`` tool (the planner) when it exists, else the
agent's own queue-first rule (DOMAIN.md §3): a TTFT/ITL p90 breach with more than ``QUEUE_PER_REPLICA``
requests waiting per ready replica (or KV-cache usage at or above ``KV_PRESSURE``) needs capacity; the owner
of the replicas decides the lever (raise an HPA/KEDA floor with ``patch_hpa``, else ``scale_deployment``).
Every rationale is written from the snapshot's numbers, so the audit log says *why* in figures.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from mcp_autoscale.agent.models import PoolView, Proposal

QUEUE_PER_REPLICA = 5.0
"""Waiting requests per replica above which a latency breach is a capacity problem (KEDA AverageValue 5)."""
KV_PRESSURE = 0.9
"""KV-cache usage at which preemptions start: a breach with this much KV needs capacity too."""
KV_TARGET = 0.8
"""KV usage per replica the rule sizes for (llm-d WVA saturation threshold)."""
MAX_STEP_FACTOR = 2
"""Size for at most 2x the current replicas (field practice: bursts of 2-3x per minute)."""
MAX_STEP = 4
"""Move a replica count or an autoscaler bound by at most this much per pass; the next pass continues."""
RATIONALE_MAX = 2000
MUTATING_TOOLS = ("scale_deployment", "patch_hpa", "request_gpu_nodes")


# --------------------------------------------------------------------------------------------------
# Reading the snapshot
# --------------------------------------------------------------------------------------------------


def pool_view(pool: Mapping[str, Any]) -> PoolView:
    """The fields of one ``get_slo_snapshot`` pool the agent reasons with."""
    signals = pool.get("signals") or {}
    targets = pool.get("slo_targets") or {}
    replicas = pool.get("replicas") or {}
    owner = pool.get("owner") or None
    return PoolView(
        pool=(f"{pool['cluster']}:" if pool.get("cluster") else "") + f"{pool['namespace']}/{pool['name']}",
        slo=str(pool.get("slo", "unknown")),
        breaches=list(pool.get("slo_breaches") or []),
        replicas_desired=int(replicas.get("desired", 0)),
        replicas_ready=int(replicas.get("ready", 0)),
        replicas_starting=int(replicas.get("starting", 0)),
        owner_kind=owner.get("kind") if owner else None,
        owner_name=owner.get("name") if owner else None,
        owner_min=owner.get("min_replicas") if owner else None,
        owner_max=owner.get("max_replicas") if owner else None,
        ttft_p90_s=signals.get("ttft_p90_s"),
        ttft_target_s=targets.get("ttft_p90_s"),
        itl_p90_s=signals.get("itl_p90_s"),
        itl_target_s=targets.get("itl_p90_s"),
        kv_usage=signals.get("kv_usage"),
        queue_depth=signals.get("queue_depth"),
        gen_tps=signals.get("gen_tps"),
        cost_per_hour=pool.get("cost_per_hour"),
        stale=list(signals.get("stale") or []),
        missing=sorted((signals.get("missing") or {}).keys()),
    )


def queue_per_replica(view: PoolView) -> float | None:
    if view.queue_depth is None:
        return None
    return view.queue_depth / max(view.replicas_ready, 1)


def describe(view: PoolView) -> str:
    """The pool's numbers in one line: what a rationale cites."""
    parts: list[str] = []
    if view.ttft_p90_s is not None:
        over = view.ttft_target_s is not None and view.ttft_p90_s > view.ttft_target_s
        target = f"{view.ttft_target_s:.2f} s" if view.ttft_target_s else ""
        suffix = f" > target {target}" if over else (f" (target {target})" if target else "")
        parts.append(f"TTFT p90 {view.ttft_p90_s:.2f} s{suffix}")
    if view.itl_p90_s is not None:
        over = view.itl_target_s is not None and view.itl_p90_s > view.itl_target_s
        target_ms = f"{view.itl_target_s * 1000:.0f} ms" if view.itl_target_s else ""
        suffix = f" > target {target_ms}" if over else (f" (target {target_ms})" if target_ms else "")
        parts.append(f"ITL p90 {view.itl_p90_s * 1000:.0f} ms{suffix}")
    qpr = queue_per_replica(view)
    if view.queue_depth is not None and qpr is not None:
        parts.append(
            f"queue {view.queue_depth:.0f} waiting ({qpr:.1f}/replica, threshold {QUEUE_PER_REPLICA:g})"
        )
    if view.kv_usage is not None:
        parts.append(f"KV cache {view.kv_usage:.2f}")
    ready = f"replicas {view.replicas_ready} ready / {view.replicas_desired} desired"
    if view.replicas_starting:
        ready += f" (+{view.replicas_starting} starting)"
    parts.append(ready)
    parts.append(f"owner {view.owner}" if view.owner else "no autoscaler owns the replicas")
    if view.stale:
        parts.append("stale: " + ", ".join(view.stale))
    return "; ".join(parts)


def _clip(text: str) -> str:
    return text if len(text) <= RATIONALE_MAX else text[: RATIONALE_MAX - 3] + "..."


# --------------------------------------------------------------------------------------------------
# The agent's own rule (used when the server has no recommend_scaling tool)
# --------------------------------------------------------------------------------------------------


def capacity_target(view: PoolView) -> tuple[int | None, str]:
    """Replicas the queue-first rule wants, and the reason; ``None`` when the breach is not about capacity."""
    current = max(view.replicas_desired, 1)
    qpr = queue_per_replica(view)
    wants: list[int] = []
    why: list[str] = []
    if qpr is not None and view.queue_depth is not None and qpr > QUEUE_PER_REPLICA:
        wants.append(math.ceil(view.queue_depth / QUEUE_PER_REPLICA))
        why.append(f"{qpr:.1f} waiting per replica > {QUEUE_PER_REPLICA:g}")
    if view.kv_usage is not None and view.kv_usage >= KV_PRESSURE:
        wants.append(math.ceil(current * view.kv_usage / KV_TARGET))
        why.append(f"KV cache {view.kv_usage:.2f} >= {KV_PRESSURE:g}")
    if not wants:
        return None, ""
    target = min(max(max(wants), current + 1), current * MAX_STEP_FACTOR)
    return target, " and ".join(why)


def _stale_inputs(view: PoolView) -> list[str]:
    watched = {"ttft_p90_s", "itl_p90_s", "queue_depth", "kv_usage"}
    return sorted(watched & set(view.stale))


def rule_proposals(views: Iterable[PoolView], dry_run: bool) -> tuple[list[Proposal], list[str]]:
    """Proposals (unsent) for breached pools, and notes on breaches the rule leaves alone (and why)."""
    proposals: list[Proposal] = []
    notes: list[str] = []
    for view in views:
        if view.slo != "breach":
            continue
        stale = _stale_inputs(view)
        if stale:
            notes.append(f"{view.pool}: breach reported but {', '.join(stale)} stale: not acting on old data")
            continue
        target, why = capacity_target(view)
        if target is None:
            notes.append(
                f"{view.pool}: {'; '.join(view.breaches) or 'SLO breach'} without queue build-up or KV "
                "pressure: not a replica problem the rules can fix (check cold starts, CPU-bound "
                "pre-processing, GPU tier); no action proposed"
            )
            continue
        proposals.append(_capacity_proposal(view, target, why, dry_run))
    return proposals, notes


def _capacity_proposal(view: PoolView, target: int, why: str, dry_run: bool) -> Proposal:
    """Owned pool: raise the autoscaler's floor (and its ceiling only when every replica already serves at
    the ceiling); unowned pool: scale the Deployment. Each in a bounded step."""
    cluster, _, local = view.pool.rpartition(":")  # 'eu:chat/llama-8b' on a several-cluster server
    namespace, name = local.split("/", 1)
    data = describe(view)
    args: dict[str, Any] = {"namespace": namespace, "deployment": name}
    if cluster:
        args["cluster"] = cluster
    if view.owner_kind is not None and view.owner_max is not None and view.owner_min is not None:
        new_min = max(min(target, view.owner_min + MAX_STEP), view.owner_min + 1)
        args["min_replicas"] = new_min
        step = f"raise {view.owner_kind} {view.owner_name} min_replicas {view.owner_min} -> {new_min}"
        at_ceiling = view.replicas_desired >= view.owner_max and view.replicas_ready >= view.replicas_desired
        if new_min > view.owner_max or (at_ceiling and target > view.owner_max):
            new_max = max(new_min, min(target, view.owner_max + MAX_STEP))
            args["max_replicas"] = new_max
            step += f" and max_replicas {view.owner_max} -> {new_max}"
        if view.replicas_desired > view.replicas_ready:
            step += (
                f"; it already wants {view.replicas_desired} replicas ({view.replicas_ready} serving), so "
                "the higher floor holds the capacity being built until the queue drains"
            )
        step += f" ({view.owner_kind} owns the replicas: a scale_deployment would be reverted)"
        if target > new_min:
            step += f"; the rule sizes for {target} replicas and moves a bound at most {MAX_STEP} per pass"
        tool = "patch_hpa"
        expected: dict[str, Any] = {"replicas_before": view.replicas_desired, "min_replicas_after": new_min}
    else:
        new = min(target, view.replicas_desired + MAX_STEP)
        args["replicas"] = new
        step = f"scale {view.replicas_desired} -> {new} replicas (no autoscaler owns them)"
        tool = "scale_deployment"
        expected = {"replicas_before": view.replicas_desired, "replicas_after": new}
        if target > new:
            step += f"; the rule sizes for {target} replicas and moves at most {MAX_STEP} per pass"
    rationale = _clip(f"{view.pool}: {data}. Capacity-bound ({why}): {step}.")
    args.update(rationale=rationale, dry_run=dry_run)
    return Proposal(
        pool=view.pool,
        tool=tool,
        arguments=args,
        rationale=rationale,
        source="agent-rules",
        addresses_breach=True,
        expected=expected,
    )


# --------------------------------------------------------------------------------------------------
# Proposals from the server's planner (recommend_scaling)
# --------------------------------------------------------------------------------------------------


def _call_target(tool: str, arguments: Mapping[str, Any], fallback: str) -> str:
    if tool == "request_gpu_nodes" and arguments.get("node_pool"):
        return f"nodepool/{arguments['node_pool']}"
    if arguments.get("namespace") and arguments.get("deployment"):
        where = f"{arguments['cluster']}:" if arguments.get("cluster") else ""
        return f"{where}{arguments['namespace']}/{arguments['deployment']}"
    return fallback


def recommendation_proposals(
    recommendations: Iterable[Mapping[str, Any]], views: Iterable[PoolView], dry_run: bool
) -> tuple[list[Proposal], list[str]]:
    """Turn ``recommend_scaling`` output into gated calls with data-cited rationales, plus notes."""
    by_pool = {v.pool: v for v in views}
    proposals: list[Proposal] = []
    notes: list[str] = []
    seen: set[str] = set()
    for rec in recommendations:
        pool = str(rec.get("pool", ""))
        seen.add(pool)
        view = by_pool.get(pool)
        reasons = [str(r) for r in rec.get("reasons") or []]
        action = rec.get("action", "none")
        tool_call = rec.get("tool_call")
        if action == "none" or not tool_call:
            if view is not None and view.slo == "breach":
                effect = (rec.get("expected") or {}).get("slo")
                said = f" ({effect})" if effect else ""
                notes.append(
                    f"{pool}: planner proposes no action{said}: {'; '.join(reasons) or 'no reason given'}"
                )
            continue
        breach = view is not None and view.slo == "breach"
        data = describe(view) if view is not None else ""
        calls = [*(rec.get("prerequisites") or []), tool_call]
        for i, call in enumerate(calls):
            tool = str(call.get("tool", ""))
            if tool not in MUTATING_TOOLS:
                notes.append(f"{pool}: planner suggested unknown tool {tool!r}; skipped")
                continue
            args = {
                k: v for k, v in (call.get("arguments") or {}).items() if k not in ("rationale", "dry_run")
            }
            is_main = i == len(calls) - 1
            step = "Planner" if is_main else "Prerequisite for the planner's change"
            rationale = _clip(
                f"{pool}: {data}. {step} ({action}): {'; '.join(reasons) or 'see expected effect'}."
                if data
                else f"{pool}: {step} ({action}): {'; '.join(reasons) or 'see expected effect'}."
            )
            args.update(rationale=rationale, dry_run=dry_run)
            proposals.append(
                Proposal(
                    pool=pool if is_main else _call_target(tool, args, pool),
                    tool=tool,
                    arguments=args,
                    rationale=rationale,
                    source="recommend_scaling",
                    addresses_breach=breach and is_main,
                    expected=dict(rec.get("expected") or {}) or None,
                )
            )
    for view in by_pool.values():
        if view.slo == "breach" and view.pool not in seen:
            notes.append(f"{view.pool}: breached but the planner returned no recommendation for it")
    return proposals, notes


def override_notes(recommendations: Iterable[Mapping[str, Any]], rule_calls: Iterable[Proposal]) -> list[str]:
    """Why the agent's rules acted on a pool the planner left alone: the two answer different questions."""
    planner = {str(r.get("pool", "")): r for r in recommendations}
    out = []
    for call in rule_calls:
        rec = planner.get(call.pool)
        effect = str((rec or {}).get("expected", {}).get("slo") or "no recommendation for it")
        change = ", ".join(
            f"{k}={v}" for k, v in call.arguments.items() if k not in ("namespace", "deployment", "rationale")
        )
        out.append(
            f"{call.pool}: the planner proposed no change ({effect}); the agent's queue-first rule "
            f"proposes {call.tool}({change}). They differ because the planner sizes replicas to the load and "
            "counts the capacity already ordered, while the rule acts on every capacity-bound breach "
            "(queue or KV pressure) and holds capacity with a bound it moves itself."
        )
    return out
