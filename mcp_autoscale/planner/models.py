"""Planner inputs and outputs: configuration, history samples, and the compact models tools return."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from mcp_autoscale.models import PoolSnapshot, SloTargets


class CapacityConfig(BaseModel):
    """Per-replica token capacity within SLO (tokens/s one replica sustains)."""

    c_in_tps: float | None = Field(default=None, gt=0, description="Prompt tokens/s per replica within SLO")
    c_out_tps: float | None = Field(default=None, gt=0, description="Output tokens/s per replica within SLO")


class PlannerConfig(BaseModel):
    """Knobs of the planner. Defaults follow DOMAIN.md §3 (seed 003, llm-d WVA, KEDA)."""

    target_utilisation: float = Field(default=0.75, gt=0, le=1, description="U: 0.7-0.8 keeps headroom")
    default_floor: int = Field(default=1, ge=0)
    ha_floor: int = Field(default=2, ge=0, description="Floor of pools labelled environment=production")
    floors: dict[str, int] = Field(default_factory=dict, description="namespace -> replica floor (HA = 2)")
    capacities: dict[str, CapacityConfig] = Field(
        default_factory=dict, description="'namespace/deployment' -> configured per-replica capacity"
    )
    owner_max: dict[str, int] = Field(
        default_factory=dict,
        description="'namespace/deployment' -> the HPA/KEDA max as configured: the planner raises the max "
        "only as far as its own target and brings it back down to this when its target falls",
    )
    owner_max_band: float | None = Field(
        default=None,
        ge=1,
        description="With the owner's configured max known (owner_max): keep its max at this x the "
        "planner's target (never above the configured max, never below the target), so the fast loop "
        "reacts within a band instead of jumping to its max at a queue spike (None: leave the max alone)",
    )
    owner_max_band_surge: float | None = Field(
        default=None,
        ge=1,
        description="The band while a backlog is sized and the target rises (the target already holds the "
        "queue's arrivals): 1.0 keeps KEDA's queue rule from filling the band on top of it (None: "
        "owner_max_band, the default; 1.0 in the surge profile)",
    )
    slo: SloTargets = Field(default_factory=SloTargets)
    # llm-d WVA saturation analyzer
    kv_saturated: float = Field(default=0.80, description="A replica is saturated at KV >= this")
    queue_saturated: float = Field(default=5.0, description="... or at this many waiting requests")
    kv_spare_min: float = Field(default=0.10, description="Scale up when average spare KV < this")
    queue_spare_min: float = Field(default=3.0, description="Scale up when average spare queue < this")
    # scale-in safety clamp (seed 003): never scale down while KV is hot or the queue is non-trivial
    scale_in_kv_max: float = Field(default=0.75)
    scale_in_queue_max: float = Field(default=1.0, description="Waiting requests per replica")
    # lead time
    default_cold_start_s: float = Field(default=120.0, gt=0, description="When a pool does not say")
    control_interval_s: float = Field(default=120.0, gt=0, description="How often the outer loop runs")
    forecast_window: int = Field(default=20, ge=2, description="Recent samples the forecast uses")
    holt_alpha: float = Field(default=0.3, gt=0, le=1)
    holt_beta: float = Field(default=0.1, gt=0, le=1)
    forecast_max_growth: float = Field(
        default=2.0, ge=1, description="A forecast never exceeds this x the current rate (noise guard)"
    )
    surge_ratio: float = Field(
        default=0.0,
        ge=0,
        description="A load >= this x its lowest value of the last surge_window_s is a step or a crowd: its "
        "rise is not extrapolated as a trend (0: off, the default; 1.5 in the surge profile)",
    )
    surge_window_s: float = Field(default=300.0, ge=0, description="Window of the surge_ratio test")
    scale_out_band: float = Field(
        default=0.15,
        ge=0,
        le=0.5,
        description="Hysteresis: token load orders replicas only once it passes U + band of the current "
        "replicas (then sizes to U); scale-in needs the window's peak to fit at U",
    )
    backlog_drain_s: float = Field(
        default=120.0,
        ge=0,
        description="Once requests queue past the saturation limit, size for arrivals plus the backlog "
        "projected to when new replicas serve, drained within this many seconds (0: off)",
    )
    backlog_max_over: float = Field(
        default=1.0,
        ge=1,
        description="The backlog may add at most this x the replicas the arrivals need at U: the drain is "
        "bounded by when capacity arrives, not by how much is ordered (no ordering the node pool's limit)",
    )
    seasonal_max_error: float = Field(
        default=0.3,
        ge=0,
        description="Trust a detected period (pre-scale before its next peak, release capacity while it "
        "stays low) only while 'the same phase of past periods' predicted the recent minutes within this "
        "relative mean absolute error (0: off)",
    )
    headroom_max_utilisation: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="Where the load has been predictable (planner.headroom), size at up to this U instead "
        "of target_utilisation (at or below target_utilisation: off). Needs the per-minute demand",
    )
    headroom_calm_s: float = Field(
        default=86400.0,
        ge=0,
        description="U rises above target_utilisation only after this long without a surge, on the "
        "errors of this window",
    )
    headroom_quantile: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="U = 1 / (1 + e), e this quantile of the calm window's errors over one lead time",
    )
    headroom_surge_error: float = Field(
        default=1.0,
        gt=0,
        description="A surge: the load rose more than this (relative) over what was held one lead time "
        "before; U drops to target_utilisation at once",
    )
    scale_in_window_s: float = Field(
        default=600.0, ge=0, description="Scale in only to the most any sample in this window needed"
    )
    scale_in_clean_s: float | None = Field(
        default=None,
        ge=0,
        description="After a clean drop (every demand sample of this many seconds at most 1/"
        "scale_in_drop_ratio of the window's earlier peak, none draining a backlog) scale-in looks back only "
        "this far (None: off, the default; 180 in the surge profile)",
    )
    scale_in_drop_ratio: float = Field(default=1.5, ge=1, description="What a clean drop must fall by")
    # capacity evidence: breaches bound C from above (``breach_bound``)
    signal_window_s: float = Field(
        default=60.0, ge=0, description="Rate window: a sample counts once ready replicas held this long"
    )
    breach_quantile: float = Field(
        default=0.1, gt=0, le=1, description="Quantile of breach loads taken as where breaches begin"
    )
    breach_min_samples: int = Field(default=3, ge=1, description="Breach samples needed to bound C")
    latency_min_samples: int = Field(
        default=0,
        ge=0,
        description="Quiet samples (no backlog) needed before the fitted ITL curve bounds C_out "
        "(``latency_bound``; 0: off, the default; 10 in the surge profile, docs/evaluation.md)",
    )
    latency_min_spread: float = Field(
        default=1.2, ge=1, description="... and the per-replica loads they span (max / min) at least this"
    )
    latency_bound_scale_in_only: bool = Field(
        default=False,
        description="The fitted ITL curve bounds only how far the pool scales in (a rest floor); scale-out "
        "sizes with C without it",
    )
    latency_fit_sd: float = Field(
        default=1.0,
        ge=0,
        description="The fitted ITL curve is taken this many residual standard deviations slower: where a "
        "slow minute meets the SLO, not the average one",
    )
    # roofline prior (CALIBRATION.md §4)
    mfu: float = Field(default=0.5, gt=0, le=1, description="Prefill model-FLOPs utilisation")
    bandwidth_efficiency: float = Field(default=0.75, gt=0, le=1, description="eta, decode HBM efficiency")
    batch_half: float = Field(default=95.0, gt=0, description="ITL(B) = t0 (1 + B / batch_half); NIM 8B fit")
    max_num_seqs: int = Field(default=256, ge=1, description="vLLM batch cap")
    # diagnoses
    tier_min_saving_fraction: float = Field(default=0.2, ge=0, le=1)
    tier_small_model_fraction: float = Field(
        default=0.5, gt=0, le=1, description="'Small model': weights <= this x one GPU's memory"
    )
    tier_weight_fraction: float = Field(default=0.75, gt=0, le=1, description="Weights <= this x GPU memory")
    cpu_bound_kv_max: float = Field(default=0.30)
    cpu_bound_running_per_replica_max: float = Field(default=4.0)
    idle_tps_max: float = Field(default=1.0, description="Tokens/s at or below which a pool is idle")
    min_requests_for_latency: float = Field(
        default=30.0, description="Requests per minute below which a latency p90 is too thin to diagnose"
    )

    def floor(self, namespace: str, labels: dict[str, str] | None = None) -> int:
        """Configured per namespace, else the HA floor for production pools (label environment=production,
        DOMAIN.md §4: 2 for HA, 1 for dev), else ``default_floor``."""
        if namespace in self.floors:
            return self.floors[namespace]
        if labels and labels.get("environment", "").lower() in ("production", "prod"):
            return self.ha_floor
        return self.default_floor


class PoolSample(BaseModel):
    """One observation of a pool (from a snapshot or the twin), the planner's history unit."""

    t_s: float = Field(description="Seconds on any monotonic clock")
    ready_replicas: int = 0
    prompt_tps: float | None = None
    gen_tps: float | None = None
    ttft_p90_s: float | None = None
    itl_p90_s: float | None = None
    kv_usage: float | None = None
    queue_depth: float | None = None
    running: float | None = None
    request_rps: float | None = Field(default=None, description="Finished requests/s (how thin a p90 is)")

    @classmethod
    def from_snapshot(cls, pool: PoolSnapshot, t_s: float) -> PoolSample:
        """The sample a pool's snapshot gives at ``t_s``: what the planner learns and forecasts from."""
        s = pool.signals
        return cls(
            t_s=t_s,
            ready_replicas=pool.replicas.get("ready", 0),
            prompt_tps=s.prompt_tps,
            gen_tps=s.gen_tps,
            ttft_p90_s=s.ttft_p90_s,
            itl_p90_s=s.itl_p90_s,
            kv_usage=s.kv_usage,
            queue_depth=s.queue_depth,
            running=s.running,
            request_rps=s.request_rps,
        )


