"""KubernetesBackend against the emulator with the real client: outcomes AND the exact requests sent."""

from __future__ import annotations

from typing import Any

import pytest
from emulator import Emulator
from kube_fleet import fleet_objects
from kube_objects import NODEPOOL_CRD, crd, default_fleet, deployment, hpa
from kubernetes import client

from mcp_autoscale.cluster.base import ClusterBackend
from mcp_autoscale.cluster.kubernetes import (
    BALLOON_PRIORITY_CLASS,
    PROVISIONING_NOTE,
    KubernetesBackend,
)
from mcp_autoscale.config import Settings
from mcp_autoscale.errors import BackendUnavailable, Conflict, Forbidden, InvalidInput, NotFound
from mcp_autoscale.models import AutoscalerKind, AutoscalerPatch, GpuNodeRequest, PoolRef, Role

SMP = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
SO_PATH = "/apis/keda.sh/v1alpha1/namespaces/chat/scaledobjects/llama-8b"


@pytest.fixture
def fleet(crds: Emulator) -> Emulator:
    for obj in default_fleet():
        crds.seed(obj)
    crds.clear_log()
    return crds


@pytest.fixture
def backend(fleet: Emulator, api_client: client.ApiClient) -> KubernetesBackend:
    return KubernetesBackend(Settings(request_timeout_s=2), api_client)


def _rv(emu: Emulator, api_version: str, plural: str, name: str, ns: str | None = None) -> str:
    obj = emu.get(api_version, plural, name, ns)
    assert obj is not None
    return str(obj["metadata"]["resourceVersion"])


# ---------------------------------------------------------------------------------------------- discovery


def test_implements_protocol(backend: KubernetesBackend) -> None:
    assert isinstance(backend, ClusterBackend)
    assert backend.name == "kubernetes"


def test_discovery_owners_models_and_gpus(backend: KubernetesBackend, fleet: Emulator) -> None:
    pools = {p.ref.key: p for p in backend.list_pools()}
    assert sorted(pools) == [
        "batch/qwen-7b",
        "chat/llama-70b-decode",
        "chat/llama-70b-prefill",
        "chat/llama-8b",
        "dev/granite-8b",
    ]
    keda = pools["chat/llama-8b"]
    assert keda.autoscaler is not None and keda.autoscaler.kind == AutoscalerKind.KEDA
    assert (keda.autoscaler.name, keda.autoscaler.min_replicas, keda.autoscaler.max_replicas) == (
        "llama-8b",
        2,
        16,
    )
    assert keda.autoscaler.managed_hpa == "keda-hpa-llama-8b"
    assert keda.autoscaler.metric == "prometheus AverageValue 5"
    assert (keda.model, keda.gpu_type, keda.gpus_per_replica, keda.node_pool) == (
        "meta-llama/Llama-3.1-8B-Instruct",
        "L4",
        1,
        "gpu-l4",
    )
    assert (keda.instance_type, keda.capacity_type, keda.desired_replicas, keda.ready_replicas) == (
        "g6.xlarge",
        "on-demand",
        4,
        4,
    )
    prefill = pools["chat/llama-70b-prefill"]
    assert prefill.autoscaler is not None and prefill.autoscaler.kind == AutoscalerKind.HPA
    assert (prefill.autoscaler.min_replicas, prefill.autoscaler.max_replicas) == (1, 4)
    assert prefill.autoscaler.scale_down_stabilization_s == 300
    assert (prefill.role, prefill.gpu_type, prefill.gpus_per_replica) == (Role.PREFILL, "H100", 4)
    assert pools["chat/llama-70b-decode"].autoscaler.kind == AutoscalerKind.KEDA  # type: ignore[union-attr]
    assert pools["chat/llama-70b-decode"].role == Role.DECODE
    qwen = pools["batch/qwen-7b"]
    assert qwen.autoscaler is None and qwen.model == "Qwen/Qwen2.5-7B-Instruct"  # from --model arg
    assert (qwen.gpu_type, qwen.engine) == ("H100", "vllm")
    granite = pools["dev/granite-8b"]
    assert (granite.gpu_type, granite.capacity_type, granite.instance_type) == ("A10G", "spot", "g5.xlarge")
    (dep_list,) = fleet.requests("GET", r"/deployments$")
    assert dep_list.path == "/apis/apps/v1/deployments"
    assert dep_list.query["labelSelector"] == "mcp-autoscale/pool=true"
    assert not fleet.writes()


