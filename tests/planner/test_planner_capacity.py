"""Capacity model, saturation rules and forecast against hand-worked examples."""

from __future__ import annotations

import pytest

from mcp_autoscale.cost import load_catalogue
from mcp_autoscale.models import Role, SloTargets
from mcp_autoscale.planner import (
    CapacityConfig,
    PlannerConfig,
    PoolSample,
    analyse,
    breach_bound,
    estimate_capacity,
    holt_forecast,
    lead_time_s,
    learn_capacity,
    model_params_b,
    replicas_needed,
    resolve_capacity,
    stable_samples,
    weights_gb,
)

CAT = load_catalogue()
CFG = PlannerConfig()
SLO = SloTargets()


def test_replicas_needed_hand_worked() -> None:
    # 12k prompt tok/s over 4k x 0.75 = 4; 3k output tok/s over 1k x 0.75 = 4
    assert replicas_needed(12000, 3000, 4000, 1000, 0.75, 1) == 4
    assert replicas_needed(12000, 3100, 4000, 1000, 0.75, 1) == 5  # 3100 / 750 = 4.13
    assert replicas_needed(12000, 3000, 4000, 1000, 0.75, 6) == 6  # the floor wins
    assert replicas_needed(12001, None, 4000, None, 0.75, 1) == 5  # output term drops out
    assert replicas_needed(None, None, 4000, 1000, 0.75, 2) == 2
    assert replicas_needed(0.0, 0.0, 4000, 1000, 0.75, 0) == 0
    with pytest.raises(ValueError):
        replicas_needed(1, 1, 1, 1, 0.0, 1)


def test_model_size_from_name() -> None:
    assert model_params_b("meta-llama/Llama-3.1-8B-Instruct") == 8
    assert model_params_b("Qwen/Qwen2.5-7B-Instruct") == 7
    assert model_params_b("ibm-granite/granite-3.1-8b-instruct") == 8
    assert model_params_b("meta-llama/Llama-3.3-70B-Instruct") == 70
    assert model_params_b("mistralai/Mixtral-8x7B-Instruct-v0.1") == 56
    assert model_params_b("openai/gpt-oss-20b") == 20
    assert model_params_b("some/model") is None
    assert weights_gb("meta-llama/Llama-3.1-8B-Instruct") == 16
    assert weights_gb("RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic") == 70
    assert weights_gb("RedHatAI/Qwen2.5-7B-Instruct-quantized.w4a16") == 3.5


def test_roofline_capacity_prior() -> None:
    h100, l4 = CAT.gpu("H100"), CAT.gpu("L4")
    assert h100 is not None and l4 is not None
    c_in, c_out, _ = estimate_capacity("Llama-3.1-8B", h100, 1, SLO, CFG)
    # prefill: 0.5 x 989e12 / (2 x 8e9) = 30,906 tok/s (CALIBRATION §4: 25-35k)
    assert c_in == pytest.approx(0.5 * 989e12 / 16e9)
    # decode: t0 = 16e9 / (0.75 x 3350e9) = 6.37 ms; batch capped at 256 -> t = t0 (1 + 256/95)
    t0 = 16e9 / (0.75 * 3350e9)
    assert c_out == pytest.approx(256 / (t0 * (1 + 256 / 95)))
    # L4: t0 = 71.1 ms, the largest batch within 100 ms is 95 x (0.1 / t0 - 1) = 38.6 -> C_out = B / 0.1
    c_in, c_out, _ = estimate_capacity("Llama-3.1-8B", l4, 1, SLO, CFG)
    t0 = 16e9 / (0.75 * 300e9)
    assert c_out == pytest.approx(95 * (0.1 / t0 - 1) / 0.1)
    assert c_in == pytest.approx(0.5 * 121e12 / 16e9)
    # 70B does not fit one L4; an 8B cannot meet a 50 ms ITL on an L4 at all
    assert estimate_capacity("Llama-3.3-70B", l4, 1, SLO, CFG)[:2] == (None, None)
    _, c_out, note = estimate_capacity("Llama-3.1-8B", l4, 1, SloTargets(itl_p90_s=0.05), CFG)
    assert c_out is None and "ITL" in note


def _s(
    t: float, ready: int, pin: float, pout: float, ttft: float, itl: float, kv: float, q: float
) -> PoolSample:
    return PoolSample(
        t_s=t,
        ready_replicas=ready,
        prompt_tps=pin,
        gen_tps=pout,
        ttft_p90_s=ttft,
        itl_p90_s=itl,
        kv_usage=kv,
        queue_depth=q,
    )


