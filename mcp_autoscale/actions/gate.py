"""The one action gate: propose -> check (ownership, policy) -> approve -> execute (or dry run) -> audit.

``Gate.submit`` is the only code path that calls a ``ClusterBackend`` write method. Every submit, whatever
its outcome, appends one audit record carrying the agent's rationale, the caller, the verdict, the
changes, the evidence the decision used and, for applied changes, the inverse tool call. A cluster write is
written ahead: an intent record is made durable first (no intent record, no write), the outcome record
closes it after the write, and an intent left open by a crash is reconciled from the live object at
start-up (``actions/reconcile.py``). Cooldowns and budgets count an open intent as applied.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta
from typing import Any

from mcp_autoscale import metrics
from mcp_autoscale.actions.build import (
    action_arguments,
    action_digest,
    action_from_call,
    compact_evidence,
    describe_changes,
    inverse_of,
    utcnow,
)
from mcp_autoscale.actions.checks import live_pool, ownership_verdict
from mcp_autoscale.approvals import (
    DELEGATED,
    Proposal,
    ProposalStatus,
    ProposalStore,
    approver_name,
    channel_of,
    new_proposal_id,
    post_webhook,
    principal,
    principals,
)
from mcp_autoscale.cluster.base import ClusterBackend
from mcp_autoscale.config import Settings
from mcp_autoscale.cost import node_pool_free_gpus
from mcp_autoscale.errors import (
    AuditUnavailable,
    AutoscaleError,
    BackendUnavailable,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
)
from mcp_autoscale.gitops.router import GitOpsRouter
from mcp_autoscale.locks import FilePoolLock, PoolLock
from mcp_autoscale.logs import get_logger
from mcp_autoscale.models import (
    Action,
    ActionKind,
    ActionResult,
    ActionStatus,
    AuditRecord,
    AutoscalerPatch,
    Change,
    Decision,
    GpuNodeRequest,
    NodePoolState,
    PoolRef,
    PoolSnapshot,
    PoolState,
    ScaleDeploymentParams,
    Verdict,
)
from mcp_autoscale.policy import Policy, PolicyContext, Rule, evaluate, target_label
from mcp_autoscale.ratelimit import TokenBucket
from mcp_autoscale.state.base import AuditStore, Proposals
from mcp_autoscale.untrusted import quoted

log = get_logger(__name__)

CONFLICT_ATTEMPTS = 3
HISTORY = timedelta(days=1)


def spans_pools(rule: Rule) -> bool:
    """Rules whose limits add up over every target they match: a daily budget, a scale-in allowance."""
    daily = rule.budget is not None and rule.budget.max_added_usd_per_day is not None
    return daily or rule.max_scale_in is not None


def lock_keys(policy: Policy, action: Action) -> list[str]:
    """What to lock for one decision: the target, and the scope of every cross-pool limit that may apply.

    A budget spans pools, so two calls on different pools must not both read "budget left" and both
    spend it. Labels and time windows are not known before the pool is read, so a rule counts as soon as
    its tools, namespaces, pools and node pools could match (a superset: more locking, never less).
    Sorted, so every process takes them in the same order and two decisions cannot deadlock. An
    idempotency key is locked too: its check must see the other calls with that key, whatever their pool.
    """
    node_pool = action.params.node_pool if isinstance(action.params, GpuNodeRequest) else None
    keys = {target_label(action)}
    if action.idempotency_key:
        keys.add(f"idempotency/{action.caller}/{action.idempotency_key}")
    for rule in policy.rules:
        if spans_pools(rule) and rule.match.matches(
            tool=action.kind, ref=action.target, labels=dict(rule.match.labels), node_pool=node_pool
        ):
            keys.add(f"scope/{rule.name}")
    return sorted(keys)


# --------------------------------------------------------------------------------------------------
# The gate
# --------------------------------------------------------------------------------------------------


class Gate:
    """The only path from a proposal to a cluster write."""

    def __init__(
        self,
        *,
        backend: ClusterBackend,
        policy: Policy,
        audit: AuditStore,
        settings: Settings,
        evidence: Callable[[PoolRef], PoolSnapshot | None] = lambda ref: None,
        cost_delta: Callable[[Action, PoolState | None, NodePoolState | None], float | None] = (
            lambda a, p, n: None
        ),
        clock: Callable[[], datetime] = utcnow,
        lock: PoolLock | None = None,
        lock_timeout_s: float = 30.0,
        proposals: Proposals | None = None,
        webhook_url: str | None = None,
        rate_limit: TokenBucket | None = None,
    ) -> None:
        self.backend = backend
        self.policy = policy
        self.audit = audit
        self.settings = settings
        self.evidence = evidence
        self.cost_delta = cost_delta
        self.clock = clock
        self.lock: PoolLock = lock or FilePoolLock(settings.state_dir / "locks")
        self.lock_timeout_s = lock_timeout_s
        self.proposals: Proposals = proposals or ProposalStore(settings.state_dir / "proposals")
        self.webhook_url = webhook_url
        self.rate_limit = rate_limit
        self.gitops = GitOpsRouter(policy)  # execution: direct | gitops | refuse (docs/gitops.md)

    # ----------------------------------------------------------------------------------- context

    def _resolve(self, action: Action) -> tuple[PoolState | None, NodePoolState | None]:
        if isinstance(action.params, GpuNodeRequest):
            name = action.params.node_pool
            for np_ in self.backend.list_node_pools():
                if np_.name == name and np_.cluster == action.params.cluster:
                    return None, np_
            known = ", ".join(n.name for n in self.backend.list_node_pools()) or "none"
            raise NotFound(f"node pool {name!r} not found (known: {known})")
        assert action.target is not None
        return self.backend.get_pool(action.target), None

    def _safe_evidence(self, ref: PoolRef | None) -> PoolSnapshot | None:
        if ref is None:
            return None
        try:
            return self.evidence(ref)
        except Exception as err:  # evidence is best effort; a missing snapshot fails the guards instead
            log.warning("gate.evidence_failed", pool=ref.key, error=str(err))
            return None

    def _safe_cost(
        self, action: Action, pool: PoolState | None, node_pool: NodePoolState | None
    ) -> float | None:
        try:
            return self.cost_delta(action, pool, node_pool)
        except Exception as err:  # an unknown cost fails budget rules rather than the call
            log.warning("gate.cost_failed", action=action.id, error=str(err))
            return None

    def _context(
        self,
        action: Action,
        pool: PoolState | None,
        node_pool: NodePoolState | None,
        snapshot: PoolSnapshot | None,
        cost: float | None,
        now: datetime,
    ) -> PolicyContext:
        return PolicyContext(
            pool=pool,
            node_pool=node_pool,
            snapshot=snapshot,
            now=now,
            recent=self.audit.recent_applied(now - HISTORY),
            cost_delta_per_hour=cost,
        )

    def _decide(
        self, action: Action, now: datetime
    ) -> tuple[Verdict, PoolState | None, NodePoolState | None, PoolSnapshot | None, float | None]:
        pool, node_pool = self._resolve(action)
        snapshot = self._safe_evidence(action.target)
        cost = self._safe_cost(action, pool, node_pool)
        verdict = ownership_verdict(action, pool) or evaluate(
            self.policy, action, self._context(action, pool, node_pool, snapshot, cost, now)
        )
        verdict = self.gitops.check(action, pool, node_pool, verdict, now)
        return verdict, pool, node_pool, snapshot, cost

    # ------------------------------------------------------------------------------------ public

    def check(self, action: Action) -> Verdict:
        """What submit would decide now. No side effects, no audit record."""
        try:
            return self._decide(action, self.clock())[0]
        except (NotFound, BackendUnavailable) as err:
            return Verdict(decision=Decision.DENY, rules=["target"], reasons=[f"rule 'target': {err}"])

    @metrics.gate_timed
    def submit(self, action: Action) -> ActionResult:
        """Decide, then act or refuse; one audit record per decision (idempotent retries add none)."""
        self._take_token(action.caller)
        if action.idempotency_key:
            prior = self._idempotent(action)
            if prior is not None:
                return prior
        try:
            with self._hold(action):
                if action.idempotency_key:
                    prior = self._idempotent(action)
                    if prior is not None:
                        return prior
                return self._submit_locked(action)
        except Conflict as err:
            verdict = Verdict(decision=Decision.DENY, rules=["lock"], reasons=[f"rule 'lock': {err}"])
            return self._record(action, verdict, ActionStatus.FAILED, f"Not done: {err}", now=self.clock())

    def _take_token(self, caller: str) -> None:
        """Refuse a caller that writes audit records faster than the configured rate (nothing recorded)."""
        if self.rate_limit is None:
            return
        wait = self.rate_limit.take(caller)
        if wait > 0:
            raise RateLimited(
                f"rate limited: caller {caller} may cause {self.rate_limit.rate:g} audit records per second "
                f"(burst {self.rate_limit.burst:g}); nothing was done or recorded. Retry in {wait:.1f} s, "
                "and do not loop on dry runs"
            )

    def reconcile(self) -> list[AuditRecord]:
        """Close intents left open by a crash, from what the live objects show (run at start-up)."""
        from mcp_autoscale.actions.reconcile import reconcile_intents

        return reconcile_intents(self)

    # ---------------------------------------------------------------------------------- internals

    @contextmanager
    def _hold(self, action: Action) -> Iterator[None]:
        """Hold every lock of ``lock_keys`` (one deadline for all); ``Conflict`` when one is not free."""
        deadline = time.monotonic() + self.lock_timeout_s
        with ExitStack() as stack:
            for key in lock_keys(self.policy, action):
                stack.enter_context(self.lock.acquire(key, max(0.0, deadline - time.monotonic())))
            yield

    def idempotency_conflict(self, action: Action) -> str | None:
        """Why ``action``'s idempotency key cannot be used for it (None: new key, or the same call).

        A key stands for one exact call. Reusing it with other arguments must not return (and so let
        someone approve) the earlier call's proposal in place of the one now asked for.
        """
        if not action.idempotency_key:
            return None
        latest = self.audit.find_idempotent(action.idempotency_key, caller=action.caller)
        if latest is None:
            return None
        dry = action.dry_run or self.settings.dry_run
        args = action_arguments(action)
        if latest.tool == action.kind.value and latest.arguments == args and latest.dry_run == dry:
            return None
        before = ", ".join(f"{k}={v}" for k, v in latest.arguments.items())
        now = ", ".join(f"{k}={v}" for k, v in args.items())
        was = " as a dry run" if latest.dry_run else ""
        is_ = " as a dry run" if dry else ""
        return (
            f"idempotency_key {action.idempotency_key!r} was already used for {latest.tool}({before})"
            f"{was} (status {latest.status.value}, audit {latest.id}); this call is "
            f"{action.kind.value}({now}){is_}. A key stands for one exact call: use a new "
            "idempotency_key for different arguments, or repeat the exact same call to get its outcome"
        )

    def _idempotent(self, action: Action) -> ActionResult | None:
        assert action.idempotency_key is not None
        conflict = self.idempotency_conflict(action)
        if conflict is not None:
            raise InvalidInput(conflict)
        latest = self.audit.find_idempotent(action.idempotency_key, caller=action.caller)
        if latest is None:
            return None
        result = self.result_from_record(latest)
        result.notes.append(
            f"idempotent retry: key {action.idempotency_key!r} was already handled as {latest.action_id} "
            f"(latest audit record {latest.id}); nothing was done again"
        )
        return result

    @staticmethod
    def result_from_record(record: AuditRecord) -> ActionResult:
        return ActionResult(
            action_id=record.action_id,
            tool=ActionKind(record.tool),
            target=record.target,
            status=record.status,
            verdict=record.verdict,
            changes=record.changes,
            message=record.message,
            audit_id=record.id,
            proposal_id=record.proposal_id if record.status == ActionStatus.PENDING_APPROVAL else None,
        )

    def _submit_locked(self, action: Action) -> ActionResult:
        now = self.clock()
        try:
            verdict, pool, _, snapshot, cost = self._decide(action, now)
        except (NotFound, BackendUnavailable) as err:
            verdict = Verdict(
                decision=Decision.DENY,
                rules=["target"],
                reasons=[f"rule 'target': {err}"],
                hint="list pools and node pools with get_slo_snapshot, then retry with a name it reports",
            )
            return self._record(action, verdict, ActionStatus.FAILED, f"Not done: {err}", now=now)
        evidence = compact_evidence(snapshot)
        dry = action.dry_run or self.settings.dry_run
        if verdict.decision == Decision.DENY:
            msg = f"Denied, nothing changed: {'; '.join(verdict.reasons)}."
            if verdict.hint:
                msg += f" What would be allowed: {verdict.hint}."
            return self._record(
                action, verdict, ActionStatus.DENIED, msg, now=now, evidence=evidence, cost=cost
            )
        if verdict.decision == Decision.NEEDS_APPROVAL and not dry:
            return self._pend(action, verdict, pool, now=now, evidence=evidence, cost=cost)
        return self._execute(action, verdict, pool, dry=dry, now=now, evidence=evidence, cost=cost)

    def approval_channels(self, verdict: Verdict) -> list[str]:
        """Channels every deciding rule accepts; a human at the CLI when the rules disagree. Never the chat
        under four eyes: a chat confirmation is the proposer's own, so asking there could only be refused."""
        specs = [r.approval for n in verdict.rules if (r := self.policy.rule(n)) is not None and r.approval]
        if not specs:
            return ["cli"]
        four_eyes = any(s.four_eyes for s in specs)
        common = [
            c
            for c in ("elicitation", "cli")
            if all(c in s.via for s in specs) and not (four_eyes and c == "elicitation")
        ]
        return common or ["cli"]

    def elicitation_allowed(self, verdict: Verdict) -> bool:
        """True when the policy lets the MCP client's user approve this verdict in the chat (elicitation)."""
        return verdict.decision == Decision.NEEDS_APPROVAL and "elicitation" in self.approval_channels(
            verdict
        )

    def _approval_terms(self, verdict: Verdict) -> tuple[list[str], bool]:
        """(approver groups, four eyes) over the deciding rules: the groups of any, four eyes if any asks."""
        specs = [r.approval for n in verdict.rules if (r := self.policy.rule(n)) is not None and r.approval]
        groups = sorted({g for s in specs for g in s.approver_groups})
        return groups, any(s.four_eyes for s in specs)

    def _ttl(self, verdict: Verdict) -> timedelta:
        ttls = [
            r.approval.ttl_s
            for n in verdict.rules
            if (r := self.policy.rule(n)) is not None and r.approval is not None and r.approval.ttl_s
        ]
        return timedelta(seconds=min(ttls) if ttls else self.policy.approval_ttl_s)

    def _pend(
        self,
        action: Action,
        verdict: Verdict,
        pool: PoolState | None,
        *,
        now: datetime,
        evidence: dict[str, Any] | None,
        cost: float | None,
    ) -> ActionResult:
        via = self.approval_channels(verdict)
        proposal = Proposal(
            id=new_proposal_id(),
            action=action,
            verdict=verdict,
            created_at=now,
            expires_at=now + self._ttl(verdict),
            via=via,
            approvers=verdict.approvers,
            approver_groups=self._approval_terms(verdict)[0],
            four_eyes=self._approval_terms(verdict)[1],
            pool_replicas=pool.desired_replicas if pool is not None else None,
            digest=action_digest(action),
        )
        how = f"`mcp-autoscale approve {proposal.id}`"
        if "elicitation" in via:
            how += " or by confirming in the MCP client"
        elif "cli" in via:
            how += " (policy says chat confirmation is not enough)"
        msg = (
            f"Needs human approval, nothing changed yet: {'; '.join(verdict.reasons)}. "
            f"Proposal {proposal.id} waits until {proposal.expires_at.isoformat(timespec='seconds')}; "
            f"a human approves it with {how}. Do not retry the call: tell the user."
        )
        result = self._record(
            action,
            verdict,
            ActionStatus.PENDING_APPROVAL,
            msg,
            now=now,
            evidence=evidence,
            cost=cost,
            proposal_id=proposal.id,
        )
        proposal.audit_id = result.audit_id
        self.proposals.save(proposal)
        if self.webhook_url:
            post_webhook(self.webhook_url, proposal)
        return result

    # ---------------------------------------------------------------------------------- approvals

    def pending(self) -> list[Proposal]:
        """Open proposals (pending, or approved and waiting to run); expired ones are closed and audited."""
        now = self.clock()
        out = []
        for p in self.proposals.all():
            if p.status not in (ProposalStatus.PENDING, ProposalStatus.APPROVED):
                continue
            if now >= p.expires_at:
                self._expire(p, now)
                continue
            out.append(p)
        return out

    def _expire(self, p: Proposal, now: datetime) -> ActionResult:
        msg = (
            f"Expired, nothing changed: proposal {p.id} ({p.summary()}) was not approved before "
            f"{p.expires_at.isoformat(timespec='seconds')}. Propose it again if it is still needed."
        )
        result = self._record(p.action, p.verdict, ActionStatus.EXPIRED, msg, now=now, proposal_id=p.id)
        p.status, p.decided_at, p.result_audit_id = ProposalStatus.EXPIRED, now, result.audit_id
        self.proposals.save(p)
        return result

    def _check_approver(self, p: Proposal, approver: str, groups: Sequence[str] = ()) -> None:
        if not approver.strip():
            raise InvalidInput("approver is required (who approves this action?)")
        if p.four_eyes and principal(p.action.caller) in principals(approver):
            raise Forbidden(
                f"four eyes: {p.action.caller} proposed {p.id} and may not approve it; another person must"
            )
        channel = channel_of(approver)
        if channel not in p.via:
            raise Forbidden(
                f"proposal {p.id} needs approval via {' or '.join(p.via)}; the policy says {channel} "
                "is not enough for it (ask a human to run `mcp-autoscale approve` in a terminal)"
            )
        name = approver_name(approver)
        if not (p.approvers or p.approver_groups):
            return
        if name in p.approvers or approver in p.approvers or set(groups) & set(p.approver_groups):
            return
        allowed = [*p.approvers, *(f"group {g}" for g in p.approver_groups)]
        raise Forbidden(f"{name} may not approve proposal {p.id}; approvers: {', '.join(allowed)}")

    def _open(self, proposal_id: str, digest: str | None = None) -> Proposal:
        """An open proposal whose action is the one that was proposed (and, given ``digest``, shown)."""
        p = self.proposals.get(proposal_id)
        if p.status not in (ProposalStatus.PENDING, ProposalStatus.APPROVED):
            who = f" by {p.decided_by}" if p.decided_by else ""
            raise InvalidInput(f"proposal {p.id} is already {p.status.value}{who}; nothing to do")
        actual = action_digest(p.action)
        if p.digest is not None and p.digest != actual:
            raise Forbidden(
                f"proposal {p.id} no longer holds the action that was proposed (digest mismatch); "
                "nothing was approved: propose the action again"
            )
        if digest is not None and (len(digest) < 12 or not actual.startswith(digest.lower())):
            raise Forbidden(
                f"proposal {p.id} is {p.summary()}, not the action that was shown for approval; "
                "nothing was approved or rejected"
            )
        return p

    def _open_pending(self, proposal_id: str, digest: str | None = None) -> Proposal:
        """A proposal nobody decided yet: a second approval is refused, not silently repeated."""
        p = self._open(proposal_id, digest)
        if p.status == ProposalStatus.APPROVED:
            when = f" at {p.decided_at.isoformat(timespec='seconds')}" if p.decided_at else ""
            raise InvalidInput(
                f"proposal {p.id} is already approved by {p.decided_by or 'someone'}{when} and waits for the "
                "process that owns the fleet to run it; nothing to do (`mcp-autoscale pending` shows it)"
            )
        return p

    def approve(
        self, proposal_id: str, approver: str, *, digest: str | None = None, groups: Sequence[str] = ()
    ) -> ActionResult:
        """Approve a pending proposal and run it now; policy and data are re-checked at execution time.

        ``approver`` is 'cli:<user>' for a terminal/CI, 'mcp-elicitation:<caller>' for a user who confirmed
        in the MCP client. ``digest`` (``action_digest`` of the action the approver was shown, or its first
        12+ hex digits as `pending` and the webhook show it) binds the approval to that exact action: a
        proposal for anything else is refused. Expired proposals cannot run (status EXPIRED). ``groups``
        are the approver's groups (from their token), checked against ``approver_groups``.
        """
        p = self._open_pending(proposal_id, digest)
        self._check_approver(p, approver, groups)
        with self._hold(p.action):
            p = self._open_pending(proposal_id, digest)
            now = self.clock()
            if now >= p.expires_at:
                return self._expire(p, now)
            p.decided_by, p.decided_at = approver, now
            return self._run_proposal(p, approver, now)

    def approve_later(self, proposal_id: str, approver: str, *, digest: str | None = None) -> Proposal:
        """Record an approval without running it (status APPROVED); the process that owns the backend (the
        server, whose simulated fleet lives in memory) runs it with ``execute_approved()``."""
        p = self._open_pending(proposal_id, digest)
        self._check_approver(p, approver)
        with self._hold(p.action):
            p = self._open_pending(proposal_id, digest)
            now = self.clock()
            if now >= p.expires_at:
                self._expire(p, now)
                return self.proposals.get(p.id)
            p.status, p.decided_by, p.decided_at = ProposalStatus.APPROVED, approver, now
            self.proposals.save(p)
            return p

    def execute_approved(self) -> list[ActionResult]:
        """Run every proposal approved with ``approve_later`` (``approve --defer``) that has not run yet."""
        results = []
        for p in self.proposals.all():
            if p.status != ProposalStatus.APPROVED:
                continue
            with self._hold(p.action):
                p = self.proposals.get(p.id)
                if p.status != ProposalStatus.APPROVED:
                    continue
                now = self.clock()
                try:
                    if p.digest is None:  # a digest removed from the file would skip the check below
                        raise Forbidden(
                            f"proposal {p.id} holds no digest of the action that was approved; "
                            "nothing was run: propose the action again"
                        )
                    self._open(p.id)  # the stored action is still the one that was approved
                except Forbidden as err:
                    results.append(self._refuse_tampered(p, err, now))
                    continue
                if now >= p.expires_at:
                    results.append(self._expire(p, now))
                else:
                    results.append(self._run_proposal(p, p.decided_by or "unknown", now))
        return results

    def _refuse_tampered(self, p: Proposal, err: Forbidden, now: datetime) -> ActionResult:
        """An approved proposal whose stored action no longer matches its digest: audited, never run."""
        verdict = Verdict(decision=Decision.DENY, rules=["approval"], reasons=[f"rule 'approval': {err}"])
        result = self._record(
            p.action,
            verdict,
            ActionStatus.DENIED,
            f"Approved but refused at execution, nothing changed: {err}",
            now=now,
            approver=p.decided_by,
            proposal_id=p.id,
        )
        return self._close(p, ProposalStatus.FAILED, result)

    def _run_proposal(self, p: Proposal, approver: str, now: datetime) -> ActionResult:
        action = p.action
        notes: list[str] = []
        try:
            verdict, pool, _, snapshot, cost = self._decide(action, now)
        except (NotFound, BackendUnavailable) as err:
            verdict = Verdict(decision=Decision.DENY, rules=["target"], reasons=[f"rule 'target': {err}"])
            result = self._record(
                action,
                verdict,
                ActionStatus.FAILED,
                f"Approved but not done: {err}",
                now=now,
                approver=approver,
                proposal_id=p.id,
            )
            return self._close(p, ProposalStatus.FAILED, result)
        if snapshot is not None and snapshot.signals.stale:
            verdict = Verdict(
                decision=Decision.DENY,
                rules=["freshness"],
                reasons=[
                    f"rule 'freshness': signals {', '.join(snapshot.signals.stale)} of {p.target} are stale "
                    "at execution time"
                ],
                hint="wait for fresh metrics, then propose again",
            )
        uncovered = [r for r in verdict.rules if r not in p.verdict.rules]
        if verdict.decision == Decision.NEEDS_APPROVAL and uncovered:
            verdict = Verdict(
                decision=Decision.DENY,
                rules=uncovered,
                reasons=[
                    f"rule '{r}': now also needs approval, which this approval did not cover"
                    for r in uncovered
                ],
                hint="propose the action again",
            )
        if verdict.decision == Decision.DENY:
            why = "; ".join(verdict.reasons)
            msg = f"Approved by {approver} but refused at execution, nothing changed: {why}."
            result = self._record(
                action,
                verdict,
                ActionStatus.DENIED,
                msg,
                now=now,
                cost=cost,
                approver=approver,
                proposal_id=p.id,
                evidence=compact_evidence(snapshot),
            )
            return self._close(p, ProposalStatus.FAILED, result)
        if pool is not None and p.pool_replicas is not None and pool.desired_replicas != p.pool_replicas:
            notes.append(
                f"{p.target} changed since the proposal "
                f"({p.pool_replicas} -> {pool.desired_replicas} replicas); "
                "policy was re-checked against the current state"
            )
        approved = verdict.model_copy(update={"reasons": [*verdict.reasons, f"approved by {approver}"]})
        result = self._execute(
            action,
            approved,
            pool,
            dry=self.settings.dry_run,
            now=now,
            evidence=compact_evidence(snapshot),
            cost=cost,
            approver=approver,
            proposal_id=p.id,
        )
        result.notes.extend(notes)
        ok = result.status in (
            ActionStatus.APPLIED,
            ActionStatus.DRY_RUN,
            ActionStatus.PROPOSED_COMMIT,
            ActionStatus.NO_CHANGE,
        )
        return self._close(p, ProposalStatus.EXECUTED if ok else ProposalStatus.FAILED, result)

    def _close(self, p: Proposal, status: ProposalStatus, result: ActionResult) -> ActionResult:
        p.status, p.result_audit_id = status, result.audit_id
        p.note = result.message
        self.proposals.save(p)
        result.proposal_id = p.id
        return result

    def reject(
        self,
        proposal_id: str,
        approver: str,
        reason: str,
        *,
        digest: str | None = None,
        groups: Sequence[str] = (),
    ) -> ActionResult:
        """Close a proposal without acting; the rejecting person and their reason are audited.

        The proposer may withdraw their own proposal; anyone else needs the right to approve it (the
        approver list, groups and channel): otherwise any caller could veto every pending change.
        """
        if not reason or not reason.strip():
            raise InvalidInput("a reason is required to reject a proposal")
        if not approver.strip():
            raise InvalidInput("approver is required (who rejects this action?)")
        p = self._open(proposal_id, digest)
        # Withdrawal is for the proposer in person: a delegation (or an identity that reads like one)
        # names people it cannot prove to be, so it needs the right to approve like anyone else.
        if DELEGATED in approver or principal(approver) != principal(p.action.caller):
            self._check_approver(p, approver, groups)
        with self._hold(p.action):
            p = self._open(proposal_id, digest)
            now = self.clock()
            msg = f"Rejected by {approver}, nothing changed: {reason.strip()}."
            result = self._record(
                p.action, p.verdict, ActionStatus.REJECTED, msg, now=now, approver=approver, proposal_id=p.id
            )
            p.decided_by, p.decided_at = approver, now
            return self._close(p, ProposalStatus.REJECTED, result)

    # ----------------------------------------------------------------------------------- rollback

    def rollback(
        self,
        audit_id: str,
        rationale: str,
        caller: str,
        dry_run: bool,
        *,
        caller_name: str | None = None,
        caller_groups: Sequence[str] = (),
    ) -> ActionResult:
        """Propose the stored inverse of an applied action through the same gate (policy, audit and all).
        The caller's groups go with it: rules that match by group judge a rollback like any call."""
        record = self.audit.get(audit_id)
        reconciled = record.status == ActionStatus.RECONCILED and bool(record.changes)  # applied, per live
        if record.status != ActionStatus.APPLIED and not reconciled:
            raise InvalidInput(
                f"audit record {audit_id} is {record.status.value}, not applied: "
                "there is nothing to roll back"
            )
        if not record.inverse:
            raise InvalidInput(
                f"audit record {audit_id} ({record.tool} on {record.target}) has no automatic inverse; "
                "propose the opposite change explicitly"
            )
        if not rationale or not rationale.strip():
            raise InvalidInput("rationale is required: say why the change should be undone")
        action = action_from_call(
            str(record.inverse["tool"]),
            dict(record.inverse["arguments"]),
            f"{rationale.strip()} (rollback of {audit_id})",
            dry_run=dry_run,
            caller=caller,
            now=self.clock(),
        ).model_copy(update={"caller_name": caller_name, "caller_groups": list(caller_groups)})
        return self.submit(action)

    def _write(
        self, action: Action, dry: bool, recheck: Callable[[dict[str, Any]], None] | None
    ) -> list[Change]:
        p = action.params
        extra: dict[str, Any] = {"recheck": recheck} if recheck is not None else {}
        if isinstance(p, ScaleDeploymentParams):
            assert action.target is not None
            return self.backend.scale_deployment(action.target, p.replicas, dry_run=dry, **extra)
        if isinstance(p, AutoscalerPatch):
            assert action.target is not None
            return self.backend.patch_autoscaler(action.target, p, dry_run=dry, **extra)
        return self.backend.request_gpu_nodes(p, dry_run=dry, **extra)

    def _write_with_retries(
        self, action: Action, verdict: Verdict, pool: PoolState | None, dry: bool, now: datetime
    ) -> tuple[list[Change], int]:
        """Write once, retrying a 409 Conflict a bounded number of times. Returns (changes, write attempts).

        A backend that handles conflicts itself (Kubernetes: re-read + retry) gets a ``recheck`` that
        re-runs the policy against every freshly read object, so a concurrent change that makes the action
        no longer allowed stops it instead of being overwritten.
        """
        if getattr(self.backend, "handles_conflicts", False):
            recheck = self._recheck(action, verdict, pool, now)
            try:
                return self._write(action, dry, recheck), int(getattr(self.backend, "last_write_attempts", 1))
            except AutoscaleError as err:
                err.attempts = int(getattr(self.backend, "last_write_attempts", 1))
                raise
        attempts = 0
        while True:
            attempts += 1
            try:
                return self._write(action, dry, None), attempts
            except Conflict as err:
                if attempts >= CONFLICT_ATTEMPTS:
                    err.attempts = attempts
                    raise

    def _recheck(
        self, action: Action, verdict: Verdict, pool: PoolState | None, now: datetime
    ) -> Callable[[dict[str, Any]], None] | None:
        if pool is None:
            return None

        def recheck(obj: dict[str, Any]) -> None:
            fresh = live_pool(pool, obj)
            if fresh == pool:
                return
            again = ownership_verdict(action, fresh) or evaluate(
                self.policy,
                action,
                self._context(
                    action,
                    fresh,
                    None,
                    self._safe_evidence(action.target),
                    self._safe_cost(action, fresh, None),
                    now,
                ),
            )
            weaker = again.decision == Decision.DENY or (
                again.decision == Decision.NEEDS_APPROVAL and verdict.decision == Decision.ALLOW
            )
            if weaker:
                raise Forbidden(
                    "policy re-check after a concurrent change to the live object no longer allows this: "
                    + "; ".join(again.reasons)
                )

        return recheck

    def _execute(
        self,
        action: Action,
        verdict: Verdict,
        pool: PoolState | None,
        *,
        dry: bool,
        now: datetime,
        evidence: dict[str, Any] | None,
        cost: float | None,
        approver: str | None = None,
        proposal_id: str | None = None,
    ) -> ActionResult:
        if self.gitops.route(action, pool, now).mode == "gitops":
            return self._execute_gitops(
                action, verdict, pool, dry=dry, now=now, evidence=evidence, cost=cost,
                approver=approver, proposal_id=proposal_id,
            )  # fmt: skip
        attempts = 1
        inverse = None if dry else inverse_of(action, pool)
        intent_id = None
        if not dry:  # write ahead: no durable intent record, no write (AuditUnavailable propagates)
            intent_id = self._record(
                action, verdict, ActionStatus.INTENT,
                f"Intent: about to apply to {target_label(action)}; the outcome record follows the write.",
                now=now, evidence=evidence, cost=cost, inverse=inverse, approver=approver,
                proposal_id=proposal_id,
            ).audit_id  # fmt: skip
        try:
            changes, attempts = self._write_with_retries(action, verdict, pool, dry, now)
        except AutoscaleError as err:
            attempts = err.attempts
            msg = f"Failed, the backend refused the change: {err}"
            return self._record(
                action,
                verdict,
                ActionStatus.FAILED,
                msg,
                now=now,
                evidence=evidence,
                cost=cost,
                attempts=attempts,
                approver=approver,
                proposal_id=proposal_id,
                intent_id=intent_id,
            )
        target = target_label(action)
        if dry:
            would = (
                "would need human approval" if verdict.decision == Decision.NEEDS_APPROVAL else "allows it"
            )
            msg = (
                f"Dry run ({self._dry_why(action)}), nothing changed: {target} would get "
                f"{describe_changes(changes)}; the policy {would}. {self._dry_next(action)}"
            )
            dry_result = self._record(
                action,
                verdict,
                ActionStatus.DRY_RUN,
                msg,
                now=now,
                evidence=evidence,
                cost=cost,
                changes=changes,
                attempts=attempts,
                approver=approver,
                proposal_id=proposal_id,
            )
            dry_result.notes.extend(self._backend_notes())
            return dry_result
        if not any(c.before != c.after for c in changes):
            # A no-op is not an action: no 'applied' record (cooldowns, budgets, rollbacks count those).
            msg = f"No change: {target} already has what was asked; the cluster is unchanged."
            return self._record(
                action,
                verdict,
                ActionStatus.NO_CHANGE,
                msg,
                now=now,
                evidence=evidence,
                cost=cost,
                changes=changes,
                attempts=attempts,
                approver=approver,
                proposal_id=proposal_id,
                intent_id=intent_id,
            )
        msg = f"Applied: {target} {describe_changes(changes)}."
        if isinstance(action.params, ScaleDeploymentParams) and pool is not None and pool.cold_start_s:
            msg += " " + self._readiness_hint(pool, action.params.replicas)
        try:
            result = self._record(
                action,
                verdict,
                ActionStatus.APPLIED,
                msg,
                now=now,
                evidence=evidence,
                cost=cost,
                changes=changes,
                inverse=inverse,
                attempts=attempts,
                approver=approver,
                proposal_id=proposal_id,
                intent_id=intent_id,
            )
        except AuditUnavailable as err:  # the change stands; its intent record counts it until reconciled
            log.error("gate.outcome_unrecorded", action=action.id, intent=intent_id, error=str(err))
            result = ActionResult(
                action_id=action.id, tool=action.kind, target=target, status=ActionStatus.APPLIED,
                verdict=verdict, changes=changes, audit_id=intent_id,
                message=f"{msg} Its outcome record could not be written ({err}); intent record {intent_id} "
                "stands for it, counts for cooldowns and budgets, and is reconciled at the next start-up.",
            )  # fmt: skip
        if inverse is not None:
            result.message += f" Undo with rollback_action(audit_id={result.audit_id!r})."
        result.notes.extend(self._backend_notes())
        self._post_event(action, f"{msg} Rationale {quoted(action.rationale)}")
        return result

    def _dry_why(self, action: Action) -> str:
        return "the server runs in dry-run mode" if self.settings.dry_run else "dry_run was requested"

    def _dry_next(self, action: Action) -> str:
        """What applying takes. A dry-run server never applies: a retry would only repeat the proposal."""
        if self.settings.dry_run:
            asked = " although dry_run=false was sent" if not action.dry_run else ""
            return (
                f"This server is in dry-run mode{asked}: it never applies, and retrying (with any dry_run) "
                "will not apply either. Do not retry: show the proposal to the user; a server started "
                "without --dry-run can apply it."
            )
        return "Call again with dry_run=false to apply."

    def _readiness_hint(self, pool: PoolState, replicas: int) -> str:
        """When new replicas will serve: cold start, plus node provisioning if the node pool has no room."""
        added = replicas - pool.desired_replicas
        hint = f"New replicas need about {pool.cold_start_s:.0f} s to start serving"
        if added > 0 and pool.node_pool:
            try:
                node_pool = next(
                    (n for n in self.backend.list_node_pools() if n.name == pool.node_pool), None
                )
            except AutoscaleError:
                node_pool = None
            if node_pool is not None:
                room = node_pool_free_gpus(node_pool) + node_pool.reserved_gpus  # balloons are pre-empted
                if room < added * pool.gpus_per_replica:
                    hint += (
                        f" once scheduled; node pool {node_pool.name} has room for {room} GPUs, so a new "
                        f"node comes first (typically {node_pool.typical_provision_s:.0f} s)"
                    )
        return hint + "; re-check then."

    def _backend_notes(self) -> list[str]:
        """What the backend learnt while writing (e.g. 'patched ScaledObject, not keda-hpa-*', provisioning time)."""
        notes = getattr(self.backend, "last_notes", None)
        return [str(n) for n in notes] if isinstance(notes, list) else []

    def _post_event(self, action: Action, message: str) -> None:
        """A Kubernetes Event on the target (pool or node pool); best effort, never fails the action."""
        try:
            if action.target is not None:
                self.backend.record_event(action.target, "MCPAutoscaleApplied", message)
            elif isinstance(action.params, GpuNodeRequest):
                post = getattr(self.backend, "record_node_pool_event", None)
                if callable(post):
                    post(action.params.node_pool, "MCPAutoscaleApplied", message)
        except Exception as err:  # events are best effort by contract
            log.warning("gate.event_failed", error=str(err))

    def _execute_gitops(
        self,
        action: Action,
        verdict: Verdict,
        pool: PoolState | None,
        *,
        dry: bool,
        now: datetime,
        evidence: dict[str, Any] | None,
        cost: float | None,
        approver: str | None = None,
        proposal_id: str | None = None,
    ) -> ActionResult:
        """execution: gitops: commit to the mapped manifest on a new branch (dry run: only the diff)."""
        audit_id = f"aud-git-{uuid.uuid4().hex[:12]}"  # known before the commit so its message can cite it
        extra: dict[str, Any] = {
            "now": now, "evidence": evidence, "cost": cost, "approver": approver, "proposal_id": proposal_id,
            "audit_id": audit_id,
        }  # fmt: skip
        if not dry:  # write ahead: a commit is a write the GitOps controller will apply
            extra["intent_id"] = self._record(
                action, verdict, ActionStatus.INTENT,
                f"Intent: about to commit a change to {target_label(action)} to Git; the outcome record follows.",
                now=now, evidence=evidence, cost=cost, approver=approver, proposal_id=proposal_id,
            ).audit_id  # fmt: skip
        try:
            node_pool = self._resolve(action)[1] if isinstance(action.params, GpuNodeRequest) else None
            out = self.gitops.execute(action, verdict, pool, node_pool, audit_id=audit_id, dry_run=dry)
        except AutoscaleError as err:
            msg = f"Failed, nothing was committed: {err}"
            return self._record(action, verdict, ActionStatus.FAILED, msg, **extra)
        target = target_label(action)
        what = describe_changes(out.changes[:-1])
        if dry:
            msg = (
                f"Dry run ({self._dry_why(action)}), nothing committed: {target} would get {what}; "
                f"a real call commits it on branch {out.branch}. The diff is in the notes. {self._dry_next(action)}"
            )
            status = ActionStatus.DRY_RUN
        else:
            msg = (
                f"Proposed as a Git commit, the cluster is unchanged: {what} on branch {out.branch} "
                f"(commit {out.sha}). Open a pull request from that branch; the change reaches the cluster "
                "when it merges and the GitOps controller syncs it."
            )
            status = ActionStatus.PROPOSED_COMMIT
        result = self._record(action, verdict, status, msg, changes=out.changes, **extra)
        result.notes.append(f"diff against {out.base[:12]}:\n{out.diff}")
        return result

    @metrics.audited
    def _record(
        self,
        action: Action,
        verdict: Verdict,
        status: ActionStatus,
        message: str,
        *,
        now: datetime,
        evidence: dict[str, Any] | None = None,
        cost: float | None = None,
        changes: list[Change] | None = None,
        inverse: dict[str, Any] | None = None,
        attempts: int = 1,
        approver: str | None = None,
        proposal_id: str | None = None,
        audit_id: str | None = None,
        intent_id: str | None = None,
    ) -> ActionResult:
        pinned = {"id": audit_id} if audit_id else {}  # gitops commits cite their audit id before it exists
        record = self.audit.append(
            **pinned,
            ts=now,
            action_id=action.id,
            tool=action.kind.value,
            target=target_label(action),
            arguments=action_arguments(action),
            rationale=action.rationale,
            caller=action.caller,
            caller_name=action.caller_name,
            caller_groups=action.caller_groups,
            dry_run=action.dry_run or self.settings.dry_run,
            verdict=verdict,
            status=status,
            changes=changes or [],
            message=message,
            evidence=evidence,
            inverse=inverse,
            attempts=max(1, attempts),
            cost_delta_per_hour=cost,
            idempotency_key=action.idempotency_key,
            approver=approver,
            proposal_id=proposal_id,
            intent_id=intent_id,
        )
        log.info("gate.decided", action=action.id, target=record.target, status=status.value, audit=record.id)
        return ActionResult(
            action_id=action.id,
            tool=action.kind,
            target=record.target,
            status=status,
            verdict=verdict,
            changes=changes or [],
            message=message,
            audit_id=record.id,
            proposal_id=proposal_id if status == ActionStatus.PENDING_APPROVAL else None,
        )
