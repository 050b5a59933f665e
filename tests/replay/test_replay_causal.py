"""The causal oracle (true capacity, exact load so far, no foresight) and the planner's event-driven
scale-out between its planning passes."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import numpy as np

from mcp_autoscale.cost import load_catalogue
from mcp_autoscale.replay import CausalOracle, KedaPlusPlanner, ReplayConfig, run_strategy
from mcp_autoscale.replay.evaluate import compare
from mcp_autoscale.replay.report import ratios
from mcp_autoscale.replay.trace import Trace, synthetic_trace


def _trace(t_s: list[float], ctx: int, gen: int) -> Trace:
    n = len(t_s)
    return Trace(
        start=datetime(2026, 1, 1, tzinfo=UTC),
        t_s=np.asarray(t_s, dtype=float),
        context=np.full(n, ctx, dtype=np.int64),
        generated=np.full(n, gen, dtype=np.int64),
        source="hand-made",
    )


def test_causal_oracle_sizes_for_the_last_minute_and_holds() -> None:
    # one request a second for the first 2 minutes, 1000 prompt + 100 output tokens each, then silence
    tr = _trace([float(i) + 0.5 for i in range(120)], 1000, 100)
    o = CausalOracle(tr, c_in=500.0, c_out=100.0, floor=2, utilisation=0.5, hold_s=300.0)
    # at t=60: 60 requests in the last 60 s -> 1000 prompt tok/s / (500 x 0.5) = 4; 100 / 50 = 2 -> 4
    assert o.need_now(60.0) == 4
    # it sees only the past: at t=30, 30 requests in the window -> 500 tok/s -> 2
    assert o.need_now(30.0) == 2
    # the load stops at 120 s; the window is empty at 181 s, but the hold keeps 4 until 300 s after
    assert o.target(60.0) == 4
    assert o.need_now(181.0) == 2
    assert o.target(181.0) == 4
    assert o.target(359.0) == 4
    assert o.target(361.0) == 2
    capped = CausalOracle(tr, c_in=500.0, c_out=100.0, floor=2, utilisation=0.5, max_replicas=3)
    assert capped.need_now(60.0) == 3


def test_compare_runs_the_causal_oracle_with_the_oracles_knowledge() -> None:
    short = synthetic_trace(12 * 60, seed=2, peak_rps=3.0, start_hour=3.0)
    rep = compare(short, ReplayConfig(seed=2), ("oracle", "causal"), workers=1)
    oracle, causal = rep.results
    assert (oracle.name, causal.name) == ("oracle", "causal")
    # one probe, shared: both were told the same capacity
    assert causal.knowledge["c_out"] == oracle.knowledge["c_out"] > 0
    assert causal.knowledge["utilisation"] == ReplayConfig().planner_utilisation
    assert causal.outer_actions > 0
    assert "causal_vs_oracle_gpu_hours" in ratios(rep)


def test_planner_scales_out_between_passes_but_scales_in_only_on_them() -> None:
    cat = load_catalogue()
    cfg = ReplayConfig(seed=7)
    # 40 afternoon minutes with bursts: the pool starts at 4 replicas and must grow, then shrink
    trace = synthetic_trace(40 * 60, seed=7, peak_rps=10.0, start_hour=13.0, bursts_per_hour=2.0)
    results = {}
    for every_sample in (True, False):
        st = KedaPlusPlanner(cat, cfg.slo, interval_s=120.0, scale_out_every_sample=every_sample)
        run_strategy(trace, st, cfg, cat)
        results[every_sample] = st
    eager, paced = results[True], results[False]
    assert all(t % 120.0 == 0 for t in paced.actions.at_s)
    off_cycle = [(t, w) for t, w in zip(eager.actions.at_s, eager.actions.what, strict=True) if t % 120.0]
    assert off_cycle, "no scale-out between planning passes on a bursty trace"
    mins = [int(m) for w in eager.actions.what for m in re.findall(r"minReplicaCount=(\d+)", w)]
    previous = dict(zip(eager.actions.at_s, [None, *mins[:-1]], strict=True))
    for t, w in off_cycle:
        (now,) = (int(m) for m in re.findall(r"minReplicaCount=(\d+)", w))
        before = previous[t]
        assert before is None or now > before, f"off-cycle write at {t:.0f} s lowered min: {w}"
