"""Embedded digital twin of an LLM-serving Kubernetes fleet (the default backend: no cluster needed)."""

from mcp_autoscale.sim.backend import SimClusterBackend, SimSignalSource
from mcp_autoscale.sim.http import MetricsServer, serve_metrics
from mcp_autoscale.sim.replay import TraceSchedule
from mcp_autoscale.sim.scenarios import SCENARIOS
from mcp_autoscale.sim.serving import ArrivalStep, TraceRequest
from mcp_autoscale.sim.twin import PoolStep, Twin, TwinStep

__all__ = [
    "SCENARIOS",
    "ArrivalStep",
    "MetricsServer",
    "PoolStep",
    "SimClusterBackend",
    "SimSignalSource",
    "TraceRequest",
    "TraceSchedule",
    "Twin",
    "TwinStep",
    "serve_metrics",
]
