"""Backlog-aware sizing: a saturated pool is sized for arrivals plus the projected backlog."""

from __future__ import annotations

import pytest
from test_planner_recommend import CAT, CFG, fleet, pool, state

from mcp_autoscale.planner import CapacityConfig, PoolSample, recommend
from mcp_autoscale.planner.backlog import backlog_load


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


def test_recommend_orders_for_the_projected_backlog_not_one_step_at_a_time() -> None:
    cfg = CFG.model_copy(
        update={"capacities": {"chat/llama-8b": CapacityConfig(c_in_tps=2000, c_out_tps=400)}}
    )
    sig = dict(ttft_p90_s=6.0, itl_p90_s=0.05, kv_usage=0.6, queue_depth=160, running=60, request_rps=2.0)
    now = pool("chat/llama-8b", 4, **{**sig, "prompt_tps": 2000.0, "gen_tps": 400.0})  # type: ignore[arg-type]
    hist = _two(100, 160)
    st = state(now, cold_start_s=120)
    (with_backlog,) = recommend(fleet(now), [st], None, CAT, {"chat/llama-8b": hist}, cfg)
    off = cfg.model_copy(update={"backlog_drain_s": 0.0})
    (without,) = recommend(fleet(now), [st], None, CAT, {"chat/llama-8b": hist}, off)
    # without: the WVA queue rule asks for one more replica (5)
    assert without.replicas_target == 5
    # with: gpu-l4 is full, so new replicas serve after 120 s cold start + 180 s node = 300 s (the hand-
    # worked example above): 2000 + 8333 prompt tok/s at C_in 2000 x U 0.75 -> ceil(6.9) = 7 replicas
    assert with_backlog.replicas_target == 7
    assert any("waiting, growing 2.0/s" in r for r in with_backlog.reasons)
    assert with_backlog.tool_call is not None and with_backlog.tool_call.arguments["min_replicas"] == 7
