"""Signal sources: where serving metrics come from (simulator, Prometheus, direct scrape)."""

from mcp_autoscale.signals.base import SignalSource

__all__ = ["SignalSource"]
