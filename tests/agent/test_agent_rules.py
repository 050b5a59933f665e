"""The agent's pure decision functions: snapshot -> proposals with data-cited rationales, and exit codes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mcp_autoscale.agent import (
    ExitCode,
    Iteration,
    Proposal,
    capacity_target,
    describe,
    pool_view,
    recommendation_proposals,
    render_markdown,
    rule_proposals,
)
from mcp_autoscale.agent.models import AgentReport
from mcp_autoscale.agent.report import headline


def snapshot_pool(
    namespace: str = "chat",
    name: str = "llama-8b",
    *,
    ttft: float | None = 3.4,
    itl: float | None = 0.04,
    queue: float | None = 60.0,
    kv: float | None = 0.55,
    desired: int = 4,
    ready: int = 4,
    owner: dict[str, Any] | None = None,
    breach: bool = True,
    stale: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "namespace": namespace,
        "name": name,
        "replicas": {"desired": desired, "ready": ready, "starting": 0, "pending": 0},
        "owner": owner,
        "signals": {
            "ttft_p90_s": ttft,
            "itl_p90_s": itl,
            "queue_depth": queue,
            "kv_usage": kv,
            "stale": stale or [],
            "missing": {},
        },
        "slo": "breach" if breach else "ok",
        "slo_targets": {"ttft_p90_s": 2.0, "itl_p90_s": 0.1},
        "slo_breaches": [f"ttft_p90_s {ttft} > 2.0"] if breach else [],
        "cost_per_hour": 3.22,
    }


KEDA = {"kind": "ScaledObject", "name": "llama-8b", "min_replicas": 2, "max_replicas": 16}


def test_describe_cites_the_numbers() -> None:
    text = describe(pool_view(snapshot_pool(owner=KEDA)))
    assert "TTFT p90 3.40 s > target 2.00 s" in text
    assert "queue 60 waiting (15.0/replica" in text
    assert "KV cache 0.55" in text
    assert "4 ready / 4 desired" in text
    assert "ScaledObject/llama-8b (2..16)" in text


def test_owned_pool_gets_patch_hpa_raising_the_floor_not_scale_deployment() -> None:
    proposals, notes = rule_proposals([pool_view(snapshot_pool(owner=KEDA))], dry_run=True)
    assert notes == []
    [p] = proposals
    assert p.tool == "patch_hpa" and p.addresses_breach
    # queue 60 / 5 per replica = 12, capped at 2x the current 4 = 8; the floor moves 2 -> 6 (step 4)
    assert p.arguments["min_replicas"] == 6 and "max_replicas" not in p.arguments
    assert p.arguments["dry_run"] is True and p.arguments["namespace"] == "chat"
    assert "TTFT p90 3.40 s > target 2.00 s" in p.rationale and "min_replicas 2 -> 6" in p.rationale
    assert "sizes for 8 replicas" in p.rationale


def test_ceiling_is_raised_only_when_every_replica_serves_at_it() -> None:
    at_max = {**KEDA, "min_replicas": 2, "max_replicas": 4}
    [p], _ = rule_proposals([pool_view(snapshot_pool(owner=at_max))], dry_run=False)
    assert p.arguments["min_replicas"] == 6 and p.arguments["max_replicas"] == 8
    assert p.arguments["dry_run"] is False


def test_capacity_already_on_its_way_raises_the_floor_only() -> None:
    owner = {**KEDA, "max_replicas": 16}
    view = pool_view(snapshot_pool(owner=owner, queue=870.0, kv=1.0, desired=16, ready=4))
    [p], _ = rule_proposals([view], dry_run=True)
    assert p.tool == "patch_hpa" and p.arguments["min_replicas"] == 6 and "max_replicas" not in p.arguments
    assert "already wants 16 replicas (4 serving)" in p.rationale


def test_unowned_pool_gets_scale_deployment() -> None:
    view = pool_view(snapshot_pool("batch", "qwen-7b", queue=14.0, desired=2, ready=2))
    [p], _ = rule_proposals([view], dry_run=True)
    assert p.tool == "scale_deployment" and p.arguments["replicas"] == 3
    assert "no autoscaler owns" in p.rationale


def test_kv_pressure_breach_sizes_on_kv() -> None:
    view = pool_view(snapshot_pool(queue=2.0, kv=0.96, desired=2, ready=2))
    target, why = capacity_target(view)
    assert target == 3 and "KV cache 0.96" in why


def test_breach_without_queue_or_kv_is_left_with_a_note() -> None:
    proposals, notes = rule_proposals([pool_view(snapshot_pool(queue=1.0, kv=0.3))], dry_run=True)
    assert proposals == [] and "not a replica problem" in notes[0]


def test_stale_signals_block_action() -> None:
    view = pool_view(snapshot_pool(owner=KEDA, stale=["queue_depth"]))
    proposals, notes = rule_proposals([view], dry_run=True)
    assert proposals == [] and "stale" in notes[0]


def test_healthy_pools_get_nothing() -> None:
    proposals, notes = rule_proposals([pool_view(snapshot_pool(breach=False))], dry_run=True)
    assert proposals == [] and notes == []


def test_recommendations_become_calls_with_data_and_planner_reasons() -> None:
    healthy = pool_view(snapshot_pool("dev", "granite-8b", breach=False))
    views = [pool_view(snapshot_pool(owner=KEDA)), healthy]
    recs = [
        {
            "pool": "chat/llama-8b",
            "action": "patch_hpa",
            "reasons": ["forecast 1900 tok/s out needs 9 replicas at U=0.75"],
            "expected": {"replicas_before": 4, "replicas_after": 9},
            "tool_call": {
                "tool": "patch_hpa",
                "arguments": {"namespace": "chat", "deployment": "llama-8b", "min_replicas": 9, "dry_run": 0},
            },
            "prerequisites": [{"tool": "request_gpu_nodes", "arguments": {"node_pool": "gpu-l4", "gpus": 5}}],
        },
        {"pool": "dev/granite-8b", "action": "none", "reasons": ["within SLO"], "tool_call": None},
    ]
    proposals, notes = recommendation_proposals(recs, views, dry_run=True)
    assert [p.tool for p in proposals] == ["request_gpu_nodes", "patch_hpa"]
    gpu, main = proposals
    assert gpu.pool == "nodepool/gpu-l4" and not gpu.addresses_breach
    assert main.pool == "chat/llama-8b" and main.addresses_breach and main.arguments["min_replicas"] == 9
    assert "TTFT p90 3.40 s" in main.rationale and "forecast 1900 tok/s" in main.rationale
    assert main.arguments["rationale"] == main.rationale and main.arguments["dry_run"] is True
    assert notes == []


def test_breach_with_no_recommendation_is_noted() -> None:
    views = [pool_view(snapshot_pool(owner=KEDA))]
    recs = [{"pool": "chat/llama-8b", "action": "none", "reasons": ["at max, GPUs exhausted"]}]
    proposals, notes = recommendation_proposals(recs, views, dry_run=True)
    assert proposals == [] and "at max, GPUs exhausted" in notes[0]


def _iteration(status: str | None, error: str | None = None) -> Iteration:
    it = Iteration(index=1, started_at=datetime.now(UTC))
    healthy = pool_view(snapshot_pool("dev", "granite-8b", breach=False))
    it.pools = [pool_view(snapshot_pool(owner=KEDA)), healthy]
    it.proposals = [
        Proposal(
            pool="chat/llama-8b",
            tool="patch_hpa",
            arguments={"min_replicas": 8},
            rationale="r",
            source="agent-rules",
            addresses_breach=True,
            status=status,
            error=error,
        )
    ]
    return it


def test_exit_codes() -> None:
    assert _iteration("dry_run").exit_code() is ExitCode.OK
    assert _iteration("applied").exit_code() is ExitCode.OK
    assert _iteration("denied").exit_code() is ExitCode.UNRESOLVED
    assert _iteration("pending_approval").exit_code() is ExitCode.UNRESOLVED
    assert _iteration(None, error="Error executing tool patch_hpa").exit_code() is ExitCode.ERROR
    healthy = Iteration(index=1, started_at=datetime.now(UTC), pools=[pool_view(snapshot_pool(breach=False))])
    assert healthy.exit_code() is ExitCode.OK
    report = AgentReport(version="t", started_at=datetime.now(UTC), server="s", mode="dry-run")
    assert report.final_exit_code() is ExitCode.ERROR  # no iteration ran at all


def test_blind_is_never_ok() -> None:
    """Issue 19: a pool whose SLO cannot be judged is never healthy (3); a source down is an error (1)."""
    unknown = pool_view({**snapshot_pool("dev", "granite-8b", breach=False), "slo": "unknown"})
    it = Iteration(index=1, started_at=datetime.now(UTC), pools=[unknown])
    assert it.unjudged() == [unknown] and it.unresolved() == ["dev/granite-8b"]
    assert it.exit_code() is ExitCode.UNRESOLVED
    it.source_errors = ["prometheus unreachable: connection refused"]
    assert it.exit_code() is ExitCode.ERROR
    report = AgentReport(version="t", started_at=datetime.now(UTC), server="s", mode="dry-run")
    report.iterations.append(it)
    report.exit_code = report.final_exit_code()
    md = render_markdown(report)
    assert "exit 1" in md and "**Source down, the agent was blind**: prometheus unreachable" in md
    assert "### SLO not judged (never counted as healthy)\n- `dev/granite-8b`" in md
    assert headline(report).startswith("agent: exit 1") and "prometheus unreachable" in headline(report)


def test_markdown_shows_breach_action_verdict_and_unresolved() -> None:
    report = AgentReport(version="t", started_at=datetime.now(UTC), server="s", mode="dry-run")
    it = _iteration("denied")
    it.proposals[0].reasons = ["rule 'tools': patch_hpa not allowed"]
    report.iterations.append(it)
    report.exit_code = report.final_exit_code()
    md = render_markdown(report)
    assert "exit 3" in md and "**BREACH**" in md
    assert "**patch_hpa** on `chat/llama-8b`" in md and "-> **denied**" in md
    assert "policy reason: rule 'tools': patch_hpa not allowed" in md
    assert "### Breaches (or unjudged pools) without an allowed action\n- `chat/llama-8b`" in md
