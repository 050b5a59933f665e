"""Portable backend tests (marker ``e2e``): only the public client API, no emulator internals.

By default they run against the emulator like every other test here. With
``MCP_AUTOSCALE_E2E_KUBECONFIG=/path/to/kubeconfig pytest tests/kube -m e2e`` the ``cluster`` fixture connects
to that cluster instead (kind + KEDA + the Karpenter CRDs; see docs/kubernetes.md), so the same assertions
check the emulator's fidelity where it matters. Objects live in namespace ``mcp-e2e`` and are deleted after.
"""

from __future__ import annotations

import pytest
from kube_cluster import Cluster
from kube_objects import deployment, hpa, nodepool, scaled_object

from mcp_autoscale.cluster.kubernetes import KubernetesBackend
from mcp_autoscale.cluster.lease import LeaseLock
from mcp_autoscale.config import Settings
from mcp_autoscale.errors import Conflict, InvalidInput, NotFound
from mcp_autoscale.models import AutoscalerKind, AutoscalerPatch, GpuNodeRequest, PoolRef

pytestmark = pytest.mark.e2e
NS = "mcp-e2e"


@pytest.fixture
def backend(cluster: Cluster) -> KubernetesBackend:
    # KEDA creates keda-hpa-<name> itself on a real cluster, so the portable fleet never seeds it.
    for obj in (
        deployment(NS, "keda-pool", model="meta-llama/Llama-3.1-8B-Instruct", replicas=2, node_pool="e2e-l4"),
        scaled_object(NS, "keda-pool", "keda-pool", min_replicas=1, max_replicas=8),
        deployment(NS, "hpa-pool", model="meta-llama/Llama-3.3-70B-Instruct", gpus=4, replicas=1),
        hpa(NS, "hpa-pool", "hpa-pool", min_replicas=1, max_replicas=4),
        deployment(NS, "free-pool", model="Qwen/Qwen2.5-7B-Instruct", replicas=1, model_in_args=True),
        nodepool(
            "e2e-l4", gpu_name="l4", instance_type="g6.xlarge", capacity="on-demand", limit=4, used=4, nodes=4
        ),
    ):
        cluster.create(obj)
    return KubernetesBackend(Settings(request_timeout_s=10), cluster.api, namespaces=[NS])


def test_e2e_discovery_and_ownership(backend: KubernetesBackend) -> None:
    pools = {p.ref.name: p for p in backend.list_pools()}
    assert sorted(pools) == ["free-pool", "hpa-pool", "keda-pool"]
    keda = pools["keda-pool"].autoscaler
    assert (
        keda is not None
        and keda.kind == AutoscalerKind.KEDA
        and (keda.min_replicas, keda.max_replicas) == (1, 8)
    )
    owner = pools["hpa-pool"].autoscaler
    assert owner is not None and owner.kind == AutoscalerKind.HPA and owner.max_replicas == 4
    assert pools["hpa-pool"].gpus_per_replica == 4
    assert pools["free-pool"].autoscaler is None and pools["free-pool"].model == "Qwen/Qwen2.5-7B-Instruct"
    assert (pools["keda-pool"].node_pool, pools["keda-pool"].gpu_type) == ("e2e-l4", "L4")


def test_e2e_scale_dry_run_then_apply(backend: KubernetesBackend) -> None:
    ref = PoolRef(namespace=NS, name="free-pool")
    dry = backend.scale_deployment(ref, 3, dry_run=True)
    assert [(c.before, c.after) for c in dry] == [(1, 3)]
    assert backend.get_pool(ref).desired_replicas == 1  # not persisted
    applied = backend.scale_deployment(ref, 3, dry_run=False)
    assert [(c.before, c.after) for c in applied] == [(1, 3)] and backend.last_write_attempts == 1
    assert backend.get_pool(ref).desired_replicas == 3
    with pytest.raises(InvalidInput, match="owned by KEDA ScaledObject"):
        backend.scale_deployment(PoolRef(namespace=NS, name="keda-pool"), 5, dry_run=True)


