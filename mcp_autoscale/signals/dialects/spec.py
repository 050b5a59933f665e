"""The declarative shape of a metric dialect: which engine series answer which of our signal names.

A dialect is data, not code: the PromQL builder and the direct-scrape evaluator both read the same
``MetricSpec`` so that the two sources cannot disagree about what a signal means.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from mcp_autoscale.models import SIGNAL_NAMES

METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class Kind(StrEnum):
    """How a signal is computed from the series."""

    GAUGE = "gauge"
    """Instant value aggregated over replicas (``sum`` or ``avg``)."""
    RATE = "counter-rate"
    """Per-second increase of a counter, summed over replicas, times ``scale``."""
    QUANTILE = "histogram-quantile"
    """``histogram_quantile`` over the rate of ``<metric>_bucket``, summed over replicas."""


@dataclass(frozen=True)
class MetricSpec:
    """One signal in one dialect.

    ``metric`` is the exposed sample name (``..._total`` included) for gauges and counters, and the
    histogram's base name (without ``_bucket``) for quantiles. ``matchers`` are exact label filters such as
    ``request_type="waiting"``.
    """

    metric: str
    kind: Kind
    agg: Literal["sum", "avg"] = "sum"
    quantile: float | None = None
    matchers: tuple[tuple[str, str], ...] = ()
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not METRIC_NAME.match(self.metric):
            raise ValueError(f"invalid metric name {self.metric!r}")
        for name, _ in self.matchers:
            if not LABEL_NAME.match(name) or name.startswith("__"):
                raise ValueError(f"invalid label name {name!r} in matchers of {self.metric}")
        if (self.kind is Kind.QUANTILE) != (self.quantile is not None):
            raise ValueError(f"{self.metric}: quantile is set exactly when kind is histogram-quantile")
        if self.quantile is not None and not 0.0 <= self.quantile <= 1.0:
            raise ValueError(f"{self.metric}: quantile {self.quantile} outside [0, 1]")

    @property
    def sample_for_age(self) -> str:
        """The series whose newest timestamp says how old this signal is."""
        return f"{self.metric}_count" if self.kind is Kind.QUANTILE else self.metric


@dataclass(frozen=True)
class Dialect:
    """An engine's metric vocabulary.

    ``markers`` are series names that identify the dialect: a pool speaks it when all markers exist.
    Lower ``priority`` wins when several dialects match (vLLM 0.10/0.11 expose old and new names at once).
    """

    name: str
    engine: str
    markers: tuple[str, ...]
    signals: Mapping[str, MetricSpec]
    priority: int = 100
    notes: str = ""
    docs: str = ""

    def __post_init__(self) -> None:
        unknown = set(self.signals) - set(SIGNAL_NAMES)
        if unknown:
            raise ValueError(f"dialect {self.name}: unknown signal names {sorted(unknown)}")
        if not self.markers:
            raise ValueError(f"dialect {self.name}: needs at least one marker series")
        for m in self.markers:
            if not METRIC_NAME.match(m):
                raise ValueError(f"dialect {self.name}: invalid marker {m!r}")


# ---- small constructors so that dialect modules read like tables --------------------------------------


def gauge(metric: str, agg: Literal["sum", "avg"] = "sum", **matchers: str) -> MetricSpec:
    return MetricSpec(metric, Kind.GAUGE, agg=agg, matchers=tuple(sorted(matchers.items())))


def rate(metric: str, scale: float = 1.0, **matchers: str) -> MetricSpec:
    return MetricSpec(metric, Kind.RATE, scale=scale, matchers=tuple(sorted(matchers.items())))


def latency(ttft: str | None, itl: str | None) -> dict[str, MetricSpec]:
    """The five percentile signals from a TTFT and an ITL histogram (either may be absent)."""
    out: dict[str, MetricSpec] = {}
    if ttft:
        for sig, q in (("ttft_p50_s", 0.5), ("ttft_p90_s", 0.9), ("ttft_p99_s", 0.99)):
            out[sig] = MetricSpec(ttft, Kind.QUANTILE, quantile=q)
    if itl:
        for sig, q in (("itl_p50_s", 0.5), ("itl_p90_s", 0.9)):
            out[sig] = MetricSpec(itl, Kind.QUANTILE, quantile=q)
    return out
