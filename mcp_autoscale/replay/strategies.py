"""The three ways of sizing a pool that the replay compares, each acting on the twin through its backend.

1. ``KedaOnly``: the twin's own KEDA ScaledObject (queue AverageValue 5 per replica, 30 s polling, 300 s
   scale-down stabilisation). The outer loop does nothing.
2. ``KedaPlusPlanner``: the same KEDA, with this project's planner as the outer loop. Every ``sample_s`` it
   takes a snapshot through the same ``Snapshotter`` the MCP server uses (history for learning and
   forecasting); every ``interval_s`` it asks ``planner.recommend`` and applies the recommended tool call
   (``patch_hpa`` on the ScaledObject's min/max) through the backend, as the gate would after approval.
   ``request_gpu_nodes`` prerequisites are not applied: pending pods already make the node pool launch
   nodes, and balloons would hold GPUs the evaluation counts.
3. ``Oracle``: KEDA paused; it knows the whole trace and the twin's true per-replica capacity (measured by
   a probe run) and sets replicas to the most any minute within one cold start ahead needs. It cannot
   beat the cold start: it only orders early.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mcp_autoscale.cost.catalogue import PriceCatalogue
from mcp_autoscale.cost.estimate import pool_cost_per_hour
from mcp_autoscale.models import ActionKind, AutoscalerPatch, PoolRef, SloTargets
from mcp_autoscale.planner import PlannerConfig, PoolSample, recommend, replicas_needed
from mcp_autoscale.sim import Twin
from mcp_autoscale.snapshot import Snapshotter


@dataclass
class ActionLog:
    """Outer-loop writes made by a strategy (the fast loop's own changes are counted by the evaluator)."""

    at_s: list[float] = field(default_factory=list)
    what: list[str] = field(default_factory=list)

    def add(self, t: float, what: str) -> None:
        self.at_s.append(t)
        self.what.append(what)

    def __len__(self) -> int:
        return len(self.at_s)


class Strategy:
    """Base: ``setup`` once before the trace starts, ``step`` every ``period_s`` of simulated time."""

    name = "base"
    label = "base"
    period_s = 30.0

    def __init__(self) -> None:
        self.actions = ActionLog()

    def setup(self, twin: Twin, ref: PoolRef) -> None:
        return None

    def step(self, twin: Twin, ref: PoolRef, t_s: float) -> None:
        return None


class KedaOnly(Strategy):
    name = "keda"
    label = "KEDA only (queue AverageValue 5, 30 s poll, 300 s scale-down window)"


class KedaPlusPlanner(Strategy):
    name = "planner"
    label = "KEDA + planner outer loop"

    def __init__(
        self,
        catalogue: PriceCatalogue,
        slo: SloTargets,
        *,
        interval_s: float = 120.0,
        sample_s: float = 30.0,
        config: PlannerConfig | None = None,
        history_len: int = 240,
    ) -> None:
        super().__init__()
        if not 60.0 <= interval_s <= 180.0:
            raise ValueError("the planner's interval must be 60-180 s")
        self.catalogue = catalogue
        self.slo = slo
        self.interval_s = interval_s
        self.period_s = sample_s
        self.config = (config or PlannerConfig()).model_copy(
            update={"slo": slo, "control_interval_s": interval_s}
        )
        self.history: list[PoolSample] = []
        self.history_len = history_len
        self._next_plan = 0.0
        self._snapshotter: Snapshotter | None = None
        self.last_capacity: tuple[float | None, float | None] = (None, None)

    def setup(self, twin: Twin, ref: PoolRef) -> None:
        cat = self.catalogue
        self._snapshotter = Snapshotter(
            twin.backend,
            twin.signals,
            targets_for=lambda _p: self.slo,
            cost_for=lambda p: pool_cost_per_hour(p, cat),
            clock=lambda: twin.now,
        )

    def step(self, twin: Twin, ref: PoolRef, t_s: float) -> None:
        assert self._snapshotter is not None
        snap = self._snapshotter.take(namespace=ref.namespace, name=ref.name)
        pool = snap.pool(ref)
        if pool is None:
            return
        s = pool.signals
        self.history.append(
            PoolSample(
                t_s=t_s,
                ready_replicas=pool.replicas.get("ready", 0),
                prompt_tps=s.prompt_tps,
                gen_tps=s.gen_tps,
                ttft_p90_s=s.ttft_p90_s,
                itl_p90_s=s.itl_p90_s,
                kv_usage=s.kv_usage,
                queue_depth=s.queue_depth,
                running=s.running,
            )
        )
        del self.history[: -self.history_len]
        if t_s + 1e-9 < self._next_plan:
            return
        self._next_plan = t_s + self.interval_s
        state = twin.backend.get_pool(ref)
        (rec,) = recommend(
            snap, [state], snap.node_pools, self.catalogue, {ref.key: self.history}, self.config
        )
        if rec.tool_call is None:
            return
        args = rec.tool_call.arguments
        if rec.tool_call.tool == ActionKind.PATCH_HPA.value:
            patch = AutoscalerPatch(
                min_replicas=args.get("min_replicas"), max_replicas=args.get("max_replicas")
            )
            if twin.backend.patch_autoscaler(ref, patch, dry_run=False):
                self.actions.add(t_s, f"patch_hpa min={patch.min_replicas} max={patch.max_replicas}")
        elif rec.tool_call.tool == ActionKind.SCALE_DEPLOYMENT.value and twin.backend.scale_deployment(
            ref, int(args["replicas"]), dry_run=False
        ):
            self.actions.add(t_s, f"scale_deployment replicas={args['replicas']}")


class Oracle(Strategy):
    name = "oracle"
    label = "Oracle (perfect foresight, bounded by cold start)"

    def __init__(
        self,
        demand_in: Sequence[float],
        demand_out: Sequence[float],
        c_in: float,
        c_out: float,
        *,
        lead_s: float,
        floor: int,
        utilisation: float = 0.9,
        max_replicas: int = 1000,
    ) -> None:
        super().__init__()
        self.c_in, self.c_out, self.lead_s, self.floor, self.u = c_in, c_out, lead_s, floor, utilisation
        need = [
            min(max_replicas, replicas_needed(r_in, r_out, c_in, c_out, utilisation, floor))
            for r_in, r_out in zip(demand_in, demand_out, strict=True)
        ]
        self.need = np.asarray(need, dtype=np.int64)

    def setup(self, twin: Twin, ref: PoolRef) -> None:
        twin.backend.patch_autoscaler(ref, AutoscalerPatch(paused=True), dry_run=False)

    def target(self, t_s: float) -> int:
        """The most any minute from now to one lead time ahead needs (replicas ordered now serve then)."""
        lo = max(0, int(t_s // 60))
        hi = min(len(self.need), math.ceil((t_s + self.lead_s) / 60.0) + 1)
        if lo >= len(self.need):
            return self.floor
        return int(self.need[lo:hi].max())

    def step(self, twin: Twin, ref: PoolRef, t_s: float) -> None:
        want = self.target(t_s)
        if twin.backend.scale_deployment(ref, want, dry_run=False):
            self.actions.add(t_s, f"scale_deployment replicas={want}")