def test_e2e_keda_patch_goes_to_scaled_object(backend: KubernetesBackend) -> None:
    ref = PoolRef(namespace=NS, name="keda-pool")
    changes = backend.patch_autoscaler(ref, AutoscalerPatch(max_replicas=12, paused=True), dry_run=False)
    fields = {c.field: (c.before, c.after) for c in changes}
    assert fields[f"ScaledObject {NS}/keda-pool spec.maxReplicaCount"] == (8, 12)
    assert fields[f"ScaledObject {NS}/keda-pool metadata.annotations[autoscaling.keda.sh/paused]"] == (
        None,
        "true",
    )
    scaler = backend.get_pool(ref).autoscaler
    assert scaler is not None and scaler.max_replicas == 12 and scaler.paused


def test_e2e_hpa_patch_and_node_pool_dry_run(backend: KubernetesBackend) -> None:
    changes = backend.patch_autoscaler(
        PoolRef(namespace=NS, name="hpa-pool"), AutoscalerPatch(max_replicas=2), dry_run=True
    )
    assert [(c.before, c.after) for c in changes] == [(4, 2)]
    limit = backend.request_gpu_nodes(
        GpuNodeRequest(node_pool="e2e-l4", gpus=2, method="limit"), dry_run=True
    )
    assert (limit[0].field, limit[0].before, limit[0].after) == (
        "NodePool e2e-l4 spec.limits[nvidia.com/gpu]",
        "4",
        "6",
    )
    assert {n.name: n.gpu_limit for n in backend.list_node_pools()}["e2e-l4"] == 4


def test_e2e_not_found(backend: KubernetesBackend) -> None:
    with pytest.raises(NotFound, match=f"^Deployment {NS}/nope not found$"):
        backend.scale_deployment(PoolRef(namespace=NS, name="nope"), 1, dry_run=True)


def test_e2e_lease_lock(cluster: Cluster) -> None:
    cluster.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "e2e-anchor", "namespace": NS}}
    )
    a = LeaseLock(cluster.api, NS, "e2e-a")
    b = LeaseLock(cluster.api, NS, "e2e-b", poll_s=0.05)
    with (
        a.acquire("e2e/pool", timeout=5),
        pytest.raises(Conflict, match="locked by e2e-a"),
        b.acquire("e2e/pool", timeout=0.3),
    ):
        pytest.fail("must not enter")
    with b.acquire("e2e/pool", timeout=5):
        assert b.holder_of("e2e/pool") == "e2e-b"


def test_e2e_watch_cache_follows_a_scale_and_a_new_pool(backend: KubernetesBackend, cluster: Cluster) -> None:
    """The watch cache against a real API server's watch (or the emulator's): it converges on a scale
    change and on a new pool with no relist, and the gate's write path still reads live."""
    import time

    from mcp_autoscale.cluster.kube_cached import CachedKubernetesBackend

    settings = Settings(request_timeout_s=10, kube_cache_max_stale_s=60)
    cached = CachedKubernetesBackend.build(backend, settings)
    ref = PoolRef(namespace=NS, name="free-pool")

    def converged(want: dict[str, int]) -> bool:
        got = {p.ref.name: p.desired_replicas for p in cached.list_pools()}
        return all(got.get(k) == v for k, v in want.items())

    def wait(want: dict[str, int]) -> None:
        deadline = time.monotonic() + 20
        while not converged(want):
            assert time.monotonic() < deadline, f"cache did not converge on {want}"
            time.sleep(0.05)

    try:
        assert converged({"free-pool": 1, "hpa-pool": 1, "keda-pool": 2}) and cached.read_notes() == []
        cached.list_node_pools()  # every informer has listed once now
        assert all(i.synced.is_set() for i in cached.cache.informers)
        lists = cached.cache.stats()["lists"]
        assert cached.scale_deployment(ref, 4, dry_run=False)[0].after == 4  # through the live backend
        cluster.create(deployment(NS, "new-pool", model="Qwen/Qwen2.5-7B-Instruct", replicas=2))
        wait({"free-pool": 4, "new-pool": 2})
        assert cached.cache.stats()["lists"] == lists  # arrived on the watches
        assert cached.read_notes() == []
    finally:
        cached.close()
