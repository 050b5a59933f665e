"""Load that repeats: periodic on/off phases (batch windows) and daily curves, learned from the pool's own
per-minute demand, so the planner orders capacity one lead time before the load comes back and releases
it while the load is known to stay away.

- ``detect_period``: the autocorrelation of the 1-minute demand; a period is a lag whose autocorrelation
  is a clear peak (high, and well above the trough before it), seen over at least two whole periods.
- ``outlook``: for the next minutes, what the same phase of the last few periods saw (median over
  periods, so one burst in one period does not count), scaled by how the last stretch compares with the
  same stretch one period earlier (a weekend day is lower than the weekdays before it), and how well that
  same rule predicted the recent minutes (the planner trusts it only when it did).

Pure functions over numpy arrays; ``MinuteDemand`` is the rolling per-minute record a control loop keeps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class MinuteDemand:
    """Demand (tokens/s that arrived) per minute, oldest first, at most ``max_minutes`` long."""

    prompt_tps: list[float] = field(default_factory=list)
    gen_tps: list[float] = field(default_factory=list)
    max_minutes: int = 8 * 1440

    def add(self, prompt_tps: float, gen_tps: float) -> None:
        self.prompt_tps.append(prompt_tps)
        self.gen_tps.append(gen_tps)
        if len(self.prompt_tps) > self.max_minutes:
            del self.prompt_tps[: -self.max_minutes]
            del self.gen_tps[: -self.max_minutes]

    def __len__(self) -> int:
        return len(self.prompt_tps)


@dataclass(frozen=True)
class Outlook:
    """What the periodic model expects over the next ``ahead_min`` minutes."""

    period_min: int
    acf: float
    """Autocorrelation at the period (1 = identical periods)."""
    profile_in: tuple[float, ...]
    """Prompt tokens/s the same phase of past periods saw, minute by minute from now (level-scaled)."""
    profile_out: tuple[float, ...]
    level: float
    """Last stretch over the same stretch one period back (clipped to [0.5, 2])."""
    error: float
    """Relative mean absolute error of the same rule on the recent minutes (0 = perfect)."""

    def peak(self, minutes: float) -> tuple[float, float]:
        """(prompt, output) tokens/s: the most expected from now to ``minutes`` ahead."""
        k = max(1, math.ceil(minutes) + 1)
        return max(self.profile_in[:k], default=0.0), max(self.profile_out[:k], default=0.0)


def _combined(prompt: np.ndarray, gen: np.ndarray) -> np.ndarray:
    """One load series from both token rates (each over its mean), so either dimension's cycle shows."""
    out = np.zeros_like(prompt, dtype=float)
    for x in (prompt, gen):
        m = float(np.mean(x)) if len(x) else 0.0
        if m > 0:
            out += x / m
    return out


