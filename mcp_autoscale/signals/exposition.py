"""Evaluate dialect specs on parsed exposition text (direct scrape and fixture tests).

The arithmetic mirrors the PromQL the Prometheus source sends: gauges summed or averaged over replicas,
counters turned into per-second rates between two scrapes, histogram quantiles from bucket *deltas*
(what ``rate(..._bucket[W])`` feeds ``histogram_quantile``). A counter that went down is a restart: its
delta is its new value, as in ``rate``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from mcp_autoscale.signals.dialects.spec import MetricSpec
from mcp_autoscale.signals.histogram import bucket_quantile


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float


@dataclass
class Scrape:
    """One pod's exposition at one time (``at`` on a monotonic clock)."""

    url: str
    at: float
    samples: list[Sample] = field(default_factory=list)

    @property
    def names(self) -> set[str]:
        return {s.name for s in self.samples}


def parse(text: str) -> list[Sample]:
    """All samples of an exposition text; raises ``ValueError`` on malformed input."""
    out: list[Sample] = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.append(Sample(s.name, dict(s.labels), float(s.value)))
    return out


def _matching(
    samples: Iterable[Sample], name: str | set[str], matchers: Iterable[tuple[str, str]]
) -> list[Sample]:
    names = {name} if isinstance(name, str) else name
    ms = tuple(matchers)
    return [s for s in samples if s.name in names and all(s.labels.get(k) == v for k, v in ms)]


def _counter_names(metric: str) -> set[str]:
    """``prometheus_client``'s parser appends ``_total`` to counters exposed without it (TGI, Triton);
    Prometheus keeps the exposed name, which is what dialects use."""
    return {metric, f"{metric}_total"}


def gauge_value(spec: MetricSpec, scrapes: Sequence[Scrape]) -> float | None:
    """Sum or mean of the gauge over every matching series of every pod; None if there is none."""
    values = [s.value for sc in scrapes for s in _matching(sc.samples, spec.metric, spec.matchers)]
    if not values:
        return None
    return sum(values) / len(values) if spec.agg == "avg" else sum(values)


def _delta(cur: float, prev: float | None) -> float:
    return cur if prev is None or cur < prev else cur - prev


def _series_key(s: Sample) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(s.labels.items()))


def counter_rate(spec: MetricSpec, pairs: Sequence[tuple[Scrape, Scrape]]) -> float | None:
    """Per-second increase summed over pods, from (previous, current) scrape pairs; None if absent."""
    total = 0.0
    seen = False
    for prev, cur in pairs:
        dt = cur.at - prev.at
        if dt <= 0:
            continue
        names = _counter_names(spec.metric)
        before = {_series_key(s): s.value for s in _matching(prev.samples, names, spec.matchers)}
        for s in _matching(cur.samples, names, spec.matchers):
            seen = True
            total += _delta(s.value, before.get(_series_key(s))) / dt
    return total * spec.scale if seen else None


def bucket_deltas(spec: MetricSpec, pairs: Sequence[tuple[Scrape, Scrape]]) -> dict[float, float]:
    """Bucket increases summed over pods and series, keyed by upper bound."""
    out: dict[float, float] = {}
    name = f"{spec.metric}_bucket"
    for prev, cur in pairs:
        before = {_series_key(s): s.value for s in _matching(prev.samples, name, spec.matchers)}
        for s in _matching(cur.samples, name, spec.matchers):
            le = float(s.labels["le"])
            out[le] = out.get(le, 0.0) + _delta(s.value, before.get(_series_key(s)))
    return out


def quantile_value(spec: MetricSpec, pairs: Sequence[tuple[Scrape, Scrape]]) -> float | None:
    """The spec's quantile over the interval between scrapes; None if absent, NaN if no observations."""
    deltas = bucket_deltas(spec, pairs)
    if not deltas:
        return None
    assert spec.quantile is not None
    return bucket_quantile(spec.quantile, deltas.items())
