"""Shared domain types: the nouns every layer speaks.

These models are the interface contract between the signal sources, the cluster backends, the planner,
the policy gate, the audit log and the MCP tools. They are pydantic models so that they validate at the
edges and serialise to compact JSON for the model's context.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# --------------------------------------------------------------------------------------------------
# Addressing
# --------------------------------------------------------------------------------------------------

K8S_NAME = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
"""RFC 1123 subdomain: what Kubernetes accepts for namespace, Deployment and NodePool names."""


class PoolRef(BaseModel):
    """A model pool: one Deployment (or LeaderWorkerSet) serving a model."""

    model_config = ConfigDict(frozen=True)

    namespace: str = Field(pattern=K8S_NAME, max_length=63)
    name: str = Field(pattern=K8S_NAME, max_length=253, description="Deployment name")
    cluster: str | None = Field(
        default=None,
        pattern=K8S_NAME,
        max_length=63,
        description="Cluster name (several clusters); None: the only one",
    )

    @property
    def key(self) -> str:
        """``namespace/name``, or ``cluster:namespace/name`` on a several-cluster server."""
        return (
            f"{self.cluster}:{self.namespace}/{self.name}"
            if self.cluster
            else f"{self.namespace}/{self.name}"
        )

    @property
    def local_key(self) -> str:
        """``namespace/name`` whatever the cluster (what a Prometheus without a cluster label reports)."""
        return f"{self.namespace}/{self.name}"

    def __str__(self) -> str:
        return self.key


class Role(StrEnum):
    """What a pool does in a (possibly disaggregated) serving stack."""

    UNIFIED = "unified"
    PREFILL = "prefill"
    DECODE = "decode"


class AutoscalerKind(StrEnum):
    HPA = "HorizontalPodAutoscaler"
    KEDA = "ScaledObject"


class GitOpsManager(BaseModel):
    """A GitOps controller that reconciles the object from Git (Argo CD, Flux)."""

    tool: Literal["argocd", "flux"]
    app: str = Field(description="Argo CD Application or Flux Kustomization/HelmRelease name")
    namespace: str | None = Field(default=None, description="Namespace of the Application/Kustomization")
    kind: str | None = Field(default=None, description="Application | Kustomization | HelmRelease")
    via: str | None = Field(default=None, description="The annotation or label that revealed the manager")


class Autoscaler(BaseModel):
    """The object that owns a pool's replica count, if any."""

    kind: AutoscalerKind
    name: str
    min_replicas: int
    max_replicas: int
    paused: bool = False
    scale_down_stabilization_s: int | None = None
    scale_up_stabilization_s: int | None = None
    metric: str | None = Field(default=None, description="Short description of the trigger/metric")
    managed_hpa: str | None = Field(
        default=None, description="For KEDA: the HPA it creates (keda-hpa-<name>)"
    )
    gitops: GitOpsManager | None = Field(default=None, description="GitOps controller managing this object")


class PoolState(BaseModel):
    """What the cluster says about a pool (no metrics: those come from a SignalSource)."""

    ref: PoolRef
    model: str
    engine: str = Field(default="vllm", description="vllm | sglang | tgi | triton | dynamo")
    role: Role = Role.UNIFIED
    gpu_type: str = Field(description="e.g. L4, A10G, L40S, A100-80, H100, H200")
    gpus_per_replica: int = 1
    instance_type: str | None = None
    capacity_type: Literal["on-demand", "spot"] = "on-demand"
    node_pool: str | None = None
    desired_replicas: int
    ready_replicas: int
    starting_replicas: int = Field(default=0, description="Replicas scheduled but not yet serving")
    pending_replicas: int = Field(default=0, description="Replicas waiting for a node")
    autoscaler: Autoscaler | None = None
    gitops: GitOpsManager | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    cold_start_s: float | None = Field(default=None, description="Typical time from scale-up to serving")
    metrics_urls: list[str] = Field(default_factory=list, description="Pods' /metrics URLs (direct scrape)")


