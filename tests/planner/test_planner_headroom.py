"""Headroom where the load is predictable (planner.headroom): hand-worked errors over one lead time, a
calm history raises U, a surge drops it at once, and U rises again only after a whole calm window."""

from __future__ import annotations

import numpy as np
import pytest
from test_planner_recommend import CAT, CFG, fleet, pool, state

from mcp_autoscale.planner import CapacityConfig, recommend
from mcp_autoscale.planner.headroom import lead_errors, pool_headroom, safe_utilisation
from mcp_autoscale.planner.seasonality import MinuteDemand


def test_lead_errors_hand_worked() -> None:
    # 2-minute means of [100, 100, 100, 100, 200, 200] are [100, 100, 100, 150, 200]; with a lead of 1
    # and a hold of 1 the pool held [100, 100, 150] when minutes 2, 3, 4 were sized
    e = lead_errors([100.0, 100.0, 100.0, 100.0, 200.0, 200.0], lead_min=1, hold_min=1)
    assert e.tolist() == pytest.approx([0.0, 0.5, 200.0 / 150.0 - 1.0])
    # what the replica floor serves anyway is the least reference: the same rise under it is no error
    e = lead_errors([100.0, 100.0, 100.0, 100.0, 200.0, 200.0], lead_min=1, hold_min=1, floor_load=400.0)
    assert e.tolist() == pytest.approx([-0.75, -0.625, -0.5])
    assert len(lead_errors([1.0, 2.0, 3.0], lead_min=2, hold_min=1)) == 0  # too short for one error


def test_safe_utilisation_is_one_over_one_plus_the_error_clamped() -> None:
    kw = dict(calm_min=60, quantile=0.9, surge_error=1.0)
    # every minute within +25% of what was held one lead time before: 1 / 1.25 = 0.8
    h = safe_utilisation([0.25] * 60, 0.65, 0.9, **kw)  # type: ignore[arg-type]
    assert h.utilisation == pytest.approx(0.8) and h.raised and h.error == pytest.approx(0.25)
    assert "U 0.80" in h.reason
    assert safe_utilisation([0.0] * 60, 0.65, 0.9, **kw).utilisation == 0.9  # type: ignore[arg-type]
    # +60%: 1 / 1.6 = 0.625 is below the configured U, which stays
    low = safe_utilisation([0.6] * 60, 0.65, 0.9, **kw)  # type: ignore[arg-type]
    assert low.utilisation == 0.65 and not low.raised and low.reason == ""
    # the quantile, not the worst minute: 5 of 60 minutes at +50% leave the 0.9 quantile at 0.2
    mixed = [0.2] * 55 + [0.5] * 5
    assert safe_utilisation(mixed, 0.65, 0.9, **kw).utilisation == pytest.approx(1 / 1.2, abs=1e-4)  # type: ignore[arg-type]
    # a ceiling at or below the configured U switches it off
    assert safe_utilisation([0.0] * 60, 0.65, 0.65, **kw).utilisation == 0.65  # type: ignore[arg-type]


def test_a_surge_drops_u_at_once_and_u_rises_only_after_a_whole_calm_window() -> None:
    kw = dict(calm_min=60, quantile=0.9, surge_error=1.0)
    calm = [0.05] * 100
    assert safe_utilisation(calm, 0.65, 0.9, **kw).utilisation == 0.9  # type: ignore[arg-type]
    # the load doubled and a half over one lead time in the last minute: back to the configured U at once
    burst = [*calm, 1.5]
    h = safe_utilisation(burst, 0.65, 0.9, **kw)  # type: ignore[arg-type]
    assert h.utilisation == 0.65 and h.surge_min_ago == 0 and "rose 150%" in h.reason
    # 59 calm minutes later the surge is still in the window; after the 60th it has left it
    held = safe_utilisation([*burst, *[0.05] * 59], 0.65, 0.9, **kw)  # type: ignore[arg-type]
    assert held.utilisation == 0.65 and held.surge_min_ago == 59
    assert safe_utilisation([*burst, *[0.05] * 60], 0.65, 0.9, **kw).utilisation == 0.9  # type: ignore[arg-type]
    # a history shorter than the calm window has not shown it is calm
    assert safe_utilisation(calm[:59], 0.65, 0.9, **kw).utilisation == 0.65  # type: ignore[arg-type]