def test_discovery_namespace_allowlist_and_pods(fleet: Emulator, api_client: client.ApiClient) -> None:
    fleet.seed(deployment("chat", "not-a-model", model="x", pool=False))
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "llama-8b-abc", "namespace": "chat", "labels": {"app": "llama-8b"}},
        "spec": {
            "nodeName": "n1",
            "containers": [{"name": "vllm", "ports": [{"name": "http", "containerPort": 8000}]}],
        },
        "status": {"podIP": "127.0.0.7", "conditions": [{"type": "Ready", "status": "True"}]},
    }
    pending = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "llama-8b-def", "namespace": "chat", "labels": {"app": "llama-8b"}},
        "spec": {"containers": [{"name": "vllm"}]},
        "status": {},
    }
    fleet.seed(pod)
    fleet.seed(pending)
    fleet.clear_log()
    backend = KubernetesBackend(Settings(), api_client, namespaces=["chat"])
    pools = {p.ref.key: p for p in backend.list_pools()}
    assert sorted(pools) == ["chat/llama-70b-decode", "chat/llama-70b-prefill", "chat/llama-8b"]
    assert pools["chat/llama-8b"].metrics_urls == ["http://127.0.0.7:8000/metrics"]
    assert (pools["chat/llama-8b"].pending_replicas, pools["chat/llama-8b"].starting_replicas) == (1, 0)
    paths = {r.path for r in fleet.requests("GET")}
    assert "/apis/apps/v1/namespaces/chat/deployments" in paths
    assert not any(p.startswith("/apis/apps/v1/namespaces/batch") for p in paths)
    with pytest.raises(NotFound, match="not in the allowed namespaces"):
        backend.get_pool(PoolRef(namespace="batch", name="qwen-7b"))


def test_discovery_without_keda_or_karpenter(emu: Emulator, api_client: client.ApiClient) -> None:
    emu.seed(deployment("chat", "solo", model="m/solo", replicas=2))
    emu.seed(hpa("chat", "solo", "solo", min_replicas=1, max_replicas=3))
    backend = KubernetesBackend(Settings(), api_client)
    (pool,) = backend.list_pools()
    assert pool.autoscaler is not None and pool.autoscaler.kind == AutoscalerKind.HPA
    assert pool.gpu_type == "unknown"
    assert backend.list_node_pools() == []
    assert backend.installed_crds() == {
        "scaledobjects.keda.sh": False,
        "nodepools.karpenter.sh": False,
        "nodeclaims.karpenter.sh": False,
    }


def test_node_pools_limits_usage_and_claims(fleet: Emulator, backend: KubernetesBackend) -> None:
    pools = {n.name: n for n in backend.list_node_pools()}
    h100 = pools["gpu-h100"]
    assert (h100.gpu_type, h100.instance_type, h100.gpus_per_node, h100.gpu_limit, h100.gpus_allocated) == (
        "H100",
        "p5.48xlarge",
        8,
        32,
        24,
    )
    assert h100.nodes_ready == 3 and h100.reserved_gpus == 0
    assert (pools["gpu-a10g"].capacity_type, pools["gpu-a10g"].gpu_limit) == ("spot", 8)
    fleet.seed(crd("karpenter.sh", "v1", "nodeclaims", "NodeClaim", scope="Cluster"))
    for i, ready in enumerate(["True", "True", "False"]):
        fleet.seed(
            {
                "apiVersion": "karpenter.sh/v1",
                "kind": "NodeClaim",
                "metadata": {"name": f"gpu-l4-{i}", "labels": {"karpenter.sh/nodepool": "gpu-l4"}},
                "spec": {},
                "status": {"conditions": [{"type": "Ready", "status": ready}]},
            }
        )
    l4 = {n.name: n for n in backend.list_node_pools()}["gpu-l4"]
    assert (l4.nodes_ready, l4.nodes_launching) == (2, 1)


