"""Manifests for the tests: CRDs, the default fleet's Deployments, HPAs, ScaledObjects and NodePools.

Plain dicts, shaped like what `kubectl get -o json` shows, so the same objects can be created on a kind
cluster for the e2e target.
"""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]
POOL_LABEL = {"mcp-autoscale/pool": "true"}


def crd(group: str, version: str, plural: str, kind: str, scope: str = "Namespaced") -> JSON:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": scope,
            "names": {"plural": plural, "kind": kind, "singular": kind.lower()},
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                    "subresources": {"status": {}},
                }
            ],
        },
    }


KEDA_CRD = crd("keda.sh", "v1alpha1", "scaledobjects", "ScaledObject")
NODEPOOL_CRD = crd("karpenter.sh", "v1", "nodepools", "NodePool", scope="Cluster")


def deployment(
    namespace: str,
    name: str,
    *,
    model: str,
    gpus: int = 1,
    replicas: int = 1,
    ready: int | None = None,
    role: str | None = None,
    engine: str | None = "vllm",
    node_pool: str | None = None,
    gpu_name: str | None = None,
    pool: bool = True,
    model_in_args: bool = False,
) -> JSON:
    labels: dict[str, str] = {"app": name, **(POOL_LABEL if pool else {})}
    if not model_in_args:
        labels["mcp-autoscale/model"] = model.replace("/", "--")
    if role:
        labels["mcp-autoscale/role"] = role
    if engine:
        labels["mcp-autoscale/engine"] = engine
    node_selector: dict[str, str] = {}
    if node_pool:
        node_selector["karpenter.sh/nodepool"] = node_pool
    if gpu_name:
        node_selector["karpenter.k8s.aws/instance-gpu-name"] = gpu_name
    args = ["--model", model, "--port", "8000"] if model_in_args else ["--port", "8000"]
    annotations = {} if model_in_args else {"mcp-autoscale/model": model}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels, "annotations": annotations},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "nodeSelector": node_selector,
                    "containers": [
                        {
                            "name": "vllm",
                            "image": "vllm/vllm-openai:v0.11.0",
                            "args": args,
                            "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                        }
                    ],
                },
            },
        },
        "status": {"replicas": replicas, "readyReplicas": replicas if ready is None else ready},
    }


def hpa(namespace: str, name: str, target: str, *, min_replicas: int, max_replicas: int) -> JSON:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": "vllm:num_requests_waiting"},
                        "target": {"type": "AverageValue", "averageValue": "5"},
                    },
                }
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
        },
    }


def scaled_object(
    namespace: str, name: str, target: str, *, min_replicas: int, max_replicas: int, paused: bool = False
) -> JSON:
    annotations = {"autoscaling.keda.sh/paused": "true"} if paused else {}
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": {
            "scaleTargetRef": {"name": target},
            "minReplicaCount": min_replicas,
            "maxReplicaCount": max_replicas,
            "triggers": [
                {
                    "type": "prometheus",
                    "metadata": {
                        "serverAddress": "http://prometheus.monitoring:9090",
                        "query": f'sum(vllm:num_requests_waiting{{namespace="{namespace}"}})',
                        "threshold": "5",
                        "metricType": "AverageValue",
                    },
                }
            ],
        },
    }


def nodepool(
    name: str,
    *,
    gpu_name: str,
    instance_type: str,
    capacity: str,
    limit: int | None,
    used: int = 0,
    nodes: int = 0,
) -> JSON:
    limits = {"nvidia.com/gpu": str(limit)} if limit is not None else {}
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "spec": {
                    "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "gpu"},
                    "requirements": [
                        {
                            "key": "karpenter.k8s.aws/instance-gpu-name",
                            "operator": "In",
                            "values": [gpu_name],
                        },
                        {
                            "key": "node.kubernetes.io/instance-type",
                            "operator": "In",
                            "values": [instance_type],
                        },
                        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": [capacity]},
                    ],
                    "taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}],
                }
            },
            "limits": limits,
        },
        "status": {"resources": {"nvidia.com/gpu": str(used), "nodes": str(nodes)}},
    }


def default_fleet() -> list[JSON]:
    """The team's default fleet (BRIEF.md), as Kubernetes objects."""
    return [
        deployment(
            "chat",
            "llama-8b",
            model="meta-llama/Llama-3.1-8B-Instruct",
            gpus=1,
            replicas=4,
            node_pool="gpu-l4",
            gpu_name="l4",
        ),
        scaled_object("chat", "llama-8b", "llama-8b", min_replicas=2, max_replicas=16),
        hpa("chat", "keda-hpa-llama-8b", "llama-8b", min_replicas=2, max_replicas=16),
        deployment(
            "chat",
            "llama-70b-prefill",
            model="meta-llama/Llama-3.3-70B-Instruct",
            gpus=4,
            replicas=2,
            role="prefill",
            node_pool="gpu-h100",
            gpu_name="h100",
        ),
        hpa("chat", "llama-70b-prefill", "llama-70b-prefill", min_replicas=1, max_replicas=4),
        deployment(
            "chat",
            "llama-70b-decode",
            model="meta-llama/Llama-3.3-70B-Instruct",
            gpus=4,
            replicas=2,
            role="decode",
            node_pool="gpu-h100",
            gpu_name="h100",
        ),
        scaled_object("chat", "llama-70b-decode", "llama-70b-decode", min_replicas=1, max_replicas=6),
        hpa("chat", "keda-hpa-llama-70b-decode", "llama-70b-decode", min_replicas=1, max_replicas=6),
        deployment(
            "batch",
            "qwen-7b",
            model="Qwen/Qwen2.5-7B-Instruct",
            gpus=1,
            replicas=2,
            node_pool="gpu-h100",
            gpu_name="h100",
            model_in_args=True,
        ),
        deployment(
            "dev",
            "granite-8b",
            model="ibm-granite/granite-3.1-8b-instruct",
            gpus=1,
            replicas=1,
            node_pool="gpu-a10g",
            gpu_name="a10g",
        ),
        nodepool(
            "gpu-l4",
            gpu_name="l4",
            instance_type="g6.xlarge",
            capacity="on-demand",
            limit=24,
            used=4,
            nodes=4,
        ),
        nodepool(
            "gpu-h100",
            gpu_name="h100",
            instance_type="p5.48xlarge",
            capacity="on-demand",
            limit=32,
            used=24,
            nodes=3,
        ),
        nodepool(
            "gpu-a10g", gpu_name="a10g", instance_type="g5.xlarge", capacity="spot", limit=8, used=1, nodes=1
        ),
    ]
