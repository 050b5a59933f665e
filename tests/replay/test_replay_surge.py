"""The planner's surge profile on a short step (issue 14): no overshoot.

The surge profile (docs/evaluation.md) turns on three knobs that are off by default: C_out bounded by the
pool's fitted ITL curve (``latency_min_samples``), no trend extrapolated from a step's edge
(``surge_ratio``), and no KEDA band on top of a backlog's target (``owner_max_band_surge``). The causal
oracle is told the probe's capacity for these request lengths (1,508 prompt, 268 output tokens/s per
replica; fixed here so no probe runs)."""

from __future__ import annotations

import numpy as np

from mcp_autoscale.cost import load_catalogue
from mcp_autoscale.planner import PlannerConfig
from mcp_autoscale.replay.evaluate import ReplayConfig, run_strategy
from mcp_autoscale.replay.strategies import CausalOracle, KedaPlusPlanner
from mcp_autoscale.replay.trace import DEFAULT_START, minute_noise, trace_from_rate

C_IN, C_OUT = 1508.0, 268.0
SEED = 3


def test_surge_profile_orders_no_more_than_1_3x_the_causal_oracle_on_a_step() -> None:
    # 2.5 -> 10 req/s (x4) at minute 14, held to minute 32
    n = 32 * 60
    rate = np.where(np.arange(n) >= 840, 10.0, 2.5) * minute_noise(np.random.default_rng([SEED, 4]), n, 0.1)
    trace = trace_from_rate(rate, SEED, start=DEFAULT_START, source="step")
    cfg = ReplayConfig(seed=SEED)
    cat = load_catalogue()
    pcfg = PlannerConfig(
        target_utilisation=cfg.planner_utilisation,
        owner_max_band=cfg.planner_max_band,
        floors={"chat": cfg.floor},
        latency_min_samples=10,
        surge_ratio=1.5,
        owner_max_band_surge=1.0,
    )
    planner = run_strategy(trace, KedaPlusPlanner(cat, cfg.slo, config=pcfg), cfg, cat)
    oracle = CausalOracle(
        trace, C_IN, C_OUT, floor=cfg.floor, utilisation=cfg.planner_utilisation, max_replicas=24
    )
    causal = run_strategy(trace, oracle, cfg, cat)
    surge = slice(14, 26)  # the 12 minutes from the onset
    most, held = max(planner.series.desired[surge]), max(causal.series.desired[surge])
    assert most <= 1.3 * held, (planner.series.desired, causal.series.desired)
    assert most < 24  # never the node pool's limit
