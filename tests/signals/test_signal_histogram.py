"""histogram_quantile maths, checked against Prometheus's documented behaviour."""

from __future__ import annotations

import math

import pytest

from mcp_autoscale.signals.histogram import bucket_quantile

INF = math.inf


def test_linear_interpolation_inside_the_bucket() -> None:
    # 100 observations, uniform in (0, 1] and (1, 2]: the median is the top of the first bucket,
    # the 75th percentile half-way through the second.
    buckets = [(1.0, 50.0), (2.0, 100.0), (INF, 100.0)]
    assert bucket_quantile(0.5, buckets) == 1.0
    assert bucket_quantile(0.75, buckets) == 1.5
    assert bucket_quantile(0.1, buckets) == pytest.approx(0.2)


def test_rank_in_inf_bucket_returns_the_highest_finite_bound() -> None:
    # docs: "If the quantile falls into the highest bucket, the upper bound of the 2nd highest bucket
    # is returned"
    assert bucket_quantile(0.99, [(1.0, 10.0), (2.0, 20.0), (INF, 30.0)]) == 2.0


def test_lowest_bucket_starts_at_zero_unless_its_bound_is_not_positive() -> None:
    assert bucket_quantile(0.5, [(4.0, 10.0), (INF, 10.0)]) == 2.0
    assert bucket_quantile(0.5, [(-1.0, 10.0), (INF, 10.0)]) == -1.0


def test_undefined_cases_are_nan_or_infinite() -> None:
    assert math.isnan(bucket_quantile(0.5, [(1.0, 10.0), (2.0, 10.0)]))  # no +Inf bucket
    assert math.isnan(bucket_quantile(0.5, [(INF, 10.0)]))  # fewer than two buckets
    assert math.isnan(bucket_quantile(0.5, [(1.0, 0.0), (INF, 0.0)]))  # no observations
    assert math.isnan(bucket_quantile(math.nan, [(1.0, 1.0), (INF, 1.0)]))
    assert bucket_quantile(-0.1, [(1.0, 1.0), (INF, 1.0)]) == -INF
    assert bucket_quantile(1.1, [(1.0, 1.0), (INF, 1.0)]) == INF


def test_non_monotonic_counts_are_fixed_and_duplicates_merged() -> None:
    # a bucket scraped mid-update can dip below its predecessor: Prometheus takes the running maximum
    assert bucket_quantile(0.5, [(1.0, 60.0), (2.0, 40.0), (INF, 100.0)]) == pytest.approx(
        bucket_quantile(0.5, [(1.0, 60.0), (2.0, 60.0), (INF, 100.0)])
    )
    # the same bound from two series (pods) is summed, as sum by (le) would
    split = [(1.0, 25.0), (1.0, 25.0), (2.0, 50.0), (2.0, 50.0), (INF, 50.0), (INF, 50.0)]
    assert bucket_quantile(0.75, split) == 1.5


def test_order_of_buckets_does_not_matter() -> None:
    ordered = [(0.1, 5.0), (0.5, 30.0), (1.0, 80.0), (INF, 100.0)]
    assert bucket_quantile(0.9, list(reversed(ordered))) == bucket_quantile(0.9, ordered)
    assert bucket_quantile(0.9, ordered) == pytest.approx(1.0)  # rank 90 is in +Inf -> 1.0
    assert bucket_quantile(0.5, ordered) == pytest.approx(0.5 + 0.5 * 20 / 50)
