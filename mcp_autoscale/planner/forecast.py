"""Short-horizon load forecast, so new replicas are ready before the SLO breaks.

Holt's linear trend (double exponential smoothing) over the last few samples: cheap, pure, and enough to
see a ramp coming one cold start ahead. The horizon is cold start + one control interval: a replica asked
for now serves from ``cold_start`` on, and the next chance to correct is one interval later.
"""

from __future__ import annotations

from collections.abc import Sequence


def holt_forecast(
    times_s: Sequence[float], values: Sequence[float], horizon_s: float, alpha: float = 0.5, beta: float = 0.3
) -> float | None:
    """Forecast ``values`` ``horizon_s`` seconds after the last sample; None with fewer than 2 samples.

    Samples may be irregular: the trend is kept per second. The result is never negative.
    """
    state = holt_state(times_s, values, alpha, beta)
    if state is None:
        return None
    level, trend = state
    return max(0.0, level + trend * horizon_s)


def holt_state(
    times_s: Sequence[float], values: Sequence[float], alpha: float = 0.5, beta: float = 0.3
) -> tuple[float, float] | None:
    """Holt's smoothed level at the last sample and its trend per second; None with fewer than 2 samples."""
    pts = [(t, v) for t, v in zip(times_s, values, strict=True) if v is not None]
    if len(pts) < 2:
        return None
    pts.sort(key=lambda p: p[0])
    level = pts[0][1]
    # the initial trend is the window's average slope, not the first difference: a single noisy step
    # extrapolated over minutes of lead time would order (and later return) replicas for nothing
    span = pts[-1][0] - pts[0][0]
    trend = (pts[-1][1] - pts[0][1]) / span if span > 0 else 0.0
    last_t = pts[0][0]
    for t, v in pts[1:]:
        dt = t - last_t
        if dt <= 0:
            continue
        prev = level
        level = alpha * v + (1 - alpha) * (level + trend * dt)
        trend = beta * (level - prev) / dt + (1 - beta) * trend
        last_t = t
    return level, trend


def lead_time_s(cold_start_s: float, control_interval_s: float) -> float:
    """How far ahead to size: a new replica serves after its cold start, and we look again one interval on."""
    return cold_start_s + control_interval_s


def recent_slope(times_s: Sequence[float], values: Sequence[float], samples: int = 6) -> float | None:
    """Least-squares slope per second over the last ``samples`` points; None with fewer than 3."""
    pts = sorted(zip(times_s, values, strict=True))[-samples:]
    if len(pts) < 3:
        return None
    n = len(pts)
    mt = sum(t for t, _ in pts) / n
    mv = sum(v for _, v in pts) / n
    var = sum((t - mt) ** 2 for t, _ in pts)
    if var <= 0:
        return None
    return sum((t - mt) * (v - mv) for t, v in pts) / var


def trend_still_rising(trend: float, slope: float | None, earlier_slope: float | None = None) -> float:
    """The trend to extrapolate: no steeper than the last few samples still climb, nor than the few
    before them climbed.

    Holt's trend remembers a step for many samples after it ended and would extrapolate it as a ramp
    (x2 the new level, one lead time on). A step that has stopped climbing is not a trend, and neither is
    the edge of one (the samples before the edge were flat); a real ramp keeps its slope in both.
    """
    if trend <= 0 or slope is None:
        return trend
    out = min(trend, max(0.0, slope))
    if earlier_slope is not None:
        out = min(out, max(0.0, earlier_slope))
    return out


def sudden_rise(times_s: Sequence[float], values: Sequence[float], window_s: float, ratio: float) -> bool:
    """Whether the last value is >= ``ratio`` x the lowest of the values within ``window_s`` before it.

    A step or a flash crowd lifts the load by half or more within a few rate windows; a ramp that does
    so in five minutes is rare (1.5 -> 13 req/s over 72 minutes takes ~5 minutes for x1.5 only at its
    very start). The rise of a step has no future: extrapolating it one lead time on (7-8 minutes when a
    node must be provisioned) ordered up to the node pool's limit where the new level needed ~0.7x that.
    """
    pts = sorted(zip(times_s, values, strict=True))
    if len(pts) < 2 or ratio <= 0:
        return False
    t_last, v_last = pts[-1]
    before = [v for t, v in pts[:-1] if t >= t_last - window_s]
    return bool(before) and v_last > 0 and v_last >= ratio * max(0.0, min(before))