def test_get_pool_not_found_and_not_a_pool(fleet: Emulator, backend: KubernetesBackend) -> None:
    assert backend.get_pool(PoolRef(namespace="chat", name="llama-8b")).autoscaler is not None
    with pytest.raises(NotFound, match=r"^Deployment chat/llama-9b not found$"):
        backend.get_pool(PoolRef(namespace="chat", name="llama-9b"))
    fleet.seed(deployment("chat", "redis", model="x", pool=False))
    with pytest.raises(NotFound, match="not a model pool"):
        backend.get_pool(PoolRef(namespace="chat", name="redis"))


# ---------------------------------------------------------------------------------------------- scale


def test_scale_unowned_via_subresource(fleet: Emulator, backend: KubernetesBackend) -> None:
    rv = _rv(fleet, "apps/v1", "deployments", "qwen-7b", "batch")
    changes = backend.scale_deployment(PoolRef(namespace="batch", name="qwen-7b"), 5, dry_run=False)
    assert [(c.field, c.before, c.after) for c in changes] == [
        ("Deployment batch/qwen-7b spec.replicas", 2, 5)
    ]
    (req,) = fleet.writes()
    assert (req.method, req.path, req.content_type) == (
        "PATCH",
        "/apis/apps/v1/namespaces/batch/deployments/qwen-7b/scale",
        SMP,
    )
    assert req.body == {"metadata": {"resourceVersion": rv}, "spec": {"replicas": 5}}
    assert "dryRun" not in req.query
    assert fleet.get("apps/v1", "deployments", "qwen-7b", "batch")["spec"]["replicas"] == 5  # type: ignore[index]
    assert backend.last_write_attempts == 1


