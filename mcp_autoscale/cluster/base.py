"""The one small protocol every cluster backend implements (simulator, Kubernetes).

Write methods are called **only** by the action gate (``mcp_autoscale.actions``). Each returns the list of
field changes (before -> after). With ``dry_run=True`` a backend validates the change the way the real
system would (Kubernetes: ``dryRun=All``) and returns the would-be changes without persisting anything.

Optional capability, for backends with concurrent writers (Kubernetes): ``handles_conflicts = True``
means the backend retries a 409 itself with a fresh read each time, accepts ``recheck=`` on the three
write methods (called with every freshly read object before writing; raising stops the write), and
reports ``last_write_attempts`` and ``last_notes`` for the audit record. Other backends get a plain
bounded retry from the gate.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from mcp_autoscale.models import AutoscalerPatch, Change, GpuNodeRequest, NodePoolState, PoolRef, PoolState


@runtime_checkable
class ClusterBackend(Protocol):
    name: str

    def list_pools(self) -> list[PoolState]:
        """Every model pool the backend can see (namespace filtering is the caller's job)."""
        ...

    def get_pool(self, ref: PoolRef) -> PoolState:
        """One pool; raises ``NotFound``."""
        ...

    def list_node_pools(self) -> list[NodePoolState]: ...

    def scale_deployment(self, ref: PoolRef, replicas: int, *, dry_run: bool) -> list[Change]:
        """Set replicas through the scale subresource."""
        ...

    def patch_autoscaler(self, ref: PoolRef, patch: AutoscalerPatch, *, dry_run: bool) -> list[Change]:
        """Patch the pool's HPA, or its KEDA ScaledObject when KEDA owns the HPA."""
        ...

    def request_gpu_nodes(self, request: GpuNodeRequest, *, dry_run: bool) -> list[Change]:
        """Pre-provision GPU capacity (NodePool limit and/or placeholder pods)."""
        ...

    def record_event(self, ref: PoolRef, reason: str, message: str) -> None:
        """Post an Event on the target (best effort; never raises)."""
        ...
