"""The server's per-pool demand per minute, for the periodic model (``planner.seasonality``), in bounded memory.

The planner learns what repeats from each pool's demand per minute (tokens/s that arrived). In a replay
the evaluator records it; on a live server ``Snapshotter`` feeds this store from every fleet snapshot it
keeps, and ``recommend_scaling`` passes it to ``planner.recommend(minutes=...)``.

Memory is bounded twice over. Each pool keeps at most ``max_minutes`` (8 days: two daily periods and
the day before) in float32 cells (8 bytes a cell: prompt and output tokens/s), and all pools together at
most ``budget`` cells (2 M: 16 MB). When the fleet is larger than the budget holds at one minute a cell,
cells widen (2, 4, 8... minutes, older cells averaged pairwise) so every pool still covers
``max_minutes``: 1 minute per cell up to 173 pools, 8 minutes at 1,000 pools (1,440 cells, 11.5 KB a pool).
A wide cell is read back as that many equal minutes: a period is still found, its phases blur by up to
a cell.

Snapshots taken minutes apart (the agent's interval) leave minutes with no sample: they are filled by
linear interpolation between the two samples around them, up to a gap of ``max_gap_min``; a longer gap
(the server was down) restarts the pool's record. Several samples in one cell are averaged.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

import numpy as np

from mcp_autoscale.models import FleetSnapshot
from mcp_autoscale.planner.backlog import arrival_rates
from mcp_autoscale.planner.models import PoolSample
from mcp_autoscale.planner.recommend import pool_key
from mcp_autoscale.planner.seasonality import MinuteDemand

MAX_MINUTES = 8 * 1440
MINUTE_BUDGET = 2_000_000
"""Cells (of two float32) over all pools: 16 MB."""


class _Ring:
    """One pool's cells, a ring of ``cap`` rows (prompt, output tokens/s), newest at absolute cell ``end``."""

    __slots__ = ("cells", "count", "end", "last_minute", "n")

    def __init__(self, cap: int) -> None:
        self.cells = np.zeros((cap, 2), dtype=np.float32)
        self.n = 0
        self.end = -1
        self.count = 0
        """Samples averaged into the newest cell."""
        self.last_minute = -1

    @property
    def cap(self) -> int:
        return len(self.cells)

    def ordered(self) -> np.ndarray:
        """Cells oldest first (a copy)."""
        idx = np.arange(self.end - self.n + 1, self.end + 1) % self.cap
        return self.cells[idx]

    def put(self, cell: int, value: tuple[float, float]) -> None:
        self.cells[cell % self.cap] = value
        self.end = cell
        self.n = min(self.cap, self.n + 1)


