"""Fleet planner maths (pure): pooled warm capacity per node pool, and who gets GPUs when a limit binds.

Why pooling pays: a per-pool loop holds, in every pool, headroom for that pool's own bursts within one lead
time (node provisioning + cold start). Pools on one GPU type rarely burst together, so the q-quantile of the
*sum* of their burst excess is far below the sum of their q-quantiles. Warm capacity held once per node pool
(placeholder pods any pool's pods pre-empt) covers the fleet's bursts at the smaller number.

When a node pool's limit binds, GPUs go first to floors, then to the pools whose breach costs most per GPU;
``interactive`` beats ``batch``. A batch pool yields down to what drains its backlog (plus arrivals) within
the policy's deadline, so it catches up in time. A policy can forbid trades outright or protect pools.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

Priority = Literal["interactive", "batch"]
_RANK: dict[str, int] = {"interactive": 0, "batch": 1}


class FleetPolicy(BaseModel):
    """What the fleet planner may trade (policy-stated; the gate still checks every action)."""

    allow_trades: bool = Field(default=True, description="False: no pool ever yields GPUs to another")
    protected: list[str] = Field(default_factory=list, description="'ns/name' pools that never yield")
    batch_deadline_s: float = Field(default=3600.0, gt=0, description="A yielding batch pool drains by then")
    breach_usd_per_gpu_h: dict[str, float] = Field(
        default_factory=lambda: {"interactive": 40.0, "batch": 4.0},
        description="What one GPU short costs per hour of breach, by priority",
    )
    headroom_quantile: float = Field(default=0.8, gt=0, le=1, description="q of the pooled burst excess")


@dataclass(frozen=True)
class PooledHeadroom:
    """Warm GPUs one node pool holds for all its pools, against what per-pool headroom would hold."""

    node_pool: str
    pooled_gpus: int
    per_pool_gpus: dict[str, int]
    quantile: float
    samples: int

    @property
    def sum_per_pool(self) -> int:
        return sum(self.per_pool_gpus.values())


def burst_excess(
    need: Sequence[float] | np.ndarray, lead_steps: int, held: Sequence[float] | np.ndarray | None = None
) -> np.ndarray:
    """``excess[t] = max(need[t..t+lead]) - held[t]`` (>= 0; ``held`` defaults to ``need``): GPUs a pool
    needs within one lead time beyond what it holds now, i.e. what headroom must cover because capacity
    ordered at ``t`` serves only after the lead. Only windows wholly inside the series count."""
    x = np.asarray(need, dtype=float)
    h = x if held is None else np.asarray(held, dtype=float)
    n = len(x) - lead_steps
    if n <= 0 or lead_steps < 0:
        return np.zeros(0)
    ahead = np.lib.stride_tricks.sliding_window_view(x, lead_steps + 1).max(axis=1)
    return np.maximum(ahead[:n] - h[:n], 0.0)


def pooled_headroom(
    node_pool: str, excess: Mapping[str, Sequence[float] | np.ndarray], quantile: float
) -> PooledHeadroom:
    """The q-quantile of the summed burst excess (pooled) and each pool's own q-quantile (per pool).
    Series are aligned on their common (most recent) length."""
    if not excess:
        return PooledHeadroom(node_pool, 0, {}, quantile, 0)
    n = min(len(v) for v in excess.values())
    if n == 0:
        return PooledHeadroom(node_pool, 0, dict.fromkeys(excess, 0), quantile, 0)
    arrs = {k: np.asarray(v, dtype=float)[-n:] for k, v in excess.items()}
    total = np.sum(list(arrs.values()), axis=0)
    q = quantile
    per = {k: math.ceil(float(np.quantile(a, q)) - 1e-9) for k, a in arrs.items()}
    pooled = math.ceil(float(np.quantile(total, q)) - 1e-9)
    return PooledHeadroom(node_pool, max(0, pooled), per, q, n)


@dataclass(frozen=True)
class PoolClaim:
    """One pool's claim on a node pool's GPUs at one instant."""

    key: str
    priority: Priority
    floor: int
    gpus_now: int
    want: int
    backlog: float = 0.0
    """Requests waiting (batch: what must drain by the deadline)."""
    arrival_rps: float = 0.0
    per_gpu_rps: float = 1.0
    """Requests/s one GPU of this pool serves within SLO."""


@dataclass(frozen=True)
class Trade:
    """GPUs moved from one pool to another, with what it saves."""

    giver: str
    taker: str
    gpus: int
    usd_per_h_saved: float
    giver_drains_in_s: float | None
    """Batch giver: seconds until its backlog drains on what it keeps (None: not a batch pool / no backlog)."""

    def sentence(self, gpu_type: str, start_hhmm: str | None = None) -> str:
        s = f"move {self.gpus} {gpu_type} from {self.giver} to {self.taker}: "
        if self.usd_per_h_saved >= 0:
            s += f"saves ${self.usd_per_h_saved:.2f}/h of breach"
        else:  # a batch pool's deadline minimum comes before interactive extras
            s += f"costs ${-self.usd_per_h_saved:.2f}/h of breach to meet {self.taker}'s drain deadline"
        if self.giver_drains_in_s is not None:
            s += f", {self.giver} backlog drains in {self.giver_drains_in_s / 60.0:.0f} min"
            if start_hhmm:
                s += f" (by {start_hhmm})"
        return s


@dataclass
class Allocation:
    grants: dict[str, int]
    trades: list[Trade] = field(default_factory=list)
    unmet: dict[str, int] = field(default_factory=dict)
    """GPUs a pool wants but does not get (the breach the limit leaves)."""


def batch_minimum(claim: PoolClaim, deadline_s: float) -> int:
    """GPUs that serve arrivals and drain the backlog within ``deadline_s`` (at least the floor)."""
    need = (claim.backlog + claim.arrival_rps * deadline_s) / (max(1e-9, claim.per_gpu_rps) * deadline_s)
    return max(claim.floor, math.ceil(need - 1e-9))


def drain_seconds(claim: PoolClaim, gpus: int) -> float | None:
    """Seconds until the backlog drains on ``gpus`` (inf if it never does; None without a backlog)."""
    if claim.backlog <= 0:
        return None
    spare = gpus * claim.per_gpu_rps - claim.arrival_rps
    return math.inf if spare <= 0 else claim.backlog / spare


def allocate(limit: int, claims: Sequence[PoolClaim], policy: FleetPolicy) -> Allocation:
    """Split ``limit`` GPUs among ``claims``: minima first (floors; a batch pool's deadline minimum; a pool
    that may not yield keeps what it holds), then the rest by priority and breach cost per GPU."""
    cost = policy.breach_usd_per_gpu_h

    def minimum(c: PoolClaim) -> int:
        if not policy.allow_trades or c.key in policy.protected:
            return min(c.want, max(c.gpus_now, c.floor))
        if c.priority == "batch":
            return min(c.want, batch_minimum(c, policy.batch_deadline_s))
        return min(c.want, c.floor)

    order = sorted(claims, key=lambda c: (_RANK[c.priority], -cost.get(c.priority, 0.0), c.key))
    grants: dict[str, int] = {}
    left = limit
    for c in order:
        g = min(minimum(c), max(0, left))
        grants[c.key] = g
        left -= g
    for c in order:
        extra = min(c.want - grants[c.key], max(0, left))
        grants[c.key] += extra
        left -= extra
    unmet = {c.key: c.want - grants[c.key] for c in claims if c.want > grants[c.key]}
    # a giver is forced below what it holds and still wants (a pool scaling in by itself yields nothing)
    givers = [c for c in claims if grants[c.key] < min(c.gpus_now, c.want)]
    takers = [c for c in order if grants[c.key] > c.gpus_now]
    trades: list[Trade] = []
    gains = {c.key: grants[c.key] - c.gpus_now for c in takers}
    for giver in givers:
        give = min(giver.gpus_now, giver.want) - grants[giver.key]
        for taker in takers:
            n = min(give, gains[taker.key])
            if n <= 0:
                continue
            saved = n * (cost.get(taker.priority, 0.0) - cost.get(giver.priority, 0.0))
            drains = drain_seconds(giver, grants[giver.key])
            trades.append(Trade(giver.key, taker.key, n, round(saved, 2), drains))
            give -= n
            gains[taker.key] -= n
    return Allocation(grants, trades, unmet)
