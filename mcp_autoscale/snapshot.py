"""Assemble the fleet snapshot: cluster state + signals + SLO verdict + cost, per pool.

``build_snapshot`` and ``judge_slo`` are pure; ``Snapshotter`` is the thin shell that reads the backend and
the signal source (each call is one collection round: a constant number of backend queries).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import Any

from mcp_autoscale import metrics
from mcp_autoscale.cluster.base import ClusterBackend
from mcp_autoscale.errors import AutoscaleError, NotFound
from mcp_autoscale.logs import get_logger
from mcp_autoscale.models import (
    FleetSnapshot,
    NodePoolState,
    PoolRef,
    PoolSignals,
    PoolSnapshot,
    PoolState,
    Role,
    SignalReport,
    SloStatus,
    SloTargets,
)
from mcp_autoscale.signals.base import SignalSource

log = get_logger(__name__)

TargetsFor = Callable[[PoolState], SloTargets]
HISTORY_POOL_BUDGET = 24_000
"""Pool snapshots the history may hold in all (120 snapshots up to 200 pools, 24 at 1,000 pools)."""
HISTORY_MIN = 8
CostFor = Callable[[PoolState], float | None]

_OBJECTIVES: tuple[str, ...] = ("ttft_p90_s", "itl_p90_s")
_REQUIRED: dict[Role, tuple[str, ...]] = {
    Role.UNIFIED: ("ttft_p90_s", "itl_p90_s"),
    Role.PREFILL: ("ttft_p90_s",),
    Role.DECODE: ("itl_p90_s",),
}
"""Objectives a pool must report to be judged ``ok``: a prefill pool never decodes (no ITL) and a decode
pool's TTFT may be measured at the frontend. Any objective that *is* measured is still judged."""


def judge_slo(
    signals: PoolSignals, targets: SloTargets, role: Role = Role.UNIFIED
) -> tuple[SloStatus, list[str]]:
    """Breach if any measured p90 exceeds its target; unknown if a required one could not be measured.

    A stale signal still counts (it is the best evidence there is) but the status is never ``ok`` on
    stale or missing data alone: an unmeasured objective is ``unknown``, not met.
    """
    required = _REQUIRED[role]
    breaches: list[str] = []
    for signal in _OBJECTIVES:
        value = signals.value(signal)
        target = float(getattr(targets, signal))
        if value is not None and value > target:
            breaches.append(f"{signal} {value:.3g} > {target:.3g}")
    if breaches:
        return SloStatus.BREACH, breaches
    if any(signals.value(s) is None or s in signals.stale for s in required) and not idle(signals):
        return SloStatus.UNKNOWN, breaches
    return SloStatus.OK, breaches


_IDLE_EVIDENCE: tuple[str, ...] = ("request_rps", "queue_depth", "running")
_LATENCY: frozenset[str] = frozenset({"ttft_p50_s", "ttft_p90_s", "ttft_p99_s", "itl_p50_s", "itl_p90_s"})


def idle(signals: PoolSignals) -> bool:
    """Measured, fresh proof that nobody was served or waiting: no latency exists to miss its target.
    Anything less (a missing or stale count, a queue with nothing finishing) is not idle but unknown."""
    return all(signals.value(s) == 0.0 and s not in signals.stale for s in _IDLE_EVIDENCE)


_NOT_APPLICABLE: dict[Role, frozenset[str]] = {
    Role.PREFILL: frozenset({"itl_p50_s", "itl_p90_s", "gen_tps"}),  # a prefill pool does not decode
    Role.DECODE: frozenset(),
    Role.UNIFIED: frozenset(),
}


def incomplete(signals: PoolSignals, role: Role) -> bool:
    """Missing or stale data the pool should have (a prefill pool's ITL is not missing, it does not exist)."""
    missing = set(signals.missing) - _NOT_APPLICABLE[role]
    if idle(signals):
        missing -= _LATENCY  # an idle pool has no latency to measure; that is not a gap in the data
    return bool(missing or signals.stale)


def _round_signals(signals: PoolSignals) -> PoolSignals:
    """Round values and ages so the snapshot stays compact in the model's context."""
    data = signals.model_dump()
    for key, value in data.items():
        if isinstance(value, float):
            data[key] = round(value, 4)
    data["age_s"] = {k: round(v, 1) for k, v in signals.age_s.items()}
    return PoolSignals.model_validate(data)


def build_snapshot(
    pools: Sequence[PoolState],
    node_pools: Sequence[NodePoolState],
    report: SignalReport,
    *,
    targets_for: TargetsFor,
    cost_for: CostFor,
    backend: str,
    now: datetime,
    warnings: Sequence[str] = (),
    notes: Sequence[str] = (),
) -> FleetSnapshot:
    """Join cluster state and signals per pool. Pure: same inputs, same snapshot.

    ``warnings`` make the snapshot partial; ``notes`` are shown with them but do not (the data is whole,
    e.g. read live because the watch cache was stale)."""
    out: list[PoolSnapshot] = []
    partial = bool(report.errors) or bool(warnings)
    for pool in pools:
        signals = report.pools.get(pool.ref.key) or report.pools.get(pool.ref.local_key)
        if signals is None:
            signals = PoolSignals(missing={"*": f"no signals for {pool.ref.key} from {report.source}"})
        if incomplete(signals, pool.role):
            partial = True
        targets = targets_for(pool)
        status, breaches = judge_slo(signals, targets, pool.role)
        cost = cost_for(pool)
        out.append(
            PoolSnapshot(
                namespace=pool.ref.namespace,
                name=pool.ref.name,
                cluster=pool.ref.cluster,
                model=pool.model,
                engine=pool.engine,
                role=pool.role,
                gpu_type=pool.gpu_type,
                gpus_per_replica=pool.gpus_per_replica,
                node_pool=pool.node_pool,
                replicas={
                    "desired": pool.desired_replicas,
                    "ready": pool.ready_replicas,
                    "starting": pool.starting_replicas,
                    "pending": pool.pending_replicas,
                },
                owner=pool.autoscaler,
                gitops=pool.gitops,
                signals=_round_signals(signals),
                slo=status,
                slo_targets=targets,
                slo_breaches=breaches,
                cost_per_hour=None if cost is None else round(cost, 3),
            )
        )
    costs = [p.cost_per_hour for p in out]
    fleet_cost = (
        round(sum(c for c in costs if c is not None), 3) if any(c is not None for c in costs) else None
    )
    return FleetSnapshot(
        taken_at=now,
        backend=backend,
        signal_source=report.source,
        pools=out,
        node_pools=list(node_pools),
        partial=partial,
        warnings=[*report.errors, *warnings, *notes],
        source_errors=[
            *(e if e.startswith(report.source) else f"{report.source}: {e}" for e in report.errors),
            *warnings,
        ],
        fleet_cost_per_hour=fleet_cost,
        queries=report.queries,
    )


