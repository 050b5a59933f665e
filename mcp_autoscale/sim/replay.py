"""Feed a pool from timestamped requests (trace replay): an ``ArrivalFn`` for ``Twin.set_arrivals``."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from datetime import datetime

from mcp_autoscale.errors import InvalidInput
from mcp_autoscale.sim.serving import TraceRequest


class TraceSchedule:
    """Requests ``(timestamp, prompt_tokens, output_tokens)`` replayed against the twin's clock.

    The first row is aligned to ``align_to`` (default: the first step the twin asks for); ``speedup`` > 1
    compresses the trace's time. Each call returns the rows that fall into ``[step_start, step_start +
    step_s)``, so every request is delivered exactly once whatever the tick length.
    """

    def __init__(
        self,
        rows: Iterable[tuple[datetime, int, int]],
        *,
        align_to: datetime | None = None,
        speedup: float = 1.0,
    ) -> None:
        if speedup <= 0:
            raise InvalidInput(f"speedup must be > 0, got {speedup}")
        ordered = sorted(rows, key=lambda r: r[0])
        if not ordered:
            raise InvalidInput("trace has no rows")
        t0 = ordered[0][0]
        self._offsets = [(ts - t0).total_seconds() / speedup for ts, _, _ in ordered]
        self._tokens = [(max(1, int(p)), max(1, int(o))) for _, p, o in ordered]
        self._align = align_to
        self.delivered = 0

    def __len__(self) -> int:
        return len(self._offsets)

    def __call__(self, step_start: datetime, step_s: float) -> list[TraceRequest]:
        if self._align is None:
            self._align = step_start
        lo_s = (step_start - self._align).total_seconds()
        hi_s = lo_s + step_s
        lo = bisect_left(self._offsets, lo_s)
        hi = bisect_left(self._offsets, hi_s)
        out = [
            TraceRequest(self._offsets[i] - lo_s, self._tokens[i][0], self._tokens[i][1])
            for i in range(lo, hi)
        ]
        self.delivered += len(out)
        return out
