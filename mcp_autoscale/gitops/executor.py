"""The GitOps executor: turn an allowed action into a commit on a new branch (or, in dry run, a diff).

Called only by the gate (``Gate._execute_gitops``), after the policy verdict, so gitops execution keeps the
one-gate rule: same verdict, same lock, one audit record. The edit is computed from the file as it is in
the base commit (``gitops.base``), never from the working tree, so a user's uncommitted edits neither leak
into the proposal nor get touched.
"""

from __future__ import annotations

import difflib
import math
import posixpath
from dataclasses import dataclass, field

from mcp_autoscale.errors import Conflict, InvalidInput, NotFound
from mcp_autoscale.gitops.config import GitOpsConfig, GitTarget
from mcp_autoscale.gitops.detect import manager_label
from mcp_autoscale.gitops.git import GitRepo
from mcp_autoscale.gitops.yamledit import (
    FieldChange,
    FieldEdit,
    add_kustomize_patch,
    edit_object,
    find_document,
    load_object,
    new_object,
    read_field,
)
from mcp_autoscale.models import (
    Action,
    AutoscalerKind,
    AutoscalerPatch,
    Change,
    GitOpsManager,
    GpuNodeRequest,
    NodePoolState,
    PoolState,
    ScaleDeploymentParams,
    Verdict,
)
from mcp_autoscale.policy.evaluate import target_label
from mcp_autoscale.untrusted import neutralise, quoted

KEDA_PAUSED = "autoscaling.keda.sh/paused"
KEDA_PAUSED_REPLICAS = "autoscaling.keda.sh/paused-replicas"
GPU = "nvidia.com/gpu"
_BEHAVIOR = ("behavior",)


