"""A token bucket per caller: how many audit records one caller may cause, and when it may try again.

Every gated call writes an audit record, and a dry run costs the caller nothing: a model (or a loop gone
wrong) can fill the disk at hundreds of records a second. Each caller gets ``burst`` records at once and
``rate_per_s`` more each second; past that the call is refused before anything is decided or recorded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

MAX_CALLERS = 10_000


class TokenBucket:
    """Per-key buckets; ``take`` answers 0 when allowed, else the seconds until a token is free."""

    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        self.rate = rate_per_s
        self.burst = float(burst)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._mutex = threading.Lock()

    def take(self, key: str) -> float:
        with self._mutex:
            now = self.clock()
            tokens, then = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                self._forget_full(now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        """Callers whose bucket has refilled need no memory: keeps the table bounded under many callers."""
        if len(self._buckets) <= MAX_CALLERS:
            return
        refill = self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < refill}
