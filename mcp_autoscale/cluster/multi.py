"""One ``ClusterBackend`` over several clusters: reads fan out, writes go to the cluster a pool names.

Each cluster is an ordinary backend (``KubernetesBackend`` for a kubeconfig context, or in-cluster) under a
short name the operator chooses (``MCP_AUTOSCALE_CLUSTERS``). Pools and node pools come back tagged with
that name (``PoolRef.cluster``, ``NodePoolState.cluster``); a ref without one means the default cluster.
The clusters under it never see the tag: it is taken off before a call and put back on the answer.

A cluster that does not answer does not fail the read: the others answer, and ``partial_warnings()``
names the ones that did not, for the snapshot to mark itself partial. Only when no cluster answers does a
read raise. Writes never fan out: a write to a cluster that is down fails like a single-cluster write.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from mcp_autoscale.cluster.base import ClusterBackend
from mcp_autoscale.config import Settings
from mcp_autoscale.errors import AutoscaleError, BackendUnavailable, ConfigError, NotFound
from mcp_autoscale.logs import get_logger
from mcp_autoscale.models import (
    K8S_NAME,
    AutoscalerPatch,
    Change,
    GpuNodeRequest,
    NodePoolState,
    PoolRef,
    PoolState,
)

log = get_logger(__name__)

T = TypeVar("T")


class MultiClusterBackend:
    """``ClusterBackend`` over named clusters (see the module docstring)."""

    def __init__(self, clusters: Mapping[str, ClusterBackend], default: str | None = None) -> None:
        if not clusters:
            raise ValueError("at least one cluster is needed")
        self.clusters = dict(clusters)
        self.default = default or next(iter(self.clusters))
        if self.default not in self.clusters:
            raise ValueError(f"default cluster {self.default!r} is not one of {sorted(self.clusters)}")
        kinds = {b.name for b in self.clusters.values()}
        self.name = kinds.pop() if len(kinds) == 1 else "multi"
        self.handles_conflicts = all(getattr(b, "handles_conflicts", False) for b in self.clusters.values())
        self._local = threading.local()
        self._live: MultiClusterBackend | None = None

    @property
    def live(self) -> MultiClusterBackend:
        """The same clusters without their watch caches: what the gate reads and writes through."""
        if not any(hasattr(b, "live") for b in self.clusters.values()):
            return self
        if self._live is None:
            live = {name: getattr(b, "live", b) for name, b in self.clusters.items()}
            self._live = MultiClusterBackend(live, default=self.default)
        return self._live

    # ------------------------------------------------------------------------------------ helpers
    @property
    def api_client(self) -> Any:
        """The default cluster's client: per-pool Lease locks live there (one place for every cluster)."""
        return getattr(self.clusters[self.default], "api_client", None)

    def partial_warnings(self) -> list[str]:
        """Clusters that did not answer this thread's last fan-out read (the snapshot reports them)."""
        return list(getattr(self._local, "down", []))

    def read_notes(self) -> list[str]:
        """Clusters whose watch cache could not answer this thread's last fan-out read (read live)."""
        return list(getattr(self._local, "notes", []))

    @property
    def last_write_attempts(self) -> int:
        return int(getattr(self._writer(), "last_write_attempts", 1))

    @property
    def last_notes(self) -> list[str]:
        notes = getattr(self._writer(), "last_notes", [])
        return [str(n) for n in notes] if isinstance(notes, list) else []

    def _writer(self) -> ClusterBackend:
        return self.clusters[getattr(self._local, "writer", self.default)]

    def _route(self, cluster: str | None) -> tuple[str, ClusterBackend]:
        name = cluster or self.default
        backend = self.clusters.get(name)
        if backend is None:
            raise NotFound(
                f"cluster {name!r} is not configured (clusters: {', '.join(sorted(self.clusters))})"
            )
        self._local.writer = name
        return name, backend

    def _fan_out(self, read: Callable[[ClusterBackend], list[T]], what: str) -> dict[str, list[T]]:
        """``read`` on every cluster at once; clusters that fail are left out and remembered."""

        def run(backend: ClusterBackend) -> tuple[list[T], list[str]]:
            found = read(backend)  # notes are per thread: take them in the thread that read
            notes = getattr(backend, "read_notes", None)
            return found, [str(n) for n in notes()] if callable(notes) else []

        with ThreadPoolExecutor(max_workers=len(self.clusters), thread_name_prefix="cluster") as pool:
            futures = {name: pool.submit(run, backend) for name, backend in self.clusters.items()}
        answers: dict[str, list[T]] = {}
        down: list[str] = []
        notes: list[str] = []
        for name, fut in futures.items():
            err = fut.exception()
            if err is None:
                answers[name], found_notes = fut.result()
                notes += [f"cluster {name}: {n}" for n in found_notes]
            elif isinstance(err, AutoscaleError):
                log.warning("cluster.unavailable", cluster=name, read=what, error=str(err))
                down.append(f"cluster {name} unavailable ({what}): {err}")
            else:
                raise err
        self._local.down = down
        self._local.notes = notes
        if not answers:
            raise BackendUnavailable("no cluster answered: " + "; ".join(down))
        return answers

    @staticmethod
    def _tag(pool: PoolState, cluster: str) -> PoolState:
        return pool.model_copy(update={"ref": pool.ref.model_copy(update={"cluster": cluster})})

    @staticmethod
    def _local_ref(ref: PoolRef) -> PoolRef:
        return ref.model_copy(update={"cluster": None})

    # ------------------------------------------------------------------------------------ reads
    def list_pools(self) -> list[PoolState]:
        answers = self._fan_out(lambda b: b.list_pools(), "pools")
        pools = [self._tag(p, name) for name, found in answers.items() for p in found]
        return sorted(pools, key=lambda p: p.ref.key)

    def get_pool(self, ref: PoolRef) -> PoolState:
        self._local.down = []
        name, backend = self._route(ref.cluster)
        return self._tag(backend.get_pool(self._local_ref(ref)), name)

    def list_node_pools(self) -> list[NodePoolState]:
        down_before, notes_before = self.partial_warnings(), self.read_notes()
        answers = self._fan_out(lambda b: b.list_node_pools(), "node pools")
        self._local.down = [*down_before, *self.partial_warnings()]
        self._local.notes = [*notes_before, *(n for n in self.read_notes() if n not in notes_before)]
        return [np.model_copy(update={"cluster": name}) for name, found in answers.items() for np in found]

    # ------------------------------------------------------------------------------------ writes
    def scale_deployment(self, ref: PoolRef, replicas: int, *, dry_run: bool, **extra: Any) -> list[Change]:
        _, backend = self._route(ref.cluster)
        return backend.scale_deployment(self._local_ref(ref), replicas, dry_run=dry_run, **extra)

    def patch_autoscaler(
        self, ref: PoolRef, patch: AutoscalerPatch, *, dry_run: bool, **extra: Any
    ) -> list[Change]:
        _, backend = self._route(ref.cluster)
        return backend.patch_autoscaler(self._local_ref(ref), patch, dry_run=dry_run, **extra)

    def request_gpu_nodes(self, request: GpuNodeRequest, *, dry_run: bool, **extra: Any) -> list[Change]:
        _, backend = self._route(request.cluster)
        return backend.request_gpu_nodes(
            request.model_copy(update={"cluster": None}), dry_run=dry_run, **extra
        )

    def record_event(self, ref: PoolRef, reason: str, message: str) -> None:
        try:
            _, backend = self._route(ref.cluster)
        except NotFound:
            return
        backend.record_event(self._local_ref(ref), reason, message)

    def record_node_pool_event(self, node_pool: str, reason: str, message: str) -> None:
        post = getattr(self._writer(), "record_node_pool_event", None)
        if callable(post):
            post(node_pool, reason, message)