class NodePoolState(BaseModel):
    """A GPU node pool (Karpenter NodePool, or the simulator's equivalent)."""

    name: str
    gpu_type: str
    cluster: str | None = Field(default=None, description="Cluster it lives in (several clusters)")
    instance_type: str | None = None
    capacity_type: Literal["on-demand", "spot"] = "on-demand"
    gpus_per_node: int = 1
    gpu_limit: int | None = Field(default=None, description="spec.limits nvidia.com/gpu; None = unlimited")
    gpus_allocated: int = 0
    nodes_ready: int = 0
    nodes_launching: int = 0
    reserved_gpus: int = Field(default=0, description="GPUs held by placeholder (balloon) pods")
    typical_provision_s: float = 180.0
    gitops: GitOpsManager | None = Field(default=None, description="GitOps controller managing the NodePool")


# --------------------------------------------------------------------------------------------------
# Signals and snapshot
# --------------------------------------------------------------------------------------------------

SIGNAL_NAMES: tuple[str, ...] = (
    "ttft_p50_s",
    "ttft_p90_s",
    "ttft_p99_s",
    "itl_p50_s",
    "itl_p90_s",
    "kv_usage",
    "queue_depth",
    "running",
    "prompt_tps",
    "gen_tps",
    "preemptions_per_min",
    "request_rps",
)
"""Every signal a snapshot may carry, in display order."""


class PoolSignals(BaseModel):
    """Measured serving signals for one pool, aggregated over its replicas.

    A value is ``None`` when it could not be measured; ``missing`` then says why. Never zero-for-missing.
    """

    ttft_p50_s: float | None = None
    ttft_p90_s: float | None = None
    ttft_p99_s: float | None = None
    itl_p50_s: float | None = None
    itl_p90_s: float | None = None
    kv_usage: float | None = Field(default=None, description="Mean KV-cache usage across replicas, 0-1")
    queue_depth: float | None = Field(default=None, description="Requests waiting, summed over replicas")
    running: float | None = Field(default=None, description="Requests running, summed over replicas")
    prompt_tps: float | None = Field(default=None, description="Prompt tokens/s, pool total")
    gen_tps: float | None = Field(default=None, description="Generated tokens/s, pool total")
    preemptions_per_min: float | None = None
    request_rps: float | None = Field(default=None, description="Finished requests/s, pool total")
    dialect: str | None = Field(default=None, description="Metric dialect the values were read in")
    age_s: dict[str, float] = Field(default_factory=dict, description="Age of each signal's newest sample")
    stale: list[str] = Field(default_factory=list, description="Signals older than the staleness limit")
    missing: dict[str, str] = Field(default_factory=dict, description="Signal -> why it is missing")

    def value(self, signal: str) -> float | None:
        v = getattr(self, signal, None)
        return v if isinstance(v, (int, float)) else None


class SignalReport(BaseModel):
    """What a SignalSource returns for one collection round."""

    source: str
    pools: dict[str, PoolSignals] = Field(default_factory=dict, description="PoolRef.key -> signals")
    errors: list[str] = Field(default_factory=list, description="Failures that affect every pool")
    queries: int = Field(default=0, description="Backend queries issued for this report")
    collected_at: datetime


class SloTargets(BaseModel):
    """Latency objectives a pool is judged against (p90, seconds)."""

    ttft_p90_s: float = Field(default=2.0, gt=0, description="NVIDIA chat guidance: TTFT p90 < 2 s")
    itl_p90_s: float = Field(default=0.1, gt=0, description="ITL p90 < 50-100 ms")


class SloStatus(StrEnum):
    OK = "ok"
    BREACH = "breach"
    UNKNOWN = "unknown"


