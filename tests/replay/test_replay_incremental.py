"""The planner's incremental capacity evidence changes nothing: a short replay with the cached history
(``SampleHistory``) and one with a plain list (the full computation at every call) give the same result,
minute by minute."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from mcp_autoscale.cost import load_catalogue
from mcp_autoscale.models import PoolRef, SloTargets
from mcp_autoscale.planner import PlannerConfig, PoolSample, evidence
from mcp_autoscale.planner.evidence import Evidence, SampleHistory, capacity_evidence
from mcp_autoscale.replay.evaluate import ReplayConfig, StrategyResult, run_strategy
from mcp_autoscale.replay.strategies import KedaPlusPlanner
from mcp_autoscale.replay.trace import DEFAULT_START, minute_noise, trace_from_rate
from mcp_autoscale.sim import Twin


class _FullRecompute(KedaPlusPlanner):
    """The planner as before: its history a plain list, so every call reads all of it."""

    def setup(self, twin: Twin, ref: PoolRef) -> None:
        super().setup(twin, ref)
        self.history = []  # type: ignore[assignment]


def _run(
    cls: type[KedaPlusPlanner], monkeypatch: pytest.MonkeyPatch
) -> tuple[StrategyResult, KedaPlusPlanner, list[Evidence]]:
    """The replay, and the capacity evidence the planner read at each call."""
    seen: list[Evidence] = []

    def spy(samples: Sequence[PoolSample], slo: SloTargets, config: PlannerConfig) -> Evidence:
        seen.append(capacity_evidence(samples, slo, config))
        return seen[-1]

    monkeypatch.setattr(evidence, "capacity_evidence", spy)
    # a step up x4 and back, with breaches and a backlog: evidence on both sides of the capacity
    n = 30 * 60
    rate = np.where((np.arange(n) >= 360) & (np.arange(n) < 1300), 10.0, 2.5)
    rate = rate * minute_noise(np.random.default_rng([5, 4]), n, 0.1)
    trace = trace_from_rate(rate, 5, start=DEFAULT_START, source="step")
    cfg = ReplayConfig(seed=5)
    cat = load_catalogue()
    pcfg = PlannerConfig(target_utilisation=0.65, owner_max_band=1.3, floors={"chat": 2})
    st = cls(cat, cfg.slo, config=pcfg, history_len=40)  # a short history: it slides within the run
    return run_strategy(trace, st, cfg, cat), st, seen


def test_a_replay_with_the_cache_equals_one_without(monkeypatch: pytest.MonkeyPatch) -> None:
    cached, st_cached, ev_cached = _run(KedaPlusPlanner, monkeypatch)
    full, st_full, ev_full = _run(_FullRecompute, monkeypatch)
    assert isinstance(st_cached.history, SampleHistory) and not isinstance(st_full.history, SampleHistory)
    assert len(st_cached.history) == 40  # the window slid
    assert ev_cached == ev_full  # every call read the same evidence
    assert any(learned[0] is not None for learned, _ in ev_cached)
    assert any(bound[:2] != (None, None) for _, bound in ev_cached)  # breaches bounded C at some point
    a = cached.model_dump(exclude={"wall_s"})
    b = full.model_dump(exclude={"wall_s"})
    assert a == b
    assert cached.gated_actions > 0 and cached.gpu_hours > 0
