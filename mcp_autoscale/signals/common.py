"""Pieces shared by the Prometheus and direct-scrape sources: dialect choice, reasons, staleness."""

from __future__ import annotations

from collections.abc import Mapping

from mcp_autoscale.config import Settings
from mcp_autoscale.errors import ConfigError
from mcp_autoscale.signals import dialects
from mcp_autoscale.signals.dialects.spec import Dialect

SERIES_ABSENT = "series absent"
NO_DIALECT = "series absent: no known engine metrics for this pool"


def check_overrides(overrides: Mapping[str, str] | None) -> dict[str, Dialect]:
    """Validate a ``namespace/deployment -> dialect name`` mapping at start-up (ConfigError if wrong)."""
    out: dict[str, Dialect] = {}
    for key, name in (overrides or {}).items():
        if key.count("/") != 1:
            raise ConfigError(f"dialect override key {key!r}: expected 'namespace/deployment'")
        try:
            out[key] = dialects.get(name)
        except KeyError as err:
            raise ConfigError(f"dialect override for {key}: {err.args[0]}") from None
    return out


def stale_after_s(settings: Settings) -> float:
    """Samples older than this are flagged stale (default 2 scrape intervals)."""
    return settings.stale_after_intervals * settings.scrape_interval_s


def not_exposed(dialect: Dialect) -> str:
    return f"not exposed by {dialect.name} metrics"
