"""A library of load shapes for the replay suite: pure, seeded generators of Azure-format traces.

Each shape is a per-second request rate (``*_rate``: pure, testable) turned into requests by
``trace_from_rate`` (Poisson arrivals, conversation-like token lengths; replay/trace.py). The same name,
seed and duration always give the same trace. Default levels are scaled for the replay's pool,
``chat/llama-8b`` (1x L4, ~1.2 req/s per replica within SLO at these lengths; node pool limit 24): the
dev trace peaks at 12 req/s (~10-14 replicas), the 3 h shapes at 10-15 req/s with a few replicas at rest,
the 7-day trace at 6 req/s.

Shapes (``SHAPES``): ``diurnal_bursts`` (the dev trace), ``step``, ``ramp``, ``onoff``, ``flash``,
``weekly``. ``build_trace(name, seed, duration_s)`` makes one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np

from mcp_autoscale.errors import InvalidInput
from mcp_autoscale.replay.trace import (
    DEFAULT_START,
    Trace,
    diurnal_shape,
    minute_noise,
    synthetic_trace,
    trace_from_rate,
)

HOUR = 3600.0
DAY = 24 * HOUR


def _rng(seed: int, shape: str) -> np.random.Generator:
    """One stream per (seed, shape), apart from the arrival stream of ``trace_from_rate``."""
    return np.random.default_rng([seed, 3, sum(shape.encode())])


def _seconds(duration_s: float) -> np.ndarray:
    return np.arange(math.ceil(duration_s), dtype=float)


def _noisy(rate: np.ndarray, seed: int, shape: str, noise_cv: float) -> np.ndarray:
    if noise_cv <= 0:
        return rate
    return rate * minute_noise(np.random.default_rng([seed, 4, sum(shape.encode())]), len(rate), noise_cv)


def step_rate(
    duration_s: float,
    seed: int,
    *,
    base_rps: float = 2.5,
    factors: tuple[float, float] = (2.0, 5.0),
    hold_min: tuple[float, float] = (20.0, 40.0),
) -> np.ndarray:
    """Step surges: the load alternates between ``base_rps`` and ``base_rps`` x a factor drawn in
    ``factors`` (x2-x5), each level held ``hold_min`` minutes; every change is instantaneous (up and down).
    It starts at the base level."""
    rng = _rng(seed, "step")
    t = _seconds(duration_s)
    rate = np.full(len(t), base_rps)
    at, high = 0.0, False
    while at < duration_s:
        hold = rng.uniform(*hold_min) * 60.0
        if high:
            rate[(t >= at) & (t < at + hold)] = base_rps * rng.uniform(*factors)
        at += hold
        high = not high
    return rate


def ramp_rate(
    duration_s: float,
    seed: int,
    *,
    low_rps: float = 1.5,
    high_rps: float = 13.0,
    rise_frac: float = 0.4,
    hold_frac: float = 0.2,
) -> np.ndarray:
    """A slow linear ramp from ``low_rps`` up to ~``high_rps`` (+/-10%, seeded) over ``rise_frac`` of the
    trace, held for ``hold_frac``, then a linear ramp back down to ``low_rps`` over the rest."""
    rng = _rng(seed, "ramp")
    top = high_rps * rng.uniform(0.9, 1.1)
    x = _seconds(duration_s) / duration_s
    fall_frac = max(1e-9, 1.0 - rise_frac - hold_frac)
    up = low_rps + (top - low_rps) * np.clip(x / rise_frac, 0.0, 1.0)
    down = top - (top - low_rps) * np.clip((x - rise_frac - hold_frac) / fall_frac, 0.0, 1.0)
    rate: np.ndarray = np.where(x < rise_frac + hold_frac, up, down)
    return rate


def onoff_period_s(seed: int, period_min: tuple[float, float] = (10.0, 60.0)) -> float:
    """The period ``onoff_rate`` draws for ``seed`` (seconds)."""
    return float(_rng(seed, "onoff").uniform(*period_min)) * 60.0


def onoff_rate(
    duration_s: float,
    seed: int,
    *,
    on_rps: float = 11.0,
    off_rps: float = 1.0,
    period_min: tuple[float, float] = (10.0, 60.0),
    duty: tuple[float, float] = (0.3, 0.6),
) -> np.ndarray:
    """Periodic on/off load, like batch windows: a period drawn in ``period_min`` (10-60 min) and an on
    share in ``duty``, both fixed for the whole trace; ``on_rps`` while on, ``off_rps`` while off. The
    trace starts in an off phase, the first on phase at a random offset within the first period."""
    rng = _rng(seed, "onoff")
    period = float(rng.uniform(*period_min)) * 60.0  # the same first draw as onoff_period_s
    on = float(rng.uniform(*duty)) * period
    offset = float(rng.uniform(0.0, period - on))
    phase = (_seconds(duration_s) - offset) % period
    rate: np.ndarray = np.where(phase < on, on_rps, off_rps)
    rate[: int(offset)] = off_rps
    return rate


def flash_windows(
    duration_s: float,
    seed: int,
    *,
    per_hour: float = 1.5,
    factors: tuple[float, float] = (3.0, 6.0),
    length_min: tuple[float, float] = (2.0, 10.0),
) -> list[tuple[float, float, float]]:
    """The flash crowds of ``flash_rate`` for ``seed``: (start s, length s, factor), sorted, apart by at
    least 10 minutes, none in the first 10 minutes."""
    rng = _rng(seed, "flash")
    n = max(1, round(per_hour * duration_s / HOUR))
    windows: list[tuple[float, float, float]] = []
    for _ in range(50 * n):
        if len(windows) == n:
            break
        length = float(rng.uniform(*length_min)) * 60.0
        start = float(rng.uniform(600.0, max(600.0, duration_s - length)))
        factor = float(rng.uniform(*factors))
        if all(start > s + ln + 600.0 or start + length + 600.0 < s for s, ln, _ in windows):
            windows.append((start, length, factor))
    return sorted(windows)


def flash_rate(
    duration_s: float,
    seed: int,
    *,
    base_rps: float = 2.5,
    per_hour: float = 1.5,
    factors: tuple[float, float] = (3.0, 6.0),
    length_min: tuple[float, float] = (2.0, 10.0),
    rise_s: float = 20.0,
) -> np.ndarray:
    """Flash crowds: a steady ``base_rps``, and about ``per_hour`` unannounced crowds of x3-x6 lasting
    2-10 minutes, each reached within ``rise_s`` seconds and gone as fast."""
    t = _seconds(duration_s)
    rate = np.full(len(t), base_rps)
    for start, length, factor in flash_windows(
        duration_s, seed, per_hour=per_hour, factors=factors, length_min=length_min
    ):
        up = np.clip((t - start) / rise_s, 0.0, 1.0) * np.clip((start + length - t) / rise_s, 0.0, 1.0)
        rate *= 1.0 + (factor - 1.0) * up
    return rate


def weekly_rate(
    duration_s: float,
    seed: int,
    *,
    peak_rps: float = 6.0,
    peak_to_trough: float = 2.5,
    weekend_factor: float = 0.5,
    start_weekday: int = 0,
) -> np.ndarray:
    """Daily and weekly seasonality: the dev trace's diurnal curve (trough 04:00, peak 16:00, peak:trough
    2.5) with weekend days (Saturday, Sunday) at ``weekend_factor`` of a weekday, and each day's peak
    scaled by a seeded +/-10%. Day 0 is ``start_weekday`` (0 = Monday). Half the dev trace's peak by
    default (6 req/s: ~6-8 replicas on a weekday afternoon, 2-3 at night and at weekends): the twin's
    cost grows with requests, and 7 days at 12 req/s (4.4 M requests) would not fit the suite's time."""
    rng = _rng(seed, "weekly")
    t = _seconds(duration_s)
    days = int(t[-1] // DAY) + 1 if len(t) else 1
    day_level = rng.uniform(0.9, 1.1, days)
    day = (t // DAY).astype(np.int64)
    weekday = (day + start_weekday) % 7
    level = np.where(weekday >= 5, weekend_factor, 1.0) * day_level[day]
    rate: np.ndarray = peak_rps * level * diurnal_shape((t / HOUR) % 24.0, peak_to_trough)
    return rate


@dataclass(frozen=True)
class Shape:
    """A named load shape: its rate generator, default duration, minute-scale noise and start hour."""

    name: str
    rate: Callable[..., np.ndarray] | None
    duration_s: float
    noise_cv: float = 0.1
    start_hour: float = 0.0

    @property
    def doc(self) -> str:
        fn = self.rate if self.rate is not None else diurnal_bursts
        return (fn.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")

    def build(self, seed: int, duration_s: float | None = None, **params: Any) -> Trace:
        d = float(duration_s or self.duration_s)
        if d <= 0:
            raise InvalidInput(f"shape {self.name}: duration must be positive")
        if self.rate is None:
            return diurnal_bursts(d, seed, **params)
        rate = _noisy(self.rate(d, seed, **params), seed, self.name, self.noise_cv)
        extra = "".join(f", {k}={v}" for k, v in sorted(params.items()))
        return trace_from_rate(
            rate,
            seed,
            start=DEFAULT_START + timedelta(hours=self.start_hour),
            source=f"shape:{self.name}(duration={d:g}s, seed={seed}{extra})",
        )


def diurnal_bursts(duration_s: float, seed: int, **params: Any) -> Trace:
    """The dev trace: diurnal (peak:trough 2.5, peak 12 req/s at 16:00), 25% minute-scale noise and
    x1.5-2.5 bursts of 2-8 minutes about every two hours (``synthetic_trace``). The suite's 3 h window
    starts at 13:00, the afternoon peak."""
    params.setdefault("start_hour", 13.0)
    trace = synthetic_trace(duration_s, seed, **params)
    return Trace(
        start=trace.start,
        t_s=trace.t_s,
        context=trace.context,
        generated=trace.generated,
        source=f"shape:diurnal_bursts(duration={duration_s:g}s, seed={seed})",
    )


SHAPES: dict[str, Shape] = {
    "diurnal_bursts": Shape("diurnal_bursts", None, 3 * HOUR),
    "step": Shape("step", step_rate, 3 * HOUR),
    "ramp": Shape("ramp", ramp_rate, 3 * HOUR),
    "onoff": Shape("onoff", onoff_rate, 3 * HOUR),
    "flash": Shape("flash", flash_rate, 3 * HOUR),
    "weekly": Shape("weekly", weekly_rate, 7 * DAY, noise_cv=0.2),
}


def build_trace(name: str, seed: int, duration_s: float | None = None, **params: Any) -> Trace:
    """The trace of shape ``name`` for ``seed`` (its default duration unless ``duration_s`` is given)."""
    shape = SHAPES.get(name)
    if shape is None:
        raise InvalidInput(f"unknown shape {name!r}; known: {', '.join(SHAPES)}")
    return shape.build(seed, duration_s, **params)
