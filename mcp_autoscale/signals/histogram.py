"""Histogram quantiles computed the way Prometheus's ``histogram_quantile`` computes them.

Kept pure and separate so that direct scrape and Prometheus agree to the last digit on the same buckets
(the integration test checks this against a real Prometheus). Follows ``bucketQuantile`` in
prometheus/promql/quantile.go: linear interpolation inside the bucket holding the rank, the lowest
bucket starting at 0 (when its upper bound is positive), and the upper bound of the second-highest
bucket returned when the rank falls in the ``+Inf`` bucket.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

Cumulative = list[tuple[float, float]]
"""Buckets ready for ``quantile_of``: bounds ascending and merged, counts made monotonic."""


def cumulative(buckets: Iterable[tuple[float, float]]) -> Cumulative:
    """Merge duplicate bounds, sort, and force the counts monotonic (scrape races can make them dip; Prometheus
    fixes them the same way). Done once per histogram when several quantiles are read from it."""
    merged: dict[float, float] = {}
    for upper, count in buckets:
        merged[upper] = merged.get(upper, 0.0) + count
    running_max = -math.inf
    mono: Cumulative = []
    for upper, count in sorted(merged.items()):
        running_max = max(running_max, count)
        mono.append((upper, running_max))
    return mono


def quantile_of(q: float, mono: Cumulative) -> float:
    """The ``q`` quantile of buckets prepared by ``cumulative``; NaN when undefined."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    if not mono or not math.isinf(mono[-1][0]) or mono[-1][0] < 0 or len(mono) < 2:
        return math.nan
    observations = mono[-1][1]
    if observations == 0 or math.isnan(observations):
        return math.nan
    rank = q * observations
    b = next((i for i in range(len(mono) - 1) if mono[i][1] >= rank), len(mono) - 1)
    if b == len(mono) - 1:
        return mono[-2][0]
    if b == 0 and mono[0][0] <= 0:
        return mono[0][0]
    start = 0.0
    end, count = mono[b]
    if b > 0:
        start = mono[b - 1][0]
        count -= mono[b - 1][1]
        rank -= mono[b - 1][1]
    return start + (end - start) * (rank / count)


def bucket_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float:
    """The ``q`` quantile from cumulative ``(upper_bound, count)`` buckets; NaN when undefined."""
    return quantile_of(q, cumulative(buckets))
