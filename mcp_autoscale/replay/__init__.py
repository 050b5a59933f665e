"""Trace replay: drive the twin with a request trace and compare autoscaling strategies on it."""

from mcp_autoscale.replay.evaluate import (
    ReplayConfig,
    ReplayReport,
    StrategyResult,
    compare,
    measure_capacity,
    run_strategy,
)
from mcp_autoscale.replay.shapes import SHAPES, Shape, build_trace
from mcp_autoscale.replay.strategies import CausalOracle, KedaOnly, KedaPlusPlanner, Oracle, Strategy
from mcp_autoscale.replay.trace import Trace, load_trace, parse_duration, synthetic_trace, write_trace

__all__ = [
    "SHAPES",
    "CausalOracle",
    "KedaOnly",
    "KedaPlusPlanner",
    "Oracle",
    "ReplayConfig",
    "ReplayReport",
    "Shape",
    "Strategy",
    "StrategyResult",
    "Trace",
    "build_trace",
    "compare",
    "load_trace",
    "measure_capacity",
    "parse_duration",
    "run_strategy",
    "synthetic_trace",
    "write_trace",
]