@dataclass(frozen=True)
class ObjectPlan:
    """Which object of the target an action changes in Git, and how."""

    api_version: str
    kind: str
    name: str
    namespace: str | None
    edits: list[FieldEdit]
    manager: GitOpsManager | None = None

    @property
    def label(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


@dataclass
class GitOpsOutcome:
    """What the gate records: the field changes, the commit (or would-be branch) and the diff."""

    changes: list[Change]
    diff: str
    branch: str
    sha: str | None
    base: str
    files: list[str]
    notes: list[str] = field(default_factory=list)


def _window(path: tuple[str, ...], direction: str) -> tuple[str, ...]:
    return (*path, direction, "stabilizationWindowSeconds")


def plan_for(action: Action, pool: PoolState | None, node_pool: NodePoolState | None) -> ObjectPlan:
    """The object and fields an action changes (the same fields the direct path patches)."""
    p = action.params
    if isinstance(p, ScaleDeploymentParams):
        assert action.target is not None
        return ObjectPlan(
            "apps/v1",
            "Deployment",
            action.target.name,
            action.target.namespace,
            [FieldEdit(("spec", "replicas"), p.replicas)],
            pool.gitops if pool is not None else None,
        )
    if isinstance(p, AutoscalerPatch):
        assert action.target is not None
        owner = pool.autoscaler if pool is not None else None
        if owner is None:
            raise InvalidInput(f"{action.target} has no HPA or KEDA ScaledObject to change in Git")
        edits: list[FieldEdit] = []
        behavior: tuple[str, ...]
        if owner.kind == AutoscalerKind.KEDA:
            behavior = ("spec", "advanced", "horizontalPodAutoscalerConfig", *_BEHAVIOR)
            fields = {
                "min_replicas": ("spec", "minReplicaCount"),
                "max_replicas": ("spec", "maxReplicaCount"),
                "scale_down_stabilization_s": _window(behavior, "scaleDown"),
                "scale_up_stabilization_s": _window(behavior, "scaleUp"),
            }
            api, kind = "keda.sh/v1alpha1", "ScaledObject"
        else:
            behavior = ("spec", *_BEHAVIOR)
            fields = {
                "min_replicas": ("spec", "minReplicas"),
                "max_replicas": ("spec", "maxReplicas"),
                "scale_down_stabilization_s": _window(behavior, "scaleDown"),
                "scale_up_stabilization_s": _window(behavior, "scaleUp"),
            }
            api, kind = "autoscaling/v2", "HorizontalPodAutoscaler"
        for attr, path in fields.items():
            value = getattr(p, attr)
            if value is not None:
                edits.append(FieldEdit(path, value))
        if p.paused is not None:
            if owner.kind != AutoscalerKind.KEDA:
                raise InvalidInput(f"HorizontalPodAutoscaler {owner.name} has no pause switch (KEDA only)")
            if p.paused:
                edits.append(FieldEdit(("metadata", "annotations", KEDA_PAUSED), "true", quoted=True))
            else:
                edits.append(FieldEdit(("metadata", "annotations", KEDA_PAUSED), None))
                edits.append(FieldEdit(("metadata", "annotations", KEDA_PAUSED_REPLICAS), None))
        if not edits:
            raise InvalidInput(
                "the autoscaler patch changes nothing: set min/max replicas, a window, or paused"
            )
        return ObjectPlan(api, kind, owner.name, action.target.namespace, edits, owner.gitops)
    assert isinstance(p, GpuNodeRequest)
    if p.method == "balloon":
        raise InvalidInput(
            "placeholder (balloon) pods are runtime objects in the server's namespace, not Git-managed: "
            "use method=limit to commit a higher NodePool GPU limit"
        )
    # The limit value depends on what Git declares; the executor fills it in (see _nodepool_limit).
    return ObjectPlan(
        "karpenter.sh/v1", "NodePool", p.node_pool, None, [], node_pool.gitops if node_pool else None
    )


def _nodepool_limit(request: GpuNodeRequest, node_pool: NodePoolState | None, git_limit: int | None) -> int:
    """The GPU limit to commit: GPUs in use plus whole nodes for the request, never below Git's value."""
    if node_pool is None:
        raise NotFound(f"node pool {request.node_pool} is unknown to the backend")
    per_node = max(1, node_pool.gpus_per_node)
    needed = node_pool.gpus_allocated + math.ceil(request.gpus / per_node) * per_node
    if git_limit is None:
        raise InvalidInput(
            f"NodePool {request.node_pool} declares no {GPU} limit in Git: Karpenter is not limited, "
            "there is nothing to raise"
        )
    if git_limit >= needed:
        raise InvalidInput(
            f"NodePool {request.node_pool} already allows {git_limit} GPUs in Git "
            f"({node_pool.gpus_allocated} in use + {request.gpus} requested fit); nothing to commit"
        )
    return needed


def _git_diff(path: str, before: str | None, after: str) -> str:
    """A ``git diff``-style unified diff computed without touching the repository (dry run)."""
    a = f"a/{path}" if before is not None else "/dev/null"
    head = f"diff --git a/{path} b/{path}\n" + ("new file mode 100644\n" if before is None else "")
    body = difflib.unified_diff(
        (before or "").splitlines(keepends=True), after.splitlines(keepends=True), a, f"b/{path}"
    )
    return head + "".join(body)


def commit_message(
    action: Action, verdict: Verdict, plan: ObjectPlan, changes: list[tuple[str, FieldChange]], audit_id: str
) -> str:
    what = ", ".join(f"{c.label} {c.before} -> {c.after}" for _, c in changes)
    target = target_label(action)
    lines = [
        f"mcp-autoscale: {action.kind.value} {target}: {what}"[:200],
        "",
        f"Rationale {quoted(action.rationale, max_len=None)}",  # one line: no fake verdict or trailer
        "",
        f"Policy verdict: {verdict.decision.value}",
        *(f"  - {r}" for r in verdict.reasons),
    ]
    if plan.manager is not None:
        lines.append(f"Synced by: {manager_label(plan.manager)}")
    lines += [
        "Changes:",
        *(f"  - {path}: {plan.label} {c.label} {c.before} -> {c.after}" for path, c in changes),
    ]
    lines += [
        "",
        f"Target: {target}",
        f"Action-Id: {action.id}",
        f"Audit-Id: {audit_id}",
        f"Requested-By: {neutralise(action.caller)}",
    ]
    return "\n".join(lines) + "\n"


class GitOpsExecutor:
    """Writes one action into the mapped manifest (or a kustomize patch) and commits it on a new branch."""

    def __init__(self, config: GitOpsConfig) -> None:
        self.config = config
        self.repo = GitRepo(config.repo)

    def branch_for(self, action: Action) -> str:
        return f"{self.config.branch_prefix}{action.id}"

    def target_for(self, action: Action) -> GitTarget | None:
        if isinstance(action.params, GpuNodeRequest):
            return self.config.target_for_node_pool(action.params.node_pool)
        return self.config.target_for_pool(action.target) if action.target is not None else None

    @staticmethod
    def _values(action: Action) -> dict[str, str]:
        if isinstance(action.params, GpuNodeRequest):
            return {"node_pool": action.params.node_pool}
        assert action.target is not None
        return {"namespace": action.target.namespace, "deployment": action.target.name}

    def _find(self, base: str, files: list[str], plan: ObjectPlan) -> tuple[str, str] | None:
        """(path, text) of the first mapped file holding the object."""
        for path in files:
            text = self.repo.read(base, path)
            if (
                text is not None
                and find_document(text, plan.kind, plan.name, plan.namespace, path) is not None
            ):
                return path, text
        return None

    def _edits(
        self, action: Action, plan: ObjectPlan, node_pool: NodePoolState | None, declared: str | None
    ) -> list[FieldEdit]:
        if not isinstance(action.params, GpuNodeRequest):
            return plan.edits
        doc = load_object(declared, plan.kind, plan.name, None, "NodePool") if declared else None
        raw = read_field(doc, ("spec", "limits", GPU)) if doc is not None else None
        git_limit = int(str(raw)) if raw is not None and str(raw).isdigit() else None
        return [FieldEdit(("spec", "limits", GPU), _nodepool_limit(action.params, node_pool, git_limit))]

    def execute(
        self,
        action: Action,
        verdict: Verdict,
        pool: PoolState | None,
        node_pool: NodePoolState | None,
        *,
        audit_id: str,
        dry_run: bool,
    ) -> GitOpsOutcome:
        """Compute the edit from ``base``; commit it on a new branch unless ``dry_run`` (then: the diff)."""
        target = self.target_for(action)
        if target is None:
            raise InvalidInput(f"no gitops.targets entry maps {action.target or action.params} to a file")
        plan = plan_for(action, pool, node_pool)
        base = self.repo.resolve(self.config.base)
        label = target_label(action)
        waiting = self.repo.open_proposals(self.config.branch_prefix, base).get(label)
        if waiting is not None:
            raise Conflict(
                f"an earlier proposal for {label} is still open on branch {waiting[0]} (commit {waiting[1][:12]}, "
                f"not merged into {self.config.base}): merge or close its pull request and delete the local "
                f"branch (git branch -D {waiting[0]}) before proposing another change to {label}"
            )
        values = self._values(action)
        manifests = target.files(values)
        found = self._find(base, manifests, plan)
        kust = target.kustomization_file(values)
        new_texts: dict[str, str] = {}
        old_texts: dict[str, str | None] = {}
        located: list[tuple[str, FieldChange]] = []
        if kust is None:
            if found is None:
                raise NotFound(
                    f"{plan.label} is not in {', '.join(manifests)} at {self.config.base} "
                    f"({base[:12]}) of {self.config.repo}: fix gitops.targets"
                )
            path, text = found
            edits = self._edits(action, plan, node_pool, text)
            new, changes = edit_object(text, plan.kind, plan.name, plan.namespace, edits, path)
            self._check_bounds(new, plan, path)
            new_texts[path], old_texts[path] = new, text
            located = [(path, c) for c in changes]
        else:
            kust_text = self.repo.require_file(base, kust)
            patch_path = posixpath.join(
                posixpath.dirname(kust), f"mcp-autoscale-{plan.kind.lower()}-{plan.name}.yaml"
            )
            existing = self.repo.read(base, patch_path)
            declared = found[1] if found else None
            edits = self._edits(action, plan, node_pool, declared or existing)
            if existing is not None:
                new_patch, changes = edit_object(
                    existing, plan.kind, plan.name, plan.namespace, edits, patch_path
                )
            else:
                new_patch = new_object(plan.api_version, plan.kind, plan.name, plan.namespace, edits)
                doc = load_object(declared, plan.kind, plan.name, plan.namespace, kust) if declared else None
                changes = [
                    FieldChange(e.label, read_field(doc, e.path) if doc is not None else None, e.value)
                    for e in edits
                ]
                changes = [c for c in changes if str(c.before) != str(c.after)]
            rel = posixpath.relpath(patch_path, posixpath.dirname(kust) or ".")
            new_kust = add_kustomize_patch(kust_text, rel, kust)
            if changes:
                new_texts[patch_path], old_texts[patch_path] = new_patch, existing
                if new_kust != kust_text:
                    new_texts[kust], old_texts[kust] = new_kust, kust_text
            located = [(patch_path, c) for c in changes]
        if not located:
            declared = ", ".join(f"{e.label}={e.value}" for e in plan.edits) or "the requested value"
            raise InvalidInput(
                f"Git already declares {plan.label} {declared} at {base[:12]}; nothing to commit "
                "(if the cluster differs, that is drift: see gitops_drift)"
            )
        branch = self.branch_for(action)
        message = commit_message(action, verdict, plan, located, audit_id)
        changes_out = [
            Change(field=f"{plan.label} {c.label} (git {path})", before=c.before, after=c.after)
            for path, c in located
        ]
        files = sorted(new_texts)
        if dry_run:
            diff = "".join(_git_diff(p, old_texts[p], new_texts[p]) for p in files)
            sha = None
        else:
            commit = self.repo.commit(base, branch, new_texts, message, self.config.author_parts())
            diff, sha = commit.diff, commit.sha
        changes_out.append(
            Change(
                field="git",
                before={"base": base},
                after={
                    "repo": str(self.repo.path),
                    "branch": branch if sha else None,
                    "commit": sha,
                    "files": files,
                },
            )
        )
        return GitOpsOutcome(changes=changes_out, diff=diff, branch=branch, sha=sha, base=base, files=files)

    @staticmethod
    def _check_bounds(text: str, plan: ObjectPlan, path: str) -> None:
        keys = {
            "ScaledObject": ("minReplicaCount", "maxReplicaCount"),
            "HorizontalPodAutoscaler": ("minReplicas", "maxReplicas"),
        }
        if plan.kind not in keys:
            return
        doc = load_object(text, plan.kind, plan.name, plan.namespace, path)
        lo, hi = (read_field(doc, ("spec", k)) for k in keys[plan.kind])
        if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
            raise InvalidInput(f"{path}: {plan.label} would get min {lo} > max {hi}")
