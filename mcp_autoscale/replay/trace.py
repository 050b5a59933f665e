"""Request traces in the Azure LLM inference trace format, and a seeded synthetic generator for it.

Format (AzurePublicDataset, 2023 and 2024): a CSV with a header ``TIMESTAMP,ContextTokens,GeneratedTokens``;
TIMESTAMP is a date-time such as ``2023-11-16 18:15:46.6805900`` (2023) or
``2024-05-10 00:00:00.009930+00:00`` (2024). The loader also accepts plain seconds.

The synthetic generator reproduces the *conversation* statistics of CALIBRATION.md §3: lognormal prompt
(mu 6.63, sigma 0.99, cap 14,050) and output (mu 5.02, sigma 0.86, cap 2,048) lengths; a diurnal curve with
peak:trough 2.5 (Azure 2024 conversation, peak in the afternoon); minute-scale over-dispersion (a slowly
varying lognormal factor; the 2023 trace's per-minute var/mean is 20.6 at 5.5 req/s, i.e. ~25% CV); Poisson
arrivals within each second (inter-arrival CV ~1.09); and bursts (about one every two hours, x1.5-2.5 for
2-8 minutes, the per-second peak/mean of 2.9x).
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from mcp_autoscale.errors import InvalidInput

HEADER = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
DEFAULT_START = datetime(2026, 11, 24, tzinfo=UTC)


@dataclass(frozen=True)
class Trace:
    """Arrivals sorted by time: offsets in seconds from ``start`` and token counts per request."""

    start: datetime
    t_s: np.ndarray
    context: np.ndarray
    generated: np.ndarray
    source: str

    def __post_init__(self) -> None:
        if not (len(self.t_s) == len(self.context) == len(self.generated)):
            raise InvalidInput("trace columns differ in length")

    @property
    def requests(self) -> int:
        return len(self.t_s)

    @property
    def duration_s(self) -> float:
        return float(self.t_s[-1]) if len(self.t_s) else 0.0

    def per_minute(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(requests, prompt tokens, output tokens) per minute of the trace."""
        minutes = math.ceil(self.duration_s / 60.0) + 1
        idx = (self.t_s // 60).astype(np.int64)
        req = np.bincount(idx, minlength=minutes).astype(float)
        ctx = np.bincount(idx, weights=self.context, minlength=minutes)
        gen = np.bincount(idx, weights=self.generated, minlength=minutes)
        return req, ctx, gen


def parse_duration(text: str) -> float:
    """'24h', '90m', '3600s', '1.5h' -> seconds."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smhd]?)\s*", text)
    if not m:
        raise InvalidInput(f"duration {text!r}: expected e.g. 24h, 90m, 3600s")
    value = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    if value <= 0:
        raise InvalidInput(f"duration {text!r} must be positive")
    return value


def _parse_ts(text: str) -> datetime | float:
    s = text.strip()
    try:
        return float(s)
    except ValueError:
        pass
    # Python < 3.12 rejects more than 6 fractional digits ('18:15:46.6805900'): trim them
    s = re.sub(r"(\.\d{6})\d+", r"\1", s)
    dt = datetime.fromisoformat(s)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def load_trace(path: Path) -> Trace:
    """Read an Azure-format trace CSV; errors name the file, line and column."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise InvalidInput(f"{path}: cannot read trace: {err.strerror or err}") from err
    times: list[float] = []
    ctx: list[int] = []
    gen: list[int] = []
    origin: datetime | None = None
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header[:3]) != HEADER:
        raise InvalidInput(f"{path}:1: expected header {','.join(HEADER)}, got {','.join(header or [])}")
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        try:
            ts = _parse_ts(row[0])
            c, g = int(float(row[1])), int(float(row[2]))
        except (ValueError, IndexError) as err:
            raise InvalidInput(f"{path}:{line}: bad row {row!r}: {err}") from err
        if c < 0 or g < 0:
            raise InvalidInput(f"{path}:{line}: token counts must be >= 0")
        if isinstance(ts, datetime):
            if origin is None:
                origin = ts
            times.append((ts - origin).total_seconds())
        else:
            times.append(ts)
        ctx.append(c)
        gen.append(g)
    if not times:
        raise InvalidInput(f"{path}: the trace has no requests")
    t = np.asarray(times, dtype=float)
    order = np.argsort(t, kind="stable")
    first = float(t[order][0])
    t = t[order] - first
    start = DEFAULT_START if origin is None else origin + timedelta(seconds=first)
    return Trace(
        start=start,
        t_s=t,
        context=np.asarray(ctx, dtype=np.int64)[order],
        generated=np.asarray(gen, dtype=np.int64)[order],
        source=str(path),
    )


