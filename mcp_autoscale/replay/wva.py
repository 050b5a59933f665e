"""``wva``: llm-d's workload-variant-autoscaler, saturation analyzer V1 (its default), behind an HPA.

Follows llm-d/llm-d-workload-variant-autoscaler at b08b1c77 (2026-02-19):
- ``internal/saturation/analyzer.go`` (``AnalyzeModelSaturation``, ``isScaleDownSafe``,
  ``CalculateSaturationTargets``): a replica is saturated at KV usage >= 0.80 or >= 5 waiting requests;
  spare KV and spare queue are averaged over the non-saturated replicas; +1 replica (on the ready
  count) when the average spare KV < 0.10 or the spare queue < 3; -1 only when the load of the
  non-saturated replicas spread over N-1 keeps both spares at or above their triggers and N >= 2; no
  decision while the model is in transition (a previous target not yet reached, or fewer replicas
  reporting metrics than exist) and no scale-up while pods are pending;
- ``deploy/configmap-saturation-scaling.yaml``: the thresholds above;
- ``internal/collector/registration/saturation.go``: per pod, ``max_over_time(...[1m])`` of
  ``vllm:kv_cache_usage_perc`` and ``vllm:num_requests_waiting``;
- ``internal/engines/saturation/engine.go``: the engine runs every 30 s;
- ``charts/workload-variant-autoscaler/templates/hpa.yaml`` and ``values.yaml``: it publishes
  ``wva_desired_replicas`` to an HPA (External metric, AverageValue 1) with a 240 s stabilisation window
  both ways and at most 10 pods per 150 s (``replay/hpa.py``; 15 s HPA sync).

Left out: several variants of one model (one pool here: the cheapest and the most expensive variant are the
same); the GPU limiter (off by default); scale to zero (off by default); the metrics adapter's lag.
"""

from __future__ import annotations

from dataclasses import dataclass

from mcp_autoscale.models import PoolRef
from mcp_autoscale.replay.hpa import Hpa
from mcp_autoscale.replay.peer import PeerStrategy, Scrape
from mcp_autoscale.sim import Twin


@dataclass(frozen=True)
class SaturationConfig:
    """``deploy/configmap-saturation-scaling.yaml`` defaults."""

    kv_cache_threshold: float = 0.80
    queue_length_threshold: float = 5.0
    kv_spare_trigger: float = 0.10
    queue_spare_trigger: float = 3.0


@dataclass(frozen=True)
class ReplicaMetrics:
    """One replica's 1-minute maxima."""

    kv_usage: float
    queue: float


@dataclass(frozen=True)
class SaturationAnalysis:
    non_saturated: int
    avg_spare_kv: float
    avg_spare_queue: float
    scale_up: bool
    scale_down_safe: bool


def analyse(replicas: list[ReplicaMetrics], cfg: SaturationConfig | None = None) -> SaturationAnalysis:
    """``AnalyzeModelSaturation`` for one variant: spares, the scale-up trigger and scale-down safety."""
    cfg = cfg or SaturationConfig()
    if not replicas:
        return SaturationAnalysis(0, 0.0, 0.0, False, False)
    spare_kv = spare_q = 0.0
    n = 0
    for r in replicas:
        if r.kv_usage >= cfg.kv_cache_threshold or r.queue >= cfg.queue_length_threshold:
            continue
        spare_kv += cfg.kv_cache_threshold - r.kv_usage
        spare_q += cfg.queue_length_threshold - r.queue
        n += 1
    avg_kv = spare_kv / n if n else 0.0
    avg_q = spare_q / n if n else 0.0
    up = avg_kv < cfg.kv_spare_trigger or avg_q < cfg.queue_spare_trigger
    safe = False
    if n >= 2:
        factor = n / (n - 1)
        kv_after = cfg.kv_cache_threshold - (cfg.kv_cache_threshold - avg_kv) * factor
        q_after = cfg.queue_length_threshold - (cfg.queue_length_threshold - avg_q) * factor
        safe = kv_after >= cfg.kv_spare_trigger and q_after >= cfg.queue_spare_trigger
    return SaturationAnalysis(n, avg_kv, avg_q, up, safe)


def saturation_target(
    analysis: SaturationAnalysis, *, current: int, ready: int, reporting: int, desired: int, floor: int = 1
) -> int:
    """``CalculateSaturationTargets`` for one variant. ``current``: pods that exist; ``ready``: ready pods;
    ``reporting``: replicas with metrics; ``desired``: its previous target (0: none); ``floor``: no
    scale-down at or below it (1 in the source; the HPA's minReplicas here, else a target below the HPA's
    minimum would hold the model "in transition" for good)."""
    if (desired != 0 and desired != current) or reporting != current:
        return desired if desired != 0 and desired != current else current
    if analysis.scale_up:
        return reporting + 1 if current - ready <= 0 else reporting
    if analysis.scale_down_safe and reporting > max(1, floor):
        return reporting - 1
    return reporting


class Wva(PeerStrategy):
    name = "wva"
    label = "llm-d WVA (saturation V1 + HPA, 240 s stabilisation)"
    period_s = 15.0  # the HPA's sync period; the WVA engine runs every other step (30 s)

    def __init__(self, *, min_replicas: int = 2, max_replicas: int | None = None) -> None:
        super().__init__(min_replicas=min_replicas, max_replicas=max_replicas)
        self.cfg = SaturationConfig()
        self.engine_s = 30.0
        self.published: int = 0
        """``wva_desired_replicas`` (0 until the first analysis)."""
        self._next_engine = 0.0
        self._hpa: Hpa | None = None

    def on_setup(self, twin: Twin, ref: PoolRef) -> None:
        assert self.max_replicas is not None
        self._hpa = Hpa(min_replicas=self.min_replicas, max_replicas=self.max_replicas)

    def replica_metrics(self, scrapes: list[Scrape]) -> list[ReplicaMetrics]:
        """Per ready replica, the 1-minute max of KV usage and waiting requests (one queue, spread evenly)."""
        last = scrapes[-1]
        kv = max(s.kv_usage for s in scrapes)
        queue = max(s.queue_per_replica for s in scrapes)
        return [ReplicaMetrics(kv, queue)] * last.ready

    def decide(self, twin: Twin, ref: PoolRef, t_s: float, current: int) -> int | None:
        scrapes = self.window(t_s, 60.0)
        if not scrapes or self._hpa is None:
            return None
        last = scrapes[-1]
        if t_s + 1e-9 >= self._next_engine:
            self._next_engine = t_s + self.engine_s
            analysis = analyse(self.replica_metrics(scrapes), self.cfg)
            self.published = saturation_target(
                analysis,
                current=last.current,
                ready=last.ready,
                reporting=last.ready,
                desired=self.published,
                floor=self.min_replicas,
            )
        if self.published <= 0:
            return None
        return self._hpa.recommend(t_s, float(self.published), current)