def autocorrelation(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Autocorrelation for lags 0..max_lag (FFT, each lag normalised by its overlap)."""
    n = len(x)
    y = np.asarray(x, dtype=float) - float(np.mean(x))
    var = float(np.dot(y, y)) / max(1, n)
    if n < 2 or var <= 0:
        return np.zeros(max_lag + 1)
    size = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(y, size)
    raw = np.fft.irfft(f * np.conj(f), size)[: max_lag + 1]
    overlap = np.arange(n, n - max_lag - 1, -1, dtype=float)
    return np.asarray(raw / overlap / var)


def detect_period(
    x: Sequence[float] | np.ndarray,
    min_lag: int = 5,
    min_acf: float = 0.5,
    min_prominence: float = 0.6,
) -> tuple[int, float] | None:
    """(period in samples, autocorrelation) of the clearest repeat in ``x``, or None.

    A candidate lag is a local maximum of the autocorrelation, at least ``min_acf``, and at least
    ``min_prominence`` above the lowest autocorrelation at shorter lags (a trend or slow noise keeps the
    autocorrelation high at short lags without any dip: that is not a period). At least two whole periods
    must be in ``x``. Among candidates, the shortest whose peak is within 10% of the best wins (a period's
    multiples are peaks too).
    """
    arr = np.asarray(x, dtype=float)
    n = len(arr)
    max_lag = n // 2
    if max_lag < min_lag or n < 3:
        return None
    acf = autocorrelation(arr, min(n - 1, max_lag + 1))
    # lags min_lag..max_lag at once (the same comparisons as one lag at a time, in numpy)
    lo = max(1, min_lag)
    running_min = np.minimum.accumulate(acf[1 : max_lag + 1])[lo - 1 :]
    a = acf[lo : max_lag + 1]
    peak = (
        (a >= min_acf)
        & (a >= acf[lo - 1 : max_lag])
        & (a >= acf[lo + 1 : max_lag + 2])
        & (a - running_min >= min_prominence)
    )
    cands = np.flatnonzero(peak)
    if not len(cands):
        return None
    best = float(np.max(a[cands]))
    first = cands[a[cands] >= 0.9 * best][0]
    return int(first) + lo, float(a[first])


def _seasonal_profile(x: np.ndarray, period: int, ahead: int, cycles: int, jitter: int) -> list[float]:
    """For each minute 0..ahead from now: the median over past periods of the most the same phase saw
    within +-``jitter`` minutes (of a 2-minute moving mean: one noisy minute is not the phase's level)."""
    now = len(x)
    sm = np.concatenate([[x[0]], (x[1:] + x[:-1]) / 2.0]) if len(x) > 1 else x
    if now - cycles * period - jitter >= 0 and ahead + jitter + 1 <= period and cycles > 0 and ahead >= 0:
        # every (minute, period) window is whole: gather them at once (the same maxima and medians)
        wins = np.lib.stride_tricks.sliding_window_view(sm, 2 * jitter + 1)
        starts = now - np.arange(1, cycles + 1)[None, :] * period + np.arange(ahead + 1)[:, None] - jitter
        return [float(v) for v in np.median(np.max(wins[starts], axis=2), axis=1).tolist()]
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


def _naive_error(x: np.ndarray, period: int, recent: int, cycles: int, jitter: int = 1) -> float | None:
    """Relative MAE of 'the same minute of past periods' over the last ``recent`` minutes: per minute,
    the median over periods of the closest value within +-``jitter`` minutes (a phase that starts a
    minute early or late, or a period that is not a whole number of minutes, is still the same phase)."""
    now = len(x)
    errs = 0.0
    total = 0.0
    span = 2 * jitter + 1
    if now - recent - cycles * period - jitter >= 0 and period > jitter and recent > 0 and cycles > 0:
        # every minute has all its cycles, each a whole window: gather them at once
        ts = np.arange(now - recent, now)
        wins = np.lib.stride_tricks.sliding_window_view(x, span)
        starts = ts[:, None] - np.arange(1, cycles + 1)[None, :] * period - jitter
        closest = np.min(np.abs(wins[starts] - x[ts][:, None, None]), axis=2)
        for t, med in zip(ts.tolist(), np.median(closest, axis=1).tolist(), strict=True):
            errs += med
            total += float(x[t])
        return errs / total if total > 0 else None
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


def outlook(
    demand: MinuteDemand,
    ahead_min: int,
    *,
    min_lag: int = 5,
    cycles: int = 3,
    jitter_min: int = 2,
    level_min: int = 60,
) -> Outlook | None:
    """The periodic model's view of the next ``ahead_min`` minutes, or None when no period shows."""
    p_in = np.asarray(demand.prompt_tps, dtype=float)
    p_out = np.asarray(demand.gen_tps, dtype=float)
    if len(p_in) < 2 * min_lag + 2:
        return None
    z = _combined(p_in, p_out)
    found = detect_period(z, min_lag=min_lag)
    if found is None:
        return None
    period, acf = found
    ahead = max(1, ahead_min)
    prof_in = _seasonal_profile(p_in, period, ahead, cycles, jitter_min)
    prof_out = _seasonal_profile(p_out, period, ahead, cycles, jitter_min)
    stretch = min(period, level_min)
    err = _naive_error(z, period, stretch, cycles)
    if not prof_in or not prof_out or err is None:
        return None
    now = len(z)
    back = [
        float(np.sum(z[now - c * period - stretch : now - c * period]))
        for c in range(1, cycles + 1)
        if now - c * period - stretch >= 0
    ]
    level = 1.0
    if back and float(np.median(back)) > 0:
        level = min(2.0, max(0.5, float(np.sum(z[now - stretch :])) / float(np.median(back))))
    return Outlook(
        period_min=period,
        acf=round(acf, 3),
        profile_in=tuple(v * level for v in prof_in),
        profile_out=tuple(v * level for v in prof_out),
        level=round(level, 3),
        error=round(err, 3),
    )
