"""Routing in the gate: which execution (direct, gitops, refuse) an allowed action gets, and what the verdict
says about the GitOps controller managing the target.

Pure except for ``GitOpsRouter.execute`` (which hands over to the Git executor). The execution mode comes from
the same rules the evaluator matched: among the active, non-deny rules matching the action, ``refuse`` beats
``gitops`` beats ``direct``; no rule saying anything means ``direct``. A stricter mode always wins, so adding
a rule can never make an action bypass Git.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mcp_autoscale.errors import AutoscaleError
from mcp_autoscale.gitops.config import Execution
from mcp_autoscale.gitops.detect import TOOL_NAMES, describe, manager_label
from mcp_autoscale.gitops.executor import GitOpsExecutor, GitOpsOutcome, plan_for
from mcp_autoscale.models import (
    Action,
    AutoscalerPatch,
    Decision,
    GitOpsManager,
    GpuNodeRequest,
    NodePoolState,
    PoolState,
    ScaleDeploymentParams,
    Verdict,
)
from mcp_autoscale.policy.evaluate import target_label
from mcp_autoscale.policy.schema import Policy

_RANK: dict[str, int] = {"direct": 0, "gitops": 1, "refuse": 2}


@dataclass(frozen=True)
class Route:
    mode: Execution
    rule: str | None = None  # the rule that chose the mode (None: the default, direct)


def execution_for(policy: Policy, action: Action, pool: PoolState | None, now: datetime) -> Route:
    """The strictest ``execution`` among the active, non-deny rules matching the action."""
    node_pool = action.params.node_pool if isinstance(action.params, GpuNodeRequest) else None
    labels = pool.labels if pool is not None else {}
    best = Route("direct")
    for r in policy.rules:
        if r.execution is None or r.effect == "deny":
            continue
        if not r.match.matches(tool=action.kind, ref=action.target, labels=labels, node_pool=node_pool):
            continue
        if r.active is not None and not r.active.contains(now, policy.timezone):
            continue
        if best.rule is None or _RANK[r.execution] > _RANK[best.mode]:
            best = Route(r.execution, r.name)
    return best


def managed_object(
    action: Action, pool: PoolState | None, node_pool: NodePoolState | None
) -> tuple[str, GitOpsManager] | None:
    """(object label, manager) of the object the action would write, when a GitOps controller manages it."""
    p = action.params
    if isinstance(p, ScaleDeploymentParams) and pool is not None and pool.gitops is not None:
        return f"{pool.ref.key} Deployment", pool.gitops
    if isinstance(p, AutoscalerPatch) and pool is not None and pool.autoscaler is not None:
        owner = pool.autoscaler
        if owner.gitops is not None:
            return f"{pool.ref.key} {owner.kind.value} {owner.name}", owner.gitops
    if isinstance(p, GpuNodeRequest) and node_pool is not None and node_pool.gitops is not None:
        return f"NodePool {node_pool.name}", node_pool.gitops
    return None


def _with(verdict: Verdict, *reasons: str) -> Verdict:
    return verdict.model_copy(update={"reasons": [*verdict.reasons, *reasons]})


class GitOpsRouter:
    """The gate's GitOps step: annotate or refuse in ``check``, commit instead of patching in ``execute``."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.executor = GitOpsExecutor(policy.gitops) if policy.gitops is not None else None

    def route(self, action: Action, pool: PoolState | None, now: datetime) -> Route:
        return execution_for(self.policy, action, pool, now)

    def check(
        self,
        action: Action,
        pool: PoolState | None,
        node_pool: NodePoolState | None,
        verdict: Verdict,
        now: datetime,
    ) -> Verdict:
        """The verdict with the GitOps facts added; DENY for ``refuse`` or an unmappable ``gitops`` target."""
        managed = managed_object(action, pool, node_pool)
        note = f"gitops: {describe(*managed)}" if managed else None
        if verdict.decision == Decision.DENY:
            return _with(verdict, note) if note else verdict
        route = self.route(action, pool, now)
        target = target_label(action)
        rule = route.rule or "gitops"
        if route.mode == "refuse":
            who = f"{manager_label(managed[1])} manages it" if managed else "it must change through Git"
            where = f"{TOOL_NAMES[managed[1].tool]} syncs from" if managed else "your GitOps tool syncs"
            return Verdict(
                decision=Decision.DENY,
                rules=[rule],
                reasons=[
                    f"rule '{rule}': execution refuse: mcp-autoscale does not change {target} because {who}",
                    *([note] if note else []),
                ],
                hint=f"change the manifest in the Git repository {where} and let it apply the change, "
                "or ask for a rule with execution: gitops so this server proposes the commit",
            )
        if route.mode == "gitops":
            problem = self._unroutable(action, pool, node_pool)
            if problem is not None:
                reason, hint = problem
                return Verdict(
                    decision=Decision.DENY,
                    rules=[rule],
                    reasons=[f"rule '{rule}': execution gitops, but {reason}", *([note] if note else [])],
                    hint=hint,
                )
            assert self.executor is not None
            syncer = manager_label(managed[1]) if managed else "your GitOps controller"
            return _with(
                verdict,
                *([note] if note else []),
                f"rule '{rule}': execution gitops: proposed as a commit on branch "
                f"{self.executor.branch_for(action)} in {self.executor.config.repo}; the cluster changes "
                f"only after the pull request merges and {syncer} syncs it",
            )
        if note:
            return _with(verdict, f"{note}; a direct change will not stick: use a rule with execution gitops")
        return verdict

    def _unroutable(
        self, action: Action, pool: PoolState | None, node_pool: NodePoolState | None
    ) -> tuple[str, str] | None:
        """(reason, hint) when a gitops action cannot be written to Git; None when it can."""
        target = target_label(action)
        if self.executor is None:
            return (
                f"policy '{self.policy.name}' has no gitops block (repo and targets)",
                "add gitops: {repo: /path/to/checkout, targets: [...]} to the policy (docs/gitops.md)",
            )
        if self.executor.target_for(action) is None:
            example = (
                f"{{node_pool: {action.params.node_pool}}}"
                if isinstance(action.params, GpuNodeRequest)
                else f"{{namespace: {action.target.namespace}, deployment: {action.target.name}}}"
                if action.target is not None
                else "{}"
            )
            return (
                f"{target} has no Git mapping in gitops.targets: refusing rather than patching the cluster",
                f"add a gitops.targets entry (match: {example}, path: <manifest file in "
                f"{self.executor.config.repo}>), or ask a human to change the manifest in Git",
            )
        try:
            plan_for(action, pool, node_pool)
        except AutoscaleError as err:  # a plan that cannot exist (balloon, HPA pause) is a refusal
            return str(err), "change the request so it maps to a field in Git (docs/gitops.md)"
        return None

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
        assert self.executor is not None  # check() denies gitops routes without a gitops block
        return self.executor.execute(action, verdict, pool, node_pool, audit_id=audit_id, dry_run=dry_run)
