"""Drift: where the live cluster differs from what Git declares, and whether that difference is expected.

Replicas that differ from Git are normal when an autoscaler owns them ("KEDA scaled it"): the verdict is
``autoscaled`` as long as the autoscaler's bounds still match Git. Bounds (min/max, pause) or GPU limits
that differ from Git, or replicas that differ on a pool nobody autoscales, mean someone changed the cluster
by hand (or through a direct-mode action): ``hand_patched``, which a GitOps controller will revert or
report as OutOfSync. Read-only: it reads Git at ``gitops.base`` and the cluster through the backend.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from mcp_autoscale.errors import AutoscaleError
from mcp_autoscale.gitops.config import GitOpsConfig, GitTarget
from mcp_autoscale.gitops.detect import manager_label
from mcp_autoscale.gitops.git import GitRepo
from mcp_autoscale.gitops.yamledit import Value, load_object, read_field
from mcp_autoscale.models import AutoscalerKind, GitOpsManager, NodePoolState, PoolState

DriftKind = Literal["in_sync", "autoscaled", "hand_patched", "not_in_git"]


class DriftItem(BaseModel):
    """One compared field."""

    target: str = Field(description="namespace/deployment or nodepool/<name>")
    object: str = Field(description="e.g. 'ScaledObject chat/llama-8b'")
    field: str = Field(description="Manifest path, e.g. spec.maxReplicaCount")
    git: Any = Field(default=None, description="Value declared in Git (None: not declared)")
    live: Any = Field(default=None, description="Value in the cluster")
    status: DriftKind
    explanation: str
    file: str | None = None


class DriftReport(BaseModel):
    configured: bool = Field(description="False when the policy has no gitops block")
    repo: str | None = None
    base: str | None = Field(default=None, description="Commit of gitops.base the manifests were read at")
    checked_at: datetime
    drift: list[DriftItem] = Field(
        default_factory=list, description="Fields that differ (autoscaled or hand)"
    )
    in_sync: list[str] = Field(default_factory=list, description="Targets whose compared fields match Git")
    unmapped: list[str] = Field(default_factory=list, description="Targets with no gitops.targets entry")
    errors: list[str] = Field(default_factory=list)


def _int(value: Value) -> int | None:
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, str) and value.isdigit() else None


def _same(git: Value, live: Any) -> bool:
    return str(git) == str(live)


class _Files:
    """Mapped manifest texts at the base commit, read once per report."""

    def __init__(self, repo: GitRepo, base: str) -> None:
        self.repo, self.base = repo, base
        self.cache: dict[str, str | None] = {}

    def find(self, target: GitTarget, values: dict[str, str], kind: str, name: str, ns: str | None) -> Any:
        for path in target.files(values):
            if path not in self.cache:
                self.cache[path] = self.repo.read(self.base, path)
            text = self.cache[path]
            doc = load_object(text, kind, name, ns, path) if text is not None else None
            if doc is not None:
                return path, doc
        return None, None


def _manager_note(manager: GitOpsManager | None) -> str:
    return f"; {manager_label(manager)} will revert it or report OutOfSync" if manager else ""


def _pool_items(pool: PoolState, target: GitTarget, files: _Files) -> list[DriftItem]:
    ref = pool.ref
    values = {"namespace": ref.namespace, "deployment": ref.name}
    items: list[DriftItem] = []
    owner = pool.autoscaler
    bounds_match = True
    if owner is not None:
        keda = owner.kind == AutoscalerKind.KEDA
        kind = owner.kind.value
        label = f"{kind} {ref.namespace}/{owner.name}"
        path, doc = files.find(target, values, kind, owner.name, ref.namespace)
        if doc is None:
            items.append(
                DriftItem(
                    target=ref.key, object=label, field="(object)", live="present", status="not_in_git",
                    explanation=f"{label} exists in the cluster but not in the mapped files",
                )
            )  # fmt: skip
            bounds_match = False
        else:
            lo_key, hi_key = (
                ("minReplicaCount", "maxReplicaCount") if keda else ("minReplicas", "maxReplicas")
            )
            fields: list[tuple[str, Value, Any]] = [
                (f"spec.{lo_key}", read_field(doc, ("spec", lo_key)), owner.min_replicas),
                (f"spec.{hi_key}", read_field(doc, ("spec", hi_key)), owner.max_replicas),
            ]
            if keda:
                paused = read_field(doc, ("metadata", "annotations", "autoscaling.keda.sh/paused"))
                fields.append(
                    (
                        "metadata.annotations[autoscaling.keda.sh/paused]",
                        str(paused).lower() == "true",
                        owner.paused,
                    )
                )
            for field, git, live in fields:
                if git is None and field.endswith(("minReplicaCount", "maxReplicaCount")):
                    git = 0 if field.endswith("minReplicaCount") else 100  # KEDA's defaults
                if not _same(git, live):
                    bounds_match = False
                    items.append(
                        DriftItem(
                            target=ref.key, object=label, field=field, git=git, live=live, status="hand_patched",
                            explanation=f"{label} {field} is {live} in the cluster but {git} in Git: changed by "
                            f"hand (or a direct-mode action){_manager_note(owner.gitops)}",
                            file=path,
                        )
                    )  # fmt: skip
    dep_label = f"Deployment {ref.key}"
    path, doc = files.find(target, values, "Deployment", ref.name, ref.namespace)
    git_replicas = _int(read_field(doc, ("spec", "replicas"))) if doc is not None else None
    live = pool.desired_replicas
    if doc is not None and git_replicas is not None and git_replicas != live:
        if owner is not None and not owner.paused:
            within = owner.min_replicas <= live <= owner.max_replicas
            who = f"{'KEDA' if owner.kind == AutoscalerKind.KEDA else 'the HPA'} {owner.kind.value} {owner.name}"
            explanation = (
                f"{who} scaled it: {live} live vs {git_replicas} in Git, "
                f"{'within' if within else 'outside'} its bounds {owner.min_replicas}..{owner.max_replicas}"
            )
            explanation += (
                "; expected, not drift"
                if bounds_match
                else "; but the autoscaler's bounds differ from Git (above)"
            )
            status: DriftKind = "autoscaled"
        else:
            status = "hand_patched"
            explanation = (
                f"replicas {live} live vs {git_replicas} in Git and no active autoscaler owns them: scaled by hand "
                f"(or a direct-mode action){_manager_note(pool.gitops)}"
            )
        items.append(
            DriftItem(
                target=ref.key, object=dep_label, field="spec.replicas", git=git_replicas, live=live,
                status=status, explanation=explanation, file=path,
            )
        )  # fmt: skip
    elif doc is None and owner is None:
        items.append(
            DriftItem(
                target=ref.key, object=dep_label, field="(object)", live="present", status="not_in_git",
                explanation=f"{dep_label} is not in the mapped files",
            )
        )  # fmt: skip
    return items


def _node_pool_items(np_: NodePoolState, target: GitTarget, files: _Files) -> list[DriftItem]:
    label = f"NodePool {np_.name}"
    path, doc = files.find(target, {"node_pool": np_.name}, "NodePool", np_.name, None)
    if doc is None:
        return [
            DriftItem(
                target=f"nodepool/{np_.name}", object=label, field="(object)", live="present",
                status="not_in_git", explanation=f"{label} is not in the mapped files",
            )
        ]  # fmt: skip
    git = _int(read_field(doc, ("spec", "limits", "nvidia.com/gpu")))
    if git == np_.gpu_limit:
        return []
    return [
        DriftItem(
            target=f"nodepool/{np_.name}", object=label, field="spec.limits[nvidia.com/gpu]", git=git,
            live=np_.gpu_limit, status="hand_patched", file=path,
            explanation=f"{label} GPU limit is {np_.gpu_limit} in the cluster but {git} in Git: changed by "
            f"hand (or a direct-mode action){_manager_note(np_.gitops)}",
        )
    ]  # fmt: skip


def drift_report(
    config: GitOpsConfig | None, pools: list[PoolState], node_pools: list[NodePoolState]
) -> DriftReport:
    """Compare every mapped pool and node pool with Git; list the unmapped ones."""
    now = datetime.now(UTC)
    if config is None:
        return DriftReport(
            configured=False,
            checked_at=now,
            errors=["the policy has no gitops block (repo and targets): nothing to compare (docs/gitops.md)"],
        )
    repo = GitRepo(config.repo)
    try:
        base = repo.resolve(config.base)
    except AutoscaleError as err:
        return DriftReport(configured=True, repo=config.repo, checked_at=now, errors=[str(err)])
    files = _Files(repo, base)
    report = DriftReport(configured=True, repo=config.repo, base=base, checked_at=now)
    checks: list[tuple[str, GitTarget | None, Any]] = [
        (p.ref.key, config.target_for_pool(p.ref), lambda t, p=p: _pool_items(p, t, files)) for p in pools
    ]
    checks += [
        (
            f"nodepool/{n.name}",
            config.target_for_node_pool(n.name),
            lambda t, n=n: _node_pool_items(n, t, files),
        )
        for n in node_pools
    ]
    for key, target, run in checks:
        if target is None:
            report.unmapped.append(key)
            continue
        try:
            items = run(target)
        except AutoscaleError as err:
            report.errors.append(f"{key}: {err}")
            continue
        report.drift.extend(items)
        if not items:
            report.in_sync.append(key)
    return report
