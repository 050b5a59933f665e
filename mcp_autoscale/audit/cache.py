"""The decision window (changes made in the last day, and open intents), kept parsed per process.

Every decision looks at the changes made in the last day. At a busy pace that is thousands of records;
parsing them again on every call (about 150 us each), or even fetching their keys, makes each decision
slower as the fleet gets busier. The window is kept here instead: each call asks the store only for
records newer than the newest one seen (seq order is append order), parses just those, drops what has
left the time window, and adds the open intents (a small set, asked for every time because an outcome
closes them). Memory is bounded by the window. Seqs are assigned under the chain's lock and become
visible in order, so nothing can appear later below the newest seq seen.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime

from mcp_autoscale.models import AuditRecord


class DecisionWindow:
    """Counted records (applied, reconciled-as-applied) in seq order, plus a fresh look at the open intents.

    Expiry pops from the oldest end while a record is older than the window, so a record whose clock ran
    behind a later one may stay a little longer: harmless, since the evaluator filters every limit by its
    own time window again (and counting more is the fail-closed side).
    """

    def __init__(self) -> None:
        self._counted: deque[AuditRecord] = deque()
        self._stamps: deque[float] = deque()  # ts of each, as epoch seconds (cheap to compare)
        self._seen = 0  # every counted record with seq <= _seen is in _counted (or left the window)
        self._mutex = threading.Lock()
        self.parsed = 0

    def reset(self) -> None:
        """The store was rebuilt or replaced: what seqs mean may have changed."""
        with self._mutex:
            self._counted.clear()
            self._stamps.clear()
            self._seen = 0

    def records(
        self,
        since: datetime,
        newer_than: Callable[[int, datetime], Iterable[str]],
        open_intents: Callable[[], Iterable[str]],
    ) -> list[AuditRecord]:
        """Counted records with ``ts >= since`` and every open intent, oldest first."""
        with self._mutex:
            seen = self._seen
        fresh = [AuditRecord.model_validate_json(line) for line in newer_than(seen, since)]
        intents = [AuditRecord.model_validate_json(line) for line in open_intents()]
        floor = since.timestamp()
        with self._mutex:
            self.parsed += len(fresh) + len(intents)
            for r in fresh:
                if r.seq > self._seen:
                    self._counted.append(r)
                    self._stamps.append(r.ts.timestamp())
                    self._seen = r.seq
            while self._stamps and self._stamps[0] < floor:
                self._stamps.popleft()
                self._counted.popleft()
            window = list(self._counted)
        if not intents:
            return window
        return sorted([*window, *intents], key=lambda r: r.seq)