def write_trace(trace: Trace, path: Path) -> None:
    """Write in the Azure 2023 format (7 fractional digits, like the published files); vectorised."""
    base = np.datetime64(trace.start.replace(tzinfo=None), "us")
    stamps = base + np.round(trace.t_s * 1e6).astype("timedelta64[us]")
    text = np.datetime_as_string(stamps, unit="us")
    rows = [
        f"{ts.replace('T', ' ')}0,{c},{g}"
        for ts, c, g in zip(text.tolist(), trace.context.tolist(), trace.generated.tolist(), strict=True)
    ]
    Path(path).write_text(",".join(HEADER) + "\n" + "\n".join(rows) + "\n", encoding="utf-8")


def diurnal_shape(hour: np.ndarray, peak_to_trough: float) -> np.ndarray:
    """In (0, 1]: trough at 04:00, peak at 16:00."""
    trough = 1.0 / peak_to_trough
    return trough + (1.0 - trough) * (0.5 - 0.5 * np.cos(2.0 * np.pi * (hour - 4.0) / 24.0))


def minute_noise(rng: np.random.Generator, n: int, cv: float, memory_min: float = 5.0) -> np.ndarray:
    """A mean-1 factor per second: minute-scale over-dispersion, AR(1) in log space with a ``memory_min``
    memory (the Azure traces' per-minute var/mean of ~20 is ~25% CV)."""
    minutes = n // 60 + 2
    sigma = math.sqrt(math.log(1.0 + cv**2))
    phi = math.exp(-1.0 / memory_min)
    z = np.empty(minutes)
    z[0] = rng.standard_normal()
    eps = rng.standard_normal(minutes)
    for i in range(1, minutes):
        z[i] = phi * z[i - 1] + math.sqrt(1 - phi**2) * eps[i]
    factor = np.exp(sigma * z - sigma**2 / 2)
    result: np.ndarray = np.interp(np.arange(n, dtype=float) / 60.0, np.arange(minutes), factor)
    return result


def synthetic_rate(
    duration_s: float,
    seed: int,
    peak_rps: float,
    start_hour: float = 0.0,
    peak_to_trough: float = 2.5,
    noise_cv: float = 0.25,
    bursts_per_hour: float = 0.5,
) -> np.ndarray:
    """Requests/s for each second of the trace (diurnal x minute-scale noise x bursts)."""
    rng = np.random.default_rng([seed, 1])
    n = math.ceil(duration_s)
    t = np.arange(n, dtype=float)
    rate = peak_rps * diurnal_shape((start_hour + t / 3600.0) % 24.0, peak_to_trough)
    rate *= minute_noise(rng, n, noise_cv)
    # bursts: a 30 s ramp to x1.5-2.5, held for 2-8 minutes
    n_bursts = rng.poisson(bursts_per_hour * duration_s / 3600.0)
    for _ in range(n_bursts):
        at = rng.uniform(0, duration_s)
        height = rng.uniform(1.5, 2.5)
        length = rng.uniform(120.0, 480.0)
        ramp = np.clip((t - at) / 30.0, 0.0, 1.0) * (t < at + length)
        rate *= 1.0 + (height - 1.0) * ramp
    return rate


def synthetic_trace(
    duration_s: float,
    seed: int = 7,
    *,
    peak_rps: float = 12.0,
    start_hour: float = 0.0,
    peak_to_trough: float = 2.5,
    bursts_per_hour: float = 0.5,
    start: datetime = DEFAULT_START,
) -> Trace:
    """A seeded conversation-like trace (see module doc for the statistics it follows)."""
    if duration_s <= 0 or peak_rps <= 0:
        raise InvalidInput("duration and peak_rps must be positive")
    rate = synthetic_rate(duration_s, seed, peak_rps, start_hour, peak_to_trough, 0.25, bursts_per_hour)
    return trace_from_rate(
        rate,
        seed,
        start=start + timedelta(hours=start_hour),
        source=f"synthetic(duration={duration_s:g}s, seed={seed}, peak_rps={peak_rps:g})",
    )


def trace_from_rate(rate: np.ndarray, seed: int, *, start: datetime, source: str) -> Trace:
    """Requests for a per-second rate: Poisson arrivals within each second, conversation-like lognormal
    prompt and output lengths (module doc). Seeded: the same rate and seed give the same trace."""
    rng = np.random.default_rng([seed, 2])
    counts = rng.poisson(rate)
    total = int(counts.sum())
    sec = np.repeat(np.arange(len(rate), dtype=float), counts)
    t = np.sort(sec + rng.random(total))
    t = t[t < len(rate)]
    k = len(t)
    ctx = np.clip(np.exp(6.63 + 0.99 * rng.standard_normal(k)), 1, 14050).astype(np.int64)
    gen = np.clip(np.exp(5.02 + 0.86 * rng.standard_normal(k)), 1, 2048).astype(np.int64)
    return Trace(start=start, t_s=t, context=ctx, generated=gen, source=source)