@pytest.mark.parametrize(
    ("name", "owner"),
    [("llama-8b", "KEDA ScaledObject chat/llama-8b"), ("llama-70b-prefill", "HorizontalPodAutoscaler")],
)
def test_scale_refused_when_owned(fleet: Emulator, backend: KubernetesBackend, name: str, owner: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        backend.scale_deployment(PoolRef(namespace="chat", name=name), 9, dry_run=False)
    assert owner in str(exc.value) and "patch_hpa" in str(exc.value)
    assert not fleet.writes()


def test_scale_dry_run_uses_server_response(fleet: Emulator, backend: KubernetesBackend) -> None:
    before = fleet.get("apps/v1", "deployments", "qwen-7b", "batch")
    rv_counter = fleet.rv
    changes = backend.scale_deployment(PoolRef(namespace="batch", name="qwen-7b"), 6, dry_run=True)
    assert [(c.before, c.after) for c in changes] == [(2, 6)]
    (req,) = fleet.writes()
    assert req.query == {"dryRun": "All"}
    assert fleet.get("apps/v1", "deployments", "qwen-7b", "batch") == before and fleet.rv == rv_counter
    # the "after" is whatever the server admitted, not the value we asked for
    admitted = {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": "qwen-7b"},
        "spec": {"replicas": 4},
    }
    fleet.inject("PATCH", r"qwen-7b/scale$", 200, body=admitted)
    changes = backend.scale_deployment(PoolRef(namespace="batch", name="qwen-7b"), 6, dry_run=True)
    assert [(c.before, c.after) for c in changes] == [(2, 4)]


def test_conflict_retries_and_reports_attempts(fleet: Emulator, backend: KubernetesBackend) -> None:
    fleet.on("PATCH", r"qwen-7b/scale$", lambda e: e.bump("apps/v1", "deployments", "qwen-7b", "batch"))
    seen: list[str] = []
    changes = backend.scale_deployment(
        PoolRef(namespace="batch", name="qwen-7b"),
        3,
        dry_run=False,
        recheck=lambda o: seen.append(o["metadata"]["resourceVersion"]),
    )
    assert changes[0].after == 3 and backend.last_write_attempts == 2
    first, second = fleet.requests("PATCH")
    assert first.body["metadata"]["resourceVersion"] != second.body["metadata"]["resourceVersion"]
    assert seen == [first.body["metadata"]["resourceVersion"], second.body["metadata"]["resourceVersion"]]
    assert len(fleet.requests("GET", r"qwen-7b/scale$")) == 2  # re-read before the retry


def test_conflict_gives_up_after_three(fleet: Emulator, backend: KubernetesBackend) -> None:
    fleet.on(
        "PATCH", r"qwen-7b/scale$", lambda e: e.bump("apps/v1", "deployments", "qwen-7b", "batch"), times=5
    )
    with pytest.raises(Conflict, match="gave up after 3 attempt"):
        backend.scale_deployment(PoolRef(namespace="batch", name="qwen-7b"), 3, dry_run=False)
    assert backend.last_write_attempts == 3 and len(fleet.requests("PATCH")) == 3
    assert fleet.get("apps/v1", "deployments", "qwen-7b", "batch")["spec"]["replicas"] == 2  # type: ignore[index]


def test_recheck_can_abort_before_write(fleet: Emulator, backend: KubernetesBackend) -> None:
    def deny(obj: dict[str, Any]) -> None:
        raise Forbidden(f"policy: {obj['metadata']['name']} frozen")

    with pytest.raises(Forbidden, match="qwen-7b frozen"):
        backend.scale_deployment(PoolRef(namespace="batch", name="qwen-7b"), 3, dry_run=False, recheck=deny)
    assert not fleet.writes()


def test_forbidden_names_verb_resource_namespace_and_rule(
    fleet: Emulator, backend: KubernetesBackend
) -> None:
    fleet.deny("patch", "apps", "deployments", namespace="batch", subresource="scale")
    with pytest.raises(Forbidden) as exc:
        backend.scale_deployment(PoolRef(namespace="batch", name="qwen-7b"), 3, dry_run=False)
    msg = str(exc.value)
    assert "'patch' on apps/deployments/scale in namespace batch" in msg
    assert 'cannot patch resource "deployments/scale"' in msg  # the server's own words
    assert '- apiGroups: ["apps"]\n  resources: ["deployments/scale"]\n  verbs: ["patch"]' in msg
    assert fleet.get("apps/v1", "deployments", "qwen-7b", "batch")["spec"]["replicas"] == 2  # type: ignore[index]


def test_not_found_on_scale(fleet: Emulator, backend: KubernetesBackend) -> None:
    with pytest.raises(NotFound, match=r"^Deployment chat/llama-9b not found$"):
        backend.scale_deployment(PoolRef(namespace="chat", name="llama-9b"), 3, dry_run=False)


def test_unreachable_and_timeout(fleet: Emulator, api_client: client.ApiClient) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = client.Configuration(host=f"http://127.0.0.1:{port}")
    cfg.retries = 0
    with client.ApiClient(cfg) as dead, pytest.raises(BackendUnavailable, match="unreachable"):
        KubernetesBackend(Settings(), dead).list_pools()
    slow = KubernetesBackend(Settings(request_timeout_s=0.2), api_client)
    fleet.inject("PATCH", r"qwen-7b/scale$", 200, delay_s=1.0)
    with pytest.raises(BackendUnavailable, match=r"timeout 0\.2 s"):
        slow.scale_deployment(PoolRef(namespace="batch", name="qwen-7b"), 3, dry_run=False)


# ---------------------------------------------------------------------------------------------- autoscalers


def test_patch_hpa_with_strategic_merge(fleet: Emulator, backend: KubernetesBackend) -> None:
    ref = PoolRef(namespace="chat", name="llama-70b-prefill")
    rv = _rv(fleet, "autoscaling/v2", "horizontalpodautoscalers", "llama-70b-prefill", "chat")
    changes = backend.patch_autoscaler(
        ref, AutoscalerPatch(max_replicas=6, scale_down_stabilization_s=600), dry_run=False
    )
    assert [(c.field, c.before, c.after) for c in changes] == [
        ("HorizontalPodAutoscaler chat/llama-70b-prefill spec.maxReplicas", 4, 6),
        (
            "HorizontalPodAutoscaler chat/llama-70b-prefill "
            "spec.behavior.scaleDown.stabilizationWindowSeconds",
            300,
            600,
        ),
    ]
    (req,) = fleet.writes()
    assert (req.path, req.content_type) == (
        "/apis/autoscaling/v2/namespaces/chat/horizontalpodautoscalers/llama-70b-prefill",
        SMP,
    )
    assert req.body == {
        "metadata": {"resourceVersion": rv},
        "spec": {"maxReplicas": 6, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 600}}},
    }
    stored = fleet.get("autoscaling/v2", "horizontalpodautoscalers", "llama-70b-prefill", "chat")
    assert stored is not None and stored["spec"]["maxReplicas"] == 6 and stored["spec"]["minReplicas"] == 1
    assert stored["spec"]["metrics"][0]["pods"]["metric"]["name"] == "vllm:num_requests_waiting"


