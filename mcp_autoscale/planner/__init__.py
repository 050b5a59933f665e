"""The planner: token-aware capacity, WVA-style saturation rules, lead-time forecasts, diagnoses in dollars,
and per-pool recommendations with the exact tool call to make. Pure functions: data in, data out."""

from mcp_autoscale.planner.capacity import (
    breach_bound,
    estimate_capacity,
    learn_capacity,
    model_params_b,
    replicas_needed,
    resolve_capacity,
    stable_samples,
    weights_gb,
)
from mcp_autoscale.planner.diagnoses import (
    cpu_bound,
    dark_capacity_nodes,
    idle_pool,
    kv_or_compute,
    tier_misplacement,
)
from mcp_autoscale.planner.forecast import holt_forecast, holt_state, lead_time_s
from mcp_autoscale.planner.models import (
    Capacity,
    CapacityConfig,
    Diagnosis,
    ExpectedEffect,
    PlannerConfig,
    PoolExplanation,
    PoolSample,
    Recommendation,
    Saturation,
    ToolCall,
)
from mcp_autoscale.planner.recommend import (
    ScalingPlan,
    diagnose,
    explain_pool,
    plan_fleet,
    recommend,
    samples_from_snapshots,
)
from mcp_autoscale.planner.saturation import analyse

__all__ = [
    "Capacity",
    "CapacityConfig",
    "Diagnosis",
    "ExpectedEffect",
    "PlannerConfig",
    "PoolExplanation",
    "PoolSample",
    "Recommendation",
    "Saturation",
    "ScalingPlan",
    "ToolCall",
    "analyse",
    "breach_bound",
    "cpu_bound",
    "dark_capacity_nodes",
    "diagnose",
    "estimate_capacity",
    "explain_pool",
    "holt_forecast",
    "holt_state",
    "idle_pool",
    "kv_or_compute",
    "lead_time_s",
    "learn_capacity",
    "model_params_b",
    "plan_fleet",
    "recommend",
    "replicas_needed",
    "resolve_capacity",
    "samples_from_snapshots",
    "stable_samples",
    "tier_misplacement",
    "weights_gb",
]
