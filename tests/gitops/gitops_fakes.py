"""The default fleet as an in-memory ClusterBackend (with GitOps managers) and its manifests as in Git."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from mcp_autoscale.errors import NotFound
from mcp_autoscale.models import (
    Autoscaler,
    AutoscalerKind,
    AutoscalerPatch,
    Change,
    GitOpsManager,
    GpuNodeRequest,
    NodePoolState,
    PoolRef,
    PoolSignals,
    PoolSnapshot,
    PoolState,
    SloStatus,
    SloTargets,
)

ARGO = GitOpsManager(tool="argocd", app="inference", kind="Application", via="annotation")
FLUX = GitOpsManager(tool="flux", app="infra", namespace="flux-system", kind="Kustomization", via="label")

LLAMA_8B = """\
# llama-8b: Llama 3.1 8B on L4, owned by KEDA (queue depth).
# Reviewed by the platform team; keep the comments.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: llama-8b
  namespace: chat
  labels:
    app: llama-8b
    mcp-autoscale/pool: "true"
spec:
  replicas: 2 # KEDA owns this after the first sync
  selector:
    matchLabels:
      app: llama-8b
  template:
    metadata:
      labels:
        app: llama-8b
    spec:
      containers:
        - name: vllm
          image: vllm/vllm-openai:v0.11.0
          args: ["--model", "meta-llama/Llama-3.1-8B-Instruct"]
---
# Autoscaling: queue AverageValue 5 per replica.
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: llama-8b
  namespace: chat
spec:
  scaleTargetRef:
    name: llama-8b
  minReplicaCount: 2   # never below two (HA)
  maxReplicaCount: 16  # burst cap, reviewed 2026-10
  triggers:
    - type: prometheus
      metadata:
        serverAddress: http://prometheus.monitoring:9090
        query: sum(vllm:num_requests_waiting{namespace="chat",model_name="llama-8b"})
        threshold: "5" # AverageValue per replica
"""

LLAMA_70B = """\
# The 70B disaggregated pair: prefill on an HPA, decode on KEDA.
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: llama-70b-prefill
  namespace: chat
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: llama-70b-prefill}
  minReplicas: 1
  maxReplicas: 4 # 16 H100s at most
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: llama-70b-decode
  namespace: chat
spec:
  scaleTargetRef:
    name: llama-70b-decode
  minReplicaCount: 1
  maxReplicaCount: 6
"""

NODEPOOLS = """\
# Karpenter GPU node pools (synced by Flux).
apiVersion: karpenter.sh/v1
kind: NodePool
metadata:
  name: gpu-l4
spec:
  limits:
    nvidia.com/gpu: "24" # budget: 24 L4s
---
apiVersion: karpenter.sh/v1
kind: NodePool
metadata:
  name: gpu-h100
spec:
  limits:
    nvidia.com/gpu: "32" # three p5 nodes and change
"""

QWEN_KUSTOMIZATION = """\
# batch/qwen-7b comes from a shared base; local changes are patches.
resources:
  - ../../base/qwen-7b