def test_keda_owned_patches_scaled_object_not_its_hpa(fleet: Emulator, backend: KubernetesBackend) -> None:
    hpa_before = fleet.get("autoscaling/v2", "horizontalpodautoscalers", "keda-hpa-llama-8b", "chat")
    changes = backend.patch_autoscaler(
        PoolRef(namespace="chat", name="llama-8b"),
        AutoscalerPatch(min_replicas=4, max_replicas=20, scale_up_stabilization_s=0),
        dry_run=False,
    )
    assert [(c.field, c.before, c.after) for c in changes] == [
        ("ScaledObject chat/llama-8b spec.minReplicaCount", 2, 4),
        ("ScaledObject chat/llama-8b spec.maxReplicaCount", 16, 20),
        (
            "ScaledObject chat/llama-8b "
            "spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleUp.stabilizationWindowSeconds",
            None,
            0,
        ),
    ]
    (req,) = fleet.writes()
    assert (req.method, req.path, req.content_type) == ("PATCH", SO_PATH, MERGE)
    assert req.body["spec"] == {
        "minReplicaCount": 4,
        "maxReplicaCount": 20,
        "advanced": {
            "horizontalPodAutoscalerConfig": {"behavior": {"scaleUp": {"stabilizationWindowSeconds": 0}}}
        },
    }
    assert fleet.get("autoscaling/v2", "horizontalpodautoscalers", "keda-hpa-llama-8b", "chat") == hpa_before
    assert any("keda-hpa-llama-8b" in n and "ScaledObject" in n for n in backend.last_notes)
    so = fleet.get("keda.sh/v1alpha1", "scaledobjects", "llama-8b", "chat")
    assert so is not None and so["spec"]["triggers"][0]["type"] == "prometheus"  # merge kept the rest


def test_keda_pause_and_unpause(fleet: Emulator, backend: KubernetesBackend) -> None:
    ref = PoolRef(namespace="chat", name="llama-8b")
    changes = backend.patch_autoscaler(ref, AutoscalerPatch(paused=True), dry_run=False)
    assert [(c.field, c.before, c.after) for c in changes] == [
        ("ScaledObject chat/llama-8b metadata.annotations[autoscaling.keda.sh/paused]", None, "true")
    ]
    assert backend.get_pool(ref).autoscaler.paused is True  # type: ignore[union-attr]
    changes = backend.patch_autoscaler(ref, AutoscalerPatch(paused=False), dry_run=False)
    assert (changes[0].before, changes[0].after) == ("true", None)
    assert fleet.writes()[-1].body["metadata"]["annotations"] == {
        "autoscaling.keda.sh/paused": None,
        "autoscaling.keda.sh/paused-replicas": None,
    }
    assert backend.get_pool(ref).autoscaler.paused is False  # type: ignore[union-attr]