class Snapshotter:
    """Reads the backend and the signal source and builds snapshots, optionally filtered."""

    def __init__(
        self,
        backend: ClusterBackend,
        source: SignalSource,
        *,
        targets_for: TargetsFor,
        cost_for: CostFor,
        namespaces: Sequence[str] | None = None,
        clock: Callable[[], datetime] | None = None,
        history_size: int = 120,
        consistency: AbstractContextManager[Any] | None = None,
    ) -> None:
        self.backend = backend
        self.source = source
        self.targets_for = targets_for
        self.cost_for = cost_for
        self.namespaces = list(namespaces) if namespaces else None
        self.clock = clock or (lambda: datetime.now(UTC))
        self._history: deque[FleetSnapshot] = deque(maxlen=history_size)
        self._consistency = consistency
        """Held across one snapshot's reads (the twin's lock): pools, node pools and signals of one instant."""

    def history(self) -> list[FleetSnapshot]:
        """Recent snapshots, oldest first: the planner learns capacity and forecasts load from them."""
        return list(self._history)

    def _remember(self, snap: FleetSnapshot) -> None:
        if self._history and (snap.taken_at - self._history[-1].taken_at).total_seconds() < 1.0:
            self._history[-1] = snap  # same moment, e.g. two tools in one turn: keep the newest only
        else:
            self._history.append(snap)
        # ~5 KB per pool and snapshot: 120 snapshots of 1,000 pools would hold ~600 MB
        keep = max(HISTORY_MIN, HISTORY_POOL_BUDGET // max(1, len(snap.pools)))
        while len(self._history) > keep:
            self._history.popleft()

    def _visible(self, pool: PoolState) -> bool:
        return self.namespaces is None or pool.ref.namespace in self.namespaces

    def _pools(self, namespace: str | None, name: str | None, cluster: str | None = None) -> list[PoolState]:
        """One pool by address when both parts are given (the gate's evidence: one read, not the fleet)."""
        if namespace is None or name is None:
            return self.backend.list_pools()
        try:
            return [self.backend.get_pool(PoolRef(namespace=namespace, name=name, cluster=cluster))]
        except (NotFound, ValueError):
            return []

    @metrics.timed(metrics.SNAPSHOT_SECONDS)
    def take(
        self,
        *,
        namespace: str | None = None,
        name: str | None = None,
        include_node_pools: bool = True,
        cluster: str | None = None,
    ) -> FleetSnapshot:
        with self._consistency or nullcontext():
            return self._take(
                namespace=namespace, name=name, include_node_pools=include_node_pools, cluster=cluster
            )

    def _take(
        self, *, namespace: str | None, name: str | None, include_node_pools: bool, cluster: str | None = None
    ) -> FleetSnapshot:
        pools = [p for p in self._pools(namespace, name, cluster) if self._visible(p)]
        if cluster is not None:
            pools = [p for p in pools if p.ref.cluster == cluster]
        if namespace is not None:
            pools = [p for p in pools if p.ref.namespace == namespace]
        if name is not None:
            pools = [p for p in pools if p.ref.name == name]
        warnings: list[str] = []
        node_pools: list[NodePoolState] = []
        if include_node_pools:
            try:
                node_pools = self.backend.list_node_pools()
            except AutoscaleError as err:
                warnings.append(f"node pools unavailable: {err}")
        partial = getattr(
            self.backend, "partial_warnings", None
        )  # several clusters: the ones that did not answer
        if callable(partial):
            warnings.extend(w for w in partial() if w not in warnings)
        notes_of = getattr(self.backend, "read_notes", None)  # a watch cache that read live: not partial
        notes = [str(n) for n in notes_of()] if callable(notes_of) else []
        report = self.source.collect(pools)
        log.debug("snapshot", pools=len(pools), source=report.source, queries=report.queries)
        snap = build_snapshot(
            pools,
            node_pools,
            report,
            targets_for=self.targets_for,
            cost_for=self.cost_for,
            backend=self.backend.name,
            now=self.clock(),
            warnings=warnings,
            notes=notes,
        )
        if namespace is None and name is None and cluster is None:
            self._remember(snap)
        return snap

    def pool(self, ref: PoolRef) -> PoolSnapshot | None:
        """The compact snapshot of one pool (the evidence the gate stores with each decision)."""
        snap = self.take(
            namespace=ref.namespace, name=ref.name, include_node_pools=False, cluster=ref.cluster
        )
        return snap.pool(ref)
