"""The evaluator: a pure function from (policy, action, context) to a verdict with named reasons.

No I/O: the gate gathers the context (pool state, signals, recent audit records, cost estimate) and this
module only decides. Order of precedence: deny > needs approval > allow; nothing is allowed that no rule
allows (deny by default). Every reason names the rule that produced it, and the hint says what would pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mcp_autoscale.models import (
    Action,
    ActionKind,
    AuditRecord,
    AutoscalerPatch,
    Decision,
    GpuNodeRequest,
    NodePoolState,
    PoolSnapshot,
    PoolState,
    ScaleDeploymentParams,
    Verdict,
)
from mcp_autoscale.policy.effect import patch_effect
from mcp_autoscale.policy.schema import Policy, Rule

Direction = Literal["in", "out", "none", "other"]
DAY = timedelta(days=1)


class PolicyContext(BaseModel):
    """Everything the evaluator may look at besides the action itself."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    pool: PoolState | None = None
    node_pool: NodePoolState | None = None
    snapshot: PoolSnapshot | None = Field(default=None, description="Live signals of the target pool")
    now: datetime
    recent: list[AuditRecord] = Field(
        default_factory=list, description="Audit records of the last day(s) that count as changes made"
    )
    cost_delta_per_hour: float | None = Field(default=None, description="USD/h the action adds (< 0 saves)")


@dataclass
class _Facts:
    """What an action means, derived once: direction, sizes, GPUs, target label."""

    target: str
    current: int | None = None
    new: int | None = None
    direction: Direction = "other"
    scale_in: int = 0
    gpus_added: int = 0
    bounds_checks: list[tuple[str, int]] = field(default_factory=list)  # (field, value)
    step_checks: list[tuple[str, int, int]] = field(default_factory=list)  # (field, before, after)


def _finite(value: float | None) -> float | None:
    """NaN or infinity is not a measurement: treat it as missing (NaN would pass every '>' check)."""
    return value if value is not None and math.isfinite(value) else None


def _cluster(action: Action) -> str | None:
    """The cluster an action addresses (several-cluster servers; None otherwise)."""
    if isinstance(action.params, GpuNodeRequest):
        return action.params.cluster
    return action.target.cluster if action.target is not None else None


def target_label(action: Action) -> str:
    if isinstance(action.params, GpuNodeRequest):
        where = f"{action.params.cluster}:" if action.params.cluster else ""
        return f"{where}nodepool/{action.params.node_pool}"
    return action.target.key if action.target is not None else "(no target)"


def _facts(action: Action, ctx: PolicyContext) -> _Facts:
    f = _Facts(target=target_label(action))
    p = action.params
    gpr = ctx.pool.gpus_per_replica if ctx.pool is not None else 1
    if isinstance(p, ScaleDeploymentParams):
        f.new = p.replicas
        f.bounds_checks.append(("replicas", p.replicas))
        if ctx.pool is not None:
            f.current = ctx.pool.desired_replicas
            f.step_checks.append(("replicas", f.current, p.replicas))
            delta = p.replicas - f.current
            f.direction = "in" if delta < 0 else ("out" if delta > 0 else "none")
            f.scale_in = max(0, -delta)
            f.gpus_added = max(0, delta) * gpr
    elif isinstance(p, AutoscalerPatch):
        # Judged by its effect (policy/effect.py): the replicas it forces now and what it lets happen.
        owner = ctx.pool.autoscaler if ctx.pool is not None else None
        if p.min_replicas is not None:
            f.bounds_checks.append(("min_replicas", p.min_replicas))
        if p.max_replicas is not None:
            f.bounds_checks.append(("max_replicas", p.max_replicas))
        if ctx.pool is not None and owner is not None:
            e = patch_effect(ctx.pool, owner, p)
            f.current, f.new = e.current, e.forced
            if p.min_replicas is not None:
                f.step_checks.append(("min_replicas", owner.min_replicas, p.min_replicas))
            if p.max_replicas is not None:
                f.step_checks.append(("max_replicas", owner.max_replicas, p.max_replicas))
            if e.forced != e.current:
                f.step_checks.append(("replicas", e.current, e.forced))
            f.scale_in = e.scale_in
            f.gpus_added = e.forced_out * gpr
            f.direction = (
                "other" if e.lowers and e.raises else ("in" if e.lowers else ("out" if e.raises else "none"))
            )
    elif isinstance(p, GpuNodeRequest):
        f.direction = "out"
        f.gpus_added = p.gpus
    return f