def test_autoscaler_patch_refusals(fleet: Emulator, backend: KubernetesBackend) -> None:
    with pytest.raises(InvalidInput, match="no pause switch"):
        backend.patch_autoscaler(
            PoolRef(namespace="chat", name="llama-70b-prefill"), AutoscalerPatch(paused=True), dry_run=False
        )
    with pytest.raises(InvalidInput, match="min replicas 5 would exceed max replicas 4"):
        backend.patch_autoscaler(
            PoolRef(namespace="chat", name="llama-70b-prefill"),
            AutoscalerPatch(min_replicas=5),
            dry_run=False,
        )
    with pytest.raises(InvalidInput, match="no HPA or KEDA ScaledObject"):
        backend.patch_autoscaler(
            PoolRef(namespace="batch", name="qwen-7b"), AutoscalerPatch(max_replicas=3), dry_run=False
        )
    with pytest.raises(InvalidInput, match="changes nothing"):
        backend.patch_autoscaler(PoolRef(namespace="chat", name="llama-8b"), AutoscalerPatch(), dry_run=False)
    assert not fleet.writes()


def test_invalid_from_server_maps_to_invalid_input(fleet: Emulator, backend: KubernetesBackend) -> None:
    message = (
        'HorizontalPodAutoscaler.autoscaling "llama-70b-prefill" is invalid: spec.maxReplicas: '
        "Invalid value: 0: must be greater than or equal to 1"
    )
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Invalid", "code": 422}
    status["message"] = message
    fleet.inject("PATCH", r"horizontalpodautoscalers/llama-70b-prefill$", 422, body=status)
    with pytest.raises(InvalidInput, match=r"spec\.maxReplicas: Invalid value: 0"):
        backend.patch_autoscaler(
            PoolRef(namespace="chat", name="llama-70b-prefill"),
            AutoscalerPatch(max_replicas=3),
            dry_run=False,
        )


def test_patch_dry_run_not_persisted(fleet: Emulator, backend: KubernetesBackend) -> None:
    before = fleet.get("keda.sh/v1alpha1", "scaledobjects", "llama-8b", "chat")
    changes = backend.patch_autoscaler(
        PoolRef(namespace="chat", name="llama-8b"), AutoscalerPatch(max_replicas=30), dry_run=True
    )
    assert [(c.before, c.after) for c in changes] == [(16, 30)]
    assert fleet.writes()[0].query == {"dryRun": "All"}
    assert fleet.get("keda.sh/v1alpha1", "scaledobjects", "llama-8b", "chat") == before


# ---------------------------------------------------------------------------------------------- GPU nodes


