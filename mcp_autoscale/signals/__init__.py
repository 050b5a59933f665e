"""Signal sources: where serving metrics come from (simulator, Prometheus, direct scrape)."""

from mcp_autoscale.signals.base import SignalSource
from mcp_autoscale.signals.prometheus import PrometheusSource
from mcp_autoscale.signals.scrape import ScrapeSource

__all__ = ["PrometheusSource", "ScrapeSource", "SignalSource"]
