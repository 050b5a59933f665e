"""Table-driven tests of the pure evaluator: every rule kind, allow and deny, with the reasons it gives."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from governance_fakes import T0, default_pools, snapshot_for

from mcp_autoscale.actions import action_from_call
from mcp_autoscale.models import (
    ActionStatus,
    AuditRecord,
    Decision,
    NodePoolState,
    PoolRef,
    PoolState,
    Verdict,
)
from mcp_autoscale.policy import PolicyContext, builtin_policy, evaluate, parse_policy
from mcp_autoscale.policy.evaluate import trace

POLICY = parse_policy(
    """
version: 1
name: table
timezone: Europe/Berlin
tools: [scale_deployment, patch_hpa, request_gpu_nodes]
namespaces: [chat, batch, dev, staging]
node_pools: [gpu-l4, gpu-h100]
rules:
  - name: prod-bounds
    reason: HA floor and sane ceiling
    match: {namespaces: [chat, batch]}
    replicas: {min: 2, max: 16}
    max_step: 4
  - name: prod-cooldown
    match: {namespaces: [chat, batch]}
    cooldown_s: 300
  - name: prod-scale-in-window
    match: {namespaces: [chat, batch]}
    max_scale_in: {replicas: 2, window_s: 3600}
  - name: prod-guards
    match: {namespaces: [chat, batch]}
    guards: {max_kv_for_scale_in: 0.75, max_queue_for_scale_in: 5, max_data_age_s: 60}
  - name: prod-budget
    match: {namespaces: [chat, batch]}
    budget: {max_added_usd_per_hour: 10, max_added_usd_per_day: 12, max_gpus: 8}
  - name: prod-scale-in-approval
    reason: production scale-in is reviewed
    match: {labels: {tier: production}}
    approval: {when: scale_in, via: [cli], approvers: [sre-oncall]}
  - name: dev-any
    match: {namespaces: [dev]}
    replicas: {min: 0, max: 4}
  - name: friday-freeze
    effect: deny
    reason: weekend change freeze
    active: {weekdays: [fri], hours: "16:00-24:00"}
  - name: gpu-requests
    match: {tools: [request_gpu_nodes], node_pools: ["gpu-*"]}
    budget: {max_gpus: 16}
    approval: {over_usd_per_hour: 8, via: [elicitation, cli]}
  - name: no-70b-autoscaler-edits
    effect: deny
    reason: the 70B pools are tuned by hand
    match: {pools: ["chat/llama-70b-*"], tools: [patch_hpa]}