def test_request_gpu_nodes_raises_limit_and_creates_balloon(
    fleet: Emulator, backend: KubernetesBackend
) -> None:
    changes = backend.request_gpu_nodes(GpuNodeRequest(node_pool="gpu-h100", gpus=16), dry_run=False)
    got = {c.field: (c.before, c.after) for c in changes}
    assert got["NodePool gpu-h100 spec.limits[nvidia.com/gpu]"] == ("32", "40")
    assert got[f"PriorityClass {BALLOON_PRIORITY_CLASS}"] == (
        None,
        {"value": -10, "preemptionPolicy": "Never"},
    )
    assert got["Deployment mcp-autoscale/mcp-autoscale-balloon-gpu-h100 spec.replicas"] == (None, 2)
    assert got[
        "Deployment mcp-autoscale/mcp-autoscale-balloon-gpu-h100 nvidia.com/gpu per placeholder pod"
    ] == (None, 8)
    assert got["NodePool gpu-h100 provisioning"] == (None, PROVISIONING_NOTE)
    np_patch, pc_post, balloon_post = fleet.writes()
    assert (np_patch.method, np_patch.path, np_patch.content_type) == (
        "PATCH", "/apis/karpenter.sh/v1/nodepools/gpu-h100", MERGE,
    )  # fmt: skip
    assert (
        np_patch.body["spec"] == {"limits": {"nvidia.com/gpu": "40"}}
        and np_patch.body["metadata"]["resourceVersion"]
    )
    assert (pc_post.method, pc_post.path) == ("POST", "/apis/scheduling.k8s.io/v1/priorityclasses")
    assert (pc_post.body["value"], pc_post.body["preemptionPolicy"]) == (-10, "Never")
    assert (balloon_post.method, balloon_post.path) == (
        "POST",
        "/apis/apps/v1/namespaces/mcp-autoscale/deployments",
    )
    pod = balloon_post.body["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == BALLOON_PRIORITY_CLASS
    assert pod["nodeSelector"] == {"karpenter.sh/nodepool": "gpu-h100"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["containers"][0]["resources"]["requests"] == {"nvidia.com/gpu": "8"}
    assert any(PROVISIONING_NOTE in n for n in backend.last_notes)
    h100 = {n.name: n for n in backend.list_node_pools()}["gpu-h100"]
    assert (h100.gpu_limit, h100.reserved_gpus) == (40, 16)


def test_balloon_resize_without_recreating_priority_class(
    fleet: Emulator, backend: KubernetesBackend
) -> None:
    backend.request_gpu_nodes(GpuNodeRequest(node_pool="gpu-l4", gpus=2, method="balloon"), dry_run=False)
    fleet.clear_log()
    changes = backend.request_gpu_nodes(
        GpuNodeRequest(node_pool="gpu-l4", gpus=4, method="balloon"), dry_run=False
    )
    got = {c.field: (c.before, c.after) for c in changes}
    assert got["Deployment mcp-autoscale/mcp-autoscale-balloon-gpu-l4 spec.replicas"] == (2, 4)
    (patch,) = fleet.writes()
    assert (patch.method, patch.path, patch.content_type) == (
        "PATCH", "/apis/apps/v1/namespaces/mcp-autoscale/deployments/mcp-autoscale-balloon-gpu-l4", SMP,
    )  # fmt: skip
    assert patch.body["spec"]["replicas"] == 4
    stored = fleet.get("apps/v1", "deployments", "mcp-autoscale-balloon-gpu-l4", "mcp-autoscale")
    assert (
        stored is not None
        and stored["spec"]["template"]["spec"]["priorityClassName"] == BALLOON_PRIORITY_CLASS
    )


def test_request_gpu_nodes_dry_run_persists_nothing(fleet: Emulator, backend: KubernetesBackend) -> None:
    counter = fleet.rv
    changes = backend.request_gpu_nodes(GpuNodeRequest(node_pool="gpu-h100", gpus=16), dry_run=True)
    assert len(changes) == 5
    assert [w.query.get("dryRun") for w in fleet.writes()] == ["All", "All", "All"]
    assert fleet.rv == counter
    assert fleet.get("scheduling.k8s.io/v1", "priorityclasses", BALLOON_PRIORITY_CLASS) is None
    assert fleet.get("karpenter.sh/v1", "nodepools", "gpu-h100")["spec"]["limits"] == {"nvidia.com/gpu": "32"}  # type: ignore[index]


def test_request_gpu_nodes_method_limit_and_warnings(fleet: Emulator, backend: KubernetesBackend) -> None:
    assert (
        backend.request_gpu_nodes(GpuNodeRequest(node_pool="gpu-l4", gpus=2, method="limit"), dry_run=False)
        == []
    )
    assert any("already allows" in n for n in backend.last_notes) and not fleet.writes()
    backend.request_gpu_nodes(GpuNodeRequest(node_pool="gpu-h100", gpus=16, method="balloon"), dry_run=True)
    assert any("will not launch nodes" in n for n in backend.last_notes)
    assert not any("nodepools" in w.path for w in fleet.writes())
    with pytest.raises(NotFound, match="NodePool gpu-x not found"):
        backend.request_gpu_nodes(GpuNodeRequest(node_pool="gpu-x", gpus=1), dry_run=False)


# ---------------------------------------------------------------------------------------------- events, RBAC


def test_record_event_posts_and_never_raises(fleet: Emulator, backend: KubernetesBackend) -> None:
    ref = PoolRef(namespace="chat", name="llama-8b")
    backend.record_event(ref, "MaxReplicasRaised", "TTFT p90 3.1 s > 2.0 s for 10 min; raising max to 20")
    (post,) = fleet.requests("POST")
    assert post.path == "/api/v1/namespaces/chat/events"
    assert post.body["reason"] == "MaxReplicasRaised" and "TTFT p90" in post.body["message"]
    uid = fleet.get("apps/v1", "deployments", "llama-8b", "chat")["metadata"]["uid"]  # type: ignore[index]
    assert post.body["involvedObject"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "llama-8b", "namespace": "chat", "uid": uid,
    }  # fmt: skip
    fleet.inject("POST", r"/events$", 403)
    backend.record_event(ref, "X", "y")  # returns quietly
    backend.record_node_pool_event("gpu-h100", "GpuLimitRaised", "why")
    assert fleet.requests("POST")[-1].body["involvedObject"]["kind"] == "NodePool"


def test_check_permissions_uses_self_subject_access_reviews(
    fleet: Emulator, backend: KubernetesBackend
) -> None:
    fleet.deny("patch", "keda.sh", "scaledobjects")
    checks = backend.check_permissions()
    denied = [(c.group, c.resource, c.verb) for c in checks if not c.allowed]
    assert denied == [("keda.sh", "scaledobjects", "patch")]
    scale = next(r for r in fleet.requests("POST") if r.body["spec"]["resourceAttributes"].get("subresource"))
    assert scale.body["spec"]["resourceAttributes"] == {
        "verb": "get", "group": "apps", "resource": "deployments", "subresource": "scale",
    }  # fmt: skip
    lease = [
        r for r in fleet.requests("POST") if r.body["spec"]["resourceAttributes"]["resource"] == "leases"
    ]
    assert {r.body["spec"]["resourceAttributes"]["namespace"] for r in lease} == {"mcp-autoscale"}


def test_installed_crds(crds: Emulator, backend: KubernetesBackend) -> None:
    assert backend.installed_crds() == {
        "scaledobjects.keda.sh": True,
        "nodepools.karpenter.sh": True,
        "nodeclaims.karpenter.sh": False,
    }
    assert NODEPOOL_CRD["metadata"]["name"] == "nodepools.karpenter.sh"


@pytest.mark.parametrize("pools", [4, 120])
def test_requests_per_snapshot_do_not_grow_with_the_pools(
    crds: Emulator, api_client: client.ApiClient, pools: int
) -> None:
    """Cluster-wide list calls: the same handful of requests for 4 pools in 4 namespaces or 120 in 40."""
    for obj in fleet_objects(pools, namespaces=min(pools, 40)):
        crds.seed(obj)
    crds.clear_log()
    found = KubernetesBackend(Settings(), api_client).list_pools()
    assert len(found) == pools
    owners = {p.autoscaler.kind if p.autoscaler else None for p in found}
    assert owners == {AutoscalerKind.KEDA, AutoscalerKind.HPA, None}
    assert all(p.ready_replicas == 2 and len(p.metrics_urls) == 2 for p in found)
    paths = sorted(r.path for r in crds.requests("GET"))
    assert len(paths) == 5, paths  # deployments, scaledobjects, hpas, pods, nodepools
    assert not any("/namespaces/" in p for p in paths)
