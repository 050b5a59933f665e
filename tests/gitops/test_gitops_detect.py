"""Argo CD / Flux detection: the pure rules, then on the API-server emulator through the real client."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from emulator import Emulator
from kube_objects import KEDA_CRD, NODEPOOL_CRD, default_fleet
from kubernetes import client

from mcp_autoscale.cluster.kubernetes import KubernetesBackend
from mcp_autoscale.config import Settings
from mcp_autoscale.gitops.detect import describe, manager_of

JSON = dict[str, Any]


def obj(labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> JSON:
    return {"metadata": {"name": "x", "labels": labels or {}, "annotations": annotations or {}}}


def test_argocd_annotation_tracking_with_and_without_app_namespace() -> None:
    m = manager_of(
        obj(annotations={"argocd.argoproj.io/tracking-id": "inference:keda.sh/ScaledObject:chat/x"})
    )
    assert m is not None and (m.tool, m.app, m.namespace, m.kind) == (
        "argocd",
        "inference",
        None,
        "Application",
    )
    m = manager_of(obj(annotations={"argocd.argoproj.io/tracking-id": "team-a_llm:apps/Deployment:chat/x"}))
    assert m is not None and (m.app, m.namespace) == ("llm", "team-a")


def test_argocd_label_tracking_but_not_a_plain_helm_release() -> None:
    m = manager_of(obj(labels={"argocd.argoproj.io/instance": "inference"}))
    assert m is not None and (m.tool, m.app, m.via) == (
        "argocd",
        "inference",
        "label argocd.argoproj.io/instance",
    )
    m = manager_of(obj(labels={"app.kubernetes.io/instance": "inference"}))
    assert m is not None and m.tool == "argocd" and m.app == "inference"
    helm = {"app.kubernetes.io/instance": "vllm", "app.kubernetes.io/managed-by": "Helm"}
    assert manager_of(obj(labels=helm)) is None


def test_flux_kustomization_and_helm_release() -> None:
    ks = {"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}
    m = manager_of(obj(labels=ks))
    assert m is not None and (m.tool, m.app, m.namespace, m.kind) == (
        "flux",
        "apps",
        "flux-system",
        "Kustomization",
    )
    hr = {
        "helm.toolkit.fluxcd.io/name": "vllm",
        "helm.toolkit.fluxcd.io/namespace": "chat",
        "app.kubernetes.io/instance": "vllm",
        "app.kubernetes.io/managed-by": "Helm",
    }
    m = manager_of(obj(labels=hr))
    assert m is not None and (m.tool, m.kind, m.app) == ("flux", "HelmRelease", "vllm")
    assert "Flux HelmRelease 'chat/vllm'" in describe("chat/x Deployment", m)
    assert "reconciliation" in describe("chat/x Deployment", m)
    assert manager_of(obj(labels={"app": "x"})) is None


# ------------------------------------------------------------------------------------------ emulator


@pytest.fixture(scope="module")
def server() -> Iterator[Emulator]:
    emu = Emulator().start()
    yield emu
    emu.stop()


def _named(objs: list[JSON], kind: str, name: str) -> JSON:
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)


def _mark(
    o: JSON, *, labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None
) -> None:
    meta = o["metadata"]
    meta.setdefault("labels", {}).update(labels or {})
    meta.setdefault("annotations", {}).update(annotations or {})


@pytest.fixture
def backend(server: Emulator) -> Iterator[KubernetesBackend]:
    server.reset()
    server.seed(KEDA_CRD)
    server.seed(NODEPOOL_CRD)
    objs = copy.deepcopy(default_fleet())
    # Argo CD tracks the llama-8b Deployment and its ScaledObject (annotation tracking).
    track = "inference:{}:chat/llama-8b"
    _mark(
        _named(objs, "Deployment", "llama-8b"),
        annotations={"argocd.argoproj.io/tracking-id": track.format("apps/Deployment")},
    )
    _mark(
        _named(objs, "ScaledObject", "llama-8b"),
        annotations={"argocd.argoproj.io/tracking-id": track.format("keda.sh/ScaledObject")},
    )
    # Only the decode ScaledObject is in Git (Argo label tracking); its Deployment is not.
    _mark(
        _named(objs, "ScaledObject", "llama-70b-decode"),
        labels={"argocd.argoproj.io/instance": "autoscaling"},
    )
    # The prefill HPA comes from a Flux HelmRelease; batch/qwen-7b from a Flux Kustomization.
    _mark(
        _named(objs, "HorizontalPodAutoscaler", "llama-70b-prefill"),
        labels={"helm.toolkit.fluxcd.io/name": "prefill", "helm.toolkit.fluxcd.io/namespace": "chat"},
    )
    _mark(
        _named(objs, "Deployment", "qwen-7b"),
        labels={
            "kustomize.toolkit.fluxcd.io/name": "batch",
            "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
        },
    )
    _mark(
        _named(objs, "NodePool", "gpu-h100"),
        labels={
            "kustomize.toolkit.fluxcd.io/name": "infra",
            "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
        },
    )
    for o in objs:
        server.seed(o)
    with client.ApiClient(client.Configuration(host=server.url)) as api:
        yield KubernetesBackend(Settings(request_timeout_s=2), api)


def test_discovery_reports_argo_and_flux_managers_per_object(backend: KubernetesBackend) -> None:
    pools = {p.ref.key: p for p in backend.list_pools()}
    llama = pools["chat/llama-8b"]
    assert llama.gitops is not None and (llama.gitops.tool, llama.gitops.app) == ("argocd", "inference")
    assert llama.autoscaler is not None and llama.autoscaler.gitops is not None
    assert llama.autoscaler.gitops.app == "inference"

    decode = pools["chat/llama-70b-decode"]
    assert decode.gitops is None  # the Deployment is not tracked...
    assert decode.autoscaler is not None and decode.autoscaler.gitops is not None  # ...its ScaledObject is
    assert (decode.autoscaler.gitops.tool, decode.autoscaler.gitops.app) == ("argocd", "autoscaling")

    prefill = pools["chat/llama-70b-prefill"]
    assert prefill.autoscaler is not None and prefill.autoscaler.gitops is not None
    assert (prefill.autoscaler.gitops.tool, prefill.autoscaler.gitops.kind) == ("flux", "HelmRelease")

    qwen = pools["batch/qwen-7b"]
    assert qwen.gitops is not None and (qwen.gitops.tool, qwen.gitops.app, qwen.gitops.namespace) == (
        "flux",
        "batch",
        "flux-system",
    )
    assert pools["dev/granite-8b"].gitops is None

    node_pools = {n.name: n for n in backend.list_node_pools()}
    assert node_pools["gpu-h100"].gitops is not None and node_pools["gpu-h100"].gitops.app == "infra"
    assert node_pools["gpu-l4"].gitops is None

    one = backend.get_pool(llama.ref)
    assert one.autoscaler is not None and one.autoscaler.gitops == llama.autoscaler.gitops
