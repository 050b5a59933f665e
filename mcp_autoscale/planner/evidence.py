"""A pool's sample history that keeps its capacity evidence up to date as samples come and go.

``learn_capacity`` and ``breach_evidence`` read the whole history: at one call per sample over a 2,880-sample
history, that is most of a long replay's time. ``SampleHistory`` is a plain list of samples (the planner
takes it wherever it takes a list) with a cache that gives the same answers from the samples added and
dropped since the last call:

- within SLO (``learn_capacity``): each sample's per-replica load goes into a sorted list when it enters
  the history and out when it leaves, so the p95 is one index away;
- breaches (``breach_evidence``): whether a sample counts depends only on it and the samples of the two
  rate windows (2W) before it (``capacity.breaches``). For a sample at least 2W after the history's first
  sample, that is decided once, when it arrives, on those samples alone; the few samples within 2W of
  the first are decided again on each call (the history's start moves). The quantile is then taken, as
  before, over the breaches only (``breach_evidence_of``).

The cache checks on each call, by identity, that the list holds what it saw last time plus new samples
at the end and minus old ones at the front; any other change (or samples out of time order, or a NaN)
rebuilds it or falls back to the full computation. ``tests/planner/test_planner_evidence.py`` checks it
against the full computation on sliding histories.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Sequence
from itertools import islice
from operator import is_

from sortedcontainers import SortedList

from mcp_autoscale.models import SloTargets
from mcp_autoscale.planner.capacity import breach_evidence, breach_evidence_of, breaches, learn_capacity
from mcp_autoscale.planner.models import PlannerConfig, PoolSample

Evidence = tuple[tuple[float | None, float | None, bool], tuple[float | None, float | None, bool]]
"""(``learn_capacity``'s answer, ``breach_evidence``'s answer)."""


def capacity_evidence(samples: Sequence[PoolSample], slo: SloTargets, config: PlannerConfig) -> Evidence:
    """``(learn_capacity(samples), breach_evidence(samples))``, from the cache when ``samples`` carries one."""
    if isinstance(samples, SampleHistory):
        return samples.evidence.get(samples, slo, config)
    return learn_capacity(samples, slo, config), breach_evidence(samples, slo, config)


def _quantile_sorted(values: SortedList, q: float) -> float:
    """``capacity._quantile`` over values already sorted."""
    idx = min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))
    return float(values[idx])


class _Entry:
    """What one sample adds to the cache."""

    __slots__ = ("bad", "loaded", "r_in", "r_out", "sample")

    def __init__(self, sample: PoolSample, slo: SloTargets) -> None:
        s = sample
        self.sample = s
        good = (
            s.ready_replicas > 0
            and s.ttft_p90_s is not None
            and s.itl_p90_s is not None
            and s.ttft_p90_s <= slo.ttft_p90_s
            and s.itl_p90_s <= slo.itl_p90_s
        )
        self.r_in = s.prompt_tps / s.ready_replicas if good and s.prompt_tps else None
        self.r_out = s.gen_tps / s.ready_replicas if good and s.gen_tps else None
        self.loaded: bool | None = None
        if good:
            self.loaded = (s.kv_usage is not None and s.kv_usage >= 0.5) or (
                s.queue_depth is not None and s.queue_depth > 0.5
            )
        self.bad: bool | None = None
        """Counted as a breach, decided once with 2W of samples before it (None: within 2W of the start)."""


class EvidenceCache:
    """Incremental ``learn_capacity`` and ``breach_evidence`` over a list that grows at the end and is trimmed
    at the front (see the module doc)."""

    def __init__(self) -> None:
        self._entries: deque[_Entry] = deque()
        self._key: tuple[float, ...] | None = None
        self._off = False
        """Set for good once a sample the cache cannot hold came (out of time order, or a NaN)."""
        self._good = 0
        self._loaded = 0
        self._r_in = SortedList()
        self._r_out = SortedList()
        self._bad: deque[_Entry] = deque()
        """Entries decided as breaches, in time order."""

    def get(self, samples: Sequence[PoolSample], slo: SloTargets, config: PlannerConfig) -> Evidence:
        key = (
            slo.ttft_p90_s,
            slo.itl_p90_s,
            config.signal_window_s,
            config.scale_in_queue_max,
            config.min_requests_for_latency,
        )
        if not self._off:
            if key != self._key:
                self._reset(key)
            self._sync(samples, slo, config)
        if self._off:
            return learn_capacity(samples, slo, config), breach_evidence(samples, slo, config)
        return self._learned(), self._breach(samples, slo, config)

    # ------------------------------------------------------------------ upkeep
    def _reset(self, key: tuple[float, ...] | None) -> None:
        self._key = key
        self._entries.clear()
        self._good = self._loaded = 0
        self._r_in.clear()
        self._r_out.clear()
        self._bad.clear()

    def _sync(self, samples: Sequence[PoolSample], slo: SloTargets, config: PlannerConfig) -> None:
        """Bring the cache to ``samples``: drop what left at the front, add what came at the end."""
        entries = self._entries
        drop = 0
        if entries and samples:
            first = samples[0]
            drop = next((i for i, e in enumerate(entries) if e.sample is first), -1)
            keep = len(entries) - drop
            if (
                drop < 0
                or keep > len(samples)
                or not all(map(is_, (e.sample for e in islice(entries, drop, None)), islice(samples, keep)))
            ):
                self._reset(self._key)
                drop, keep = 0, 0
        else:
            self._reset(self._key)
            keep = 0
        for _ in range(drop):
            self._remove(entries.popleft())
        self._add(samples, keep, slo, config)

    def _remove(self, e: _Entry) -> None:
        if e.loaded is not None:
            self._good -= 1
            self._loaded -= e.loaded
        if e.r_in is not None:
            self._r_in.remove(e.r_in)
        if e.r_out is not None:
            self._r_out.remove(e.r_out)
        if self._bad and self._bad[0] is e:
            self._bad.popleft()

    def _add(self, samples: Sequence[PoolSample], start: int, slo: SloTargets, config: PlannerConfig) -> None:
        if start >= len(samples):
            return
        two_w = 2.0 * config.signal_window_s
        t0 = samples[0].t_s
        last_t = self._entries[-1].sample.t_s if self._entries else -math.inf
        for i in range(start, len(samples)):
            s = samples[i]
            if not s.t_s > last_t or any(_nan(v) for v in (s.t_s, s.prompt_tps, s.gen_tps)):
                self._off = True
                self._reset(None)
                return
            last_t = s.t_s
            e = _Entry(s, slo)
            if s.t_s - t0 >= two_w:
                # the last sample at or before t - 2W opens the context that decides this one
                lo = bisect_right(samples, s.t_s - two_w, hi=i, key=_time) - 1
                found = breaches(samples[lo : i + 1], slo, config)
                e.bad = bool(found) and found[-1] is s
                if e.bad:
                    self._bad.append(e)
            self._entries.append(e)
            if e.loaded is not None:
                self._good += 1
                self._loaded += e.loaded
            if e.r_in is not None:
                self._r_in.add(e.r_in)
            if e.r_out is not None:
                self._r_out.add(e.r_out)

    # ------------------------------------------------------------------ answers
    def _learned(self) -> tuple[float | None, float | None, bool]:
        if not self._good:
            return None, None, True
        c_in = _quantile_sorted(self._r_in, 0.95) if self._r_in else None
        c_out = _quantile_sorted(self._r_out, 0.95) if self._r_out else None
        return c_in, c_out, not self._loaded

    def _breach(
        self, samples: Sequence[PoolSample], slo: SloTargets, config: PlannerConfig
    ) -> tuple[float | None, float | None, bool]:
        if not samples:
            return breach_evidence_of([], config)
        two_w = 2.0 * config.signal_window_s
        t0 = samples[0].t_s
        edge = 0
        while edge < len(samples) and samples[edge].t_s - t0 < two_w:
            edge += 1
        # samples now within 2W of the start are decided here, on the history as it is
        while self._bad and self._bad[0].sample.t_s - t0 < two_w:
            self._bad.popleft()
        bad = breaches(samples[:edge], slo, config) if edge else []
        bad.extend(e.sample for e in self._bad)
        return breach_evidence_of(bad, config)


def _time(s: PoolSample) -> float:
    return s.t_s


def _nan(v: float | None) -> bool:
    return v is not None and math.isnan(v)


class SampleHistory(list[PoolSample]):
    """A pool's samples, oldest first (a list), with an ``EvidenceCache`` the planner reads through
    ``capacity_evidence``. Mutate it as a list: append new samples, trim old ones from the front."""

    def __init__(self, samples: Iterable[PoolSample] = ()) -> None:
        super().__init__(samples)
        self.evidence = EvidenceCache()
