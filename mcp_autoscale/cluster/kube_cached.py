"""The Kubernetes backend with its fleet-wide reads served from a watch cache (``kube_cache``).

Only ``list_pools`` and ``list_node_pools`` (snapshots, read tools, resources) read the cache. Everything
that judges or makes a change reads the API server directly: ``get_pool`` (the gate's evidence and its
re-reads), the writes with their resourceVersion / 409 handling, and, through ``live``, every read the
gate makes (the app hands the gate ``backend.live``), so an action is never judged on cached data.

When the cache cannot vouch for its data (a watch broken for longer than the bound, or the first lists
not done in time), the read falls back to live lists and ``read_notes()`` says so for the snapshot.
"""

from __future__ import annotations

import threading
from typing import Any

from mcp_autoscale import metrics
from mcp_autoscale.cluster import kube_ownership as ko
from mcp_autoscale.cluster.kube_cache import KubeCache
from mcp_autoscale.cluster.kubernetes import KubernetesBackend, assemble_node_pools, assemble_pools
from mcp_autoscale.config import Settings
from mcp_autoscale.logs import get_logger
from mcp_autoscale.models import AutoscalerPatch, Change, GpuNodeRequest, NodePoolState, PoolRef, PoolState

log = get_logger(__name__)

POOL_ROLES = ("deployments", "scaledobjects", "hpas", "pods", "nodepools")
NODE_POOL_ROLES = ("nodepools", "nodeclaims", "balloons")


class CachedKubernetesBackend:
    """``ClusterBackend``: fleet reads from the watch cache, the rest (and any fallback) from ``live``."""

    name = "kubernetes"
    handles_conflicts = True

    def __init__(self, live: KubernetesBackend, cache: KubeCache, watch_client: Any = None) -> None:
        self.live = live
        self.cache = cache
        self._watch_client = watch_client
        self._local = threading.local()

    @classmethod
    def build(cls, live: KubernetesBackend, settings: Settings) -> CachedKubernetesBackend:
        watch_client = live.watch_client()
        cache = KubeCache(
            live.watch_queries(watch_client),
            max_stale_s=settings.kube_cache_max_stale_s,
            resync_s=settings.kube_cache_resync_s,
            sync_timeout_s=settings.request_timeout_s,
        )
        return cls(live, cache, watch_client)

    def close(self) -> None:
        """Stop the informers (their threads are daemons; tests and benchmarks stop them)."""
        self.cache.close()
        if self._watch_client is not None:
            self._watch_client.close()

    # ------------------------------------------------------------------------------------ reads
    def read_notes(self) -> list[str]:
        """Why this thread's last fleet read did not come from the cache (the snapshot shows it)."""
        return list(getattr(self._local, "notes", []))

    def _read(self, roles: tuple[str, ...], what: str) -> dict[str, Any] | None:
        got = self.cache.read(roles)
        if got.stale is None:
            self._local.notes = []
            metrics.kube_cache_read("cache")
            return got.objects
        metrics.kube_cache_read("live")
        note = f"watch cache stale, {what} read live from the API server: {got.stale}"
        log.warning("kube_cache.stale", what=what, why=got.stale)
        self._local.notes = [note]
        return None

    def list_pools(self) -> list[PoolState]:
        objs = self._read(POOL_ROLES, "pools")
        if objs is None:
            return self.live.list_pools()
        deployments = objs["deployments"] or []
        nodepools = {str(ko.meta(n).get("name")): n for n in objs["nodepools"] or []}
        return assemble_pools(
            deployments, objs["scaledobjects"] or [], objs["hpas"] or [], objs["pods"] or [], nodepools
        )

    def list_node_pools(self) -> list[NodePoolState]:
        before = self.read_notes()  # a snapshot reads pools, then node pools: keep both notes
        objs = self._read(NODE_POOL_ROLES, "node pools")
        self._local.notes = [*before, *self.read_notes()]
        if objs is None:
            return self.live.list_node_pools()
        nodepools = {str(ko.meta(n).get("name")): n for n in objs["nodepools"] or []}
        if not nodepools:
            return []
        return assemble_node_pools(nodepools, objs["nodeclaims"], objs["balloons"] or [])

    def get_pool(self, ref: PoolRef) -> PoolState:
        """Always live: the gate's evidence and the one-pool reads that judge an action."""
        self._local.notes = []
        return self.live.get_pool(ref)

    # ------------------------------------------------------------------------------------ live only
    @property
    def api_client(self) -> Any:
        return self.live.api_client

    @property
    def last_write_attempts(self) -> int:
        return self.live.last_write_attempts

    @property
    def last_notes(self) -> list[str]:
        return self.live.last_notes

    def scale_deployment(self, ref: PoolRef, replicas: int, *, dry_run: bool, **extra: Any) -> list[Change]:
        return self.live.scale_deployment(ref, replicas, dry_run=dry_run, **extra)

    def patch_autoscaler(
        self, ref: PoolRef, patch: AutoscalerPatch, *, dry_run: bool, **extra: Any
    ) -> list[Change]:
        return self.live.patch_autoscaler(ref, patch, dry_run=dry_run, **extra)

    def request_gpu_nodes(self, request: GpuNodeRequest, *, dry_run: bool, **extra: Any) -> list[Change]:
        return self.live.request_gpu_nodes(request, dry_run=dry_run, **extra)

    def record_event(self, ref: PoolRef, reason: str, message: str) -> None:
        self.live.record_event(ref, reason, message)

    def record_node_pool_event(self, node_pool: str, reason: str, message: str) -> None:
        self.live.record_node_pool_event(node_pool, reason, message)
