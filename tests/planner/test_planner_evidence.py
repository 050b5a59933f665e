"""The incremental capacity evidence (planner/evidence.py) gives exactly what the full computation gives."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mcp_autoscale.models import SloTargets
from mcp_autoscale.planner import PlannerConfig, PoolSample, learn_capacity
from mcp_autoscale.planner.backlog import arrival_rates, demand_rates, tokens_per_request
from mcp_autoscale.planner.capacity import breach_evidence
from mcp_autoscale.planner.evidence import SampleHistory, capacity_evidence

SLO = SloTargets()


def _samples(seed: int, n: int, dt: tuple[float, float] = (30.0, 30.0)) -> list[PoolSample]:
    """A pool's life in runs: ready counts held for a few samples, load that rises into breaches, queues
    that form and drain, thin minutes and missing signals."""
    rng = np.random.default_rng(seed)
    out: list[PoolSample] = []
    t = 0.0
    ready = 3
    load = 800.0
    queue = 0.0
    for _ in range(n):
        t += float(rng.uniform(*dt))
        if rng.random() < 0.15:
            ready = int(max(0, ready + rng.integers(-2, 3)))
        load = max(0.0, load * float(rng.uniform(0.8, 1.25)))
        per = load / max(1, ready)
        queue = max(0.0, queue + float(rng.normal(0.0, 4.0))) if per > 900 else 0.0
        ttft = 0.2 + max(0.0, per - 900.0) / 300.0 + float(rng.exponential(0.1))
        itl = 0.03 + max(0.0, per - 1100.0) / 10000.0
        rps = float(rng.choice([0.2, 1.0, 3.0]))
        out.append(
            PoolSample(
                t_s=t,
                ready_replicas=ready,
                prompt_tps=None if rng.random() < 0.05 else round(load, 1),
                gen_tps=None if rng.random() < 0.05 else round(load / 4, 1),
                ttft_p90_s=None if rng.random() < 0.05 else ttft,
                itl_p90_s=itl,
                kv_usage=float(rng.uniform(0.1, 0.9)) if rng.random() < 0.9 else None,
                queue_depth=round(queue, 1) if rng.random() < 0.95 else None,
                request_rps=rps,
            )
        )
    return out


def _full(samples: list[PoolSample], cfg: PlannerConfig) -> tuple[object, object]:
    return learn_capacity(samples, SLO, cfg), breach_evidence(samples, SLO, cfg)


@pytest.mark.parametrize(
    ("seed", "maxlen", "dt"),
    [
        (1, 40, (30.0, 30.0)),
        (2, 25, (10.0, 70.0)),
        (3, 120, (60.0, 60.0)),
        (4, 7, (20.0, 40.0)),
        (5, 30, (40.0, 130.0)),
        (6, 50, (5.0, 15.0)),
    ],
)
def test_sliding_history_matches_the_full_computation(
    seed: int, maxlen: int, dt: tuple[float, float]
) -> None:
    """Append one sample at a time (sometimes a few), trim the front to ``maxlen``: every call agrees."""
    cfg = PlannerConfig(slo=SLO, breach_min_samples=2)
    stream = _samples(seed, 400, dt)
    hist = SampleHistory()
    rng = np.random.default_rng(seed)
    i = 0
    seen_breach = seen_learned = 0
    while i < len(stream):
        k = int(rng.choice([1, 1, 1, 3]))
        hist.extend(stream[i : i + k])
        i += k
        del hist[:-maxlen]
        got = capacity_evidence(hist, SLO, cfg)
        assert got == _full(list(hist), cfg)
        seen_breach += got[1][:2] != (None, None)
        seen_learned += got[0][0] is not None
    assert seen_breach > 10 and seen_learned > 10  # both sides of the evidence were exercised


def test_other_changes_rebuild_and_config_changes_reset() -> None:
    cfg = PlannerConfig(slo=SLO, breach_min_samples=2)
    stream = _samples(5, 120)
    hist = SampleHistory(stream[:60])
    assert capacity_evidence(hist, SLO, cfg) == _full(stream[:60], cfg)
    hist[30] = stream[100]  # replaced in the middle (out of time order: falls back for good)
    assert capacity_evidence(hist, SLO, cfg) == _full(list(hist), cfg)
    fresh = SampleHistory(stream[:60])
    capacity_evidence(fresh, SLO, cfg)
    fresh[:] = stream[40:90]  # a different window, not a slide of the last one
    assert capacity_evidence(fresh, SLO, cfg) == _full(stream[40:90], cfg)
    other = PlannerConfig(slo=SLO, signal_window_s=120.0, breach_min_samples=2)
    assert capacity_evidence(fresh, SLO, other) == _full(stream[40:90], other)
    tight = SloTargets(ttft_p90_s=0.5, itl_p90_s=0.05)
    assert capacity_evidence(fresh, tight, cfg) == (
        learn_capacity(stream[40:90], tight, cfg),
        breach_evidence(stream[40:90], tight, cfg),
    )


def test_nan_falls_back_to_the_full_computation() -> None:
    cfg = PlannerConfig(slo=SLO, breach_min_samples=2)
    stream = _samples(6, 50)
    stream[20] = stream[20].model_copy(update={"prompt_tps": math.nan})
    hist = SampleHistory(stream[:30])
    got = capacity_evidence(hist, SLO, cfg)
    want = _full(stream[:30], cfg)
    assert repr(got) == repr(want)  # NaN != NaN: compare as text


def _demand_rates_full_scan(
    history: list[PoolSample], window_s: float, signal_window_s: float, queue_per_replica: float
) -> list[tuple[float, float | None, float | None]]:
    """``backlog.demand_rates`` as it was, scanning the whole history (the reference)."""
    if not history:
        return []
    last_t = history[-1].t_s
    per_request = tokens_per_request(history)
    out: list[tuple[float, float | None, float | None]] = []
    backlog_t: float | None = None
    for i, h in enumerate(history):
        if h.queue_depth is not None and h.queue_depth > queue_per_replica * max(1, h.ready_replicas):
            backlog_t = h.t_s
        if h.t_s < last_t - window_s:
            continue
        if backlog_t is None or h.t_s - 2.0 * signal_window_s > backlog_t:
            out.append((h.t_s, h.prompt_tps, h.gen_tps))
            continue
        prev = history[i - 1] if i > 0 else None
        if prev is not None and (h.queue_depth or 0.0) > (prev.queue_depth or 0.0):
            out.append((h.t_s, *arrival_rates(prev, h, per_request)))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_demand_rates_scans_only_what_matters(seed: int) -> None:
    """demand_rates starts its scan two rate windows before its window: the same answer as a full scan."""
    stream = _samples(seed, 300, (10.0, 90.0))
    for end in range(1, len(stream), 7):
        hist = stream[:end]
        for window, sig, qmax in ((600.0, 60.0, 1.0), (120.0, 30.0, 0.5), (0.0, 60.0, 2.0)):
            assert demand_rates(hist, window, sig, qmax) == _demand_rates_full_scan(hist, window, sig, qmax)
