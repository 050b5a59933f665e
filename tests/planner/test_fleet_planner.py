"""The fleet planner's maths, worked by hand: pooled warm capacity, batch yielding, policy-forbidden trades."""

from __future__ import annotations

import math

import pytest

from mcp_autoscale.planner.fleet import (
    FleetPolicy,
    PoolClaim,
    allocate,
    batch_minimum,
    burst_excess,
    drain_seconds,
    pooled_headroom,
)


def test_burst_excess_is_the_rise_within_one_lead_time() -> None:
    # need 1,1,3,1 with a lead of one step: at t=1 the pool needs 2 more GPUs within the lead
    assert burst_excess([1, 1, 3, 1], 1).tolist() == [0.0, 2.0, 0.0]
    assert burst_excess([1, 2], 5).tolist() == []


def test_two_pools_with_disjoint_bursts_share_one_warm_node() -> None:
    # chat bursts by one GPU at step 2, search at step 5: each alone must hold 1 warm GPU (2 in all);
    # their summed excess never exceeds 1, so one warm node covers both
    chat = burst_excess([1, 1, 2, 1, 1, 1, 1, 1], 1)
    search = burst_excess([1, 1, 1, 1, 1, 2, 1, 1], 1)
    h = pooled_headroom("gpu-l4", {"chat/a": chat, "search/b": search}, quantile=1.0)
    assert h.per_pool_gpus == {"chat/a": 1, "search/b": 1}
    assert h.sum_per_pool == 2
    assert h.pooled_gpus == 1
    # bursts that coincide do not pool: the sum needs 2
    both = pooled_headroom("gpu-l4", {"chat/a": chat, "search/b": chat}, quantile=1.0)
    assert both.pooled_gpus == 2


def _claims() -> list[PoolClaim]:
    # L4 pool limit 8. chat breaches: holds 3, wants 6. batch holds 5 with 1,800 requests waiting,
    # arrives at 0.5 req/s, one GPU serves 0.5 req/s.
    return [
        PoolClaim("chat/assistant", "interactive", floor=1, gpus_now=3, want=6),
        PoolClaim(
            "batch/summarise",
            "batch",
            floor=1,
            gpus_now=5,
            want=5,
            backlog=1800.0,
            arrival_rps=0.5,
            per_gpu_rps=0.5,
        ),
    ]


def test_batch_pool_yields_to_an_interactive_breach_and_catches_up_by_its_deadline() -> None:
    policy = FleetPolicy(batch_deadline_s=3600.0)
    chat, batch = _claims()
    # to drain 1,800 waiting + 0.5 req/s x 3,600 s = 3,600 requests in 3,600 s at 0.5 req/s per GPU: 2 GPUs
    assert batch_minimum(batch, 3600.0) == 2
    alloc = allocate(8, [chat, batch], policy)
    assert alloc.grants == {"chat/assistant": 6, "batch/summarise": 2}
    assert alloc.unmet == {"batch/summarise": 3}
    (trade,) = alloc.trades
    assert (trade.giver, trade.taker, trade.gpus) == ("batch/summarise", "chat/assistant", 3)
    # 3 GPUs x ($40 - $4) per GPU-hour of breach
    assert trade.usd_per_h_saved == pytest.approx(108.0)
    # on 2 GPUs the backlog drains at 2 x 0.5 - 0.5 = 0.5 req/s: 1,800 / 0.5 = 3,600 s, within the deadline
    assert trade.giver_drains_in_s == pytest.approx(3600.0)
    assert trade.giver_drains_in_s <= policy.batch_deadline_s
    # one GPU less and it never would: the deadline minimum is what makes it catch up
    assert drain_seconds(batch, 1) == math.inf
    assert "move 3 L4 from batch/summarise to chat/assistant: saves $108.00/h" in trade.sentence("L4")


def test_a_tighter_deadline_keeps_more_gpus_with_the_batch_pool() -> None:
    chat, batch = _claims()
    # 1,800 + 0.5 x 1,800 = 2,700 requests in 1,800 s at 0.5 req/s per GPU: 3 GPUs, so chat gets 5
    alloc = allocate(8, [chat, batch], FleetPolicy(batch_deadline_s=1800.0))
    assert alloc.grants == {"chat/assistant": 5, "batch/summarise": 3}
    assert alloc.unmet == {"chat/assistant": 1, "batch/summarise": 2}


def test_the_policy_can_forbid_a_trade() -> None:
    chat, batch = _claims()
    for policy in (FleetPolicy(allow_trades=False), FleetPolicy(protected=["batch/summarise"])):
        alloc = allocate(8, [chat, batch], policy)
        assert alloc.grants == {"chat/assistant": 3, "batch/summarise": 5}
        assert alloc.trades == []
        assert alloc.unmet == {"chat/assistant": 3}


def test_interactive_pools_share_by_breach_cost_and_no_trade_when_the_limit_does_not_bind() -> None:
    a = PoolClaim("chat/a", "interactive", floor=1, gpus_now=2, want=4)
    b = PoolClaim("batch/b", "batch", floor=1, gpus_now=2, want=2)
    alloc = allocate(10, [a, b], FleetPolicy())
    assert alloc.grants == {"chat/a": 4, "batch/b": 2}
    assert alloc.trades == [] and alloc.unmet == {}


def test_a_pool_scaling_in_by_itself_is_no_giver() -> None:
    # chat shrinks from 6 to 2 on its own while batch takes the room: nothing was traded away
    a = PoolClaim("chat/a", "interactive", floor=1, gpus_now=6, want=2)
    b = PoolClaim("batch/b", "batch", floor=1, gpus_now=2, want=8)
    alloc = allocate(8, [a, b], FleetPolicy())
    assert alloc.grants == {"chat/a": 2, "batch/b": 6}
    assert alloc.trades == []
