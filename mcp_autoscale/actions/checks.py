"""Checks the gate makes before and during a write, independent of policy: never fight a replica owner;
see a freshly read live object as the pool it describes. Pure functions."""

from __future__ import annotations

from typing import Any

from mcp_autoscale.models import (
    Action,
    ActionKind,
    AutoscalerKind,
    Decision,
    PoolState,
    Verdict,
)


def ownership_verdict(action: Action, pool: PoolState | None) -> Verdict | None:
    """Never fight the owner: a direct scale of an autoscaled pool is reverted within seconds."""
    if pool is None:
        return None
    owner = pool.autoscaler
    if action.kind == ActionKind.SCALE_DEPLOYMENT and owner is not None and not owner.paused:
        alt = "use patch_hpa to change min_replicas/max_replicas"
        if owner.kind == AutoscalerKind.KEDA:
            alt += ", or patch_hpa paused=true to pause KEDA if the policy allows it"
        return Verdict(
            decision=Decision.DENY,
            rules=["ownership"],
            reasons=[
                f"rule 'ownership': replicas of {pool.ref.key} are owned by "
                f"{owner.kind.value} '{owner.name}' "
                f"(min {owner.min_replicas}, max {owner.max_replicas}); a direct scale would be reverted"
            ],
            hint=f"{alt} (e.g. raise min_replicas to hold a floor)",
        )
    if action.kind == ActionKind.PATCH_HPA and owner is None:
        return Verdict(
            decision=Decision.DENY,
            rules=["ownership"],
            reasons=[f"rule 'ownership': {pool.ref.key} has no HPA or KEDA ScaledObject to patch"],
            hint=f"use scale_deployment to set the replicas of {pool.ref.key} directly",
        )
    return None


def live_pool(pool: PoolState, obj: dict[str, Any]) -> PoolState:
    """The pool as a freshly read object shows it (Scale, HPA or ScaledObject); other kinds change nothing."""
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Scale" and isinstance(spec.get("replicas"), int):
        return pool.model_copy(update={"desired_replicas": spec["replicas"]})
    owner = pool.autoscaler
    if owner is None:
        return pool
    if kind == "HorizontalPodAutoscaler":
        lo, hi = spec.get("minReplicas"), spec.get("maxReplicas")
    elif kind == "ScaledObject":
        lo, hi = spec.get("minReplicaCount"), spec.get("maxReplicaCount")
    else:
        return pool
    bounds = {
        "min_replicas": lo if isinstance(lo, int) else owner.min_replicas,
        "max_replicas": hi if isinstance(hi, int) else owner.max_replicas,
    }
    return pool.model_copy(update={"autoscaler": owner.model_copy(update=bounds)})