class Capacity(BaseModel):
    c_in_tps: float | None
    c_out_tps: float | None
    source: Literal["configured", "learned", "estimated", "learned+estimated", "unknown"]
    note: str | None = None


class Saturation(BaseModel):
    """The llm-d WVA saturation analyzer's view of a pool (pool means stand in for per-replica values)."""

    replicas: int
    kv_per_replica: float | None
    queue_per_replica: float | None
    spare_kv: float | None
    spare_queue: float | None
    saturated: bool
    scale_up: bool
    scale_in_ok: bool
    replicas_for_margin: int = Field(description="Fewest replicas that keep both spare margins")
    reasons: list[str] = Field(default_factory=list)


class Diagnosis(BaseModel):
    kind: Literal["tier_misplacement", "dark_capacity", "cpu_bound", "kv_pressure", "compute_saturation"]
    target: str = Field(description="namespace/deployment or nodepool/<name>")
    summary: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    usd_per_month: float | None = Field(default=None, description="Waste (or saving available) per month")
    suggestion: str | None = None


class ToolCall(BaseModel):
    """The exact MCP tool call an agent should make."""

    tool: Literal["scale_deployment", "patch_hpa", "request_gpu_nodes"]
    arguments: dict[str, Any]


class ExpectedEffect(BaseModel):
    replicas_before: int
    replicas_after: int
    usd_per_hour_delta: float | None = None
    usd_per_month_delta: float | None = None
    utilisation_after: float | None = Field(default=None, description="Forecast load / capacity after")
    slo: str


class Recommendation(BaseModel):
    pool: str
    action: Literal["none", "scale_deployment", "patch_hpa", "request_gpu_nodes"]
    replicas_now: int
    replicas_target: int
    bottleneck: str
    reasons: list[str]
    expected: ExpectedEffect
    tool_call: ToolCall | None = None
    prerequisites: list[ToolCall] = Field(default_factory=list, description="Calls to make first (GPU nodes)")
    diagnoses: list[Diagnosis] = Field(default_factory=list)


class PoolExplanation(BaseModel):
    pool: str
    role: str
    replicas: dict[str, int]
    owner: str | None
    capacity: Capacity
    load: dict[str, float | None] = Field(description="Observed and forecast token rates")
    headroom: dict[str, float | None] = Field(description="Fraction of capacity still free (in, out)")
    replicas_needed: int | None
    saturation: Saturation
    bottleneck: str
    slo: dict[str, Any]
    usd_per_hour: float | None
    usd_per_month: float | None
    usd_per_m_output_tokens: float | None = None
    diagnoses: list[Diagnosis] = Field(default_factory=list)
    pooled_headroom: str | None = Field(
        default=None,
        description="Set when this pool's burst headroom is pooled (warm GPUs, yielding batch pools)",
    )