"""

MANIFESTS: dict[str, str] = {
    "apps/chat/llama-8b.yaml": LLAMA_8B,
    "apps/chat/llama-70b.yaml": LLAMA_70B,
    "infra/karpenter/nodepools.yaml": NODEPOOLS,
    "apps/batch/qwen-7b/kustomization.yaml": QWEN_KUSTOMIZATION,
    "README.md": "# fleet\n",
}


def default_pools() -> list[PoolState]:
    def pool(
        ns: str, name: str, replicas: int, owner: Autoscaler | None, gitops: GitOpsManager | None
    ) -> PoolState:
        return PoolState(
            ref=PoolRef(namespace=ns, name=name),
            model=name,
            gpu_type="H100" if "70b" in name or name == "qwen-7b" else "L4",
            gpus_per_replica=4 if "70b" in name else 1,
            node_pool="gpu-h100" if "70b" in name or name == "qwen-7b" else "gpu-l4",
            desired_replicas=replicas,
            ready_replicas=replicas,
            autoscaler=owner,
            gitops=gitops,
        )

    keda, hpa = AutoscalerKind.KEDA, AutoscalerKind.HPA
    return [
        pool("chat", "llama-8b", 4, Autoscaler(kind=keda, name="llama-8b", min_replicas=2, max_replicas=16, gitops=ARGO), ARGO),
        pool("chat", "llama-70b-prefill", 2, Autoscaler(kind=hpa, name="llama-70b-prefill", min_replicas=1, max_replicas=4), None),
        pool("chat", "llama-70b-decode", 2, Autoscaler(kind=keda, name="llama-70b-decode", min_replicas=1, max_replicas=6, gitops=ARGO), None),
        pool("batch", "qwen-7b", 2, None, FLUX),
    ]  # fmt: skip


class Fleet:
    """ClusterBackend in memory; records every write so tests can prove gitops mode never patched it."""

    name = "fake"

    def __init__(self) -> None:
        self.pools = {p.ref.key: p for p in default_pools()}
        self.node_pools = {
            "gpu-l4": NodePoolState(
                name="gpu-l4", gpu_type="L4", gpu_limit=24, gpus_allocated=4, gitops=FLUX
            ),
            "gpu-h100": NodePoolState(
                name="gpu-h100",
                gpu_type="H100",
                gpus_per_node=8,
                gpu_limit=32,
                gpus_allocated=24,
                gitops=FLUX,
            ),
        }
        self.writes: list[tuple[str, Any, bool]] = []

    def list_pools(self) -> list[PoolState]:
        return list(self.pools.values())

    def get_pool(self, ref: PoolRef) -> PoolState:
        try:
            return self.pools[ref.key]
        except KeyError:
            raise NotFound(f"pool {ref.key} not found") from None

    def list_node_pools(self) -> list[NodePoolState]:
        return list(self.node_pools.values())

    def scale_deployment(self, ref: PoolRef, replicas: int, *, dry_run: bool) -> list[Change]:
        self.writes.append(("scale", (ref.key, replicas), dry_run))
        pool = self.get_pool(ref)
        if not dry_run:
            self.pools[ref.key] = pool.model_copy(update={"desired_replicas": replicas})
        return [Change(field="replicas", before=pool.desired_replicas, after=replicas)]

    def patch_autoscaler(self, ref: PoolRef, patch: AutoscalerPatch, *, dry_run: bool) -> list[Change]:
        self.writes.append(("patch", (ref.key, patch), dry_run))
        pool = self.get_pool(ref)
        assert pool.autoscaler is not None
        upd = patch.model_dump(exclude={"kind"}, exclude_none=True)
        if not dry_run:
            self.pools[ref.key] = pool.model_copy(
                update={"autoscaler": pool.autoscaler.model_copy(update=upd)}
            )
        return [Change(field=k, before=getattr(pool.autoscaler, k), after=v) for k, v in upd.items()]

    def request_gpu_nodes(self, request: GpuNodeRequest, *, dry_run: bool) -> list[Change]:
        self.writes.append(("gpus", request, dry_run))
        return [Change(field="reserved_gpus", before=0, after=request.gpus)]

    def record_event(self, ref: PoolRef, reason: str, message: str) -> None:
        return None

    def snapshot(self, ref: PoolRef) -> PoolSnapshot:
        pool = self.get_pool(ref)
        return PoolSnapshot(
            namespace=ref.namespace,
            name=ref.name,
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
            gitops=pool.gitops,
            signals=PoolSignals(kv_usage=0.3, queue_depth=0.0, ttft_p90_s=0.8, age_s={"kv_usage": 5.0}),
            slo=SloStatus.OK,
            slo_targets=SloTargets(),
        )


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True)
    return out.stdout


def repo_state(repo: Path) -> dict[str, Any]:
    """Everything a proposal must not touch: HEAD, the current branch, all refs, worktree and index."""
    return {
        "head": git(repo, "rev-parse", "HEAD"),
        "branch": git(repo, "symbolic-ref", "HEAD"),
        "refs": git(repo, "for-each-ref", "--format=%(refname) %(objectname)"),
        "status": git(repo, "status", "--porcelain", "--untracked-files=all"),
        "index": git(repo, "ls-files", "-s"),
        "worktrees": git(repo, "worktree", "list", "--porcelain"),
    }
