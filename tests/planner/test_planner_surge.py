"""The surge knobs (issue 14), each hand-worked: C_out from the pool's fitted ITL curve, no trend from a
step's edge, and no KEDA band on top of a backlog's target. All three are off by default."""

from __future__ import annotations

import pytest
from test_planner_backlog import _two
from test_planner_recommend import CAT, CFG, fleet, pool, state

from mcp_autoscale.models import Role
from mcp_autoscale.planner import CapacityConfig, PlannerConfig, PoolSample, recommend, resolve_capacity
from mcp_autoscale.planner.backlog import scale_in_window
from mcp_autoscale.planner.capacity import latency_bound
from mcp_autoscale.planner.forecast import sudden_rise


def _curve(offsets: tuple[float, ...] = (0.0,)) -> list[PoolSample]:
    """Four replicas at 100-250 output tok/s each whose ITL follows 1/ITL = 26 - 0.06 r (t0 = 38 ms,
    the SLO of 100 ms met at r = (26 - 10) / 0.06 = 266.7), each load once per offset of 1/ITL. Two
    samples first at the lowest load: the ready count must hold one rate window before a sample counts."""
    out: list[PoolSample] = []
    loads = [100.0, 100.0] + [100.0 + 10.0 * i for i in range(16)]
    for i, r in enumerate(loads):
        for off in offsets if i >= 2 else (0.0,):
            out.append(
                PoolSample(
                    t_s=30.0 * len(out),
                    ready_replicas=4,
                    prompt_tps=5.0 * 4 * r,
                    gen_tps=4 * r,
                    ttft_p90_s=0.4,
                    itl_p90_s=1.0 / (26.0 - 0.06 * r + off),
                    queue_depth=0.0,
                    request_rps=2.0,
                )
            )
    return out


def test_latency_bound_hand_worked() -> None:
    cfg = PlannerConfig(latency_min_samples=10, latency_fit_sd=1.0)
    # on the curve exactly: no scatter, where the line meets 1 / 0.1 s = 10
    assert latency_bound(_curve(), cfg.slo, cfg) == pytest.approx(16.0 / 0.06)
    # each load seen 0.5 faster and 0.5 slower (in 1/ITL): the same line, scatter 0.5; one standard
    # deviation slower, the SLO is met at (26 - 0.5 - 10) / 0.06 = 258.3
    assert latency_bound(_curve((0.5, -0.5)), cfg.slo, cfg) == pytest.approx(15.5 / 0.06)
    # off by default, and silent until enough quiet samples span enough load
    assert latency_bound(_curve(), PlannerConfig().slo, PlannerConfig()) is None
    assert latency_bound(_curve()[:8], cfg.slo, cfg) is None
    narrow = cfg.model_copy(update={"latency_min_spread": 3.0})  # 250 / 100 = 2.5 < 3
    assert latency_bound(_curve(), cfg.slo, narrow) is None
    # samples with a backlog (a saturated batch) are not on the curve
    queued = [s.model_copy(update={"queue_depth": 40.0}) for s in _curve()]
    assert latency_bound(queued, cfg.slo, cfg) is None


def test_the_fitted_curve_bounds_c_out_below_the_roofline_prior() -> None:
    # Llama-3.1-8B on an L4: the roofline prior is ~386 output tok/s; every sample stayed within SLO, so
    # no breach bounds it. With the fit on, C_out = max(learned p95 = 250, min(386, 266.7)) = 266.7
    on = PlannerConfig(latency_min_samples=10, latency_fit_sd=0.0)
    args = ("chat/llama-8b", "meta-llama/Llama-3.1-8B-Instruct", "L4", 1, Role.UNIFIED, CAT, _curve())
    cap = resolve_capacity(*args, on)  # type: ignore[arg-type]
    assert cap.c_out_tps == pytest.approx(16.0 / 0.06)
    assert cap.note is not None and "fitted ITL curve" in cap.note
    prior = resolve_capacity(*args, PlannerConfig())  # type: ignore[arg-type]
    assert prior.c_out_tps is not None and prior.c_out_tps > 380


def test_sudden_rise_hand_worked() -> None:
    t = [0.0, 30.0, 60.0, 90.0]
    assert sudden_rise(t, [100.0, 100.0, 100.0, 160.0], 300.0, 1.5)  # 160 >= 1.5 x 100
    assert not sudden_rise(t, [100.0, 110.0, 125.0, 140.0], 300.0, 1.5)  # a ramp: 140 < 150
    # the low value is older than the window: the rise is history, not an edge
    assert not sudden_rise([0.0, 400.0, 430.0], [100.0, 160.0, 160.0], 300.0, 1.5)
    assert not sudden_rise(t[:1], [100.0], 300.0, 1.5)  # one sample says nothing


