"""A generated fleet of N pools as Kubernetes objects (Deployments, owners, Pods, NodePools), for the
requests-per-snapshot test and benchmarks/bench_kube_fleet.py."""

from __future__ import annotations

from typing import Any

from kube_objects import deployment, hpa, nodepool, scaled_object

JSON = dict[str, Any]
NODE_POOLS = (("gpu-l4", "l4", "g6.xlarge"), ("gpu-h100", "h100", "p5.48xlarge"))


def pod(namespace: str, app: str, name: str, ip: str) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": app}},
        "spec": {
            "nodeName": "node-1",
            "containers": [{"name": "vllm", "ports": [{"name": "http", "containerPort": 8000}]}],
        },
        "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]},
    }


def fleet_objects(pools: int, namespaces: int = 40, replicas: int = 2) -> list[JSON]:
    """``pools`` pools spread over ``namespaces`` namespaces: a third KEDA-owned, a third HPA-owned."""
    out: list[JSON] = [
        nodepool(name, gpu_name=gpu, instance_type=inst, capacity="on-demand", limit=None)
        for name, gpu, inst in NODE_POOLS
    ]
    for i in range(pools):
        ns = f"team-{i % namespaces:02d}"
        name = f"llm-{i:04d}"
        np_name, gpu, _ = NODE_POOLS[i % len(NODE_POOLS)]
        out.append(deployment(ns, name, model="m/llm", replicas=replicas, node_pool=np_name, gpu_name=gpu))
        if i % 3 == 0:
            out.append(scaled_object(ns, name, name, min_replicas=1, max_replicas=8))
        elif i % 3 == 1:
            out.append(hpa(ns, name, name, min_replicas=1, max_replicas=8))
        for r in range(replicas):
            out.append(pod(ns, name, f"{name}-7c9-{r:05d}", f"10.{i // 250}.{i % 250}.{r + 1}"))
    return out