def _applied(records: list[AuditRecord], rule: Rule, since: datetime) -> list[AuditRecord]:
    return [
        r
        for r in records
        if r.counts_as_applied and r.ts >= since and rule.match.matches_target(r.target, r.tool)
    ]


def _scale_in_of(record: AuditRecord) -> int:
    """Replicas (or floor) removed by an applied record, read from its arguments and stored inverse, and
    for a ceiling, from the desired count its evidence saw (a max below it removed the difference)."""
    inv = (record.inverse or {}).get("arguments", {})
    args = record.arguments
    removed = 0
    for key in ("replicas", "min_replicas"):
        if isinstance(args.get(key), int) and isinstance(inv.get(key), int):
            removed = max(removed, int(inv[key]) - int(args[key]))
    desired = ((record.evidence or {}).get("replicas") or {}).get("desired")
    if isinstance(args.get("max_replicas"), int) and isinstance(desired, int):
        removed = max(removed, desired - int(args["max_replicas"]))
    return removed


def _fmt_money(x: float) -> str:
    return f"${x:,.2f}/h"


class _RuleCheck:
    """Collects one rule's objections and hints."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.problems: list[str] = []
        self.hints: list[str] = []

    def fail(self, problem: str, hint: str | None = None) -> None:
        self.problems.append(problem)
        if hint:
            self.hints.append(hint)

    def reasons(self) -> list[str]:
        suffix = f" ({self.rule.reason})" if self.rule.reason else ""
        return [f"rule '{self.rule.name}': {p}{suffix}" for p in self.problems]


def _check_rule(rule: Rule, action: Action, ctx: PolicyContext, f: _Facts) -> _RuleCheck:
    chk = _RuleCheck(rule)
    if rule.effect == "deny":
        window = f" during {rule.active.describe()}" if rule.active else ""
        chk.fail(f"{action.kind.value} on {f.target} is denied{window}")
        return chk
    if rule.replicas is not None:
        b = rule.replicas
        for name, value in f.bounds_checks:
            if value < b.min:
                chk.fail(f"{name} {value} < min {b.min}")
            elif value > b.max:
                chk.fail(f"{name} {value} > max {b.max}")
    if rule.max_step is not None:
        if action.kind in (ActionKind.SCALE_DEPLOYMENT, ActionKind.PATCH_HPA) and ctx.pool is None:
            chk.fail("current replicas unknown, cannot check max_step")
        for name, before, after in f.step_checks:
            if abs(after - before) > rule.max_step:
                chk.fail(
                    f"{name} {before} -> {after} changes by {abs(after - before)} > max_step {rule.max_step}"
                )
    if rule.max_scale_in is not None and f.scale_in > 0:
        lim = rule.max_scale_in
        done = sum(
            _scale_in_of(r) for r in _applied(ctx.recent, rule, ctx.now - timedelta(seconds=lim.window_s))
        )
        if done + f.scale_in > lim.replicas:
            left = max(0, lim.replicas - done)
            chk.fail(
                f"scale-in of {f.scale_in} plus {done} already removed exceeds max_scale_in "
                f"{lim.replicas} per {lim.window_s} s",
                f"at most {left} more replica(s) may be removed within {lim.window_s} s",
            )
    if rule.cooldown_s and f.direction != "none":
        mine = [r for r in ctx.recent if r.counts_as_applied and r.target == f.target]
        recent = [r for r in mine if r.ts > ctx.now - timedelta(seconds=rule.cooldown_s)]
        if recent:
            last = max(recent, key=lambda r: r.ts)
            age = (ctx.now - last.ts).total_seconds()
            ready = last.ts + timedelta(seconds=rule.cooldown_s)
            chk.fail(
                f"cooldown: {f.target} was changed {age:.0f} s ago (audit {last.id}), "
                f"cooldown {rule.cooldown_s} s",
                f"retry after {ready.isoformat(timespec='seconds')}",
            )
    if rule.guards is not None:
        _check_guards(chk, rule, ctx, f)
    if rule.budget is not None:
        _check_budget(chk, rule, ctx, f)
    return chk


def _check_guards(chk: _RuleCheck, rule: Rule, ctx: PolicyContext, f: _Facts) -> None:
    g = rule.guards
    assert g is not None
    pool_action = not f.target.startswith("nodepool/")
    snap = ctx.snapshot
    if g.max_data_age_s is not None and pool_action:
        if snap is None:
            chk.fail(
                f"no live signals for {f.target}: cannot act on unseen data", "refresh the snapshot first"
            )
        else:
            ages = {k: (v if math.isfinite(v) else math.inf) for k, v in snap.signals.age_s.items()}
            oldest = max(ages.values()) if ages else None
            if oldest is None:
                chk.fail(f"signals of {f.target} carry no age: cannot prove they are fresh")
            elif oldest > g.max_data_age_s or snap.signals.stale:
                worst = max(ages, key=lambda k: ages[k])
                chk.fail(
                    f"stale data: {worst} is {oldest:.0f} s old > max_data_age_s {g.max_data_age_s:.0f}",
                    "wait for fresh metrics (check the signal source) and retry",
                )
    if f.direction not in ("in", "other") or not pool_action:
        return  # "other" (a patch that both lowers and raises) lets capacity shrink too
    checks = (
        ("kv_usage", g.max_kv_for_scale_in, "KV-cache usage"),
        ("queue_depth", g.max_queue_for_scale_in, "queue"),
    )
    for signal, limit, label in checks:
        if limit is None:
            continue
        value = _finite(snap.signals.value(signal)) if snap is not None else None
        if value is None:
            why = snap.signals.missing.get(signal, "no snapshot") if snap is not None else "no snapshot"
            chk.fail(f"no scale-in while {label} is unknown ({why})", "scale in only with live signals")
        elif value > limit:
            chk.fail(
                f"no scale-in while {label} {value:.2f} > {limit:g}",
                f"wait until {label} <= {limit:g} before scaling in",
            )


def _check_budget(chk: _RuleCheck, rule: Rule, ctx: PolicyContext, f: _Facts) -> None:
    b = rule.budget
    assert b is not None
    if b.max_gpus is not None and f.gpus_added > b.max_gpus:
        chk.fail(
            f"requests {f.gpus_added} GPUs > max_gpus {b.max_gpus}", f"request at most {b.max_gpus} GPUs"
        )
    adds_cost = f.direction in ("out", "other") or f.gpus_added > 0
    if not adds_cost or (b.max_added_usd_per_hour is None and b.max_added_usd_per_day is None):
        return
    cost = _finite(ctx.cost_delta_per_hour)
    if cost is None:
        known = ctx.pool is not None or ctx.node_pool is not None
        chk.fail(
            "cost of the action is unknown, cannot check the budget",
            "give a price for this GPU type in the price catalogue (MCP_AUTOSCALE_PRICE_CATALOGUE)"
            if known
            else f"{f.target} is not a known pool or node pool: check the name against get_slo_snapshot",
        )
        return
    if b.max_added_usd_per_hour is not None and cost > b.max_added_usd_per_hour:
        chk.fail(
            f"adds {_fmt_money(cost)} > max_added_usd_per_hour {_fmt_money(b.max_added_usd_per_hour)}",
            f"keep the added cost under {_fmt_money(b.max_added_usd_per_hour)} per action",
        )
    if b.max_added_usd_per_day is not None:
        spent = sum(max(0.0, r.cost_delta_per_hour or 0.0) for r in _applied(ctx.recent, rule, ctx.now - DAY))
        if spent + cost > b.max_added_usd_per_day:
            left = max(0.0, b.max_added_usd_per_day - spent)
            chk.fail(
                f"adds {_fmt_money(cost)} on top of {_fmt_money(spent)} added in 24 h "
                f"> max_added_usd_per_day {_fmt_money(b.max_added_usd_per_day)}",
                f"{_fmt_money(left)} of today's budget is left",
            )


def _approval_needed(rule: Rule, ctx: PolicyContext, f: _Facts) -> bool:
    a = rule.approval
    if a is None or not a.required:
        return False
    if a.when == "scale_in" and f.direction not in ("in", "other"):
        return False
    if a.when == "scale_out" and f.direction not in ("out", "other"):
        return False
    cost = _finite(ctx.cost_delta_per_hour)
    if a.over_usd_per_hour is not None and cost is not None and cost <= a.over_usd_per_hour:
        return False
    return not (a.over_gpus is not None and f.gpus_added <= a.over_gpus)


def _range_hint(action: Action, rules: list[Rule], f: _Facts) -> str | None:
    if action.kind not in (ActionKind.SCALE_DEPLOYMENT, ActionKind.PATCH_HPA):
        return None
    lo = max((r.replicas.min for r in rules if r.replicas), default=0)
    hi = min((r.replicas.max for r in rules if r.replicas), default=1000)
    steps = [r.max_step for r in rules if r.max_step is not None]
    if lo == 0 and hi == 1000 and not steps:
        return None
    text = f"allowed range for {f.target}: {lo}..{hi}"
    if steps:
        step = min(steps)
        text += f", at most +/-{step} per action"
        if f.current is not None and action.kind == ActionKind.SCALE_DEPLOYMENT:
            a, b = max(lo, f.current - step), min(hi, f.current + step)
            if a <= b:
                text += f" (from the current {f.current}: {a}..{b})"
    return text


def evaluate(policy: Policy, action: Action, ctx: PolicyContext) -> Verdict:
    """Decide one action. Pure: same inputs, same verdict."""
    tool = action.kind
    f = _facts(action, ctx)
    if tool not in policy.tools:
        allowed = ", ".join(t.value for t in policy.tools) or "none"
        return Verdict(
            decision=Decision.DENY,
            rules=["tools"],
            reasons=[f"rule 'tools': policy '{policy.name}' does not allow {tool.value} at all"],
            hint=f"tools this policy allows: {allowed}",
        )
    ref = action.target
    node_pool = action.params.node_pool if isinstance(action.params, GpuNodeRequest) else None
    if ref is not None and not any(fnmatchcase(ref.namespace, g) for g in policy.namespaces):
        return Verdict(
            decision=Decision.DENY,
            rules=["namespaces"],
            reasons=[
                f"rule 'namespaces': namespace '{ref.namespace}' is not allowed by policy '{policy.name}'"
            ],
            hint=f"namespaces this policy allows: {', '.join(policy.namespaces) or 'none'}",
        )
    if node_pool is not None and not any(fnmatchcase(node_pool, g) for g in policy.node_pools):
        return Verdict(
            decision=Decision.DENY,
            rules=["node_pools"],
            reasons=[f"rule 'node_pools': node pool '{node_pool}' is not allowed by policy '{policy.name}'"],
            hint=f"node pools this policy allows: {', '.join(policy.node_pools) or 'none'}",
        )
    labels = ctx.pool.labels if ctx.pool is not None else {}
    matching = [
        r
        for r in policy.rules
        if r.match.matches(
            tool=tool,
            ref=ref,
            labels=labels,
            node_pool=node_pool,
            cluster=_cluster(action),
            caller=action.caller,
            groups=action.caller_groups,
        )
        and (r.active is None or r.active.contains(ctx.now, policy.timezone))
    ]
    checks = [_check_rule(r, action, ctx, f) for r in matching]
    denied = [c for c in checks if c.problems]
    range_hint = _range_hint(action, matching, f)
    if denied:
        hints = [h for c in denied for h in c.hints]
        if range_hint and any(r.replicas or r.max_step is not None for r in (c.rule for c in denied)):
            hints.insert(0, range_hint)
        return Verdict(
            decision=Decision.DENY,
            rules=[c.rule.name for c in denied],
            reasons=[r for c in denied for r in c.reasons()],
            hint="; ".join(dict.fromkeys(hints)) or None,
        )
    allowing = [r for r in matching if r.effect == "allow"]
    if not allowing:
        return Verdict(
            decision=Decision.DENY,
            rules=["default-deny"],
            reasons=[
                f"rule 'default-deny': no rule of policy '{policy.name}' allows {tool.value} on {f.target}"
            ],
            hint="add a rule whose match covers this pool and tool, or ask a human to act",
        )
    pending = [r for r in matching if _approval_needed(r, ctx, f)]
    if pending:
        approvers = sorted({a for r in pending for a in (r.approval.approvers if r.approval else [])})
        reasons = []
        for r in pending:
            via = " or ".join(r.approval.via) if r.approval else "cli"
            why = f" ({r.reason})" if r.reason else ""
            reasons.append(f"rule '{r.name}': {tool.value} on {f.target} needs human approval via {via}{why}")
        return Verdict(
            decision=Decision.NEEDS_APPROVAL,
            rules=[r.name for r in pending],
            reasons=reasons,
            hint=range_hint,
            approvers=approvers,
        )
    return Verdict(
        decision=Decision.ALLOW,
        rules=[r.name for r in allowing],
        reasons=[f"rule '{r.name}': allows {tool.value} on {f.target}" for r in allowing],
        hint=range_hint,
    )


class RuleTrace(BaseModel):
    """How one rule related to an action (for ``policy explain``)."""

    rule: str
    status: Literal["decided", "matched", "not matched", "inactive"]
    detail: str = ""


def trace(policy: Policy, action: Action, ctx: PolicyContext) -> list[RuleTrace]:
    """Every rule, with whether it matched the action, was outside its window, or decided the verdict."""
    verdict = evaluate(policy, action, ctx)
    ref = action.target
    node_pool = action.params.node_pool if isinstance(action.params, GpuNodeRequest) else None
    labels = ctx.pool.labels if ctx.pool is not None else {}
    out: list[RuleTrace] = []
    for r in policy.rules:
        m = r.match
        if not m.matches(
            tool=action.kind,
            ref=ref,
            labels=labels,
            node_pool=node_pool,
            cluster=_cluster(action),
            caller=action.caller,
            groups=action.caller_groups,
        ):
            why = []
            if m.callers and not any(fnmatchcase(action.caller, g) for g in m.callers):
                why.append(f"caller {action.caller} not in {m.callers}")
            if m.groups and not set(action.caller_groups) & set(m.groups):
                why.append(f"caller groups {action.caller_groups} not in {m.groups}")
            if m.tools and action.kind not in m.tools:
                why.append(f"tool not in {[t.value for t in m.tools]}")
            if (
                ref is not None
                and m.namespaces
                and not any(fnmatchcase(ref.namespace, g) for g in m.namespaces)
            ):
                why.append(f"namespace not in {m.namespaces}")
            if (
                ref is not None
                and m.pools
                and not any(fnmatchcase(ref.local_key, g) or fnmatchcase(ref.name, g) for g in m.pools)
            ):
                why.append(f"pool not in {m.pools}")
            if any(labels.get(k) != v for k, v in m.labels.items()):
                why.append(f"labels {m.labels} not all present")
            if m.node_pools and (
                node_pool is None or not any(fnmatchcase(node_pool, g) for g in m.node_pools)
            ):
                why.append(f"node pool not in {m.node_pools}")
            if ref is None and (m.namespaces or m.pools or m.labels):
                why.append("rule is for pools, action is for a node pool")
            where = _cluster(action)
            if m.clusters and (where is None or not any(fnmatchcase(where, g) for g in m.clusters)):
                why.append(f"cluster {where or '(none)'} not in {m.clusters}")
            out.append(RuleTrace(rule=r.name, status="not matched", detail="; ".join(why)))
        elif r.active is not None and not r.active.contains(ctx.now, policy.timezone):
            out.append(RuleTrace(rule=r.name, status="inactive", detail=f"outside {r.active.describe()}"))
        else:
            decided = r.name in verdict.rules
            out.append(
                RuleTrace(rule=r.name, status="decided" if decided else "matched", detail=r.reason or "")
            )
    return out
