"""``dynamo``: NVIDIA Dynamo's planner in its default mode, load-based "easy" scaling of an aggregated pool.

Follows ai-dynamo/dynamo ``components/src/dynamo/planner/``:
- ``config/planner_config.py`` (commit 1366ebb2): ``optimization_target`` defaults to ``"throughput"``,
  which forces load-based scaling on and throughput (predictive) scaling off: the default planner is
  the reactive one; the predictive ARIMA loop (``core/load/predictors.py``, every 180 s) runs only with
  ``optimization_target="sla"`` and a pre-deployment profile;
- ``config/defaults.py`` (commit 1ca60155): ``load_adjustment_interval`` 5 s, ``min_endpoint`` 1;
- ``core/load_scaling.py`` (commit 0c6da1ec), ``_advance_load_agg`` and ``_agg_easy_decision``: per
  engine, utilisation = (scheduled decode KV + queued decode KV + queued prefill tokens) / max KV tokens;
  +1 worker when any engine is above 1.0 (``_DECODE_THROUGHPUT_SCALE_UP``), -1 when every engine is
  below 0.6 (``_DECODE_THROUGHPUT_SCALE_DOWN``) and there are at least two; no decision while a scaling
  operation is in progress (workers not yet matching the last decision).

Here an engine's scheduled KV is the twin's KV usage x the engine's KV tokens (``vllm:cache_config_info``)
and its queued prefill tokens are its share of the waiting requests x the mean prompt of the last minute
(the pool's rate signals). Left out: disaggregated prefill/decode pools (one aggregated pool here), the
GPU budget (``max_gpu_budget`` 8; the replay's bound is the node pool's limit, as for every strategy), the
``latency`` and ``sla`` targets.
"""

from __future__ import annotations

from dataclasses import dataclass

from mcp_autoscale.models import PoolRef
from mcp_autoscale.replay.peer import PeerStrategy, kv_tokens_per_replica
from mcp_autoscale.sim import Twin


@dataclass(frozen=True)
class EasyThresholds:
    """``core/load_scaling.py`` easy-mode thresholds for decode/agg (throughput target, the default)."""

    scale_up: float = 1.0
    scale_down: float = 0.6


def engine_utilisation(sched_kv: float, queued_kv: float, queued_prefill: float, max_kv: float) -> float:
    """(scheduled + queued decode KV + queued prefill tokens) / the engine's KV tokens."""
    return (sched_kv + queued_kv + queued_prefill) / max_kv


def agg_easy_decision(
    utils: list[float], num_workers: int, min_endpoint: int = 1, th: EasyThresholds | None = None
) -> int | None:
    """``_agg_easy_decision``: +1 if any engine is above the scale-up threshold, -1 if all are below the
    scale-down one (and there are >= 2 workers), else None (no change)."""
    th = th or EasyThresholds()
    if not utils or num_workers == 0:
        return None
    if any(u > th.scale_up for u in utils):
        return num_workers + 1
    if num_workers > 1 and all(u < th.scale_down for u in utils):
        return max(num_workers - 1, min_endpoint)
    return None


class Dynamo(PeerStrategy):
    name = "dynamo"
    label = "Dynamo planner (default: load-based, throughput target, 5 s)"
    period_s = 5.0
    scrape_s = 5.0

    def __init__(self, *, min_replicas: int = 2, max_replicas: int | None = None) -> None:
        super().__init__(min_replicas=min_replicas, max_replicas=max_replicas)
        self.max_kv: float | None = None
        self.expected: int | None = None
        """Workers the last decision asked for (a decision is in flight until that many serve)."""

    def on_setup(self, twin: Twin, ref: PoolRef) -> None:
        self.max_kv = float(kv_tokens_per_replica(twin, ref) or 0) or None

    def decide(self, twin: Twin, ref: PoolRef, t_s: float, current: int) -> int | None:
        scrapes = self.window(t_s, self.period_s)
        if not scrapes or not self.max_kv:
            return None
        last = scrapes[-1]
        workers = last.ready
        if self.expected is not None and workers != self.expected:
            return None  # scaling in progress: observe only
        self.expected = None
        if workers == 0:
            return None
        g = twin.ground_truth(ref)
        prompt_mean = (g.prompt_tps or 0.0) / g.request_rps if g.request_rps else 0.0
        kv = sum(s.kv_usage for s in scrapes) / len(scrapes)
        queue = sum(s.queue for s in scrapes) / len(scrapes)
        util = engine_utilisation(kv * self.max_kv, 0.0, queue * prompt_mean / workers, self.max_kv)
        want = agg_easy_decision([util] * workers, workers, min_endpoint=self.min_replicas)
        if want is None:
            return None
        assert self.max_replicas is not None
        want = max(self.min_replicas, min(self.max_replicas, want))
        if want == workers:
            return None
        self.expected = want
        return want
