"""The periodic model: a period is found after two periods (not before, not in a trend or noise), its
outlook says what comes next, and the planner pre-scales before the next on phase and releases capacity
while the off phase lasts longer than its lead time."""

from __future__ import annotations

import numpy as np
from test_planner_recommend import CAT, CFG, fleet, pool, state

from mcp_autoscale.planner import CapacityConfig, PoolSample, recommend
from mcp_autoscale.planner.seasonality import MinuteDemand, autocorrelation, detect_period, outlook


def _onoff(minutes: int, period: int, on: int, hi: float, lo: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(minutes)
    base = np.where(t % period < on, hi, lo)
    return np.asarray(base * rng.lognormal(0.0, 0.15, minutes))


def _demand(x: np.ndarray, out_per_in: float = 0.15) -> MinuteDemand:
    d = MinuteDemand()
    for v in x:
        d.add(float(v), float(v) * out_per_in)
    return d


def test_autocorrelation_of_a_square_wave_hand_worked() -> None:
    # period 4, half on: lag 2 is exactly opposite (-1), lag 4 identical (+1)
    x = np.array([1.0, 1.0, 0.0, 0.0] * 8)
    acf = autocorrelation(x, 4)
    assert acf[0] == 1.0
    assert acf[2] == -1.0
    assert acf[4] == 1.0


def test_period_detected_after_two_periods_not_before() -> None:
    x = _onoff(100, period=15, on=6, hi=12000.0, lo=1000.0)
    assert detect_period(x[:22]) is None  # not even 1.5 periods
    assert detect_period(x[:29]) is None  # short of two whole periods
    found = detect_period(x[:30])
    assert found is not None and found[0] == 15 and found[1] > 0.8
    assert detect_period(x)[0] == 15  # type: ignore[index]  # its multiples (30, 45) are not picked


def test_no_period_in_a_ramp_a_step_or_noise() -> None:
    rng = np.random.default_rng(3)
    noise = rng.lognormal(0.0, 0.25, 240)
    assert detect_period(np.linspace(1000, 12000, 240) * noise) is None
    assert detect_period(np.where(np.arange(240) < 100, 2000.0, 9000.0) * noise) is None
    assert detect_period(5000.0 * noise) is None


def test_outlook_sees_the_next_on_phase_coming() -> None:
    # 3 periods of 20 min (6 on at 12k, 14 off at 1k); now is minute 60 + 10, 4 minutes off the next on
    x = _onoff(70, period=20, on=6, hi=12000.0, lo=1000.0)
    look = outlook(_demand(x[:70]), 12)
    assert look is not None and look.period_min == 20 and look.error < 0.3
    soon_in, _ = look.peak(2.0)
    later_in, later_out = look.peak(12.0)
    assert soon_in < 2000.0  # the next two minutes stay off
    assert 9000.0 < later_in < 16000.0  # the on phase is within 12 minutes
    assert later_out == later_in * 0.15 or abs(later_out / later_in - 0.15) < 0.02


def _cfg() -> object:
    return CFG.model_copy(
        update={
            "capacities": {"chat/llama-8b": CapacityConfig(c_in_tps=1500, c_out_tps=270)},
            "target_utilisation": 0.65,
        }
    )


def _history(now_s: float, recent_in: float, peak_in: float, ready: int) -> list[PoolSample]:
    """Ten minutes of 30 s samples: the on phase's peak until 6 minutes ago, then the off level."""
    out = []
    for i in range(21):
        t = now_s - 600.0 + 30.0 * i
        r = peak_in if t < now_s - 360.0 else recent_in
        out.append(
            PoolSample(
                t_s=t,
                ready_replicas=ready,
                prompt_tps=r,
                gen_tps=r * 0.15,
                ttft_p90_s=0.4,
                itl_p90_s=0.04,
                kv_usage=0.1,
                queue_depth=0.0,
                request_rps=r / 1200.0,
            )
        )
    return out


def test_recommend_releases_capacity_in_an_off_phase_only_when_the_period_is_known() -> None:
    cfg = _cfg()
    # on phases of 12k prompt tok/s need 13 replicas at C_in 1500 x U 0.65; the off phase needs 2
    sig = dict(ttft_p90_s=0.4, itl_p90_s=0.04, kv_usage=0.1, queue_depth=0.0, running=5, request_rps=0.8)
    now = pool("chat/llama-8b", 13, **{**sig, "prompt_tps": 1000.0, "gen_tps": 150.0})  # type: ignore[arg-type]
    st = state(now, cold_start_s=145)
    hist = {"chat/llama-8b": _history(3600.0, 1000.0, 12000.0, 13)}
    (held,) = recommend(fleet(now), [st], None, CAT, hist, cfg)  # type: ignore[arg-type]
    # without the period the last 600 s peak holds every replica
    assert held.replicas_target == 13
    # 95 minutes of a 40-minute cycle (8 on, 32 off), now 7 minutes into the off phase: the next on phase
    # is 25 minutes away, beyond the lead time, so the off phase needs only the floor
    minutes = {"chat/llama-8b": _demand(_onoff(95, period=40, on=8, hi=12000.0, lo=1000.0))}
    (released,) = recommend(fleet(now), [st], None, CAT, hist, cfg, minutes)  # type: ignore[arg-type]
    assert released.replicas_target <= 3
    assert any("repeats every 40 min" in r for r in released.reasons)
    # 3 minutes before the next on phase (minute 117), it orders for the on phase ahead
    quiet = pool("chat/llama-8b", 2, **{**sig, "prompt_tps": 1000.0, "gen_tps": 150.0})  # type: ignore[arg-type]
    quiet_hist = {"chat/llama-8b": _history(3600.0, 1000.0, 1000.0, 2)}
    before = {"chat/llama-8b": _demand(_onoff(117, period=40, on=8, hi=12000.0, lo=1000.0))}
    (ahead,) = recommend(fleet(quiet), [state(quiet, cold_start_s=145)], None, CAT, quiet_hist, cfg, before)  # type: ignore[arg-type]
    assert ahead.replicas_target >= 10
    # without the period it waits for the load
    (late,) = recommend(fleet(quiet), [state(quiet, cold_start_s=145)], None, CAT, quiet_hist, cfg)  # type: ignore[arg-type]
    assert late.replicas_target == 2


def test_the_fast_loops_max_follows_the_planners_target_within_its_band() -> None:
    cfg = _cfg().model_copy(update={"owner_max": {"chat/llama-8b": 16}, "owner_max_band": 1.2})  # type: ignore[attr-defined]
    sig = dict(ttft_p90_s=0.4, itl_p90_s=0.04, kv_usage=0.3, queue_depth=0.0, running=5, request_rps=5.0)
    # 6k prompt tok/s on 3 replicas: 7 needed at C_in 1500 x U 0.65 -> min 7, max ceil(1.2 x 7) = 9 (not 16)
    hot = pool("chat/llama-8b", 3, **{**sig, "prompt_tps": 6000.0, "gen_tps": 900.0})  # type: ignore[arg-type]
    (up,) = recommend(fleet(hot), [state(hot, cold_start_s=145)], None, CAT, None, cfg)  # type: ignore[arg-type]
    assert up.tool_call is not None
    assert (up.tool_call.arguments["min_replicas"], up.tool_call.arguments["max_replicas"]) == (7, 9)
    # without the band a max the planner raised past the configured 16 comes back down to 16 with its target
    no_band = cfg.model_copy(update={"owner_max_band": None})  # type: ignore[attr-defined]
    assert hot.owner is not None
    raised = hot.owner.model_copy(update={"min_replicas": 20, "max_replicas": 24})
    calm = pool("chat/llama-8b", 20, **{**sig, "prompt_tps": 6000.0, "gen_tps": 900.0})  # type: ignore[arg-type]
    calm = calm.model_copy(update={"owner": raised})
    (down,) = recommend(fleet(calm), [state(calm, cold_start_s=145)], None, CAT, None, no_band)  # type: ignore[arg-type]
    assert down.tool_call is not None
    assert down.tool_call.arguments["max_replicas"] == 16
    assert down.tool_call.arguments["min_replicas"] < 20
