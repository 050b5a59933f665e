"""Issue 13, item 4: a ``patch_hpa`` is judged by its effect (replicas and GPUs it forces, what it permits).

Pools (governance_fakes): chat/llama-8b KEDA min 2 max 16 at 4 replicas, 1 GPU each; chat/llama-70b-prefill
HPA min 1 max 4 at 2 replicas, 4 GPUs each; chat/llama-70b-decode KEDA min 1 max 6 at 2 replicas, 4 GPUs.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from governance_fakes import T0, default_pools, snapshot_for

from mcp_autoscale.actions import action_from_call
from mcp_autoscale.models import ActionStatus, AuditRecord, Decision, PoolState, Verdict
from mcp_autoscale.policy import PolicyContext, evaluate, parse_policy
from mcp_autoscale.policy.effect import patch_effect

POOLS = {p.ref.key: p for p in default_pools()}


def policy(extra: str) -> Any:
    return parse_policy(
        "version: 1\ntools: [patch_hpa]\nnamespaces: [chat]\nrules:\n"
        "  - name: chat\n    match: {namespaces: [chat]}\n" + extra,
        "<t>",
    )


def judge(
    extra: str,
    pool: str,
    *,
    kv: float = 0.4,
    recent: list[AuditRecord] | None = None,
    was_paused: bool = False,
    **patch: Any,
) -> Verdict:
    ns, name = pool.split("/")
    state: PoolState = POOLS[pool]
    if was_paused:
        assert state.autoscaler is not None
        state = state.model_copy(update={"autoscaler": state.autoscaler.model_copy(update={"paused": True})})
    action = action_from_call("patch_hpa", {"namespace": ns, "deployment": name, **patch}, "r")
    ctx = PolicyContext(pool=state, snapshot=snapshot_for(state, kv=kv), now=T0, recent=recent or [])
    return evaluate(policy(extra), action, ctx)


GUARDS = "    guards: {max_kv_for_scale_in: 0.75, max_queue_for_scale_in: 5}\n"


def test_lowering_min_while_raising_max_meets_the_scale_in_guards() -> None:
    v = judge(GUARDS, "chat/llama-8b", kv=0.9, min_replicas=0, max_replicas=20)
    assert v.decision == Decision.DENY and "no scale-in while KV-cache usage 0.90" in v.reasons[0]
    assert judge(GUARDS, "chat/llama-8b", kv=0.3, min_replicas=0, max_replicas=20).decision == Decision.ALLOW


def test_pausing_counts_as_scale_in_for_the_guards() -> None:
    v = judge(GUARDS, "chat/llama-8b", kv=0.9, paused=True)
    assert v.decision == Decision.DENY and "no scale-in while KV-cache usage" in v.reasons[0]
    unpause = judge(GUARDS, "chat/llama-8b", kv=0.9, was_paused=True, paused=False)
    assert unpause.decision == Decision.DENY  # the autoscaler resumes and may scale in at once


def test_lowering_max_below_the_current_count_is_a_scale_in() -> None:
    limit = "    max_scale_in: {replicas: 0, window_s: 3600}\n"
    v = judge(limit, "chat/llama-70b-prefill", max_replicas=1)  # forces 2 -> 1
    assert v.decision == Decision.DENY and "scale-in of 1" in v.reasons[0]
    # a lower ceiling still above the current count forces nothing: no replica is removed
    assert judge(limit, "chat/llama-70b-prefill", max_replicas=3).decision == Decision.ALLOW


def test_an_applied_lower_ceiling_counts_against_max_scale_in_later() -> None:
    limit = "    max_scale_in: {replicas: 1, window_s: 3600}\n"
    done = applied("chat/llama-70b-prefill", 10).model_copy(
        update={
            "arguments": {"namespace": "chat", "deployment": "llama-70b-prefill", "max_replicas": 1},
            "inverse": {"tool": "patch_hpa", "arguments": {"max_replicas": 4}},
            "evidence": {"replicas": {"desired": 2}},
        }
    )
    v = judge(limit, "chat/llama-70b-prefill", recent=[done], max_replicas=1)  # 2 -> 1 again
    assert v.decision == Decision.DENY and "plus 1 already removed" in v.reasons[0]


def test_max_gpus_counts_the_gpus_a_patch_forces_now() -> None:
    budget = "    budget: {max_gpus: 4}\n"
    forced = judge(budget, "chat/llama-70b-decode", min_replicas=5)  # 2 -> 5 replicas: +12 GPUs now
    assert forced.decision == Decision.DENY and "requests 12 GPUs > max_gpus 4" in forced.reasons[0]
    permits = judge(budget, "chat/llama-70b-decode", max_replicas=8)  # a higher ceiling forces nothing
    assert permits.decision == Decision.ALLOW, permits.reasons


def applied(target: str, minutes_ago: int) -> AuditRecord:
    return AuditRecord(
        id="aud-1",
        seq=1,
        dry_run=False,
        ts=T0 - timedelta(minutes=minutes_ago),
        action_id="act-1",
        tool="patch_hpa",
        target=target,
        arguments={},
        rationale="earlier",
        caller="a",
        verdict=Verdict(decision=Decision.ALLOW),
        status=ActionStatus.APPLIED,
    )


def test_a_stabilisation_window_patch_is_a_change_like_any_other() -> None:
    cooldown = "    cooldown_s: 300\n"
    recent = [applied("chat/llama-8b", 2)]
    v = judge(cooldown, "chat/llama-8b", recent=recent, scale_down_stabilization_s=0)
    assert v.decision == Decision.DENY and "cooldown" in v.reasons[0]
    v = judge(cooldown, "chat/llama-8b", recent=recent, scale_up_stabilization_s=600)
    assert v.decision == Decision.DENY and "cooldown" in v.reasons[0]
    guarded = judge(GUARDS, "chat/llama-8b", kv=0.9, scale_down_stabilization_s=0)
    assert guarded.decision == Decision.DENY and "no scale-in" in guarded.reasons[0]
    approval = "  - name: review\n    effect: limit\n    match: {namespaces: [chat]}\n"
    approval += "    approval: {when: scale_in, via: [cli]}\n"
    asked = judge(approval, "chat/llama-8b", scale_down_stabilization_s=0)
    assert asked.decision == Decision.NEEDS_APPROVAL, asked.reasons


def test_the_effect_of_each_kind_of_patch() -> None:
    from mcp_autoscale.models import AutoscalerPatch

    pool = POOLS["chat/llama-70b-decode"]  # min 1, max 6, at 2
    owner = pool.autoscaler
    assert owner is not None
    e = patch_effect(pool, owner, AutoscalerPatch(min_replicas=5))
    assert (e.forced, e.forced_out, e.lowers, e.raises) == (5, 3, False, True)
    e = patch_effect(pool, owner, AutoscalerPatch(max_replicas=1))
    assert (e.forced, e.forced_in, e.scale_in, e.lowers) == (1, 1, 1, True)
    e = patch_effect(pool, owner, AutoscalerPatch(paused=True, max_replicas=1))
    assert (e.forced, e.lowers) == (2, True)  # KEDA pause holds the count
    e = patch_effect(pool, owner, AutoscalerPatch(min_replicas=1, max_replicas=6))
    assert not e.changes  # the same bounds again change nothing
