"""Backlog-aware sizing: what a pool must serve once a queue has formed.

Token rates measured from a saturated pool are what it *served*, not what arrived: sizing on them orders
too little, and the next correction comes one node provisioning + cold start later. While requests pile
up, the arrival rate is the served rate plus the queue's growth, and the queue keeps growing until new
replicas serve. So the pool needs, once they do, enough capacity for the arrivals plus the backlog
projected to that moment, drained within ``drain_s`` (every minute with a backlog misses the TTFT p90).
Ordering for the projected backlog at once, rather than one correction per lead time, is what bounds
the minutes a burst costs. But not at any price: the replicas ordered for the arrivals (at the target
utilisation) have headroom that drains the backlog too, and what bounds the drain is how fast nodes and
cold starts deliver, not the size of the order. So the backlog may add at most ``backlog_max_over`` x the
arrivals' replicas (``recommend``); ordering the node pool's limit for a x4 step bought no minute.

``arrival_rates`` corrects served token rates by the queue's change: a pool that drains a backlog serves
more than arrives, and one that saturates serves less. Windows that remember load (the scale-in window)
use it so a drain is not mistaken for demand.
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
    growth_in_tps: float = 0.0
    """Token load of the queue's growth alone (arrivals the pool does not serve), prompt side."""
    growth_out_tps: float = 0.0


def demand_rates(
    history: Sequence[PoolSample], window_s: float, signal_window_s: float, queue_per_replica: float
) -> list[tuple[float, float | None, float | None]]:
    """(t, prompt, output tokens/s that arrived) for the samples of the last ``window_s`` seconds.

    A sample taken while a backlog stood (more than ``queue_per_replica`` waiting per ready replica) within
    two rate windows before it measures the drain, not demand (the drained requests still decode one
    window after the queue empties): it counts only while the queue grows (as served + growth), and is
    left out while the backlog drains.
    """
    if not history:
        return []
    last_t = history[-1].t_s
    per_request = tokens_per_request(history)
    out: list[tuple[float, float | None, float | None]] = []
    backlog_t: float | None = None
    for i, h in enumerate(history):
        if h.queue_depth is not None and h.queue_depth > queue_per_replica * max(1, h.ready_replicas):
            backlog_t = h.t_s
        if h.t_s < last_t - window_s:
            continue
        if backlog_t is None or h.t_s - 2.0 * signal_window_s > backlog_t:
            out.append((h.t_s, h.prompt_tps, h.gen_tps))
            continue
        prev = history[i - 1] if i > 0 else None
        if prev is not None and (h.queue_depth or 0.0) > (prev.queue_depth or 0.0):
            out.append((h.t_s, *arrival_rates(prev, h, per_request)))
    return out


def scale_in_window(
    demand: Sequence[tuple[float, float | None, float | None]],
    last_t: float,
    window_s: float,
    clean_s: float,
    ratio: float,
) -> float:
    """How far back scale-in looks: ``window_s``, or ``clean_s`` after a clean drop.

    A drop is clean when every demand sample of the last ``clean_s`` seconds (at least 3 of them, none
    draining a backlog: ``demand_rates`` leaves those out) is at most 1/``ratio`` of the peak before them
    in the window, on both token dimensions: the load stepped down and stayed down. Holding the window's
    peak 600 s after such a drop (the causal oracle's rule too) bills the step's replicas for ten minutes
    of load that is gone; after a wobble the window stays whole.
    """
    if clean_s <= 0 or clean_s >= window_s or ratio <= 1:
        return window_s
    recent = [d for d in demand if d[0] >= last_t - clean_s]
    older = [d for d in demand if last_t - window_s <= d[0] < last_t - clean_s]
    if len(recent) < 3 or not older:
        return window_s
    for dim in (1, 2):
        new = [float(d[dim]) for d in recent if d[dim] is not None]  # type: ignore[arg-type]
        old = [float(d[dim]) for d in older if d[dim] is not None]  # type: ignore[arg-type]
        if not new or not old:
            continue
        if max(new) * ratio > max(old):
            return window_s
    return clean_s


def tokens_per_request(history: Sequence[PoolSample], samples: int = 40) -> tuple[float, float] | None:
    """(prompt, output) tokens per request over the last ``samples`` samples taken with no queue.

    A saturated pool counts prompt tokens at prefill but requests when they finish, so the ratio of one
    saturated sample can read twice the true length; quiet samples, summed, do not.
    """
    quiet = [
        h
        for h in history[-samples:]
        if h.request_rps and h.request_rps > 0 and (h.queue_depth or 0.0) <= max(1, h.ready_replicas)
    ]
    if not quiet:
        return None
    rps = sum(h.request_rps or 0.0 for h in quiet)
    return sum(h.prompt_tps or 0.0 for h in quiet) / rps, sum(h.gen_tps or 0.0 for h in quiet) / rps


def arrival_rates(
    prev: PoolSample, cur: PoolSample, per_request: tuple[float, float] | None = None
) -> tuple[float | None, float | None]:
    """(prompt, output) tokens/s that arrived between two samples: served plus the queue's change.

    Tokens per request are ``per_request`` (``tokens_per_request``), else ``cur``'s token and request
    rates; without them (or without queue depths) the served rates are returned as they are. Never
    negative.
    """
    r_in, r_out = cur.prompt_tps, cur.gen_tps
    dt = cur.t_s - prev.t_s
    rps = cur.request_rps
    if dt <= 0 or cur.queue_depth is None or prev.queue_depth is None:
        return r_in, r_out
    if per_request is None:
        if not rps or rps <= 0:
            return r_in, r_out
        per_request = ((r_in or 0.0) / rps, (r_out or 0.0) / rps)
    dq = (cur.queue_depth - prev.queue_depth) / dt
    if dq == 0:
        return r_in, r_out
    a_in = None if r_in is None else max(0.0, r_in + dq * per_request[0])
    a_out = None if r_out is None else max(0.0, r_out + dq * per_request[1])
    return a_in, a_out


def backlog_load(
    history: Sequence[PoolSample], lead_s: float, drain_s: float, queue_min: float
) -> Backlog | None:
    """The extra load a backlog puts on the pool, or None when fewer than ``queue_min`` requests wait.

    ``lead_s`` is how long until capacity ordered now serves (cold start, plus node provisioning when
    no GPU is free). The queue's growth comes from the last two samples; tokens per request from the last
    quiet samples' token and request rates (``tokens_per_request``; else the last sample's), so the extra
    load is in the same units as C.
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
    tin, tout = tokens_per_request(history) or ((last.prompt_tps or 0.0) / rps, (last.gen_tps or 0.0) / rps)
    return Backlog(
        queue=q,
        growth_rps=growth,
        projected=projected,
        extra_rps=extra,
        extra_in_tps=extra * tin,
        extra_out_tps=extra * tout,
        growth_in_tps=growth * tin,
        growth_out_tps=growth * tout,
    )
