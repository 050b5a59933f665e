"""The planner's headroom in a replay (planner.headroom): on a calm steady load it sizes at a higher U once
a calm window has passed and bills fewer GPU-hours at the same TTFT minutes; a burst drops U at once.
The calm window is shortened to 30 minutes so the trace stays short (the default is a day)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from functools import cache
from typing import Any

import numpy as np
import pytest

from mcp_autoscale.cost import load_catalogue
from mcp_autoscale.planner import PlannerConfig
from mcp_autoscale.planner.headroom import Headroom
from mcp_autoscale.replay.evaluate import ReplayConfig, StrategyResult, run_strategy
from mcp_autoscale.replay.strategies import KedaPlusPlanner
from mcp_autoscale.replay.trace import DEFAULT_START, Trace, minute_noise, trace_from_rate

SEED = 3
MINUTES = 80
BURST_AT = 60


def _trace(burst: bool) -> Trace:
    """6 req/s with 10% minute noise; with ``burst``, x3 for 5 minutes from minute 60."""
    n = MINUTES * 60
    rate = np.full(n, 6.0) * minute_noise(np.random.default_rng([SEED, 4]), n, 0.1)
    if burst:
        rate[BURST_AT * 60 : (BURST_AT + 5) * 60] *= 3.0
    return trace_from_rate(rate, SEED, start=DEFAULT_START, source=f"steady(burst={burst})")


@pytest.fixture
def u_seen() -> Iterator[list[tuple[int, Headroom]]]:
    """(minutes of history, Headroom) of every planner pass."""
    rec: Any = importlib.import_module("mcp_autoscale.planner.recommend")
    orig = rec.pool_headroom
    seen: list[tuple[int, Headroom]] = []

    def spy(prompt: list[float], gen: list[float], **kw: Any) -> Headroom:
        h: Headroom = orig(prompt, gen, **kw)
        seen.append((len(prompt), h))
        return h

    rec.pool_headroom = spy
    yield seen
    rec.pool_headroom = orig


@cache
def _run(burst: bool, headroom: bool) -> StrategyResult:
    cfg = ReplayConfig(seed=SEED)
    cat = load_catalogue()
    pcfg = PlannerConfig(
        target_utilisation=cfg.planner_utilisation,
        owner_max_band=cfg.planner_max_band,
        floors={"chat": cfg.floor},
        headroom_calm_s=1800.0,
        headroom_max_utilisation=0.9 if headroom else cfg.planner_utilisation,
    )
    return run_strategy(_trace(burst), KedaPlusPlanner(cat, cfg.slo, config=pcfg), cfg, cat)


def test_calm_load_raises_u_after_the_calm_window_and_a_burst_drops_it_at_once(
    u_seen: list[tuple[int, Headroom]],
) -> None:
    _run.cache_clear()
    calm = _run(False, True)
    blind = _run(False, False)
    assert calm.gpu_hours < 0.95 * blind.gpu_hours, (calm.gpu_hours, blind.gpu_hours)
    assert calm.ttft_minutes_ok_pct >= blind.ttft_minutes_ok_pct - 1.0
    u_seen.clear()
    _run(True, True)
    by_minute = {m: h for m, h in u_seen}
    assert all(h.utilisation == 0.65 for m, h in by_minute.items() if m < 30)  # no calm window yet
    assert by_minute[BURST_AT - 1].raised  # a calm half hour raised it
    assert not any(h.raised for m, h in by_minute.items() if m >= BURST_AT + 2)  # the burst dropped it