class PoolSnapshot(BaseModel):
    """One pool as the agent sees it: cluster state + signals + SLO + cost, compact."""

    namespace: str
    name: str
    cluster: str | None = Field(default=None, description="Cluster (several clusters only)")
    model: str
    engine: str
    role: Role
    gpu_type: str
    gpus_per_replica: int
    node_pool: str | None = None
    replicas: dict[str, int] = Field(description="desired, ready, starting, pending")
    owner: Autoscaler | None = None
    gitops: GitOpsManager | None = None
    signals: PoolSignals
    slo: SloStatus
    slo_targets: SloTargets
    slo_breaches: list[str] = Field(default_factory=list, description="e.g. 'ttft_p90_s 3.1 > 2.0'")
    cost_per_hour: float | None = Field(default=None, description="USD/h for the pool's GPUs")

    @property
    def ref(self) -> PoolRef:
        return PoolRef(namespace=self.namespace, name=self.name)

    def to_pool_state(self) -> PoolState:
        """The cluster state this snapshot carries (for callers that have no PoolState for the pool)."""
        return PoolState(
            ref=self.ref,
            model=self.model,
            engine=self.engine,
            role=self.role,
            gpu_type=self.gpu_type,
            gpus_per_replica=self.gpus_per_replica,
            node_pool=self.node_pool,
            desired_replicas=self.replicas.get("desired", 0),
            ready_replicas=self.replicas.get("ready", 0),
            starting_replicas=self.replicas.get("starting", 0),
            pending_replicas=self.replicas.get("pending", 0),
            autoscaler=self.owner,
            gitops=self.gitops,
        )


class FleetSnapshot(BaseModel):
    """The whole fleet at one moment."""

    taken_at: datetime
    backend: str
    signal_source: str
    pools: list[PoolSnapshot]
    node_pools: list[NodePoolState] = Field(default_factory=list)
    partial: bool = Field(default=False, description="True when some signals or sources failed")
    warnings: list[str] = Field(default_factory=list)
    source_errors: list[str] = Field(
        default_factory=list,
        description="Sources that failed as a whole (signals, node pools): what they feed is not known",
    )
    fleet_cost_per_hour: float | None = None
    queries: int = 0

    def pool(self, ref: PoolRef) -> PoolSnapshot | None:
        for p in self.pools:
            if p.namespace == ref.namespace and p.name == ref.name and p.cluster == ref.cluster:
                return p
        return None


# --------------------------------------------------------------------------------------------------
# Actions, verdicts, results
# --------------------------------------------------------------------------------------------------


class ActionKind(StrEnum):
    """Every mutating tool. Adding a member here is the only way to add a mutation."""

    SCALE_DEPLOYMENT = "scale_deployment"
    PATCH_HPA = "patch_hpa"
    REQUEST_GPU_NODES = "request_gpu_nodes"


class ScaleDeploymentParams(BaseModel):
    kind: Literal[ActionKind.SCALE_DEPLOYMENT] = ActionKind.SCALE_DEPLOYMENT
    replicas: int = Field(ge=0, le=1000)


class AutoscalerPatch(BaseModel):
    """Fields of an HPA / KEDA ScaledObject the agent may change. None = leave as is."""

    kind: Literal[ActionKind.PATCH_HPA] = ActionKind.PATCH_HPA
    min_replicas: int | None = Field(default=None, ge=0, le=1000)
    max_replicas: int | None = Field(default=None, ge=1, le=1000)
    scale_down_stabilization_s: int | None = Field(default=None, ge=0, le=3600)
    scale_up_stabilization_s: int | None = Field(default=None, ge=0, le=3600)
    paused: bool | None = Field(default=None, description="KEDA only: pause/unpause autoscaling")


class GpuNodeRequest(BaseModel):
    kind: Literal[ActionKind.REQUEST_GPU_NODES] = ActionKind.REQUEST_GPU_NODES
    node_pool: str = Field(pattern=K8S_NAME, max_length=253)
    cluster: str | None = Field(
        default=None, pattern=K8S_NAME, max_length=63, description="Cluster of the node pool"
    )
    gpus: int = Field(ge=1, le=1024, description="GPUs of headroom to pre-provision")
    method: Literal["auto", "limit", "balloon"] = "auto"


ActionParams = ScaleDeploymentParams | AutoscalerPatch | GpuNodeRequest