IN_CLUSTER = "in-cluster"


def multi_cluster_backend(
    settings: Settings, namespaces: Sequence[str] | None, *, cache: bool = False
) -> MultiClusterBackend:
    """A ``KubernetesBackend`` per configured cluster (kubeconfig context, or ``in-cluster``), each with
    its own watch cache when ``cache`` (see ``kube_cached``).

    Names are checked at start-up (a bad name or an unknown default is a ``ConfigError``); reaching a
    cluster is not: one that is down makes answers partial, it does not stop the server.
    """
    from mcp_autoscale.cluster.kubernetes import KubernetesBackend

    backends: dict[str, ClusterBackend] = {}
    for name, context in settings.clusters.items():
        if not re.match(K8S_NAME, name) or len(name) > 63:
            raise ConfigError(
                f"MCP_AUTOSCALE_CLUSTERS: cluster name {name!r} must be a DNS label (a-z, 0-9, -)"
            )
        local = settings.model_copy(
            update={"kube_context": None if context in ("", IN_CLUSTER) else context, "clusters": {}}
        )
        live = KubernetesBackend(local, namespaces=namespaces, server_namespace=settings.kube_namespace)
        if cache:
            from mcp_autoscale.cluster.kube_cached import CachedKubernetesBackend

            backends[name] = CachedKubernetesBackend.build(live, local)
        else:
            backends[name] = live
    if settings.default_cluster is not None and settings.default_cluster not in backends:
        raise ConfigError(
            f"MCP_AUTOSCALE_DEFAULT_CLUSTER {settings.default_cluster!r} is not one of {sorted(backends)}"
        )
    return MultiClusterBackend(backends, default=settings.default_cluster)
