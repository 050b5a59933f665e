"""detect_period and _naive_error (vectorised) give exactly what the one-lag-at-a-time loops gave."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mcp_autoscale.planner.seasonality import (
    _naive_error,
    _seasonal_profile,
    autocorrelation,
    detect_period,
)


def _detect_period_loop(
    x: np.ndarray, min_lag: int = 5, min_acf: float = 0.5, min_prominence: float = 0.6
) -> tuple[int, float] | None:
    """The implementation before the vectorised one (the reference)."""
    arr = np.asarray(x, dtype=float)
    n = len(arr)
    max_lag = n // 2
    if max_lag < min_lag or n < 3:
        return None
    acf = autocorrelation(arr, min(n - 1, max_lag + 1))
    cands: list[tuple[int, float]] = []
    running_min = math.inf
    for k in range(1, max_lag + 1):
        running_min = min(running_min, float(acf[k]))
        if k < min_lag:
            continue
        a = float(acf[k])
        if a >= min_acf and a >= acf[k - 1] and a >= acf[k + 1] and a - running_min >= min_prominence:
            cands.append((k, a))
    if not cands:
        return None
    best = max(a for _, a in cands)
    for k, a in cands:
        if a >= 0.9 * best:
            return k, a
    return None


def _naive_error_loop(x: np.ndarray, period: int, recent: int, cycles: int, jitter: int = 1) -> float | None:
    now = len(x)
    errs = 0.0
    total = 0.0
    for t in range(now - recent, now):
        per_cycle = []
        for c in range(1, cycles + 1):
            lo = t - c * period - jitter
            hi = min(now, t - c * period + jitter + 1)
            if lo < 0:
                break
            per_cycle.append(float(np.min(np.abs(x[lo:hi] - x[t]))))
        if not per_cycle:
            return None
        errs += float(np.median(per_cycle))
        total += float(x[t])
    return errs / total if total > 0 else None


def _series(seed: int, n: int, period: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    on = ((t % period) < period // 2).astype(float)
    return np.maximum(0.0, 1.0 + 3.0 * on + rng.normal(0.0, 0.4 * (seed % 3), n))


@pytest.mark.parametrize("seed", range(12))
def test_vectorised_matches_the_loops(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    for n, period in ((40, 7), (130, 20), (400, 37), (1500, 240), (int(rng.integers(3, 60)), 5)):
        x = _series(seed, n, period)
        for min_lag in (1, 5, 12):
            assert detect_period(x, min_lag=min_lag) == _detect_period_loop(x, min_lag=min_lag)
        for p, recent, cycles, jitter in (
            (period, 10, 3, 1),
            (period, 60, 2, 2),
            (7, 25, 4, 0),
            (5, 5, 1, 3),
        ):
            assert _naive_error(x, p, min(recent, n), cycles, jitter) == _naive_error_loop(
                x, p, min(recent, n), cycles, jitter
            )
    noise = rng.random(300)
    assert detect_period(noise) == _detect_period_loop(noise)


def _seasonal_profile_loop(x: np.ndarray, period: int, ahead: int, cycles: int, jitter: int) -> list[float]:
    now = len(x)
    sm = np.concatenate([[x[0]], (x[1:] + x[:-1]) / 2.0]) if len(x) > 1 else x
    out: list[float] = []
    for j in range(ahead + 1):
        vals = []
        for c in range(1, cycles + 1):
            lo = now - c * period + j - jitter
            hi = min(now, now - c * period + j + jitter + 1)
            if lo < 0 or hi <= lo:
                continue
            vals.append(float(np.max(sm[lo:hi])))
        if not vals:
            break
        out.append(float(np.median(vals)))
    return out


@pytest.mark.parametrize("seed", range(8))
def test_seasonal_profile_matches_the_loop(seed: int) -> None:
    for n, period in ((40, 7), (130, 20), (400, 37), (1500, 240)):
        x = _series(seed, n, period)
        for p, ahead, cycles, jitter in (
            (period, 4, 3, 2),
            (period, 10, 2, 1),
            (period, 0, 4, 0),
            (9, 8, 3, 2),
        ):
            assert _seasonal_profile(x, p, ahead, cycles, jitter) == _seasonal_profile_loop(
                x, p, ahead, cycles, jitter
            )
