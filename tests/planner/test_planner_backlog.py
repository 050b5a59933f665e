"""Backlog-aware sizing: a saturated pool is sized for arrivals plus the projected backlog."""

from __future__ import annotations

import pytest
from test_planner_recommend import CAT, CFG, fleet, pool, state

from mcp_autoscale.planner import CapacityConfig, PoolSample, recommend
from mcp_autoscale.planner.backlog import arrival_rates, backlog_load, demand_rates, tokens_per_request


def _two(q_prev: float, q_now: float, dt: float = 30.0) -> list[PoolSample]:
    common = dict(ready_replicas=4, prompt_tps=2000.0, gen_tps=400.0, request_rps=2.0)
    return [
        PoolSample(t_s=0.0, queue_depth=q_prev, **common),  # type: ignore[arg-type]
        PoolSample(t_s=dt, queue_depth=q_now, **common),  # type: ignore[arg-type]
    ]


def test_backlog_load_hand_worked() -> None:
    # the queue grew 100 -> 160 in 30 s: 2 requests/s arrive that the pool does not serve; in the 300 s
    # until new replicas serve it grows to 160 + 2 x 300 = 760; draining that in 120 s adds 760 / 120
    # = 6.33 req/s, so the pool must serve 2 + 6.33 = 8.33 req/s more. At 2000 / 2 = 1000 prompt and
    # 400 / 2 = 200 output tokens per request: +8,333 prompt and +1,667 output tok/s.
    b = backlog_load(_two(100, 160), lead_s=300, drain_s=120, queue_min=20)
    assert b is not None
    assert b.growth_rps == pytest.approx(2.0)
    assert b.projected == pytest.approx(760.0)
    assert b.extra_rps == pytest.approx(2.0 + 760.0 / 120.0)
    assert b.extra_in_tps == pytest.approx(1000.0 * (2.0 + 760.0 / 120.0))
    assert b.extra_out_tps == pytest.approx(200.0 * (2.0 + 760.0 / 120.0))


def test_backlog_load_quiet_cases() -> None:
    assert backlog_load(_two(0, 10), 300, 120, queue_min=20) is None  # below the saturation limit
    assert backlog_load(_two(100, 160)[1:], 300, 120, queue_min=20) is None  # one sample: no growth
    assert backlog_load(_two(100, 160), 300, 0, queue_min=20) is None  # switched off
    shrinking = backlog_load(_two(200, 160), 300, 120, queue_min=20)
    assert shrinking is not None and shrinking.growth_rps == 0.0 and shrinking.projected == 160.0
    no_rate = _two(100, 160)
    no_rate[-1] = no_rate[-1].model_copy(update={"request_rps": 0.0})
    assert backlog_load(no_rate, 300, 120, queue_min=20) is None  # tokens per request unknown


def test_recommend_orders_for_the_arrivals_at_once_and_drains_with_what_arrives() -> None:
    cfg = CFG.model_copy(
        update={"capacities": {"chat/llama-8b": CapacityConfig(c_in_tps=2000, c_out_tps=400)}}
    )
    sig = dict(ttft_p90_s=6.0, itl_p90_s=0.05, kv_usage=0.6, queue_depth=280, running=60, request_rps=2.0)
    now = pool("chat/llama-8b", 4, **{**sig, "prompt_tps": 2000.0, "gen_tps": 400.0})  # type: ignore[arg-type]
    hist = _two(100, 280)
    st = state(now, cold_start_s=120)
    (with_backlog,) = recommend(fleet(now), [st], None, CAT, {"chat/llama-8b": hist}, cfg)
    off = cfg.model_copy(update={"backlog_drain_s": 0.0})
    (without,) = recommend(fleet(now), [st], None, CAT, {"chat/llama-8b": hist}, off)
    # without: the WVA queue rule asks for one more replica (5)
    assert without.replicas_target == 5
    # with: the queue grew 100 -> 280 in 30 s, 6 req/s the pool does not serve; at 1000 prompt and 200
    # output tokens per request the arrivals are 2000 + 6000 prompt tok/s: at C_in 2000 x U 0.75 that is
    # ceil(5.33) = 6 replicas, ordered at once (not one more per lead time)
    assert with_backlog.replicas_target == 6
    assert any("waiting, growing 6.0/s" in r for r in with_backlog.reasons)
    assert with_backlog.tool_call is not None and with_backlog.tool_call.arguments["min_replicas"] == 6
    # draining the projected backlog (280 + 6 x 300 s = 2080 requests in 120 s: +17.3 req/s) would need 17;
    # the replicas ordered for the arrivals drain it with their headroom, and extra replicas would arrive
    # no sooner, so the backlog may add at most backlog_max_over x the arrivals' replicas
    (wider,) = recommend(
        fleet(now),
        [st],
        None,
        CAT,
        {"chat/llama-8b": hist},
        cfg.model_copy(update={"backlog_max_over": 2.0}),
    )
    assert wider.replicas_target == 12
    (unbounded,) = recommend(
        fleet(now),
        [st],
        None,
        CAT,
        {"chat/llama-8b": hist},
        cfg.model_copy(update={"backlog_max_over": 5.0}),
    )
    assert unbounded.replicas_target == 17


def test_demand_leaves_out_a_drain_and_counts_a_growing_queue_as_arrivals() -> None:
    def s(t: float, q: float, tps: float) -> PoolSample:
        return PoolSample(
            t_s=t, ready_replicas=4, prompt_tps=tps, gen_tps=tps / 5, queue_depth=q, request_rps=tps / 1000
        )

    quiet = [s(30.0 * i, 0.0, 4000.0) for i in range(10)]  # 4 req/s of 1000 prompt + 200 output tokens
    grow = [s(300.0, 60.0, 4000.0), s(330.0, 120.0, 4000.0)]  # +2 req/s waiting
    drain = [s(360.0, 30.0, 9000.0), s(390.0, 0.0, 8000.0), s(420.0, 0.0, 6000.0)]
    after = [s(450.0 + 30.0 * i, 0.0, 4000.0) for i in range(4)]
    hist = quiet + grow + drain + after
    assert tokens_per_request(hist) == (1000.0, 200.0)
    got = {t: (a_in, a_out) for t, a_in, a_out in demand_rates(hist, 1000.0, 60.0, 1.0)}
    # growing: served 4000 + 2 req/s x 1000 tokens
    assert got[330.0] == (6000.0, 1200.0)
    # the drain (and the two rate windows after the queue emptied, whose rates still carry it) is left out
    assert not {360.0, 390.0, 420.0, 450.0, 480.0} & got.keys()
    assert got[510.0] == (4000.0, 800.0)
    # the served rate while draining is corrected down by what the queue gave back
    # (9000 - 3 req/s x 1000, 1800 - 3 x 200)
    assert arrival_rates(grow[1], drain[0], (1000.0, 200.0)) == (6000.0, 1200.0)