def test_learn_capacity_uses_in_slo_samples_only() -> None:
    samples = [
        _s(0, 2, 2000, 500, 0.5, 0.03, 0.3, 0),  # 1000 / 250 per replica
        _s(60, 2, 4000, 1000, 1.2, 0.05, 0.6, 2),  # 2000 / 500 per replica, loaded
        _s(120, 2, 6000, 1500, 4.0, 0.09, 0.9, 30),  # TTFT breach: not counted
    ]
    c_in, c_out, lower = learn_capacity(samples, SLO, CFG)
    assert (c_in, c_out, lower) == (2000, 500, False)
    c_in, c_out, lower = learn_capacity(samples[:1], SLO, CFG)
    assert (c_in, c_out, lower) == (1000, 250, True)  # never loaded: only a lower bound
    assert learn_capacity(samples[2:], SLO, CFG) == (None, None, True)


def test_resolve_capacity_order_and_roles() -> None:
    cfg = PlannerConfig(capacities={"chat/a": CapacityConfig(c_in_tps=5000, c_out_tps=900)})
    conf = resolve_capacity("chat/a", "Llama-3.1-8B", "L4", 1, Role.UNIFIED, CAT, None, cfg)
    assert (conf.source, conf.c_in_tps, conf.c_out_tps) == ("configured", 5000, 900)
    pre = resolve_capacity("chat/a", "Llama-3.1-8B", "L4", 1, Role.PREFILL, CAT, None, cfg)
    assert pre.c_out_tps is None and pre.c_in_tps == 5000
    hist = [_s(0, 2, 4000, 1000, 1.2, 0.05, 0.6, 2)]
    learned = resolve_capacity("chat/b", "Llama-3.1-8B", "L4", 1, Role.DECODE, CAT, hist, CFG)
    assert (learned.source, learned.c_in_tps, learned.c_out_tps) == ("learned", None, 500)
    low = [_s(0, 2, 200, 50, 0.2, 0.03, 0.1, 0)]
    mixed = resolve_capacity("chat/b", "Llama-3.1-8B", "L4", 1, Role.UNIFIED, CAT, low, CFG)
    assert mixed.source == "learned+estimated" and mixed.c_in_tps == pytest.approx(0.5 * 121e12 / 16e9)
    est = resolve_capacity("chat/b", "Llama-3.1-8B", "L4", 1, Role.UNIFIED, CAT, None, CFG)
    assert est.source == "estimated"
    unknown = resolve_capacity("chat/b", "mystery", "TPU", 1, Role.UNIFIED, CAT, None, CFG)
    assert unknown.source == "unknown" and unknown.c_in_tps is None


def test_wva_saturation_rules() -> None:
    calm = analyse(4, 0.5, 4, CFG)  # 1 waiting/replica: spare KV 0.30, spare queue 4
    assert not calm.scale_up and not calm.saturated
    assert calm.scale_in_ok  # N-1: KV 0.667 (spare 0.133), queue 1.33 (spare 3.67)
    assert calm.replicas_for_margin == 3  # ceil(0.5 x 4 / 0.70) = 3, ceil(4 / 2) = 2
    warm = analyse(4, 0.55, 0, CFG)  # N-1: KV 0.733 -> spare 0.067 < 0.10
    assert not warm.scale_up and not warm.scale_in_ok
    hot_kv = analyse(4, 0.75, 0, CFG)  # spare KV 0.05 < 0.10
    assert hot_kv.scale_up and not hot_kv.saturated
    assert hot_kv.replicas_for_margin == 5  # ceil(0.75 x 4 / 0.70) = ceil(4.29)
    queued = analyse(4, 0.4, 14, CFG)  # 3.5 waiting/replica -> spare 1.5 < 3
    assert queued.scale_up and queued.replicas_for_margin == 5  # one more replica per decision (WVA step)
    full = analyse(2, 0.85, 12, CFG)
    assert full.saturated and full.scale_up
    blind = analyse(3, None, None, CFG)
    assert not blind.scale_up and not blind.scale_in_ok
    empty = analyse(0, None, 3, CFG)
    assert empty.scale_up and empty.replicas_for_margin == 1