class MinuteHistory:
    """Per-pool demand per minute (see the module doc for the bounds)."""

    def __init__(
        self, max_minutes: int = MAX_MINUTES, budget: int = MINUTE_BUDGET, max_gap_min: int = 60
    ) -> None:
        self.max_minutes = max_minutes
        self.budget = budget
        self.max_gap_min = max_gap_min
        self.resolution = 1
        """Minutes per cell (a power of two)."""
        self._rings: dict[str, _Ring] = {}
        self._last: dict[str, PoolSample] = {}

    # ------------------------------------------------------------------ writing
    def observe(self, snap: FleetSnapshot) -> None:
        """Record every pool of a fleet snapshot: tokens/s served, corrected by the queue's change since
        the pool's previous sample (a growing queue is demand not yet served)."""
        t = snap.taken_at.timestamp()
        minute = int(t // 60)
        keys = set()
        self.fit(len(snap.pools))
        for p in snap.pools:
            key = pool_key(p)
            keys.add(key)
            cur = PoolSample.from_snapshot(p, t)
            prev = self._last.get(key)
            r_in, r_out = arrival_rates(prev, cur) if prev is not None else (cur.prompt_tps, cur.gen_tps)
            self._last[key] = cur
            self.record(key, minute, r_in or 0.0, r_out or 0.0)
        if not snap.partial:
            for gone in set(self._rings) - keys:  # the pool no longer exists
                del self._rings[gone]
                self._last.pop(gone, None)

    def record(self, key: str, minute: int, prompt_tps: float, gen_tps: float) -> None:
        """One sample of a pool's demand at ``minute`` (minutes since the epoch); older than the pool's
        newest minute is ignored."""
        if not (math.isfinite(prompt_tps) and math.isfinite(gen_tps)):
            return
        ring = self._rings.get(key)
        if ring is None:
            ring = self._rings[key] = _Ring(self.cells_per_pool)
        res = self.resolution
        cell = minute // res
        value = (prompt_tps, gen_tps)
        if ring.n and (minute < ring.last_minute or minute - ring.last_minute > self.max_gap_min):
            if minute < ring.last_minute:
                return
            ring = self._rings[key] = _Ring(self.cells_per_pool)  # a long gap: start again
        if ring.n and cell == ring.end:
            ring.count += 1
            row = ring.cells[cell % ring.cap]
            row += (np.asarray(value, dtype=np.float32) - row) / ring.count
        else:
            if ring.n:
                last = ring.cells[ring.end % ring.cap].astype(float)
                gap = cell - ring.end
                for k in range(1, gap):
                    v = last + (np.asarray(value) - last) * (k / gap)
                    ring.put(ring.end + 1, (float(v[0]), float(v[1])))
            ring.put(cell, value)
            ring.count = 1
        ring.last_minute = minute

    # ------------------------------------------------------------------ bounds
    @property
    def cells_per_pool(self) -> int:
        return math.ceil(self.max_minutes / self.resolution)

    def fit(self, pools: int) -> None:
        """Widen the cells until ``pools`` pools fit the budget (they never narrow again)."""
        res = self.resolution
        while math.ceil(self.max_minutes / res) * max(1, pools) > self.budget and res < self.max_minutes:
            res *= 2
        while self.resolution < res:
            self._widen()

    def _widen(self) -> None:
        """Double the minutes per cell: each pair of cells becomes their mean."""
        self.resolution *= 2
        cap = self.cells_per_pool
        for key, ring in list(self._rings.items()):
            cells = ring.ordered().astype(float)
            first = ring.end - ring.n + 1
            groups = np.arange(first, ring.end + 1) // 2
            new_first, new_end = int(groups[0]), int(groups[-1])
            sums = np.zeros((new_end - new_first + 1, 2))
            np.add.at(sums, groups - new_first, cells)
            counts = np.bincount(groups - new_first)[:, None]
            wide = _Ring(cap)
            for i, row in enumerate((sums / counts)[-cap:]):
                wide.put(new_end - min(cap, len(sums)) + 1 + i, (float(row[0]), float(row[1])))
            wide.count = 1
            wide.last_minute = ring.last_minute
            self._rings[key] = wide

    # ------------------------------------------------------------------ reading
    def demand(self, key: str) -> MinuteDemand | None:
        """The pool's demand per minute, oldest first (wide cells repeated per minute), or None."""
        ring = self._rings.get(key)
        if ring is None or not ring.n:
            return None
        cells = ring.ordered().astype(float)
        res = self.resolution
        per_minute = np.repeat(cells, res, axis=0)
        # the newest cell has only reached its last recorded minute
        per_minute = per_minute[: len(per_minute) - (res - 1 - ring.last_minute % res)]
        per_minute = per_minute[-self.max_minutes :]
        return MinuteDemand(
            prompt_tps=per_minute[:, 0].tolist(),
            gen_tps=per_minute[:, 1].tolist(),
            max_minutes=self.max_minutes,
        )

    def view(self) -> Mapping[str, MinuteDemand]:
        """A read-only mapping pool key -> ``MinuteDemand``, built per pool when asked (``recommend``)."""
        return _View(self)

    @property
    def nbytes(self) -> int:
        return sum(r.cells.nbytes for r in self._rings.values())

    def __len__(self) -> int:
        return len(self._rings)


class _View(Mapping[str, MinuteDemand]):
    def __init__(self, history: MinuteHistory) -> None:
        self._h = history

    def __getitem__(self, key: str) -> MinuteDemand:
        found = self._h.demand(key)
        if found is None:
            raise KeyError(key)
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._h._rings))

    def __len__(self) -> int:
        return len(self._h)
