"""Pure functions that turn Kubernetes objects (plain JSON dicts) into pool and node-pool state.

No I/O here: the backend lists objects once per discovery round and these functions decide, for each
Deployment, what model it serves, on which GPUs, and which autoscaler (KEDA ScaledObject, HPA, or none)
owns its replica count. Kept pure so the rules are easy to test and to read.

Labels and annotations read (documented in docs/kubernetes.md):
- ``mcp-autoscale/model`` (annotation, full model id; a label cannot hold ``/``), else the container's
  ``--model`` argument or ``vllm serve <model>``, else the Deployment name.
- ``mcp-autoscale/engine`` (label or annotation), else inferred from the image name; default ``vllm``.
- ``mcp-autoscale/role``: ``unified`` | ``prefill`` | ``decode``.
- ``mcp-autoscale/gpu``: GPU model, else the pod's node selector / required affinity on
  ``karpenter.k8s.aws/instance-gpu-name`` or ``nvidia.com/gpu.product``, else the NodePool's requirement.
- ``mcp-autoscale/cold-start-seconds`` (annotation): typical time from scale-up to serving.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from mcp_autoscale.gitops.detect import manager_of
from mcp_autoscale.models import (
    Autoscaler,
    AutoscalerKind,
    GitOpsManager,
    NodePoolState,
    PoolRef,
    PoolState,
    Role,
)

JSON = dict[str, Any]

LABEL_PREFIX = "mcp-autoscale/"
MODEL_KEY = LABEL_PREFIX + "model"
ENGINE_KEY = LABEL_PREFIX + "engine"
ROLE_KEY = LABEL_PREFIX + "role"
GPU_KEY = LABEL_PREFIX + "gpu"
COLD_START_KEY = LABEL_PREFIX + "cold-start-seconds"
BALLOON_LABEL = LABEL_PREFIX + "balloon"

GPU_RESOURCE = "nvidia.com/gpu"
NODEPOOL_KEY = "karpenter.sh/nodepool"
CAPACITY_KEY = "karpenter.sh/capacity-type"
INSTANCE_TYPE_KEY = "node.kubernetes.io/instance-type"
GPU_NAME_KEYS = (
    "karpenter.k8s.aws/instance-gpu-name",
    "nvidia.com/gpu.product",
    "cloud.google.com/gke-accelerator",
)
GPU_COUNT_KEY = "karpenter.k8s.aws/instance-gpu-count"

KEDA_PAUSED = "autoscaling.keda.sh/paused"
KEDA_PAUSED_REPLICAS = "autoscaling.keda.sh/paused-replicas"
KEDA_DEFAULT_MIN, KEDA_DEFAULT_MAX = 0, 100  # KEDA's defaults for minReplicaCount / maxReplicaCount

# GPUs per node for common GPU instance types, used when a NodePool does not pin instance-gpu-count.
GPUS_PER_INSTANCE: dict[str, int] = {
    "g5.xlarge": 1, "g5.2xlarge": 1, "g5.4xlarge": 1, "g5.8xlarge": 1, "g5.12xlarge": 4, "g5.48xlarge": 8,
    "g6.xlarge": 1, "g6.2xlarge": 1, "g6.4xlarge": 1, "g6.12xlarge": 4, "g6.48xlarge": 8,
    "g6e.xlarge": 1, "g6e.2xlarge": 1, "g6e.12xlarge": 4, "g6e.48xlarge": 8,
    "p4d.24xlarge": 8, "p4de.24xlarge": 8, "p5.48xlarge": 8, "p5e.48xlarge": 8, "p5en.48xlarge": 8,
}  # fmt: skip

ENGINES_BY_IMAGE = (
    ("sglang", "sglang"),
    ("text-generation-inference", "tgi"),
    ("tgi", "tgi"),
    ("tritonserver", "triton"),
    ("triton", "triton"),
    ("dynamo", "dynamo"),
    ("vllm", "vllm"),
)


# --------------------------------------------------------------------------------------------------
# Small readers
# --------------------------------------------------------------------------------------------------


def meta(obj: JSON) -> JSON:
    m = obj.get("metadata")
    return m if isinstance(m, dict) else {}


def labels(obj: JSON) -> dict[str, str]:
    return dict(meta(obj).get("labels") or {})


def annots(obj: JSON) -> dict[str, str]:
    return dict(meta(obj).get("annotations") or {})


def first(values: list[str] | None) -> str | None:
    return values[0] if values else None


def pod_spec(deploy: JSON) -> JSON:
    return dict(((deploy.get("spec") or {}).get("template") or {}).get("spec") or {})


def parse_quantity(value: Any) -> int:
    """Integer resource quantity ("4", 4, "2k"); GPU counts are whole numbers."""
    if value is None:
        return 0
    if isinstance(value, int | float):
        return int(value)
    m = re.fullmatch(r"\s*([0-9.]+)\s*([kMG]?)\s*", str(value))
    if not m:
        return 0
    mult = {"": 1, "k": 1000, "M": 1000**2, "G": 1000**3}[m[2]]
    return int(float(m[1]) * mult)


def node_constraints(spec: JSON) -> dict[str, list[str]]:
    """Key -> allowed values from nodeSelector and required node affinity (``In`` terms)."""
    out: dict[str, list[str]] = {k: [str(v)] for k, v in (spec.get("nodeSelector") or {}).items()}
    affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in affinity.get("nodeSelectorTerms") or []:
        for expr in term.get("matchExpressions") or []:
            if expr.get("operator") == "In" and expr.get("values"):
                out.setdefault(str(expr["key"]), [str(v) for v in expr["values"]])
    return out


def nodepool_requirements(nodepool: JSON) -> dict[str, list[str]]:
    reqs = (
        (((nodepool.get("spec") or {}).get("template") or {}).get("spec") or {}).get("requirements")
    ) or []
    return {str(r["key"]): [str(v) for v in r.get("values") or []] for r in reqs if r.get("operator") == "In"}


def normalize_gpu(raw: str | None) -> str | None:
    """Canonical GPU names (L4, A10G, L40S, A100-40, A100-80, H100, H200) from label values or products."""
    if not raw:
        return None
    s = raw.upper().replace("_", "-")
    s = re.sub(r"^(NVIDIA-|NVIDIA |TESLA-)", "", s)
    for name in ("H200", "H100", "L40S", "A10G", "L4"):
        if re.search(rf"(^|[^A-Z0-9]){name}($|[^A-Z0-9])", s):
            return name
    if "A100" in s:
        if "80" in s.replace("A100", ""):
            return "A100-80"
        if "40" in s.replace("A100", ""):
            return "A100-40"
        return "A100"
    if re.search(r"(^|[^A-Z0-9])A10($|[^A-Z0-9])", s):
        return "A10"
    return raw


def gpus_per_pod(spec: JSON) -> int:
    total = 0
    for c in spec.get("containers") or []:
        res = c.get("resources") or {}
        total += parse_quantity(
            (res.get("limits") or {}).get(GPU_RESOURCE) or (res.get("requests") or {}).get(GPU_RESOURCE)
        )
    return total


def model_from_args(spec: JSON) -> str | None:
    for c in spec.get("containers") or []:
        argv = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
        for i, a in enumerate(argv):
            if a in ("--model", "--model-id", "--model-path", "--model_name_or_path") and i + 1 < len(argv):
                return argv[i + 1]
            for flag in ("--model=", "--model-id=", "--model-path="):
                if a.startswith(flag):
                    return a[len(flag) :]
            if a == "serve" and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                return argv[i + 1]
    return None


def engine_of(deploy: JSON, spec: JSON) -> str:
    explicit = labels(deploy).get(ENGINE_KEY) or annots(deploy).get(ENGINE_KEY)
    if explicit:
        return explicit
    for c in spec.get("containers") or []:
        image = str(c.get("image", "")).lower()
        for needle, engine in ENGINES_BY_IMAGE:
            if needle in image:
                return engine
    return "vllm"


def role_of(deploy: JSON) -> Role:
    raw = (labels(deploy).get(ROLE_KEY) or annots(deploy).get(ROLE_KEY) or "").lower()
    return Role(raw) if raw in {r.value for r in Role} else Role.UNIFIED


def gitops_of(obj: JSON) -> GitOpsManager | None:
    """Argo CD / Flux manager of any object (Deployment, ScaledObject, HPA, NodePool): see gitops.detect."""
    return manager_of(obj)


# --------------------------------------------------------------------------------------------------
# Ownership
# --------------------------------------------------------------------------------------------------


def _targets(ref_obj: JSON, deployment: str) -> bool:
    kind = ref_obj.get("kind", "Deployment")
    api = str(ref_obj.get("apiVersion", "apps/v1"))
    return bool(ref_obj.get("name") == deployment and kind == "Deployment" and api.startswith("apps/"))


def keda_hpa_name(scaled_object: JSON) -> str:
    """The HPA KEDA creates for a ScaledObject (status.hpaName, a custom name, or keda-hpa-<name>)."""
    status_name = (scaled_object.get("status") or {}).get("hpaName")
    custom = (
        (((scaled_object.get("spec") or {}).get("advanced") or {}).get("horizontalPodAutoscalerConfig")) or {}
    ).get("name")
    return str(status_name or custom or f"keda-hpa-{meta(scaled_object).get('name')}")


def find_owner(deployment: str, scaled_objects: list[JSON], hpas: list[JSON]) -> JSON | None:
    """The object owning the replica count: a ScaledObject, else a plain HPA not managed by KEDA."""
    for so in scaled_objects:
        if _targets((so.get("spec") or {}).get("scaleTargetRef") or {}, deployment):
            return so
    keda_managed = {keda_hpa_name(so) for so in scaled_objects}
    for h in hpas:
        owners = {o.get("kind") for o in meta(h).get("ownerReferences") or []}
        if "ScaledObject" in owners or meta(h).get("name") in keda_managed:
            continue
        if _targets((h.get("spec") or {}).get("scaleTargetRef") or {}, deployment):
            return h
    return None


def _behavior_windows(behavior: JSON) -> tuple[int | None, int | None]:
    down = (behavior.get("scaleDown") or {}).get("stabilizationWindowSeconds")
    up = (behavior.get("scaleUp") or {}).get("stabilizationWindowSeconds")
    return (int(down) if down is not None else None, int(up) if up is not None else None)


def autoscaler_of(owner: JSON) -> Autoscaler:
    spec = owner.get("spec") or {}
    name = str(meta(owner).get("name"))
    if owner.get("kind") == "ScaledObject":
        an = annots(owner)
        behavior = ((spec.get("advanced") or {}).get("horizontalPodAutoscalerConfig") or {}).get(
            "behavior"
        ) or {}
        down, up = _behavior_windows(behavior)
        triggers = spec.get("triggers") or []
        metric = None
        if triggers:
            t = triggers[0]
            md = t.get("metadata") or {}
            metric = " ".join(
                str(x)
                for x in (t.get("type"), md.get("metricType") or t.get("metricType"), md.get("threshold"))
                if x
            )
        return Autoscaler(
            kind=AutoscalerKind.KEDA,
            name=name,
            min_replicas=int(spec.get("minReplicaCount", KEDA_DEFAULT_MIN)),
            max_replicas=int(spec.get("maxReplicaCount", KEDA_DEFAULT_MAX)),
            paused=an.get(KEDA_PAUSED, "").lower() == "true" or KEDA_PAUSED_REPLICAS in an,
            scale_down_stabilization_s=down,
            scale_up_stabilization_s=up,
            metric=metric,
            managed_hpa=keda_hpa_name(owner),
            gitops=gitops_of(owner),
        )
    down, up = _behavior_windows(spec.get("behavior") or {})
    metrics = spec.get("metrics") or []
    metric = None
    if metrics:
        m = metrics[0]
        kind = str(m.get("type", ""))
        body = m.get(kind[:1].lower() + kind[1:]) or {}
        target = body.get("target") or {}
        metric_name = (body.get("metric") or {}).get("name") or body.get("name")
        value = target.get("averageValue") or target.get("averageUtilization") or target.get("value")
        metric = " ".join(str(x) for x in (kind, metric_name, target.get("type"), value) if x)
    return Autoscaler(
        kind=AutoscalerKind.HPA,
        name=name,
        min_replicas=int(spec.get("minReplicas", 1)),
        max_replicas=int(spec.get("maxReplicas", 1)),
        scale_down_stabilization_s=down,
        scale_up_stabilization_s=up,
        metric=metric,
        gitops=gitops_of(owner),
    )


# --------------------------------------------------------------------------------------------------
# Pods, pools, node pools
# --------------------------------------------------------------------------------------------------


def pod_matches(pod: JSON, deploy: JSON) -> bool:
    if meta(pod).get("namespace") != meta(deploy).get("namespace"):
        return False
    want = ((deploy.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    have = labels(pod)
    return bool(want) and all(have.get(k) == v for k, v in want.items())


def _pod_ready(pod: JSON) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def metrics_url(pod: JSON) -> str | None:
    ip = (pod.get("status") or {}).get("podIP")
    if not ip:
        return None
    an = annots(pod)
    port: Any = an.get("prometheus.io/port")
    if port is None:
        ports = [p for c in (pod.get("spec") or {}).get("containers") or [] for p in c.get("ports") or []]
        named = [p for p in ports if p.get("name") in ("metrics", "http")]
        port = (named or ports or [{"containerPort": 8000}])[0].get("containerPort", 8000)
    path = an.get("prometheus.io/path", "/metrics")
    return f"http://{ip}:{port}{path}"


def pool_state(deploy: JSON, owner: JSON | None, pods: list[JSON], nodepools: dict[str, JSON]) -> PoolState:
    """One Deployment -> PoolState, with its owner and (optionally) its pods and NodePool."""
    m, spec = meta(deploy), pod_spec(deploy)
    an, lb = annots(deploy), labels(deploy)
    constraints = node_constraints(spec)
    np_name = first(constraints.get(NODEPOOL_KEY))
    np_reqs = nodepool_requirements(nodepools[np_name]) if np_name and np_name in nodepools else {}

    gpu_raw = lb.get(GPU_KEY) or an.get(GPU_KEY)
    for key in GPU_NAME_KEYS:
        gpu_raw = gpu_raw or first(constraints.get(key) or np_reqs.get(key))
    instance = first(constraints.get(INSTANCE_TYPE_KEY) or np_reqs.get(INSTANCE_TYPE_KEY))
    capacity_values = constraints.get(CAPACITY_KEY) or np_reqs.get(CAPACITY_KEY) or ["on-demand"]
    capacity: Literal["on-demand", "spot"] = "spot" if capacity_values == ["spot"] else "on-demand"

    status = deploy.get("status") or {}
    desired = int((deploy.get("spec") or {}).get("replicas", 1))
    ready = int(status.get("readyReplicas") or 0)
    mine = [p for p in pods if pod_matches(p, deploy) and not meta(p).get("deletionTimestamp")]
    if mine:
        pending = sum(1 for p in mine if not (p.get("spec") or {}).get("nodeName"))
        starting = sum(1 for p in mine if (p.get("spec") or {}).get("nodeName") and not _pod_ready(p))
    else:
        pending, starting = 0, max(0, int(status.get("replicas") or 0) - ready)
    urls = [u for p in mine if _pod_ready(p) for u in [metrics_url(p)] if u]
    cold = an.get(COLD_START_KEY)
    return PoolState(
        ref=PoolRef(namespace=str(m["namespace"]), name=str(m["name"])),
        model=an.get(MODEL_KEY) or model_from_args(spec) or lb.get(MODEL_KEY) or str(m["name"]),
        engine=engine_of(deploy, spec),
        role=role_of(deploy),
        gpu_type=normalize_gpu(gpu_raw) or "unknown",
        gpus_per_replica=gpus_per_pod(spec),
        instance_type=instance,
        capacity_type=capacity,
        node_pool=np_name,
        desired_replicas=desired,
        ready_replicas=ready,
        starting_replicas=starting,
        pending_replicas=pending,
        autoscaler=autoscaler_of(owner) if owner is not None else None,
        gitops=gitops_of(deploy),
        labels=lb,
        cold_start_s=float(cold) if cold and re.fullmatch(r"[0-9.]+", cold) else None,
        metrics_urls=sorted(urls),
    )


def gpus_per_node(nodepool: JSON) -> int:
    reqs = nodepool_requirements(nodepool)
    counts = reqs.get(GPU_COUNT_KEY)
    if counts:
        return max(1, min(parse_quantity(c) for c in counts))
    types = reqs.get(INSTANCE_TYPE_KEY) or []
    known = [GPUS_PER_INSTANCE[t] for t in types if t in GPUS_PER_INSTANCE]
    return min(known) if known else 1


def gpu_limit(nodepool: JSON) -> int | None:
    limits = (nodepool.get("spec") or {}).get("limits") or {}
    return parse_quantity(limits[GPU_RESOURCE]) if GPU_RESOURCE in limits else None


def gpus_in_use(nodepool: JSON) -> int:
    """GPUs on the pool's nodes (status.resources): what counts against ``spec.limits``."""
    return parse_quantity(((nodepool.get("status") or {}).get("resources") or {}).get(GPU_RESOURCE))


