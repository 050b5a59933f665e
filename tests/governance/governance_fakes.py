"""A tiny in-memory ClusterBackend with the team's default fleet, and helpers to build contexts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mcp_autoscale.errors import AutoscaleError, NotFound
from mcp_autoscale.models import (
    Autoscaler,
    AutoscalerKind,
    AutoscalerPatch,
    Change,
    GpuNodeRequest,
    NodePoolState,
    PoolRef,
    PoolSignals,
    PoolSnapshot,
    PoolState,
    Role,
    SloStatus,
    SloTargets,
)

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # a Tuesday


def default_pools() -> list[PoolState]:
    def pool(
        ns: str,
        name: str,
        gpu: str,
        gpr: int,
        np_: str,
        replicas: int,
        owner: Autoscaler | None,
        role: Role = Role.UNIFIED,
    ) -> PoolState:
        return PoolState(
            ref=PoolRef(namespace=ns, name=name),
            model=name,
            gpu_type=gpu,
            gpus_per_replica=gpr,
            node_pool=np_,
            desired_replicas=replicas,
            ready_replicas=replicas,
            autoscaler=owner,
            role=role,
            labels={"tier": "production" if ns in ("chat", "batch") else "dev"},
            cold_start_s=90.0,
        )

    keda = AutoscalerKind.KEDA
    hpa = AutoscalerKind.HPA
    return [
        pool(
            "chat",
            "llama-8b",
            "L4",
            1,
            "gpu-l4",
            4,
            Autoscaler(
                kind=keda, name="llama-8b", min_replicas=2, max_replicas=16, managed_hpa="keda-hpa-llama-8b"
            ),
        ),
        pool(
            "chat",
            "llama-70b-prefill",
            "H100",
            4,
            "gpu-h100",
            2,
            Autoscaler(kind=hpa, name="llama-70b-prefill", min_replicas=1, max_replicas=4),
            Role.PREFILL,
        ),
        pool(
            "chat",
            "llama-70b-decode",
            "H100",
            4,
            "gpu-h100",
            2,
            Autoscaler(kind=keda, name="llama-70b-decode", min_replicas=1, max_replicas=6),
            Role.DECODE,
        ),
        pool("batch", "qwen-7b", "H100", 1, "gpu-h100", 2, None),
        pool("dev", "granite-8b", "A10G", 1, "gpu-a10g", 1, None),
    ]


def default_node_pools() -> list[NodePoolState]:
    return [
        NodePoolState(name="gpu-l4", gpu_type="L4", gpus_per_node=1, gpu_limit=24, gpus_allocated=4),
        NodePoolState(name="gpu-h100", gpu_type="H100", gpus_per_node=8, gpu_limit=32, gpus_allocated=18),
        NodePoolState(name="gpu-a10g", gpu_type="A10G", gpus_per_node=1, gpu_limit=8, capacity_type="spot"),
    ]


class FakeBackend:
    """Implements the ClusterBackend protocol in memory; counts writes; can be told to fail."""

    name = "fake"

    def __init__(self) -> None:
        self.pools = {p.ref.key: p for p in default_pools()}
        self.node_pools = {n.name: n for n in default_node_pools()}
        self.writes: list[tuple[str, Any, bool]] = []
        self.events: list[tuple[str, str, str]] = []
        self.fail_with: AutoscaleError | None = None
        self.fail_times = 0

    def list_pools(self) -> list[PoolState]:
        return list(self.pools.values())

    def get_pool(self, ref: PoolRef) -> PoolState:
        try:
            return self.pools[ref.key]
        except KeyError:
            raise NotFound(f"pool {ref.key} not found") from None

    def list_node_pools(self) -> list[NodePoolState]:
        return list(self.node_pools.values())

    def _maybe_fail(self) -> None:
        if self.fail_with is not None and self.fail_times != 0:
            self.fail_times -= 1
            raise self.fail_with

    def scale_deployment(self, ref: PoolRef, replicas: int, *, dry_run: bool) -> list[Change]:
        self.writes.append(("scale", (ref.key, replicas), dry_run))
        self._maybe_fail()
        pool = self.get_pool(ref)
        change = Change(field="replicas", before=pool.desired_replicas, after=replicas)
        if not dry_run:
            self.pools[ref.key] = pool.model_copy(update={"desired_replicas": replicas})
        return [change]

    def patch_autoscaler(self, ref: PoolRef, patch: AutoscalerPatch, *, dry_run: bool) -> list[Change]:
        self.writes.append(("patch", (ref.key, patch), dry_run))
        self._maybe_fail()
        pool = self.get_pool(ref)
        assert pool.autoscaler is not None
        upd = patch.model_dump(exclude={"kind"}, exclude_none=True)
        changes = [Change(field=k, before=getattr(pool.autoscaler, k), after=v) for k, v in upd.items()]
        if not dry_run:
            self.pools[ref.key] = pool.model_copy(
                update={"autoscaler": pool.autoscaler.model_copy(update=upd)}
            )
        return changes

    def request_gpu_nodes(self, request: GpuNodeRequest, *, dry_run: bool) -> list[Change]:
        self.writes.append(("gpus", request, dry_run))
        self._maybe_fail()
        np_ = self.node_pools[request.node_pool]
        change = Change(
            field="reserved_gpus", before=np_.reserved_gpus, after=np_.reserved_gpus + request.gpus
        )
        if not dry_run:
            self.node_pools[np_.name] = np_.model_copy(update={"reserved_gpus": change.after})
        return [change]

    def record_event(self, ref: PoolRef, reason: str, message: str) -> None:
        self.events.append((ref.key, reason, message))

    def applied_writes(self) -> list[tuple[str, Any, bool]]:
        return [w for w in self.writes if not w[2]]


def snapshot_for(
    pool: PoolState, *, kv: float | None = 0.4, queue: float | None = 0.0, age: float | None = 5.0
) -> PoolSnapshot:
    ages = {} if age is None else {"kv_usage": age, "queue_depth": age, "ttft_p90_s": age}
    return PoolSnapshot(
        namespace=pool.ref.namespace,
        name=pool.ref.name,
        model=pool.model,
        engine=pool.engine,
        role=pool.role,
        gpu_type=pool.gpu_type,
        gpus_per_replica=pool.gpus_per_replica,
        replicas={
            "desired": pool.desired_replicas,
            "ready": pool.ready_replicas,
            "starting": 0,
            "pending": 0,
        },
        owner=pool.autoscaler,
        signals=PoolSignals(kv_usage=kv, queue_depth=queue, ttft_p90_s=0.8, age_s=ages),
        slo=SloStatus.OK,
        slo_targets=SloTargets(),
    )


class FileBackend(FakeBackend):
    """FakeBackend whose replica counts live in a JSON file: a 'cluster' several processes share."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        if not path.exists():
            path.write_text(json.dumps({k: p.desired_replicas for k, p in self.pools.items()}))

    def get_pool(self, ref: PoolRef) -> PoolState:
        pool = super().get_pool(ref)
        return pool.model_copy(update={"desired_replicas": json.loads(self.path.read_text())[ref.key]})

    def scale_deployment(self, ref: PoolRef, replicas: int, *, dry_run: bool) -> list[Change]:
        before = self.get_pool(ref).desired_replicas
        self.writes.append(("scale", (ref.key, replicas), dry_run))
        if not dry_run:
            state = json.loads(self.path.read_text())
            state[ref.key] = replicas
            self.path.write_text(json.dumps(state))
        return [Change(field="replicas", before=before, after=replicas)]


class Clock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Signals:
    """Mutable live signals per pool for the gate's evidence callback."""

    def __init__(self, backend: FakeBackend) -> None:
        self.backend = backend
        self.kv: dict[str, float | None] = {}
        self.queue: dict[str, float | None] = {}
        self.age: float | None = 5.0

    def __call__(self, ref: PoolRef) -> PoolSnapshot | None:
        pool = self.backend.get_pool(ref)
        return snapshot_for(
            pool, kv=self.kv.get(ref.key, 0.4), queue=self.queue.get(ref.key, 0.0), age=self.age
        )
