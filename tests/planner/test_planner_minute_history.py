"""The server's per-minute demand history: interpolated gaps, averaged samples, bounded memory."""

from __future__ import annotations

import numpy as np

from mcp_autoscale.planner.minute_history import MinuteHistory
from mcp_autoscale.planner.seasonality import outlook


def test_gaps_are_interpolated_and_samples_in_a_minute_averaged() -> None:
    h = MinuteHistory()
    h.record("a/b", 100, 10.0, 1.0)
    h.record("a/b", 100, 20.0, 3.0)  # same minute: the mean
    h.record("a/b", 104, 35.0, 6.0)  # four minutes on: 15 -> 35 in steps of 5
    d = h.demand("a/b")
    assert d is not None
    assert d.prompt_tps == [15.0, 20.0, 25.0, 30.0, 35.0]
    assert d.gen_tps == [2.0, 3.0, 4.0, 5.0, 6.0]
    h.record("a/b", 103, 99.0, 99.0)  # older than the newest minute: ignored
    assert h.demand("a/b") == d
    h.record("a/b", 104 + 61, 1.0, 1.0)  # the server was away over an hour: start again
    again = h.demand("a/b")
    assert again is not None and again.prompt_tps == [1.0]
    assert h.demand("x/y") is None and "x/y" not in h.view()


def test_memory_is_bounded_and_wide_cells_keep_the_period() -> None:
    """A thousand pools fit the budget by widening cells; a 90-minute period still shows."""
    h = MinuteHistory(max_minutes=1440, budget=200_000)
    minutes = np.arange(3 * 1440)
    load = np.where(minutes % 90 < 45, 100.0, 10.0)
    for m, v in zip(minutes.tolist(), load.tolist(), strict=True):
        h.record("p/0", m, v, v / 10)
    assert h.resolution == 1
    d1 = h.demand("p/0")
    assert d1 is not None and len(d1) == 1440
    for i in range(1, 1000):
        h.record(f"p/{i}", int(minutes[-1]), 5.0, 1.0)
    h.fit(1000)
    assert h.resolution == 8  # ceil(1440 / 8) x 1000 <= 200,000 cells
    assert h.nbytes <= 200_000 * 8
    d8 = h.demand("p/0")
    assert d8 is not None and 1430 <= len(d8) <= 1440
    look = outlook(d8, 10)
    assert look is not None and abs(look.period_min - 90) <= 8
    # pairwise means keep the level: the same mean load over the same minutes
    assert abs(float(np.mean(d8.prompt_tps)) - float(np.mean(d1.prompt_tps[-len(d8) :]))) < 2.0
