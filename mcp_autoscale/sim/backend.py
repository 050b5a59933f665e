"""The twin seen through the project's protocols: ``ClusterBackend`` and ``SignalSource``.

Writes validate exactly as the real write would (same errors, same field names as the Kubernetes objects)
and, with ``dry_run=True``, return the would-be changes without touching the twin.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mcp_autoscale.errors import InvalidInput, NotFound
from mcp_autoscale.models import (
    SIGNAL_NAMES,
    Autoscaler,
    AutoscalerKind,
    AutoscalerPatch,
    Change,
    GpuNodeRequest,
    NodePoolState,
    PoolRef,
    PoolSignals,
    PoolState,
    SignalReport,
)

if TYPE_CHECKING:
    from mcp_autoscale.sim.cluster import NodePool
    from mcp_autoscale.sim.twin import Twin, _Pool

PRODUCTION_NAMESPACES = frozenset({"chat", "batch"})
BALLOON_FIELD = "placeholder.spec.replicas"
"""Change field for balloon GPUs: replicas of the node pool's placeholder Deployment (1 GPU per pod)."""
LIMIT_FIELD = "spec.limits.nvidia.com/gpu"
KEDA_BEHAVIOR = "spec.advanced.horizontalPodAutoscalerConfig.behavior"


class SimClusterBackend:
    """``ClusterBackend`` over a ``Twin``."""

    name = "sim"

    def __init__(self, twin: Twin) -> None:
        self._twin = twin

    # ------------------------------------------------------------------ reads
    def _state(self, p: _Pool) -> PoolState:
        tw = self._twin
        dep = p.dep
        npool = tw._node_pools[dep.node_pool]
        a = dep.autoscaler
        auto = None
        if a is not None:
            keda = a.kind is AutoscalerKind.KEDA
            auto = Autoscaler(
                kind=a.kind,
                name=a.name,
                min_replicas=a.min_replicas,
                max_replicas=a.max_replicas,
                paused=a.paused,
                scale_down_stabilization_s=a.scale_down_stabilization_s,
                scale_up_stabilization_s=a.scale_up_stabilization_s,
                metric=a.metric,
                managed_hpa=f"keda-hpa-{a.name}" if keda else None,
            )
        ns = dep.namespace
        return PoolState(
            ref=p.spec.ref,
            model=p.spec.model,
            engine=p.spec.engine,
            role=p.spec.role,
            gpu_type=npool.gpu_type,
            gpus_per_replica=dep.gpus_per_replica,
            instance_type=npool.instance_type,
            capacity_type=npool.capacity_type,
            node_pool=npool.name,
            desired_replicas=dep.replicas,
            ready_replicas=dep.count("ready"),
            starting_replicas=dep.count("starting"),
            pending_replicas=dep.count("pending"),
            autoscaler=auto,
            labels={
                "app.kubernetes.io/name": dep.name,
                "mcp-autoscale/pool": "true",
                "environment": "production" if ns in PRODUCTION_NAMESPACES else "dev",
                "llm-d.ai/role": p.spec.role.value,
                **p.spec.labels,
            },
            cold_start_s=p.cold_start_s,
            metrics_urls=list(tw.metrics_urls),
        )

    def list_pools(self) -> list[PoolState]:
        tw = self._twin
        tw.sync()
        with tw._lock:
            return [self._state(p) for p in tw._pools.values()]

    def get_pool(self, ref: PoolRef) -> PoolState:
        tw = self._twin
        tw.sync()
        with tw._lock:
            return self._state(tw._pool(ref))

    def _node_state(self, npool: NodePool) -> NodePoolState:
        t = self._twin._t
        used = sum(n.used for n in npool.nodes)
        return NodePoolState(
            name=npool.name,
            gpu_type=npool.gpu_type,
            instance_type=npool.instance_type,
            capacity_type=npool.capacity_type,
            gpus_per_node=npool.gpus_per_node,
            gpu_limit=npool.gpu_limit,
            gpus_allocated=used,
            nodes_ready=sum(1 for n in npool.nodes if n.ready(t)),
            nodes_launching=sum(1 for n in npool.nodes if not n.ready(t)),
            reserved_gpus=npool.balloons_placed(),
            typical_provision_s=npool.provision.mode,
        )

    def list_node_pools(self) -> list[NodePoolState]:
        tw = self._twin
        tw.sync()
        with tw._lock:
            return [self._node_state(n) for n in tw._node_pools.values()]

    # ------------------------------------------------------------------ writes
    def scale_deployment(self, ref: PoolRef, replicas: int, *, dry_run: bool) -> list[Change]:
        if replicas < 0:
            raise InvalidInput(f"replicas must be >= 0, got {replicas}")
        tw = self._twin
        tw.sync()
        with tw._lock:
            dep = tw._pool(ref).dep
            before = dep.replicas
            changes = (
                [Change(field="spec.replicas", before=before, after=replicas)] if before != replicas else []
            )
            if not dry_run:
                dep.replicas = replicas
            return changes

    def patch_autoscaler(self, ref: PoolRef, patch: AutoscalerPatch, *, dry_run: bool) -> list[Change]:
        tw = self._twin
        tw.sync()
        with tw._lock:
            p = tw._pool(ref)
            a = p.dep.autoscaler
            if a is None:
                raise InvalidInput(
                    f"{ref.key} has no HPA or KEDA ScaledObject; change its replicas with scale_deployment"
                )
            keda = a.kind is AutoscalerKind.KEDA
            new_min = a.min_replicas if patch.min_replicas is None else patch.min_replicas
            new_max = a.max_replicas if patch.max_replicas is None else patch.max_replicas
            if new_min > new_max:
                raise InvalidInput(
                    f"{a.kind.value} {ref.namespace}/{a.name}: min replicas {new_min} > max "
                    f"replicas {new_max}"
                )
            if not keda and new_min < 1:
                raise InvalidInput(
                    f"HorizontalPodAutoscaler {ref.namespace}/{a.name}: minReplicas must be >= 1"
                )
            if patch.paused is not None and not keda:
                raise InvalidInput(
                    f"{ref.key} is owned by HorizontalPodAutoscaler {a.name}; 'paused' applies to KEDA only"
                )
            if keda:
                fields = {
                    "min": "spec.minReplicaCount",
                    "max": "spec.maxReplicaCount",
                    "down": f"{KEDA_BEHAVIOR}.scaleDown.stabilizationWindowSeconds",
                    "up": f"{KEDA_BEHAVIOR}.scaleUp.stabilizationWindowSeconds",
                    "paused": "metadata.annotations.autoscaling.keda.sh/paused",
                }
            else:
                fields = {
                    "min": "spec.minReplicas",
                    "max": "spec.maxReplicas",
                    "down": "spec.behavior.scaleDown.stabilizationWindowSeconds",
                    "up": "spec.behavior.scaleUp.stabilizationWindowSeconds",
                }
            wanted = {
                "min": (a.min_replicas, new_min),
                "max": (a.max_replicas, new_max),
                "down": (
                    a.scale_down_stabilization_s,
                    a.scale_down_stabilization_s
                    if patch.scale_down_stabilization_s is None
                    else patch.scale_down_stabilization_s,
                ),
                "up": (
                    a.scale_up_stabilization_s,
                    a.scale_up_stabilization_s
                    if patch.scale_up_stabilization_s is None
                    else patch.scale_up_stabilization_s,
                ),
            }
            if keda:
                wanted["paused"] = (a.paused, a.paused if patch.paused is None else patch.paused)
            changes = [
                Change(field=fields[k], before=before, after=after)
                for k, (before, after) in wanted.items()
                if before != after
            ]
            if not dry_run and changes:
                a.min_replicas = new_min
                a.max_replicas = new_max
                a.scale_down_stabilization_s = int(wanted["down"][1])
                a.scale_up_stabilization_s = int(wanted["up"][1])
                if keda:
                    a.paused = bool(wanted["paused"][1])
                a.next_poll = tw._t  # the controller re-syncs on the next tick with the new spec
            return changes

    def request_gpu_nodes(self, request: GpuNodeRequest, *, dry_run: bool) -> list[Change]:
        tw = self._twin
        tw.sync()
        with tw._lock:
            npool = tw._node_pools.get(request.node_pool)
            if npool is None:
                raise NotFound(
                    f"node pool {request.node_pool} not found in the simulator; known: "
                    f"{', '.join(tw._node_pools)}"
                )
            used = sum(n.used for n in npool.nodes)
            changes: list[Change] = []
            new_limit = npool.gpu_limit
            method = request.method
            if method == "limit":
                if npool.gpu_limit is None:
                    raise InvalidInput(
                        f"node pool {npool.name} has no nvidia.com/gpu limit to raise; use method 'balloon'"
                    )
                new_limit = npool.gpu_limit + request.gpus
            elif method == "auto" and npool.gpu_limit is not None:
                needed = used + npool.balloon_target + request.gpus
                if needed > npool.gpu_limit:
                    new_limit = needed
            if new_limit != npool.gpu_limit:
                changes.append(Change(field=LIMIT_FIELD, before=npool.gpu_limit, after=new_limit))
            new_balloons = npool.balloon_target
            if method in ("auto", "balloon"):
                new_balloons = npool.balloon_target + request.gpus
                changes.append(Change(field=BALLOON_FIELD, before=npool.balloon_target, after=new_balloons))
            if not dry_run:
                npool.gpu_limit = new_limit
                npool.balloon_target = new_balloons
            return changes

    def record_event(self, ref: PoolRef, reason: str, message: str) -> None:
        tw = self._twin
        try:
            with tw._lock:
                tw.events.append(
                    {"ts": tw.now.isoformat(), "target": ref.key, "reason": reason, "message": message}
                )
        except Exception:  # best effort by contract: an event never fails the action
            return


class SimSignalSource:
    """``SignalSource`` returning the twin's ground truth (dialect ``vllm``, age 0, no queries)."""

    name = "sim"

    def __init__(self, twin: Twin) -> None:
        self._twin = twin

    def collect(self, pools: Sequence[PoolState]) -> SignalReport:
        tw = self._twin
        tw.sync()
        with tw._lock:
            out: dict[str, PoolSignals] = {}
            for ps in pools:
                p = tw._pools.get(ps.ref.key)
                if p is None:
                    reason = f"pool {ps.ref.key} is not part of the simulated fleet"
                    out[ps.ref.key] = PoolSignals(dialect="vllm", missing=dict.fromkeys(SIGNAL_NAMES, reason))
                else:
                    out[ps.ref.key] = tw._signals(p)
            return SignalReport(source="sim", pools=out, queries=0, collected_at=tw.now)