def node_pool_state(nodepool: JSON, nodeclaims: list[JSON] | None, balloons: list[JSON]) -> NodePoolState:
    name = str(meta(nodepool).get("name"))
    reqs = nodepool_requirements(nodepool)
    gpu_raw = labels(nodepool).get(GPU_KEY)
    for key in GPU_NAME_KEYS:
        gpu_raw = gpu_raw or first(reqs.get(key))
    capacity: Literal["on-demand", "spot"] = "spot" if reqs.get(CAPACITY_KEY) == ["spot"] else "on-demand"
    if nodeclaims is not None:
        mine = [c for c in nodeclaims if labels(c).get(NODEPOOL_KEY) == name]
        ready = sum(
            1
            for c in mine
            if any(
                x.get("type") == "Ready" and x.get("status") == "True"
                for x in (c.get("status") or {}).get("conditions") or []
            )
        )
        launching = len(mine) - ready
    else:
        ready = parse_quantity(((nodepool.get("status") or {}).get("resources") or {}).get("nodes"))
        launching = 0
    reserved = sum(
        int((b.get("spec") or {}).get("replicas", 1)) * gpus_per_pod(pod_spec(b))
        for b in balloons
        if labels(b).get(BALLOON_LABEL) == name
    )
    return NodePoolState(
        name=name,
        gpu_type=normalize_gpu(gpu_raw) or "unknown",
        instance_type=first(reqs.get(INSTANCE_TYPE_KEY)),
        capacity_type=capacity,
        gpus_per_node=gpus_per_node(nodepool),
        gpu_limit=gpu_limit(nodepool),
        gpus_allocated=gpus_in_use(nodepool),
        nodes_ready=ready,
        nodes_launching=launching,
        reserved_gpus=reserved,
        gitops=gitops_of(nodepool),
    )


def balloon_replicas(gpus: int, per_pod: int) -> int:
    """Placeholder pods needed to hold ``gpus`` GPUs when each pod asks for ``per_pod`` (one node's worth)."""
    return math.ceil(gpus / max(1, per_pod))
