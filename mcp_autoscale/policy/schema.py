"""The policy language: a pydantic schema (deny by default), exported as JSON Schema for editors.

A policy is a list of named rules. Every rule whose ``match`` (and time window, if any) fits an action
applies to it; the action is allowed only when at least one matching rule has ``effect: allow`` and no
matching rule objects. ``effect: limit`` rules add constraints (guards, budgets, approvals, SLO targets)
without granting anything, so a guard can never widen what the policy allows. Unknown keys are errors,
so a typo never silently weakens a policy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mcp_autoscale.gitops.config import Execution, GitOpsConfig
from mcp_autoscale.models import ActionKind, PoolRef, SloTargets

RULE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
_HOURS = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ApprovalChannel = Literal["elicitation", "cli"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_timezone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ValueError(f"unknown time zone {value!r} (use an IANA name such as 'Europe/Berlin')") from err
    return value


class Match(_Strict):
    """Which actions a rule applies to. An empty list (or map) matches anything."""

    namespaces: list[str] = Field(
        default_factory=list, description="Namespace globs, e.g. ['chat', 'team-*']"
    )
    pools: list[str] = Field(
        default_factory=list, description="Pool globs: 'namespace/deployment' or just 'deployment'"
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Deployment labels that must all equal")
    tools: list[ActionKind] = Field(default_factory=list, description="Mutating tools the rule covers")
    node_pools: list[str] = Field(default_factory=list, description="Node pool globs (request_gpu_nodes)")
    clusters: list[str] = Field(
        default_factory=list,
        description="Cluster globs (a several-cluster server); a pool with no cluster never matches",
    )
    callers: list[str] = Field(
        default_factory=list,
        description="Caller globs as the audit names them: 'oidc:ci-*', 'local:alice', 'http:token-*'",
    )
    groups: list[str] = Field(
        default_factory=list, description="The caller is in one of these groups (token)"
    )

    def matches(
        self,
        *,
        tool: ActionKind,
        ref: PoolRef | None,
        labels: dict[str, str],
        node_pool: str | None,
        cluster: str | None = None,
        caller: str | None = None,
        groups: Sequence[str] | None = None,
    ) -> bool:
        """``caller``/``groups`` None: unknown (e.g. choosing locks), which matches any caller condition."""
        if self.tools and tool not in self.tools:
            return False
        where = ref.cluster if ref is not None else cluster
        if self.clusters and (where is None or not any(fnmatchcase(where, g) for g in self.clusters)):
            return False
        if self.callers and caller is not None and not any(fnmatchcase(caller, g) for g in self.callers):
            return False
        if self.groups and groups is not None and not set(groups) & set(self.groups):
            return False
        if ref is not None:
            if self.namespaces and not any(fnmatchcase(ref.namespace, g) for g in self.namespaces):
                return False
            if self.pools and not any(
                fnmatchcase(ref.local_key, g) or fnmatchcase(ref.name, g) for g in self.pools
            ):
                return False
            if any(labels.get(k) != v for k, v in self.labels.items()):
                return False
        elif self.namespaces or self.pools or self.labels:
            return False
        return not self.node_pools or (
            node_pool is not None and any(fnmatchcase(node_pool, g) for g in self.node_pools)
        )

    def matches_target(self, target: str, tool: str) -> bool:
        """Match an audit record (``target`` is 'ns/name' or 'nodepool/name'; labels are not recorded)."""
        if self.tools and tool not in {t.value for t in self.tools}:
            return False
        cluster, sep, local = target.partition(":")  # 'eu:chat/llama-8b' on a several-cluster server
        cluster, target = (cluster, local) if sep else ("", target)
        if self.clusters and not (cluster and any(fnmatchcase(cluster, g) for g in self.clusters)):
            return False
        head, _, tail = target.partition("/")
        if head == "nodepool":
            if self.namespaces or self.pools or self.labels:
                return False
            return not self.node_pools or any(fnmatchcase(tail, g) for g in self.node_pools)
        if self.node_pools:
            return False
        if self.namespaces and not any(fnmatchcase(head, g) for g in self.namespaces):
            return False
        return not self.pools or any(fnmatchcase(target, g) or fnmatchcase(tail, g) for g in self.pools)


class ReplicaBounds(_Strict):
    min: int = Field(
        default=0, ge=0, le=1000, description="Lowest replica count (or HPA minReplicas) allowed"
    )
    max: int = Field(default=1000, ge=0, le=1000, description="Highest replica count (or HPA maxReplicas)")

    @model_validator(mode="after")
    def _ordered(self) -> ReplicaBounds:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must be <= max ({self.max})")
        return self


class ScaleInLimit(_Strict):
    """At most ``replicas`` removed per pool within ``window_s`` (applied actions, from the audit log)."""

    replicas: int = Field(ge=0, le=1000)
    window_s: int = Field(gt=0, le=7 * 86400)


class Guards(_Strict):
    """Safety checks on live signals. Missing signals count as unsafe: never act on what we cannot see."""

    max_kv_for_scale_in: float | None = Field(
        default=0.75, ge=0, le=1, description="No scale-in while mean KV-cache usage is above this (0-1)"
    )
    max_queue_for_scale_in: float | None = Field(
        default=5.0, ge=0, description="No scale-in while waiting requests (pool total) exceed this"
    )
    max_data_age_s: float | None = Field(
        default=None, gt=0, description="No action when the pool's newest signals are older than this"
    )


class Budget(_Strict):
    max_added_usd_per_hour: float | None = Field(
        default=None, ge=0, description="Most $/h one action may add (from the cost estimate)"
    )
    max_added_usd_per_day: float | None = Field(
        default=None, ge=0, description="Most $/h all applied actions matching this rule may add in 24 h"
    )
    max_gpus: int | None = Field(default=None, ge=0, description="Most GPUs one action may request or add")


class TimeWindow(_Strict):
    """When a rule is active. All given conditions must hold; none given = always."""

    timezone: str | None = Field(default=None, description="IANA zone; default: the policy's timezone")
    weekdays: list[Weekday] = Field(default_factory=list, description="e.g. ['fri', 'sat', 'sun']")
    hours: str | None = Field(
        default=None, description="Local 'HH:MM-HH:MM'; may wrap midnight ('22:00-06:00')"
    )
    cron: str | None = Field(default=None, description="5-field cron; active during every matching minute")
    start: datetime | None = Field(default=None, description="Absolute start (ISO 8601, with offset)")
    end: datetime | None = Field(default=None, description="Absolute end (ISO 8601, with offset)")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return _check_timezone(value)

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str | None) -> str | None:
        if value is not None and not _HOURS.match(value):
            raise ValueError(f"hours must look like '09:00-17:30', not {value!r}")
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and (len(value.split()) != 5 or not croniter.is_valid(value)):
            raise ValueError(f"not a valid 5-field cron expression: {value!r}")
        return value

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a UTC offset, e.g. 2026-12-24T00:00:00+01:00")
        return value

    def contains(self, now: datetime, default_tz: str) -> bool:
        local = now.astimezone(ZoneInfo(self.timezone or default_tz))
        if self.start is not None and now < self.start:
            return False
        if self.end is not None and now >= self.end:
            return False
        if self.weekdays and WEEKDAYS[local.weekday()] not in self.weekdays:
            return False
        if self.hours is not None:
            m = _HOURS.match(self.hours)
            assert m is not None
            lo = int(m.group(1)) * 60 + int(m.group(2))
            hi = int(m.group(3)) * 60 + int(m.group(4))
            minute = local.hour * 60 + local.minute
            inside = lo <= minute < hi if lo <= hi else (minute >= lo or minute < hi)
            if not inside:
                return False
        return self.cron is None or bool(croniter.match(self.cron, local.replace(tzinfo=None)))

    def describe(self) -> str:
        parts = []
        if self.weekdays:
            parts.append(",".join(self.weekdays))
        if self.hours:
            parts.append(self.hours)
        if self.cron:
            parts.append(f"cron '{self.cron}'")
        if self.start or self.end:
            lo = self.start.isoformat() if self.start else "…"
            parts.append(f"{lo}..{self.end.isoformat() if self.end else '…'}")
        return " ".join(parts) or "always"


class ApprovalSpec(_Strict):
    """When matching actions need a human; all given conditions must hold."""

    required: bool = True
    when: Literal["always", "scale_in", "scale_out"] = Field(
        default="always", description="Which direction of change needs approval"
    )
    over_usd_per_hour: float | None = Field(
        default=None, ge=0, description="Only when the action adds more than this $/h (unknown cost counts)"
    )
    over_gpus: int | None = Field(default=None, ge=0, description="Only when the action adds more GPUs")
    via: list[ApprovalChannel] = Field(
        default_factory=lambda: list[ApprovalChannel](["cli"]),
        min_length=1,
        description="Accepted channels; 'elicitation' = the MCP client's user may approve in the chat",
    )
    approvers: list[str] = Field(default_factory=list, description="Who may approve (empty: anyone)")
    approver_groups: list[str] = Field(
        default_factory=list, description="Approvers by group (from their token); with approvers: either"
    )
    four_eyes: bool = Field(
        default=False, description="The approver must not be the caller who proposed the action"
    )
    ttl_s: int | None = Field(default=None, gt=0, le=30 * 86400, description="Proposal lifetime")


class ApprovalSettings(_Strict):
    """Policy-wide approval settings."""

    allow_delegation: bool = Field(
        default=False,
        description="Let `mcp-autoscale approve/reject --as NAME` act on behalf of NAME; the record names "
        "both NAME and the operating-system user who ran the command. Off: the approver is always the "
        "operating-system user",
    )


class Rule(_Strict):
    name: str = Field(pattern=RULE_NAME)
    reason: str | None = Field(default=None, description="Shown in every verdict this rule decides")
    effect: Literal["allow", "limit", "deny"] = Field(
        default="allow",
        description="allow: grants the matched actions and constrains them; limit: only constrains (guards, "
        "budgets, approvals, SLOs) and never grants; deny: refuses the matched actions",
    )
    match: Match = Field(default_factory=Match)
    active: TimeWindow | None = Field(default=None, description="The rule applies only inside this window")
    replicas: ReplicaBounds | None = None
    max_step: int | None = Field(default=None, ge=0, le=1000, description="Most replicas changed per action")
    max_scale_in: ScaleInLimit | None = None
    cooldown_s: int | None = Field(default=None, ge=0, le=86400, description="Quiet time after a change")
    guards: Guards | None = None
    budget: Budget | None = None
    approval: ApprovalSpec | None = None
    slo: SloTargets | None = Field(default=None, description="SLO targets for the pools this rule matches")
    execution: Execution | None = Field(
        default=None,
        description="How allowed actions are carried out: direct (patch the cluster, the default), gitops "
        "(commit to the mapped Git file on a new branch), refuse (deny, naming the GitOps manager)",
    )


class Policy(_Strict):
    """A whole policy file. Deny by default: nothing is allowed that no rule allows."""

    version: Literal[1] = 1
    name: str = "policy"
    description: str = ""
    timezone: str = Field(default="UTC", description="Default zone for time windows")
    tools: list[ActionKind] = Field(default_factory=list, description="Mutating tools allowed at all")
    namespaces: list[str] = Field(default_factory=list, description="Namespace globs pool actions may touch")
    node_pools: list[str] = Field(
        default_factory=list, description="Node pool globs request_gpu_nodes may touch"
    )
    approval_ttl_s: int = Field(default=3600, gt=0, le=30 * 86400, description="Default proposal lifetime")
    approvals: ApprovalSettings = Field(default_factory=ApprovalSettings)
    rules: list[Rule] = Field(default_factory=list)
    gitops: GitOpsConfig | None = Field(
        default=None, description="Git checkout and per-pool manifest mapping for execution: gitops rules"
    )

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        _check_timezone(value)
        return value

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, rules: list[Rule]) -> list[Rule]:
        seen: set[str] = set()
        for rule in rules:
            if rule.name in seen:
                raise ValueError(f"duplicate rule name {rule.name!r}")
            seen.add(rule.name)
        return rules

    def visible_namespaces(self) -> list[str] | None:
        """Namespaces the snapshot should show: the exact allow-list, or None (all) for globs or no list.

        A read-only policy allows no namespace for writes but must still let the agent look at everything.
        """
        if not self.namespaces or any(ch in g for g in self.namespaces for ch in "*?["):
            return None
        return list(self.namespaces)

    def rule(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)

    def slo_for(self, ref: PoolRef) -> SloTargets | None:
        """SLO targets of the first rule with ``slo`` whose match covers the pool (tools/labels ignored)."""
        for rule in self.rules:
            m = rule.match
            if rule.slo is None or m.node_pools:
                continue
            if m.namespaces and not any(fnmatchcase(ref.namespace, g) for g in m.namespaces):
                continue
            if m.pools and not any(
                fnmatchcase(ref.local_key, g) or fnmatchcase(ref.name, g) for g in m.pools
            ):
                continue
            return rule.slo
        return None


def policy_json_schema() -> dict[str, object]:
    """JSON Schema of a policy file, for editors (``policies/schema.json``; yaml-language-server)."""
    schema = Policy.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "title": "mcp-autoscale policy",
    }