def _daily(minutes: int, seed: int = 1, level: float = 6000.0) -> np.ndarray:
    """A diurnal curve (trough 40% of the peak) with 10% minute noise."""
    t = np.arange(minutes)
    curve = 0.7 - 0.3 * np.cos(2 * np.pi * t / 1440.0)
    return np.asarray(level * curve * np.random.default_rng(seed).lognormal(0.0, 0.1, minutes))


def _room(x: np.ndarray, floor_in: float = 0.0) -> float:
    h = pool_headroom(
        x.tolist(),
        (0.15 * x).tolist(),
        configured=0.65,
        ceiling=0.9,
        lead_s=445.0,
        hold_s=600.0,
        calm_s=86400.0,
        quantile=0.9,
        surge_error=1.0,
        floor_in_tps=floor_in,
        floor_out_tps=0.15 * floor_in,
    )
    return h.utilisation


def test_a_calm_day_raises_u_a_burst_drops_it_and_a_rise_under_the_floor_is_no_surge() -> None:
    day = _daily(1500)
    assert _room(day[:1400]) == 0.65  # less than a day seen
    assert _room(day) > 0.85  # a day of slow diurnal load with minute noise
    burst = day.copy()
    burst[-30:-25] *= 3.0  # x3 for 5 minutes, half an hour ago
    assert _room(burst) == 0.65
    # the same x3 on a load the two-replica floor serves at U 0.65 anyway (2 x 1500 x 0.65 = 1950 tok/s)
    quiet = _daily(1500, level=500.0)
    quiet[-30:-25] *= 3.0
    assert _room(quiet, floor_in=1950.0) > 0.85


def test_recommend_sizes_at_the_raised_u_on_a_calm_day_and_at_the_configured_u_after_a_burst() -> None:
    cfg = CFG.model_copy(
        update={
            "capacities": {"chat/llama-8b": CapacityConfig(c_in_tps=1500, c_out_tps=270)},
            "target_utilisation": 0.65,
        }
    )
    sig = dict(ttft_p90_s=0.4, itl_p90_s=0.04, kv_usage=0.3, queue_depth=0.0, running=20, request_rps=5.0)
    # 6k prompt tok/s on 7 replicas: 7 at U 0.65 (6000 / 975 = 6.2), 5 at U 0.9 (6000 / 1350 = 4.4)
    now = pool("chat/llama-8b", 7, **{**sig, "prompt_tps": 6000.0, "gen_tps": 900.0})  # type: ignore[arg-type]
    st = state(now, cold_start_s=145)
    steady = 6000.0 * np.random.default_rng(2).lognormal(0.0, 0.05, 1500)

    def minutes(x: np.ndarray) -> dict[str, MinuteDemand]:
        d = MinuteDemand()
        for v in x:
            d.add(float(v), 0.15 * float(v))
        return {"chat/llama-8b": d}

    (calm,) = recommend(fleet(now), [st], None, CAT, None, cfg, minutes(steady))
    assert calm.replicas_target == 5
    assert any("load predictable" in r for r in calm.reasons)
    (blind,) = recommend(fleet(now), [st], None, CAT, None, cfg)
    assert blind.replicas_target == 7
    burst = steady.copy()
    burst[-12:-8] *= 2.5
    (wary,) = recommend(fleet(now), [st], None, CAT, None, cfg, minutes(burst))
    assert wary.replicas_target == 7
    assert not any("load predictable" in r for r in wary.reasons)