def test_holt_forecast_extrapolates_a_ramp() -> None:
    times = [60.0 * i for i in range(10)]
    values = [1000 + 10 * t for t in times]  # +10 tok/s per second
    assert holt_forecast(times, values, 240) == pytest.approx(1000 + 10 * (540 + 240))
    flat = holt_forecast(times, [500.0] * 10, 600)
    assert flat == pytest.approx(500.0)
    falling = holt_forecast(times, [1000 - 2 * t for t in times], 10_000)
    assert falling == 0.0  # never negative
    assert holt_forecast([0.0], [1.0], 60) is None
    assert lead_time_s(90, 120) == 210


def _load(t: float, ready: int, out_per_replica: float, itl: float, rps: float = 5.0) -> PoolSample:
    return PoolSample(
        t_s=t,
        ready_replicas=ready,
        prompt_tps=6 * out_per_replica * ready,
        gen_tps=out_per_replica * ready,
        ttft_p90_s=0.5,
        itl_p90_s=itl,
        kv_usage=0.4,
        queue_depth=0,
        request_rps=rps,
    )


def test_stable_samples_skip_the_rate_window_after_a_replica_change() -> None:
    hist = [_load(30.0 * i, 4 if i < 4 else 5, 200, 0.05) for i in range(8)]
    # ready 4 from t=0, 5 from t=120: stable once 60 s have passed since each change
    assert [s.t_s for s in stable_samples(hist, 60.0)] == [60.0, 90.0, 180.0, 210.0]


def test_breach_bound_is_where_breaches_begin() -> None:
    good = [_load(30.0 * i, 4, 150 + 10 * (i % 10), 0.06) for i in range(40)]  # 150-240 within SLO
    bad = [_load(1200.0 + 30.0 * i, 4, 300 + 10 * i, 0.12) for i in range(1, 11)]  # 310-400 over ITL
    cfg = CFG.model_copy(update={"breach_quantile": 0.1})
    b_in, b_out = breach_bound(good + bad, SLO, cfg)
    assert b_out == 310 and b_in == 6 * 310  # the 10th percentile of 10 breach loads = the lowest
    assert breach_bound(good + bad[:2], SLO, cfg) == (None, None)  # fewer than 3: not evidence yet
    thin = [s.model_copy(update={"request_rps": 0.2}) for s in bad]  # 12 requests/min behind each p90
    assert breach_bound(good + thin, SLO, cfg) == (None, None)


def test_capacity_never_ratchets_below_the_evidence() -> None:
    # a planner that held the pool at <= 240 tok/s/replica, never breaching: the learned p95 is only a
    # floor, so C is the roofline prior (386 output tok/s on an L4), not 240
    calm = [_load(30.0 * i, 4, 150 + 10 * (i % 10), 0.06) for i in range(40)]
    cap = resolve_capacity("chat/x", "Llama-3.1-8B", "L4", 1, Role.DECODE, CAT, calm, CFG)
    t0 = 16e9 / (0.75 * 300e9)
    assert cap.c_out_tps == pytest.approx(95 * (0.1 / t0 - 1) / 0.1) and cap.source == "learned+estimated"
    # breaches from 300 tok/s/replica pull it down to where they begin, never below what held the SLO
    bad = [_load(1200.0 + 30.0 * i, 4, 290 + 10 * i, 0.12) for i in range(1, 11)]
    cap = resolve_capacity("chat/x", "Llama-3.1-8B", "L4", 1, Role.DECODE, CAT, calm + bad, CFG)
    assert cap.c_out_tps == 300 and cap.source == "learned" and "breaches from 300" in (cap.note or "")
    early = [_load(1200.0 + 30.0 * i, 4, 200 + i, 0.12) for i in range(1, 11)]  # breaches at 201-210
    cap = resolve_capacity("chat/x", "Llama-3.1-8B", "L4", 1, Role.DECODE, CAT, calm + early, CFG)
    assert cap.c_out_tps == 240  # the p95 of loads that stayed within SLO is the floor


def test_holt_trend_starts_from_the_window_slope_not_one_noisy_step() -> None:
    times = [30.0 * i for i in range(20)]
    noisy = [1000.0 + (200.0 if i == 1 else 0.0) for i in range(20)]  # one spike right after the start
    # a first-difference start would carry +6.7 tok/s per second into the forecast 450 s ahead
    assert holt_forecast(times, noisy, 450, 0.3, 0.1) == pytest.approx(1000.0, abs=25.0)
