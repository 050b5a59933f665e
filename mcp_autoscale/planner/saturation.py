"""Saturation rules in the style of llm-d's Workload Variant Autoscaler (DOMAIN.md §3).

A replica is non-saturated while KV < 0.80 and fewer than 5 requests wait. Spare capacity is the distance to
those limits; scale up when the average spare KV < 0.10 or the average spare queue < 3; scale in only if N-1
replicas would still keep both margins. With only pool aggregates at hand, the pool mean stands in for each
replica, and load is assumed to spread evenly, so with N' replicas KV/replica = KV x N / N' and queue/replica
= queue_total / N'.
"""

from __future__ import annotations

import math

from mcp_autoscale.planner.models import PlannerConfig, Saturation


def _margin_replicas(kv: float | None, queue_total: float | None, n: int, cfg: PlannerConfig) -> int:
    """Fewest replicas keeping the spare margins: KV spreads over replicas (KV x N / N' <= 0.70); a queue
    short of its margin asks for one more replica, as WVA does (a waiting queue is a transient that more
    capacity drains, so dividing it over replicas would over-react)."""
    need = 1 if n > 0 else 0
    kv_cap = cfg.kv_saturated - cfg.kv_spare_min
    if kv is not None and kv_cap > 0 and n > 0:
        need = max(need, math.ceil(round(kv * n / kv_cap, 9)))
    if queue_total is not None and queue_total > 0:
        q_per = queue_total / n if n > 0 else math.inf
        if cfg.queue_saturated - q_per < cfg.queue_spare_min:
            need = max(need, n + 1)
    return need


def analyse(
    replicas: int, kv_usage: float | None, queue_depth: float | None, cfg: PlannerConfig
) -> Saturation:
    """Apply the WVA rules to a pool of ``replicas`` with mean KV ``kv_usage`` and total ``queue_depth``."""
    if replicas <= 0:
        return Saturation(
            replicas=replicas,
            kv_per_replica=kv_usage,
            queue_per_replica=None,
            spare_kv=None,
            spare_queue=None,
            saturated=bool(queue_depth),
            scale_up=bool(queue_depth),
            scale_in_ok=False,
            replicas_for_margin=1 if queue_depth else 0,
            reasons=["no ready replicas" + (f", {queue_depth:g} requests waiting" if queue_depth else "")],
        )
    q_per = None if queue_depth is None else queue_depth / replicas
    spare_kv = None if kv_usage is None else cfg.kv_saturated - kv_usage
    spare_q = None if q_per is None else cfg.queue_saturated - q_per
    reasons: list[str] = []
    saturated = (kv_usage is not None and kv_usage >= cfg.kv_saturated) or (
        q_per is not None and q_per >= cfg.queue_saturated
    )
    up = False
    if spare_kv is not None and spare_kv < cfg.kv_spare_min:
        up = True
        reasons.append(f"spare KV {spare_kv:.2f} < {cfg.kv_spare_min:g} (KV {kv_usage:.2f})")
    if spare_q is not None and spare_q < cfg.queue_spare_min:
        up = True
        reasons.append(f"spare queue {spare_q:.1f} < {cfg.queue_spare_min:g} ({q_per:.1f} waiting/replica)")
    scale_in_ok = False
    if replicas > 1 and kv_usage is not None and queue_depth is not None and not up:
        kv_after = kv_usage * replicas / (replicas - 1)
        q_after = queue_depth / (replicas - 1)
        scale_in_ok = (cfg.kv_saturated - kv_after) >= cfg.kv_spare_min and (
            cfg.queue_saturated - q_after
        ) >= cfg.queue_spare_min
        if not scale_in_ok:
            reasons.append(f"N-1 would leave spare KV {cfg.kv_saturated - kv_after:.2f}, queue {q_after:.1f}")
    elif replicas > 1 and (kv_usage is None or queue_depth is None):
        reasons.append("KV or queue not measured: no scale-in")
    return Saturation(
        replicas=replicas,
        kv_per_replica=kv_usage,
        queue_per_replica=None if q_per is None else round(q_per, 3),
        spare_kv=None if spare_kv is None else round(spare_kv, 4),
        spare_queue=None if spare_q is None else round(spare_q, 3),
        saturated=saturated,
        scale_up=up,
        scale_in_ok=scale_in_ok,
        replicas_for_margin=_margin_replicas(kv_usage, queue_depth, replicas, cfg),
        reasons=reasons,
    )
