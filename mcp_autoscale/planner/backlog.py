"""Backlog-aware sizing: what a pool must serve once a queue has formed.

Token rates measured from a saturated pool are what it *served*, not what arrived: sizing on them orders
too little, and the next correction comes one node provisioning + cold start later. While requests pile
up, the arrival rate is the served rate plus the queue's growth, and the queue keeps growing until new
replicas serve. So the pool needs, once they do, enough capacity for the arrivals plus the backlog
projected to that moment, drained within ``drain_s`` (every minute with a backlog misses the TTFT p90).
Ordering for the projected backlog at once, rather than one correction per lead time, is what bounds
the minutes a burst costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mcp_autoscale.planner.models import PoolSample


@dataclass(frozen=True)
class Backlog:
    """A growing or standing queue and the extra token load it puts on the pool."""

    queue: float
    growth_rps: float
    """Requests/s the queue grows by: arrivals the pool is not serving."""
    projected: float
    """Requests waiting when capacity ordered now serves."""
    extra_rps: float
    """Requests/s to add to the served rate: the growth plus the projected backlog over ``drain_s``."""
    extra_in_tps: float
    extra_out_tps: float


def backlog_load(
    history: Sequence[PoolSample], lead_s: float, drain_s: float, queue_min: float
) -> Backlog | None:
    """The extra load a backlog puts on the pool, or None when fewer than ``queue_min`` requests wait.

    ``lead_s`` is how long until capacity ordered now serves (cold start, plus node provisioning when
    no GPU is free). The queue's growth comes from the last two samples; tokens per request from the last
    sample's token and request rates, so the extra load is in the same units as C.
    """
    if len(history) < 2 or drain_s <= 0:
        return None
    last, prev = history[-1], history[-2]
    q = last.queue_depth
    rps = last.request_rps
    if q is None or q < queue_min or q <= 0 or not rps or rps <= 0:
        return None
    dt = last.t_s - prev.t_s
    growth = 0.0
    if dt > 0 and prev.queue_depth is not None:
        growth = max(0.0, (q - prev.queue_depth) / dt)
    projected = q + growth * max(0.0, lead_s)
    extra = growth + projected / drain_s
    tin = (last.prompt_tps or 0.0) / rps
    tout = (last.gen_tps or 0.0) / rps
    return Backlog(
        queue=q,
        growth_rps=growth,
        projected=projected,
        extra_rps=extra,
        extra_in_tps=extra * tin,
        extra_out_tps=extra * tout,
    )