class Action(BaseModel):
    """A typed proposal to change the cluster, carrying the agent's reason."""

    id: str
    kind: ActionKind
    target: PoolRef | None = Field(default=None, description="Pool acted on (None for node-pool actions)")
    params: ActionParams = Field(discriminator="kind")
    rationale: str = Field(min_length=1)
    dry_run: bool = False
    caller: str = "local"
    caller_name: str | None = Field(default=None, description="The caller's display name (from the token)")
    caller_groups: list[str] = Field(default_factory=list, description="The caller's groups (from the token)")
    idempotency_key: str | None = None
    requested_at: datetime


class Decision(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    NEEDS_APPROVAL = "needs_approval"


class Verdict(BaseModel):
    """The policy's answer, with the reasons a model (or a human) can act on."""

    decision: Decision
    reasons: list[str] = Field(default_factory=list)
    rules: list[str] = Field(default_factory=list, description="Names of the rules that decided")
    hint: str | None = Field(default=None, description="What would be allowed instead, if anything")
    approvers: list[str] = Field(default_factory=list, description="Who may approve, when approval is needed")


class Change(BaseModel):
    """One field's before -> after."""

    field: str
    before: Any = None
    after: Any = None


class ActionStatus(StrEnum):
    APPLIED = "applied"
    DRY_RUN = "dry_run"
    DENIED = "denied"
    PENDING_APPROVAL = "pending_approval"
    REJECTED = "rejected"
    EXPIRED = "expired"
    FAILED = "failed"
    PROPOSED_COMMIT = "proposed_commit"
    """GitOps execution: the change is a commit on a new branch; the cluster is unchanged until it merges."""
    NO_CHANGE = "no_change"
    """Allowed and sent, but the target already had the requested values: nothing changed (never 'applied')."""
    INTENT = "intent"
    """Write-ahead: fsynced before a cluster write; its outcome record (``intent_id``) follows the write."""
    RECONCILED = "reconciled"
    """The outcome of an intent whose process died before recording one, read from the live object."""


class ActionResult(BaseModel):
    """What every mutating tool returns."""

    action_id: str
    tool: ActionKind
    target: str = Field(description="namespace/deployment or nodepool/<name>")
    status: ActionStatus
    verdict: Verdict
    changes: list[Change] = Field(default_factory=list)
    message: str
    audit_id: str | None = None
    notes: list[str] = Field(default_factory=list)
    proposal_id: str | None = Field(default=None, description="Pending proposal to approve, when pending")


class AuditRecord(BaseModel):
    """One line of the append-only audit log (hash-chained)."""

    id: str
    seq: int
    ts: datetime
    action_id: str
    tool: str
    target: str
    arguments: dict[str, Any]
    rationale: str
    caller: str
    caller_name: str | None = Field(default=None, description="The caller's display name (from the token)")
    caller_groups: list[str] = Field(default_factory=list, description="The caller's groups (from the token)")
    dry_run: bool
    verdict: Verdict
    status: ActionStatus
    changes: list[Change] = Field(default_factory=list)
    message: str = ""
    evidence: dict[str, Any] | None = Field(default=None, description="Compact snapshot of the target")
    inverse: dict[str, Any] | None = Field(default=None, description="Tool call that undoes this action")
    attempts: int = Field(default=1, description="Write attempts (retries on 409 Conflict)")
    cost_delta_per_hour: float | None = Field(default=None, description="USD/h the action adds (< 0 saves)")
    idempotency_key: str | None = Field(default=None, description="Client key: a retry returns this record")
    proposal_id: str | None = Field(
        default=None, description="Pending-approval proposal this record belongs to"
    )
    approver: str | None = Field(default=None, description="Who approved or rejected (approval records)")
    intent_id: str | None = Field(default=None, description="The intent record this outcome closes")
    prev_hash: str = ""
    hash: str = ""
    signature: str | None = Field(default=None, description="HMAC-SHA256 of the record (when a key is set)")

    @property
    def counts_as_applied(self) -> bool:
        """Cooldowns and budgets count this record as a change made (fail closed): applied, an intent whose
        outcome is missing, or a reconciled outcome unless the live object showed the change was not made."""
        if self.status == ActionStatus.RECONCILED:
            return bool(self.changes)
        return self.status in (ActionStatus.APPLIED, ActionStatus.INTENT)
