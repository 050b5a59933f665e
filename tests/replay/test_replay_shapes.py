"""The suite's load shapes: each one's defining property, determinism, and the Azure format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mcp_autoscale.errors import InvalidInput
from mcp_autoscale.replay import load_trace, synthetic_trace, write_trace
from mcp_autoscale.replay.shapes import (
    DAY,
    SHAPES,
    build_trace,
    flash_rate,
    flash_windows,
    onoff_period_s,
    onoff_rate,
    ramp_rate,
    step_rate,
    weekly_rate,
)

H3 = 3 * 3600.0


def test_registry_names_and_docs() -> None:
    assert set(SHAPES) == {"diurnal_bursts", "step", "ramp", "onoff", "flash", "weekly"}
    assert all(s.doc for s in SHAPES.values())
    assert SHAPES["weekly"].duration_s == 7 * DAY
    with pytest.raises(InvalidInput, match="unknown shape"):
        build_trace("sawtooth", 1)


@pytest.mark.parametrize("name", ["diurnal_bursts", "step", "ramp", "onoff", "flash"])
def test_shapes_are_seeded_and_deterministic(name: str) -> None:
    a, b, c = build_trace(name, 1, 1800), build_trace(name, 1, 1800), build_trace(name, 2, 1800)
    assert (a.t_s == b.t_s).all() and (a.context == b.context).all() and (a.generated == b.generated).all()
    assert a.requests != c.requests or not (a.t_s == c.t_s).all()
    assert a.duration_s < 1800 and a.source.startswith(f"shape:{name}(")


def test_diurnal_bursts_is_the_dev_trace() -> None:
    a = build_trace("diurnal_bursts", 7, 1200)
    b = synthetic_trace(1200, 7, start_hour=13.0)
    assert (a.t_s == b.t_s).all() and a.start == b.start


def test_shape_traces_round_trip_the_azure_format(tmp_path: Path) -> None:
    tr = build_trace("flash", 3, 900)
    write_trace(tr, tmp_path / "flash.csv")
    back = load_trace(tmp_path / "flash.csv")
    assert back.requests == tr.requests and (back.context == tr.context).all()


def test_step_surges_up_and_down_by_x2_to_x5() -> None:
    for seed in range(6):
        rate = step_rate(H3, seed, base_rps=2.5)
        levels = np.unique(np.round(rate, 9))
        assert levels[0] == pytest.approx(2.5) and rate[0] == pytest.approx(2.5)
        ratios = levels[1:] / 2.5
        assert len(ratios) >= 2 and ((ratios >= 2.0) & (ratios <= 5.0)).all()
        jumps = np.flatnonzero(np.diff(rate))
        ups = [j for j in jumps if rate[j + 1] > rate[j]]
        downs = [j for j in jumps if rate[j + 1] < rate[j]]
        assert ups and downs  # surges up and back down, each in one second
        holds = np.diff(jumps) / 60.0
        assert ((holds >= 20.0 - 1e-6) & (holds <= 40.0 + 1e-6)).all()


def test_ramp_rises_holds_and_falls() -> None:
    rate = ramp_rate(H3, 4, low_rps=1.5, high_rps=13.0)
    rise, hold = int(0.4 * H3), int(0.6 * H3)
    assert (np.diff(rate[:rise]) >= 0).all() and (np.diff(rate[hold:]) <= 0).all()
    assert rate[0] == pytest.approx(1.5) and rate[-1] == pytest.approx(1.5, rel=0.01)
    assert 13.0 * 0.9 <= rate[rise:hold].min() <= rate[rise:hold].max() <= 13.0 * 1.1


def test_onoff_is_periodic_with_a_10_to_60_minute_period() -> None:
    for seed in range(5):
        period = onoff_period_s(seed)
        assert 600.0 <= period <= 3600.0
        rate = onoff_rate(H3, seed, on_rps=11.0, off_rps=1.0)
        assert set(np.unique(rate)) == {1.0, 11.0}
        p = int(period)
        late = np.arange(int(period) + 1, len(rate) - p)
        same = rate[late] == rate[late + p]
        assert same.mean() > 0.99  # periodic (up to the second a fractional period rounds)
    # the sampled trace shows it: the per-minute autocorrelation peaks at the period
    tr = build_trace("onoff", 2)
    req, _, _ = tr.per_minute()
    x = req[:180] - req[:180].mean()
    ac = [float(np.dot(x[:-k], x[k:])) for k in range(5, 90)]
    assert abs(5 + int(np.argmax(ac)) - onoff_period_s(2) / 60.0) <= 1.5


def test_flash_crowds_are_x3_to_x6_for_2_to_10_minutes() -> None:
    for seed in range(5):
        windows = flash_windows(H3, seed)
        assert len(windows) == 4 or len(windows) == 5  # ~1.5 per hour
        rate = flash_rate(H3, seed, base_rps=2.5)
        t = np.arange(len(rate))
        inside = np.zeros(len(rate), dtype=bool)
        for start, length, factor in windows:
            assert 3.0 <= factor <= 6.0 and 120.0 <= length <= 600.0 and start >= 600.0
            w = (t >= start) & (t <= start + length)
            inside |= w
            assert rate[w].max() == pytest.approx(2.5 * factor, rel=0.01)
        assert (rate[~inside] == 2.5).all()


def test_weekly_has_daily_and_weekly_seasonality() -> None:
    rate = weekly_rate(7 * DAY, 1, peak_rps=12.0, weekend_factor=0.5)
    daily = rate.reshape(7, -1).sum(axis=1)
    assert daily[5:].max() < 0.65 * daily[:5].min()  # Saturday and Sunday ~half a weekday
    hourly = rate.reshape(7, 24, 3600).mean(axis=2)
    assert ((hourly.argmax(axis=1) >= 14) & (hourly.argmax(axis=1) <= 18)).all()
    assert ((hourly.argmin(axis=1) >= 2) & (hourly.argmin(axis=1) <= 6)).all()
    tr = build_trace("weekly", 1, 2 * 3600)
    assert tr.requests > 0 and tr.source.startswith("shape:weekly(")