""",
    "<table>",
)

POOLS = {p.ref.key: p for p in default_pools()}
NODE_POOLS = {
    "gpu-l4": NodePoolState(name="gpu-l4", gpu_type="L4"),
    "gpu-h100": NodePoolState(name="gpu-h100", gpu_type="H100", gpus_per_node=8),
}
FRIDAY_17 = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)  # 17:00 in Berlin
FRIDAY_15 = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)  # 15:00 in Berlin


def record(
    target: str,
    *,
    ago: float,
    args: dict[str, Any],
    before: int | None = None,
    cost: float | None = None,
    tool: str = "scale_deployment",
    status: ActionStatus = ActionStatus.APPLIED,
) -> AuditRecord:
    ns, name = target.split("/")
    inverse = (
        None
        if before is None
        else {"tool": tool, "arguments": {"namespace": ns, "deployment": name, "replicas": before}}
    )
    return AuditRecord(
        id=f"aud-{int(ago)}",
        seq=1,
        ts=T0 - timedelta(seconds=ago),
        action_id="act-x",
        tool=tool,
        target=target,
        arguments={"namespace": ns, "deployment": name, **args},
        rationale="r",
        caller="t",
        dry_run=False,
        verdict=Verdict(decision=Decision.ALLOW),
        status=status,
        inverse=inverse,
        cost_delta_per_hour=cost,
    )


@dataclass
class Case:
    id: str
    tool: str
    args: dict[str, Any]
    decision: Decision
    rules: list[str]
    says: list[str] = field(default_factory=list)
    replicas: int | None = None  # current replicas override
    kv: float | None = 0.3
    queue: float | None = 0.0
    age: float | None = 5.0
    snapshot: bool = True
    cost: float | None = 0.0
    now: datetime = T0
    recent: list[AuditRecord] = field(default_factory=list)
    hint: str | None = None
    owner_min: int | None = None


def qwen(replicas: int) -> dict[str, Any]:
    return {"namespace": "batch", "deployment": "qwen-7b", "replicas": replicas}


CASES = [
    Case(
        "dev-scale-allowed",
        "scale_deployment",
        {"namespace": "dev", "deployment": "granite-8b", "replicas": 3},
        Decision.ALLOW,
        ["dev-any"],
        ["allows scale_deployment on dev/granite-8b"],
    ),
    Case(
        "dev-over-max",
        "scale_deployment",
        {"namespace": "dev", "deployment": "granite-8b", "replicas": 9},
        Decision.DENY,
        ["dev-any"],
        ["rule 'dev-any': replicas 9 > max 4"],
        hint="allowed range for dev/granite-8b: 0..4",
    ),
    Case(
        "namespace-not-allowed",
        "scale_deployment",
        {"namespace": "kube-system", "deployment": "x", "replicas": 1},
        Decision.DENY,
        ["namespaces"],
        ["namespace 'kube-system' is not allowed"],
    ),
    Case(
        "node-pool-not-allowed",
        "request_gpu_nodes",
        {"node_pool": "gpu-a10g", "gpus": 1},
        Decision.DENY,
        ["node_pools"],
        ["node pool 'gpu-a10g' is not allowed"],
    ),
    Case(
        "over-max-and-step",
        "scale_deployment",
        qwen(40),
        Decision.DENY,
        ["prod-bounds", "prod-budget"],
        [
            "rule 'prod-bounds': replicas 40 > max 16 (HA floor and sane ceiling)",
            "changes by 34 > max_step 4",
        ],
        replicas=6,
        hint="allowed range for batch/qwen-7b: 2..16, at most +/-4 per action (from the current 6: 2..10)",
    ),
    Case("under-min", "scale_deployment", qwen(0), Decision.DENY, ["prod-bounds"], ["replicas 0 < min 2"]),
    Case(
        "step-too-big",
        "scale_deployment",
        qwen(12),
        Decision.DENY,
        ["prod-bounds"],
        ["replicas 6 -> 12 changes by 6 > max_step 4"],
        replicas=6,
        cost=6.0,
    ),
    Case(
        "scale-out-allowed",
        "scale_deployment",
        qwen(8),
        Decision.ALLOW,
        [
            "prod-bounds",
            "prod-cooldown",
            "prod-scale-in-window",
            "prod-guards",
            "prod-budget",
            "prod-scale-in-approval",
        ],
        replicas=6,
        cost=2.0,
    ),
    Case(
        "cooldown",
        "scale_deployment",
        qwen(8),
        Decision.DENY,
        ["prod-cooldown"],
        ["cooldown: batch/qwen-7b was changed 100 s ago (audit aud-100), cooldown 300 s"],
        replicas=6,
        cost=2.0,
        recent=[record("batch/qwen-7b", ago=100, args={"replicas": 6}, before=4)],
        hint="retry after 2026-11-24T10:03:20+00:00",
    ),
    Case(
        "cooldown-over",
        "scale_deployment",
        qwen(8),
        Decision.ALLOW,
        ["prod-cooldown"],
        replicas=6,
        cost=2.0,
        recent=[record("batch/qwen-7b", ago=400, args={"replicas": 6}, before=4)],
    ),
    Case(
        "cooldown-ignores-denied-and-other-pools",
        "scale_deployment",
        qwen(8),
        Decision.ALLOW,
        ["prod-cooldown"],
        replicas=6,
        cost=2.0,
        recent=[
            record("batch/qwen-7b", ago=10, args={"replicas": 60}, status=ActionStatus.DENIED),
            record("chat/llama-8b", ago=10, args={"replicas": 6}, before=4),
        ],
    ),
    Case(
        "scale-in-window",
        "scale_deployment",
        qwen(3),
        Decision.DENY,
        ["prod-scale-in-window"],
        ["scale-in of 2 plus 1 already removed exceeds max_scale_in 2 per 3600 s"],
        replicas=5,
        recent=[record("batch/qwen-7b", ago=900, args={"replicas": 5}, before=6)],
    ),
    Case(
        "kv-guard",
        "scale_deployment",
        qwen(5),
        Decision.DENY,
        ["prod-guards"],
        ["no scale-in while KV-cache usage 0.90 > 0.75"],
        replicas=6,
        kv=0.9,
    ),
    Case(
        "queue-guard",
        "scale_deployment",
        qwen(5),
        Decision.DENY,
        ["prod-guards"],
        ["no scale-in while queue 12.00 > 5"],
        replicas=6,
        queue=12.0,
    ),
    Case(
        "kv-unknown",
        "scale_deployment",
        qwen(5),
        Decision.DENY,
        ["prod-guards"],
        ["no scale-in while KV-cache usage is unknown"],
        replicas=6,
        kv=None,
    ),
    Case(
        "kv-high-but-scale-out",
        "scale_deployment",
        qwen(8),
        Decision.ALLOW,
        ["prod-guards"],
        replicas=6,
        kv=0.95,
        queue=30.0,
        cost=2.0,
    ),
    Case(
        "stale-data",
        "scale_deployment",
        qwen(8),
        Decision.DENY,
        ["prod-guards"],
        ["stale data: kv_usage is 120 s old > max_data_age_s 60"],
        replicas=6,
        age=120.0,
        cost=2.0,
    ),
    Case(
        "no-snapshot",
        "scale_deployment",
        qwen(8),
        Decision.DENY,
        ["prod-guards"],
        ["no live signals for batch/qwen-7b"],
        replicas=6,
        snapshot=False,
        cost=2.0,
    ),
    Case(
        "budget-per-action",
        "scale_deployment",
        qwen(8),
        Decision.DENY,
        ["prod-budget"],
        ["adds $11.00/h > max_added_usd_per_hour $10.00/h"],
        replicas=6,
        cost=11.0,
    ),
    Case(
        "budget-per-day",
        "scale_deployment",
        qwen(8),
        Decision.DENY,
        ["prod-budget"],
        ["adds $4.00/h on top of $9.00/h added in 24 h > max_added_usd_per_day $12.00/h"],
        replicas=6,
        cost=4.0,
        recent=[record("batch/qwen-7b", ago=7200, args={"replicas": 6}, before=4, cost=9.0)],
    ),
    Case(
        "budget-day-ignores-old",
        "scale_deployment",
        qwen(8),
        Decision.ALLOW,
        ["prod-budget"],
        replicas=6,
        cost=4.0,
        recent=[record("batch/qwen-7b", ago=90000, args={"replicas": 6}, before=4, cost=9.0)],
    ),
    Case(
        "cost-unknown",
        "scale_deployment",
        qwen(8),
        Decision.DENY,
        ["prod-budget"],
        ["cost of the action is unknown"],
        replicas=6,
        cost=None,
    ),
    Case(
        "max-gpus",
        "scale_deployment",
        {"namespace": "chat", "deployment": "llama-70b-decode", "replicas": 5},
        Decision.DENY,
        ["prod-budget"],
        ["requests 12 GPUs > max_gpus 8"],
        cost=1.0,
    ),
    Case(
        "scale-in-needs-approval",
        "scale_deployment",
        qwen(5),
        Decision.NEEDS_APPROVAL,
        ["prod-scale-in-approval"],
        [
            "rule 'prod-scale-in-approval': scale_deployment on batch/qwen-7b needs human approval via cli "
            "(production scale-in is reviewed)"
        ],
        replicas=6,
    ),
    Case(
        "patch-min-below-floor",
        "patch_hpa",
        {"namespace": "chat", "deployment": "llama-8b", "min_replicas": 1},
        Decision.DENY,
        ["prod-bounds"],
        ["min_replicas 1 < min 2"],
    ),
    Case(
        "patch-same-bounds-allowed",
        "patch_hpa",
        {"namespace": "chat", "deployment": "llama-8b", "min_replicas": 2, "max_replicas": 16},
        Decision.ALLOW,
        ["prod-bounds"],
    ),
    Case(
        "patch-lower-min-needs-approval",
        "patch_hpa",
        {"namespace": "chat", "deployment": "llama-8b", "min_replicas": 3},
        Decision.NEEDS_APPROVAL,
        ["prod-scale-in-approval"],
        ["patch_hpa on chat/llama-8b needs human approval"],
        owner_min=5,
    ),
    Case(
        "patch-lower-max-needs-approval",
        "patch_hpa",
        {"namespace": "chat", "deployment": "llama-8b", "max_replicas": 12},
        Decision.NEEDS_APPROVAL,
        ["prod-scale-in-approval"],
    ),
    Case(
        "patch-raise-max-too-far",
        "patch_hpa",
        {"namespace": "chat", "deployment": "llama-8b", "max_replicas": 22},
        Decision.DENY,
        ["prod-bounds"],
        ["max_replicas 22 > max 16", "max_replicas 16 -> 22 changes by 6"],
        cost=0.0,
    ),
    Case(
        "deny-effect-rule",
        "patch_hpa",
        {"namespace": "chat", "deployment": "llama-70b-decode", "max_replicas": 7},
        Decision.DENY,
        ["no-70b-autoscaler-edits"],
        [
            "rule 'no-70b-autoscaler-edits': patch_hpa on chat/llama-70b-decode is denied "
            "(the 70B pools are tuned"
        ],
        cost=0.0,
    ),
    Case(
        "freeze-window",
        "scale_deployment",
        {"namespace": "dev", "deployment": "granite-8b", "replicas": 2},
        Decision.DENY,
        ["friday-freeze"],
        ["denied during fri 16:00-24:00 (weekend change freeze)"],
        now=FRIDAY_17,
    ),
    Case(
        "before-freeze",
        "scale_deployment",
        {"namespace": "dev", "deployment": "granite-8b", "replicas": 2},
        Decision.ALLOW,
        ["dev-any"],
        now=FRIDAY_15,
    ),
    Case(
        "gpu-small-allowed",
        "request_gpu_nodes",
        {"node_pool": "gpu-l4", "gpus": 4},
        Decision.ALLOW,
        ["gpu-requests"],
        cost=4.0,
    ),
    Case(
        "gpu-costly-needs-approval",
        "request_gpu_nodes",
        {"node_pool": "gpu-h100", "gpus": 8},
        Decision.NEEDS_APPROVAL,
        ["gpu-requests"],
        ["needs human approval via elicitation or cli"],
        cost=55.0,
    ),
    Case(
        "gpu-too-many",
        "request_gpu_nodes",
        {"node_pool": "gpu-h100", "gpus": 64},
        Decision.DENY,
        ["gpu-requests"],
        ["requests 64 GPUs > max_gpus 16"],
        cost=440.0,
        hint="request at most 16 GPUs",
    ),
    Case(
        "default-deny",
        "scale_deployment",
        {"namespace": "staging", "deployment": "x", "replicas": 1},
        Decision.DENY,
        ["default-deny"],
        ["no rule of policy 'table' allows scale_deployment on staging/x"],
    ),
]


def make_ctx(case: Case, action_target: PoolRef | None, node_pool: str | None) -> PolicyContext:
    pool: PoolState | None = None
    if action_target is not None:
        pool = POOLS.get(action_target.key) or PoolState(
            ref=action_target, model="m", gpu_type="L4", desired_replicas=1, ready_replicas=1
        )
        if case.replicas is not None:
            pool = pool.model_copy(
                update={"desired_replicas": case.replicas, "ready_replicas": case.replicas}
            )
        if case.owner_min is not None and pool.autoscaler is not None:
            pool = pool.model_copy(
                update={"autoscaler": pool.autoscaler.model_copy(update={"min_replicas": case.owner_min})}
            )
    snap = snapshot_for(pool, kv=case.kv, queue=case.queue, age=case.age) if pool and case.snapshot else None
    return PolicyContext(
        pool=pool,
        node_pool=NODE_POOLS.get(node_pool or ""),
        snapshot=snap,
        now=case.now,
        recent=case.recent,
        cost_delta_per_hour=case.cost,
    )


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_evaluator_table(case: Case) -> None:
    action = action_from_call(case.tool, case.args, "table test", now=case.now)
    node_pool = case.args.get("node_pool")
    verdict = evaluate(POLICY, action, make_ctx(case, action.target, node_pool))
    assert verdict.decision == case.decision, verdict
    if case.decision == Decision.ALLOW:
        assert set(case.rules) <= set(verdict.rules), verdict
    else:
        assert verdict.rules == case.rules, verdict
    for text in case.says:
        assert any(text in r for r in verdict.reasons), (text, verdict.reasons)
    for reason in verdict.reasons:
        assert reason.startswith("rule '"), reason
    if case.hint:
        assert verdict.hint is not None and case.hint in verdict.hint, verdict.hint


def test_approval_lists_approvers() -> None:
    case = next(c for c in CASES if c.id == "scale-in-needs-approval")
    action = action_from_call(case.tool, case.args, "x", now=T0)
    assert evaluate(POLICY, action, make_ctx(case, action.target, None)).approvers == ["sre-oncall"]


def test_evaluate_is_pure() -> None:
    case = next(c for c in CASES if c.id == "cooldown")
    action = action_from_call(case.tool, case.args, "x", now=T0)
    ctx = make_ctx(case, action.target, None)
    before = ctx.model_dump()
    assert evaluate(POLICY, action, ctx) == evaluate(POLICY, action, ctx)
    assert ctx.model_dump() == before


def test_read_only_denies_every_tool() -> None:
    ro = builtin_policy("read-only")
    for tool, args in [
        ("scale_deployment", {"namespace": "dev", "deployment": "granite-8b", "replicas": 1}),
        ("patch_hpa", {"namespace": "chat", "deployment": "llama-8b", "max_replicas": 8}),
        ("request_gpu_nodes", {"node_pool": "gpu-l4", "gpus": 1}),
    ]:
        verdict = evaluate(ro, action_from_call(tool, args, "x"), PolicyContext(now=T0))
        assert verdict.decision == Decision.DENY and verdict.rules == ["tools"]
        assert "does not allow" in verdict.reasons[0]


def test_trace_names_decided_matched_unmatched_and_inactive() -> None:
    case = next(c for c in CASES if c.id == "kv-guard")
    action = action_from_call(case.tool, case.args, "x", now=T0)
    rows = {t.rule: t for t in trace(POLICY, action, make_ctx(case, action.target, None))}
    assert rows["prod-guards"].status == "decided"
    assert rows["prod-bounds"].status == "matched"
    assert rows["dev-any"].status == "not matched" and "namespace" in rows["dev-any"].detail
    assert rows["friday-freeze"].status == "inactive"


@pytest.mark.parametrize(
    ("window", "now", "inside"),
    [
        ({"hours": "22:00-06:00"}, datetime(2026, 11, 24, 23, 30, tzinfo=UTC), True),
        ({"hours": "22:00-06:00"}, datetime(2026, 11, 24, 5, 59, tzinfo=UTC), True),
        ({"hours": "22:00-06:00"}, datetime(2026, 11, 24, 6, 0, tzinfo=UTC), False),
        ({"weekdays": ["sat", "sun"]}, datetime(2026, 11, 28, 12, 0, tzinfo=UTC), True),
        ({"weekdays": ["sat", "sun"]}, datetime(2026, 11, 27, 12, 0, tzinfo=UTC), False),
        ({"cron": "* 9-17 * * 1-5"}, datetime(2026, 11, 24, 9, 15, tzinfo=UTC), True),
        ({"cron": "* 9-17 * * 1-5"}, datetime(2026, 11, 28, 9, 15, tzinfo=UTC), False),
        (
            {"cron": "* 9-17 * * 1-5", "timezone": "America/New_York"},
            datetime(2026, 11, 24, 9, 15, tzinfo=UTC),
            False,
        ),
        (
            {"start": "2026-12-20T00:00:00+01:00", "end": "2027-01-03T00:00:00+01:00"},
            datetime(2026, 12, 25, 12, 0, tzinfo=UTC),
            True,
        ),
        (
            {"start": "2026-12-20T00:00:00+01:00", "end": "2027-01-03T00:00:00+01:00"},
            datetime(2027, 1, 3, 12, 0, tzinfo=UTC),
            False,
        ),
    ],
)
def test_time_windows(window: dict[str, Any], now: datetime, inside: bool) -> None:
    from mcp_autoscale.policy import TimeWindow

    assert TimeWindow.model_validate(window).contains(now, "UTC") is inside


def test_slo_for_first_matching_rule() -> None:
    p = parse_policy(
        "version: 1\nrules:\n  - name: chat-slo\n    match: {namespaces: [chat]}\n"
        "    slo: {ttft_p90_s: 1.0}\n"
        "  - name: all\n    slo: {ttft_p90_s: 3.0, itl_p90_s: 0.2}\n",
        "<slo>",
    )
    chat = p.slo_for(PoolRef(namespace="chat", name="llama-8b"))
    other = p.slo_for(PoolRef(namespace="batch", name="qwen-7b"))
    assert chat is not None and chat.ttft_p90_s == 1.0 and chat.itl_p90_s == 0.1
    assert other is not None and other.ttft_p90_s == 3.0
    assert parse_policy("version: 1\n", "<none>").slo_for(PoolRef(namespace="a", name="b")) is None
