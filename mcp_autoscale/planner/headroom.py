"""Headroom where the load is predictable: a target utilisation U above the configured one while the
load has stayed within a small error of what the pool held one lead time earlier, and back to the
configured U at once when a surge shows.

Headroom is insurance against the load rising faster than capacity can follow: a replica ordered now
serves one lead time (cold start + node provisioning + one control interval) later, so what the pool
holds must cover the load one lead time on. If the load at ``t`` was at most ``(1 + e)`` x the most the
pool was sized for over its hold window one lead time before, capacity sized at ``U <= 1 / (1 + e)``
still fits it. On a slow repeating load ``e`` is the minute-scale noise (12-19% on the 7-day trace), so
U can rise well above the configured 0.65; where bursts come unannounced, the configured U stays:

- ``lead_errors``: per minute, the load (2-minute mean) over the most the pool held over its hold window
  one lead time earlier, minus 1. The reference is never below what the replica floor serves anyway.
- ``safe_utilisation``: the configured U while the history is shorter than the calm window, or any
  minute of the calm window rose more than ``surge_error`` (an unannounced surge: U drops at once, and
  rises again only after a whole calm window without one); else ``1 / (1 + e)`` with ``e`` the
  ``quantile`` of the calm window's errors, clamped to [configured U, ceiling].

Pure functions over numpy arrays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

SMOOTH_MIN = 2
"""Errors are taken on a 2-minute mean: one heavy minute (a few long prompts) is not a surge."""


@dataclass(frozen=True)
class Headroom:
    """The target utilisation to size at, and the evidence for it."""

    utilisation: float
    raised: bool
    """True when ``utilisation`` is above the configured U."""
    error: float | None
    """The calm window's ``quantile`` error over one lead time (None: not enough history)."""
    surge_min_ago: int | None
    """Minutes since the last error above ``surge_error`` within the calm window (None: none seen)."""
    reason: str


def lead_errors(
    demand: Sequence[float] | np.ndarray, lead_min: int, hold_min: int, floor_load: float = 0.0
) -> np.ndarray:
    """For each minute ``t`` from ``lead_min + hold_min`` on: ``x(t) / max(x[t-lead-hold .. t-lead]) - 1``,
    where ``x`` is the 2-minute mean of ``demand`` and the reference is at least ``floor_load`` (what the
    replica floor serves at the configured U: a rise below it needs no replica). Oldest first."""
    x = np.asarray(demand, dtype=float)
    k = SMOOTH_MIN
    if len(x) < k:
        return np.zeros(0)
    sm = np.convolve(x, np.ones(k) / k, mode="valid")  # sm[i] = mean of x[i .. i+k-1]
    lead, hold = max(0, lead_min), max(0, hold_min)
    if len(sm) <= lead + hold:
        return np.zeros(0)
    held = sliding_window_view(sm, hold + 1).max(axis=1)  # held[i] = max of sm[i .. i+hold]
    now = sm[lead + hold :]
    ref = np.maximum(held[: len(now)], floor_load)
    out: np.ndarray = np.where(ref > 0, now / np.where(ref > 0, ref, 1.0) - 1.0, 0.0)
    return out


def safe_utilisation(
    errors: Sequence[float] | np.ndarray,
    configured: float,
    ceiling: float,
    *,
    calm_min: int,
    quantile: float,
    surge_error: float,
) -> Headroom:
    """The U to size at, given the per-minute lead errors (oldest first; see the module doc)."""
    e = np.asarray(errors, dtype=float)
    if ceiling <= configured:
        return Headroom(configured, False, None, None, "")
    window = e[-calm_min:] if calm_min > 0 else e[:0]
    surges = np.flatnonzero(window > surge_error)
    surge_ago = None if len(surges) == 0 else int(len(window) - 1 - surges[-1])
    if surge_ago is not None:
        return Headroom(
            configured,
            False,
            None,
            surge_ago,
            f"the load rose {float(window[surges[-1]]):.0%} over one lead time {surge_ago} min ago: "
            f"U stays {configured:g} until {calm_min} min pass without such a surge",
        )
    if calm_min <= 0 or len(e) < calm_min:
        return Headroom(configured, False, None, None, "")
    err = max(0.0, float(np.quantile(window, quantile)))
    u = min(ceiling, max(configured, 1.0 / (1.0 + err)))
    raised = u > configured + 1e-9
    reason = ""
    if raised:
        reason = (
            f"load predictable: over the last {calm_min} min no surge, and {quantile:.0%} of minutes "
            f"within +{err:.0%} of what was held one lead time before -> U {u:.2f} (configured {configured:g})"
        )
    return Headroom(round(u, 4), raised, round(err, 4), None, reason)


def pool_headroom(
    prompt_tps: Sequence[float],
    gen_tps: Sequence[float],
    *,
    configured: float,
    ceiling: float,
    lead_s: float,
    hold_s: float,
    calm_s: float,
    quantile: float,
    surge_error: float,
    floor_in_tps: float | None = None,
    floor_out_tps: float | None = None,
) -> Headroom:
    """``safe_utilisation`` on a pool's per-minute demand: per minute, the worse of the prompt and output
    errors (a dimension with ``floor_*_tps`` None is not served by the pool and is left out)."""
    lead_min = math.ceil(lead_s / 60.0)
    hold_min = math.ceil(hold_s / 60.0)
    calm_min = math.ceil(calm_s / 60.0)
    if ceiling <= configured:
        return Headroom(configured, False, None, None, "")
    keep = calm_min + lead_min + hold_min + SMOOTH_MIN  # only the calm window's errors are looked at
    series = [
        lead_errors(x[-keep:], lead_min, hold_min, fl)
        for x, fl in ((prompt_tps, floor_in_tps), (gen_tps, floor_out_tps))
        if fl is not None
    ]
    if not series:
        return Headroom(configured, False, None, None, "")
    n = min(len(s) for s in series)
    errors = np.max(np.vstack([s[len(s) - n :] for s in series]), axis=0)
    return safe_utilisation(
        errors, configured, ceiling, calm_min=calm_min, quantile=quantile, surge_error=surge_error
    )
