"""What the agent saw, proposed and did: the data behind the markdown and JSON reports and the exit code."""

from __future__ import annotations

from datetime import datetime
from enum import IntEnum
from typing import Any, Literal

from pydantic import BaseModel, Field


class ExitCode(IntEnum):
    """Exit codes a pipeline can gate on (documented in docs/agent.md)."""

    OK = 0
    """Every SLO judged and healthy, or every breach has an allowed (or dry-run) action."""
    ERROR = 1
    """The server failed to start or answer, a tool call errored, or a source (signals, node pools) was
    down: the agent could not see."""
    USAGE = 2
    """Bad command-line usage."""
    UNRESOLVED = 3
    """At least one SLO breach, or a pool whose SLO cannot be judged, has no allowed action."""


ALLOWED_STATUSES = frozenset({"applied", "dry_run", "proposed_commit"})
"""Action statuses that count as 'an allowed action' for a breach."""


class PoolView(BaseModel):
    """The numbers the agent judged one pool on (copied from ``get_slo_snapshot``)."""

    pool: str
    slo: str
    breaches: list[str] = Field(default_factory=list)
    replicas_desired: int
    replicas_ready: int
    replicas_starting: int = 0
    owner_kind: str | None = Field(default=None, description="ScaledObject | HorizontalPodAutoscaler | None")
    owner_name: str | None = None
    owner_min: int | None = None
    owner_max: int | None = None
    ttft_p90_s: float | None = None
    ttft_target_s: float | None = None
    itl_p90_s: float | None = None
    itl_target_s: float | None = None
    kv_usage: float | None = None
    queue_depth: float | None = None
    gen_tps: float | None = None
    cost_per_hour: float | None = None
    stale: list[str] = Field(default_factory=list)
    missing: list[str] = Field(default_factory=list)

    @property
    def owner(self) -> str | None:
        """'ScaledObject/llama-8b (2..16)', or None for a pool no autoscaler owns."""
        if self.owner_kind is None:
            return None
        return f"{self.owner_kind}/{self.owner_name} ({self.owner_min}..{self.owner_max})"


class Proposal(BaseModel):
    """One tool call the agent decided to make, and what the server answered."""

    pool: str = Field(description="namespace/deployment, or nodepool/<name> for GPU node requests")
    tool: Literal["scale_deployment", "patch_hpa", "request_gpu_nodes"]
    arguments: dict[str, Any] = Field(description="Arguments as sent (rationale and dry_run included)")
    rationale: str
    source: Literal["recommend_scaling", "agent-rules"]
    addresses_breach: bool = Field(description="True when this call is meant to fix the pool's SLO breach")
    expected: dict[str, Any] | None = None
    # the server's answer
    status: str | None = Field(
        default=None, description="applied | dry_run | denied | pending_approval | ..."
    )
    decision: str | None = None
    reasons: list[str] = Field(default_factory=list)
    hint: str | None = None
    rules: list[str] = Field(default_factory=list)
    changes: list[dict[str, Any]] = Field(default_factory=list)
    audit_id: str | None = None
    message: str | None = None
    error: str | None = Field(default=None, description="Tool error text, when the call failed")

    @property
    def allowed(self) -> bool:
        return self.status in ALLOWED_STATUSES and self.error is None


class Iteration(BaseModel):
    """One pass: snapshot -> recommendations -> gated calls."""

    index: int
    started_at: datetime
    snapshot_taken_at: str | None = None
    backend: str | None = None
    signal_source: str | None = None
    partial: bool = False
    warnings: list[str] = Field(default_factory=list)
    source_errors: list[str] = Field(
        default_factory=list, description="Sources that were down (from the snapshot): the agent was blind"
    )
    fleet_cost_per_hour: float | None = None
    pools: list[PoolView] = Field(default_factory=list)
    recommendation_source: Literal["recommend_scaling", "agent-rules"] | None = None
    overrides: list[str] = Field(
        default_factory=list,
        description="Pools where the agent's rules acted although the planner proposed no change, and why",
    )
    notes: list[str] = Field(default_factory=list, description="Why a breach got no action, and similar")
    proposals: list[Proposal] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)
    standby: bool = Field(
        default=False, description="Another replica leads (leader election): no reads, no calls"
    )
    leader: str | None = Field(default=None, description="Who holds the agent Lease, when elected")

    def breached(self) -> list[PoolView]:
        return [p for p in self.pools if p.slo == "breach"]

    def unjudged(self) -> list[PoolView]:
        """Pools whose SLO cannot be judged (signals missing or stale): never counted as healthy."""
        return [p for p in self.pools if p.slo not in ("ok", "breach")]

    def unresolved(self) -> list[str]:
        """Breached or unjudged pools with no allowed (applied or dry-run) action that addresses them."""
        covered = {p.pool for p in self.proposals if p.addresses_breach and p.allowed}
        return [p.pool for p in [*self.breached(), *self.unjudged()] if p.pool not in covered]

    def decided_by(self) -> str:
        """Who chose the calls of this pass: the server's planner, the agent's own rules, or both."""
        if self.recommendation_source == "agent-rules":
            return "the agent's rules (the server has no recommend_scaling)"
        if self.recommendation_source is None:
            return "nobody (no decision was made)"
        ruled = sorted({p.pool for p in self.proposals if p.source == "agent-rules"})
        if not ruled:
            return "the planner (recommend_scaling)"
        return (
            f"the planner (recommend_scaling), and the agent's rules for {', '.join(ruled)} "
            "(where the planner proposed no change: see 'Who decided')"
        )

    def exit_code(self) -> ExitCode:
        if self.errors or self.source_errors or any(p.error for p in self.proposals):
            return ExitCode.ERROR
        return ExitCode.UNRESOLVED if self.unresolved() else ExitCode.OK


class AgentReport(BaseModel):
    """Everything one ``mcp-autoscale agent`` run saw and did."""

    version: str
    started_at: datetime
    finished_at: datetime | None = None
    server: str = Field(description="How the agent reached the server (command line or URL, no secrets)")
    mode: Literal["dry-run", "apply"]
    iterations: list[Iteration] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list, description="Failures outside any iteration")
    exit_code: int = ExitCode.OK

    def final_exit_code(self) -> ExitCode:
        """Errors anywhere -> 1; otherwise the last iteration decides (0, or 3 for unresolved breaches)."""
        if self.errors or not self.iterations:
            return ExitCode.ERROR
        if any(it.exit_code() is ExitCode.ERROR for it in self.iterations):
            return ExitCode.ERROR
        return self.iterations[-1].exit_code()