def test_no_band_on_top_of_a_backlog_target() -> None:
    # the backlog scenario of test_planner_backlog: the queue grew 100 -> 280 in 30 s, arrivals need 6
    cfg = CFG.model_copy(
        update={
            "capacities": {"chat/llama-8b": CapacityConfig(c_in_tps=2000, c_out_tps=400)},
            "owner_max": {"chat/llama-8b": 16},
            "owner_max_band": 1.3,
        }
    )
    sig = dict(ttft_p90_s=6.0, itl_p90_s=0.05, kv_usage=0.6, queue_depth=280, running=60, request_rps=2.0)
    now = pool("chat/llama-8b", 4, **{**sig, "prompt_tps": 2000.0, "gen_tps": 400.0})  # type: ignore[arg-type]
    st = state(now, cold_start_s=120)
    hist = {"chat/llama-8b": _two(100, 280)}
    (banded,) = recommend(fleet(now), [st], None, CAT, hist, cfg)
    (bare,) = recommend(
        fleet(now), [st], None, CAT, hist, cfg.model_copy(update={"owner_max_band_surge": 1.0})
    )
    assert banded.tool_call is not None and bare.tool_call is not None
    # min 6 either way; KEDA's max ceil(1.3 x 6) = 8 with the band, 6 without: its queue rule (280
    # waiting / 5 per replica = 56) would fill whatever band it is given
    assert banded.tool_call.arguments["min_replicas"] == bare.tool_call.arguments["min_replicas"] == 6
    assert banded.tool_call.arguments["max_replicas"] == 8
    assert bare.tool_call.arguments["max_replicas"] == 6


def test_scale_in_window_shrinks_only_after_a_clean_drop() -> None:
    # 30 s samples over 600 s: 12 at 900 prompt / 180 output tok/s, then 8 at 500 / 100 (a drop of x1.8)
    high = [(30.0 * i, 900.0, 180.0) for i in range(12)]
    low = [(360.0 + 30.0 * i, 500.0, 100.0) for i in range(8)]
    last = low[-1][0]
    # the last 180 s (7 samples) stay at <= 1/1.5 of the earlier peak on both dimensions: look back 180 s
    assert scale_in_window(high + low, last, 600.0, 180.0, 1.5) == 180.0
    # a wobble: 650 x 1.5 = 975 > 900 on the prompt side, the window stays whole
    wobble = [*high, *low[:-1], (last, 650.0, 100.0)]
    assert scale_in_window(wobble, last, 600.0, 180.0, 1.5) == 600.0
    # fewer than 3 demand samples in the last 180 s (the rest were draining a backlog): whole window
    assert scale_in_window(high + low[-2:], last, 600.0, 180.0, 1.5) == 600.0
    assert scale_in_window(high + low, last, 600.0, 0.0, 1.5) == 600.0  # off


def test_fitted_curve_as_a_rest_floor_only() -> None:
    # the history of _curve (C_out fit 266.7, roofline prior ~386), now 6 replicas serving 1,000 output
    # tok/s (KV 0.2, no queue): at U 0.75 the prior needs ceil(1000 / 289.5) = 4, the fit ceil(1000 / 200) = 5
    now = pool(
        "chat/llama-8b",
        6,
        ttft_p90_s=0.4,
        itl_p90_s=0.05,
        kv_usage=0.2,
        queue_depth=0,
        running=20,
        prompt_tps=3000,
        gen_tps=1000,
        request_rps=5.0,
    )
    curve = _curve()
    flat = [
        s.model_copy(update={"t_s": curve[-1].t_s + 30.0 * (i + 1)}) for i, s in enumerate([curve[-1]] * 20)
    ]
    hist = {"chat/llama-8b": curve + flat}  # then 10 minutes at 250 per replica: no trend to forecast
    on = CFG.model_copy(update={"latency_min_samples": 10, "latency_fit_sd": 0.0})
    floor_only = on.model_copy(update={"latency_bound_scale_in_only": True})
    (off_rec,) = recommend(fleet(now), [state(now)], None, CAT, hist, CFG)
    (on_rec,) = recommend(fleet(now), [state(now)], None, CAT, hist, on)
    (floor_rec,) = recommend(fleet(now), [state(now)], None, CAT, hist, floor_only)
    assert off_rec.replicas_target == 4  # the prior: scale in to 4
    assert on_rec.replicas_target == 5  # the fit everywhere: scale in to 5 only
    assert floor_rec.replicas_target == 5  # the fit as the rest floor: the same
    # at 4 replicas, the same load would make the fit order a fifth; as a rest floor it orders nothing
    four = now.model_copy(update={"replicas": {"desired": 4, "ready": 4, "starting": 0, "pending": 0}})
    (on4,) = recommend(fleet(four), [state(four)], None, CAT, hist, on)
    (floor4,) = recommend(fleet(four), [state(four)], None, CAT, hist, floor_only)
    assert on4.replicas_target == 5
    assert floor4.replicas_target == 4
