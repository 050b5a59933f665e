"""Per-pool recommendations: how many replicas, why, what it does to SLO and $, and the exact tool call.

The sizing combines three views and takes the most demanding one when scaling out:
1. token capacity, ``N = max(ceil(R_in / (C_in U)), ceil(R_out / (C_out U)), floor)``, on the larger of the
   observed rate and its forecast one lead time ahead (cold start + one control interval);
2. the llm-d WVA saturation rules (spare KV / spare queue margins);
3. an SLO breach (TTFT for prefill and unified pools, ITL for decode and unified pools) asks for >= +1,
   unless the pool is CPU-bound, where GPU replicas would not help.
Scale-in needs all three to agree: no breach, KV <= 0.75, queue trivial, and N-1 (or the token target)
keeping the WVA margins. Pools owned by an HPA or KEDA are never scaled directly: the planner moves the
owner's min (or max) instead, so it never fights the fast loop.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from mcp_autoscale.cost.catalogue import PriceCatalogue
from mcp_autoscale.cost.estimate import (
    action_cost_delta,
    node_pool_free_gpus,
    pool_gpu_hour,
    split_token_prices,
)
from mcp_autoscale.models import (
    Action,
    ActionKind,
    ActionParams,
    AutoscalerKind,
    AutoscalerPatch,
    FleetSnapshot,
    GpuNodeRequest,
    NodePoolState,
    PoolRef,
    PoolSnapshot,
    PoolState,
    Role,
    ScaleDeploymentParams,
)
from mcp_autoscale.planner.backlog import backlog_load, demand_rates, scale_in_window
from mcp_autoscale.planner.capacity import replicas_needed, resolve_capacity
from mcp_autoscale.planner.diagnoses import (
    cpu_bound,
    dark_capacity_nodes,
    idle_pool,
    kv_or_compute,
    tier_misplacement,
)
from mcp_autoscale.planner.forecast import (
    holt_state,
    lead_time_s,
    recent_slope,
    sudden_rise,
    trend_still_rising,
)
from mcp_autoscale.planner.headroom import Headroom, pool_headroom
from mcp_autoscale.planner.models import (
    Capacity,
    Diagnosis,
    ExpectedEffect,
    PlannerConfig,
    PoolExplanation,
    PoolSample,
    Recommendation,
    Saturation,
    ToolCall,
)
from mcp_autoscale.planner.saturation import analyse
from mcp_autoscale.planner.seasonality import MinuteDemand, outlook

History = Mapping[str, Sequence[PoolSample]]


def pool_key(snap: PoolSnapshot) -> str:
    """``namespace/name``, or ``cluster:namespace/name`` on a several-cluster server (as ``PoolRef.key``)."""
    return f"{snap.cluster}:{snap.namespace}/{snap.name}" if snap.cluster else f"{snap.namespace}/{snap.name}"


def samples_from_snapshots(snapshots: Sequence[FleetSnapshot]) -> dict[str, list[PoolSample]]:
    """Turn a series of fleet snapshots into per-pool history (``t_s`` = seconds since the first)."""
    out: dict[str, list[PoolSample]] = {}
    if not snapshots:
        return out
    t0 = snapshots[0].taken_at
    for snap in snapshots:
        t = (snap.taken_at - t0).total_seconds()
        for p in snap.pools:
            out.setdefault(pool_key(p), []).append(PoolSample.from_snapshot(p, t))
    return out


@dataclass
class _Assessment:
    key: str
    snap: PoolSnapshot
    state: PoolState
    capacity: Capacity
    r_in: float | None
    r_out: float | None
    f_in: float | None
    f_out: float | None
    horizon_s: float
    n_cap: int | None
    saturation: Saturation
    target: int
    bottleneck: str
    reasons: list[str]
    diagnoses: list[Diagnosis]
    usd_per_gpu_hour: float | None
    breaches: list[str] = field(default_factory=list)
    backlog: bool = False
    """A backlog is being sized (``n_backlog``): the target already holds the queue's arrivals."""


def _fmt_tps(x: float | None) -> str:
    if x is None:
        return "?"
    return f"{x / 1000:.1f}k" if x >= 1000 else f"{x:.0f}"


def _assess(
    snap: PoolSnapshot,
    state: PoolState,
    catalogue: PriceCatalogue,
    history: Sequence[PoolSample] | None,
    config: PlannerConfig,
    node_pool: NodePoolState | None = None,
    minutes: MinuteDemand | None = None,
) -> _Assessment:
    key = pool_key(snap)
    s = snap.signals
    slo = snap.slo_targets
    cfg = config.model_copy(update={"slo": slo})
    role = snap.role
    desired = snap.replicas.get("desired", state.desired_replicas)
    ready = snap.replicas.get("ready", state.ready_replicas)
    floor = cfg.floor(snap.namespace, state.labels)
    cfg = cfg.model_copy(update={"floors": {**cfg.floors, snap.namespace: floor}})
    cap = resolve_capacity(
        key, snap.model, snap.gpu_type, snap.gpus_per_replica, role, catalogue, history, cfg
    )
    rest = cap  # the capacity scale-in sizes with
    if cfg.latency_bound_scale_in_only and cfg.latency_min_samples > 0:
        # the fitted ITL curve bounds only how far the pool scales in (a rest floor), not what a surge
        # orders: ordering on a cautious C overshot the crowds it could not catch anyway
        rest = cap
        cap = resolve_capacity(
            key,
            snap.model,
            snap.gpu_type,
            snap.gpus_per_replica,
            role,
            catalogue,
            history,
            cfg.model_copy(update={"latency_min_samples": 0}),
        )
    r_in = None if role == Role.DECODE else s.prompt_tps
    r_out = None if role == Role.PREFILL else s.gen_tps
    cold = state.cold_start_s or cfg.default_cold_start_s
    if node_pool is not None and node_pool_free_gpus(node_pool) < snap.gpus_per_replica:
        cold += node_pool.typical_provision_s  # the next replica also waits for a node
    horizon = lead_time_s(cold, cfg.control_interval_s)
    f_in = f_out = None
    demand: list[tuple[float, float | None, float | None]] = []
    recent: list[tuple[float, float | None, float | None]] = []
    if history:
        span = history[-1].t_s - history[max(0, len(history) - cfg.forecast_window)].t_s
        demand = demand_rates(
            history, max(span, cfg.scale_in_window_s), cfg.signal_window_s, cfg.scale_in_queue_max
        )
        recent = [d for d in demand if d[0] >= history[-1].t_s - span]
        if demand and demand[-1][0] < history[-1].t_s:
            # the pool is draining a backlog: what it serves now is not demand; size on the last demand
            _, d_in, d_out = demand[-1]
            r_in = r_in if r_in is None or d_in is None else min(r_in, d_in)
            r_out = r_out if r_out is None or d_out is None else min(r_out, d_out)
    if len(recent) >= 2:
        times = [d[0] for d in recent]
        for dim, rate in (("in", r_in), ("out", r_out)):
            if rate is None:
                continue
            vals = [d[1] if dim == "in" else d[2] for d in recent]
            if not all(v is not None for v in vals):
                continue
            st = holt_state(times, [float(v or 0) for v in vals], cfg.holt_alpha, cfg.holt_beta)
            if st is None:
                continue
            fv = [float(v or 0) for v in vals]
            earlier = recent_slope(times[:-6], fv[:-6]) if len(fv) >= 9 else None
            trend = trend_still_rising(st[1], recent_slope(times, fv), earlier)
            if cfg.surge_ratio > 0 and sudden_rise(times, fv, cfg.surge_window_s, cfg.surge_ratio):
                trend = min(trend, 0.0)  # a step's edge is not a ramp: no rise beyond the new level
            fc = max(0.0, st[0] + trend * horizon)
            if dim == "in":
                f_in = fc
            else:
                f_out = fc
    growth = cfg.forecast_max_growth
    if f_in is not None and r_in is not None:
        f_in = min(f_in, growth * r_in)
    if f_out is not None and r_out is not None:
        f_out = min(f_out, growth * r_out)
    look = None
    if minutes is not None and cfg.seasonal_max_error > 0:
        look = outlook(minutes, math.ceil((horizon + cfg.control_interval_s) / 60.0))
        if look is not None and look.error > cfg.seasonal_max_error:
            look = None
    seasonal_reason = None
    if look is not None:
        # the load comes back on schedule: what the same phase of past periods saw one lead time on
        s_in, s_out = look.peak(horizon / 60.0)
        if r_in is not None and s_in > max(r_in, f_in or 0.0):
            f_in = s_in
        if r_out is not None and s_out > max(r_out, f_out or 0.0):
            f_out = s_out
        seasonal_reason = (
            f"load repeats every {look.period_min} min (autocorrelation {look.acf:.2f}, recent error "
            f"{look.error:.0%})"
        )
    load_in = _max_opt(r_in, f_in)
    load_out = _max_opt(r_out, f_out)
    u = cfg.target_utilisation
    room = None
    if minutes is not None and cfg.headroom_max_utilisation > u:
        room = _headroom(minutes, state, node_pool, cap, r_in, r_out, floor, cfg)
        u = room.utilisation
    n_cap = None
    n_trigger = None
    n_window = None
    hold_s = cfg.scale_in_window_s
    if (cap.c_in_tps and load_in is not None) or (cap.c_out_tps and load_out is not None):
        n_cap = replicas_needed(load_in, load_out, cap.c_in_tps, cap.c_out_tps, u, floor)
        u_hi = min(1.0, u + cfg.scale_out_band)
        n_trigger = replicas_needed(load_in, load_out, cap.c_in_tps, cap.c_out_tps, u_hi, floor)
        if history:
            last_t = history[-1].t_s
            needs = [n_cap]
            if cfg.scale_in_clean_s is not None:
                hold_s = scale_in_window(
                    demand, last_t, hold_s, cfg.scale_in_clean_s, cfg.scale_in_drop_ratio
                )
            for t, a_in, a_out in demand:
                if t < last_t - hold_s:
                    continue
                needs.append(
                    replicas_needed(
                        None if role == Role.DECODE else a_in,
                        None if role == Role.PREFILL else a_out,
                        rest.c_in_tps,
                        rest.c_out_tps,
                        u,
                        floor,
                    )
                )
            n_window = max(needs)
            if look is not None:
                # a known period says when the load returns: hold only what it needs until the next
                # look one lead time on, not the peak of the last window
                p_in, p_out = look.peak((horizon + cfg.control_interval_s) / 60.0)
                n_window = max(
                    n_cap,
                    replicas_needed(
                        None if r_in is None else p_in,
                        None if r_out is None else p_out,
                        rest.c_in_tps,
                        rest.c_out_tps,
                        u,
                        floor,
                    ),
                )
    sat = analyse(ready, s.kv_usage, s.queue_depth, cfg)
    backlog = None
    n_backlog = None
    if history and cfg.backlog_drain_s > 0 and (cap.c_in_tps or cap.c_out_tps):
        backlog = backlog_load(history, cold, cfg.backlog_drain_s, cfg.queue_saturated * max(1, ready))
        if backlog is not None:
            # arrivals = served + the queue's growth; the forecast of a saturated pool's served rate is
            # another estimate of the same thing, not an addition to it
            n_arrivals = replicas_needed(
                None if load_in is None else max(load_in, (r_in or 0.0) + backlog.growth_in_tps),
                None if load_out is None else max(load_out, (r_out or 0.0) + backlog.growth_out_tps),
                cap.c_in_tps,
                cap.c_out_tps,
                u,
                floor,
            )
            n_drain = replicas_needed(
                None if load_in is None else load_in + backlog.extra_in_tps,
                None if load_out is None else load_out + backlog.extra_out_tps,
                cap.c_in_tps,
                cap.c_out_tps,
                u,
                floor,
            )
            n_backlog = min(n_drain, max(n_arrivals, math.ceil(round(cfg.backlog_max_over * n_arrivals, 9))))

    per_gpu = pool_gpu_hour(state, catalogue)
    diags: list[Diagnosis] = []
    for d in (
        tier_misplacement(snap, cap, per_gpu, catalogue, cfg, state.capacity_type),
        idle_pool(snap, per_gpu, catalogue, cfg),
        cpu_bound(snap, per_gpu, catalogue, cfg),
        kv_or_compute(snap, per_gpu, catalogue, cfg),
    ):
        if d is not None:
            diags.append(d)
    kinds: set[str] = {d.kind for d in diags}

    breaches: list[str] = []
    if role != Role.DECODE and s.ttft_p90_s is not None and s.ttft_p90_s > slo.ttft_p90_s:
        breaches.append(f"TTFT p90 {s.ttft_p90_s:.2f} s > {slo.ttft_p90_s:g} s")
    if role != Role.PREFILL and s.itl_p90_s is not None and s.itl_p90_s > slo.itl_p90_s:
        breaches.append(f"ITL p90 {s.itl_p90_s * 1e3:.0f} ms > {slo.itl_p90_s * 1e3:.0f} ms")

    reasons: list[str] = list(breaches)
    load_txt = []
    if load_in is not None and cap.c_in_tps:
        load_txt.append(f"prompt {_fmt_tps(r_in)} tok/s{_fc(f_in)} / C_in {_fmt_tps(cap.c_in_tps)}")
    if load_out is not None and cap.c_out_tps:
        load_txt.append(f"output {_fmt_tps(r_out)} tok/s{_fc(f_out)} / C_out {_fmt_tps(cap.c_out_tps)}")
    if seasonal_reason is not None:
        reasons.append(seasonal_reason)
    if room is not None and room.reason:
        reasons.append(room.reason)
    if n_cap is not None:
        reasons.append(f"{'; '.join(load_txt)} at U {u:g} -> {n_cap} replicas ({cap.source} capacity)")
    elif cap.source == "unknown":
        reasons.append(f"capacity unknown ({cap.note}); sizing on saturation rules only")

    candidates = [desired]
    if n_cap is not None and n_trigger is not None and n_trigger > desired:
        candidates.append(n_cap)
    if sat.scale_up:
        reasons.extend(sat.reasons)
        candidates.append(max(ready + 1, sat.replicas_for_margin))
    if backlog is not None and n_backlog is not None:
        reasons.append(
            f"{backlog.queue:.0f} waiting, growing {backlog.growth_rps:.1f}/s: ~{backlog.projected:.0f} by the "
            f"time new replicas serve; arrivals plus draining it in {cfg.backlog_drain_s:.0f} s need "
            f"{n_backlog} replicas"
        )
        candidates.append(n_backlog)
    thin = s.request_rps is not None and s.request_rps * 60.0 < cfg.min_requests_for_latency
    if breaches and thin:
        reasons.append(
            f"latency p90 over ~{(s.request_rps or 0.0) * 60.0:.0f} requests/min: a few slow requests "
            "(e.g. one long prompt), not a shortage of replicas; more replicas would not shorten them"
        )
    elif breaches and "cpu_bound" not in kinds:
        candidates.append(max(ready, desired) + (0 if desired > ready else 1))
    if "cpu_bound" in kinds:
        reasons.append("latency without GPU pressure (CPU-bound): no GPU scale-out for it")
    on_way = snap.replicas.get("starting", 0) + snap.replicas.get("pending", 0)
    if on_way and desired > ready:
        reasons.append(
            f"{snap.replicas.get('starting', 0)} replicas starting and {snap.replicas.get('pending', 0)} waiting "
            f"for a node: capacity for {desired} is already on its way"
        )
    target_up = max(candidates)
    target = desired
    if target_up > desired:
        target = target_up
    elif not breaches and not sat.scale_up and desired > floor:
        q_per = None if s.queue_depth is None or ready <= 0 else s.queue_depth / ready
        hot = s.kv_usage is not None and s.kv_usage > cfg.scale_in_kv_max
        queued = q_per is not None and q_per > cfg.scale_in_queue_max
        if hot:
            reasons.append(f"KV {s.kv_usage:.2f} > {cfg.scale_in_kv_max:g}: no scale-in")
        elif queued:
            reasons.append(f"{q_per:.1f} waiting per replica: no scale-in")
        elif sat.scale_in_ok and snap.replicas.get("starting", 0) == 0:
            token_floor = n_window if n_window is not None else n_cap
            lower = max(floor, sat.replicas_for_margin, desired - 1 if token_floor is None else token_floor)
            if lower < desired:
                target = lower
                need = "?" if token_floor is None else str(token_floor)
                window = f" (most needed over the last {hold_s:.0f} s)" if n_window else ""
                reasons.append(f"N-1 keeps the WVA margins; token load needs {need}{window}")
        elif not sat.scale_in_ok:
            reasons.extend(r for r in sat.reasons if r not in reasons)

    if node_pool is not None and node_pool.gpu_limit is not None and target > desired:
        g = snap.gpus_per_replica
        own = (ready + snap.replicas.get("starting", 0)) * g
        others = max(0, node_pool.gpus_allocated - own)
        limit_cap = max(desired, (node_pool.gpu_limit - others) // g)
        if target > limit_cap:
            reasons.append(
                f"node pool {node_pool.name} limit {node_pool.gpu_limit} GPUs caps the target at {limit_cap} "
                "(raise it with request_gpu_nodes method=limit)"
            )
            target = limit_cap
    bottleneck = _bottleneck(kinds, cap, load_in, load_out, ready, sat, breaches)
    return _Assessment(
        key=key,
        snap=snap,
        state=state,
        capacity=cap,
        r_in=r_in,
        r_out=r_out,
        f_in=f_in,
        f_out=f_out,
        horizon_s=horizon,
        n_cap=n_cap,
        saturation=sat,
        target=target,
        bottleneck=bottleneck,
        reasons=reasons,
        diagnoses=diags,
        usd_per_gpu_hour=per_gpu,
        breaches=breaches,
        backlog=n_backlog is not None,
    )


def _headroom(
    minutes: MinuteDemand,
    state: PoolState,
    node_pool: NodePoolState | None,
    cap: Capacity,
    r_in: float | None,
    r_out: float | None,
    floor: int,
    cfg: PlannerConfig,
) -> Headroom:
    """The U to size at (``planner.headroom``): the lead is the worst case, a new node and a cold start."""
    u = cfg.target_utilisation
    lead = lead_time_s(
        (state.cold_start_s or cfg.default_cold_start_s)
        + (node_pool.typical_provision_s if node_pool is not None else 0.0),
        cfg.control_interval_s,
    )
    return pool_headroom(
        minutes.prompt_tps,
        minutes.gen_tps,
        configured=u,
        ceiling=cfg.headroom_max_utilisation,
        lead_s=lead,
        hold_s=cfg.scale_in_window_s,
        calm_s=cfg.headroom_calm_s,
        quantile=cfg.headroom_quantile,
        surge_error=cfg.headroom_surge_error,
        floor_in_tps=None if r_in is None else floor * (cap.c_in_tps or 0.0) * u,
        floor_out_tps=None if r_out is None else floor * (cap.c_out_tps or 0.0) * u,
    )


def _fc(forecast: float | None) -> str:
    return "" if forecast is None else f" (forecast {_fmt_tps(forecast)})"


def _max_opt(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _bottleneck(
    kinds: set[str],
    cap: Capacity,
    load_in: float | None,
    load_out: float | None,
    ready: int,
    sat: Saturation,
    breaches: list[str],
) -> str:
    if "cpu_bound" in kinds:
        return "cpu"
    if "kv_pressure" in kinds:
        return "kv_cache"
    if "compute_saturation" in kinds:
        return "decode_compute"
    if sat.scale_up and sat.spare_queue is not None and sat.spare_queue < 3:
        return "queue"
    u_in = load_in / (ready * cap.c_in_tps) if load_in and cap.c_in_tps and ready else None
    u_out = load_out / (ready * cap.c_out_tps) if load_out and cap.c_out_tps and ready else None
    if u_in is None and u_out is None:
        return "unknown" if breaches else "none"
    if (u_in or 0) >= (u_out or 0):
        return "prefill_tokens"
    return "decode_tokens"


def _utilisation(a: _Assessment, replicas: int) -> float | None:
    if replicas <= 0:
        return None
    parts = []
    load_in = _max_opt(a.r_in, a.f_in)
    load_out = _max_opt(a.r_out, a.f_out)
    if load_in is not None and a.capacity.c_in_tps:
        parts.append(load_in / (replicas * a.capacity.c_in_tps))
    if load_out is not None and a.capacity.c_out_tps:
        parts.append(load_out / (replicas * a.capacity.c_out_tps))
    return round(max(parts), 3) if parts else None


def _rationale(a: _Assessment, what: str, delta: float | None) -> str:
    s = a.snap.signals
    facts = []
    if s.kv_usage is not None:
        facts.append(f"KV {s.kv_usage:.2f}")
    if s.queue_depth is not None:
        facts.append(f"queue {s.queue_depth:g}")
    money = "" if delta is None else f" ({'+' if delta >= 0 else '-'}${abs(delta):.2f}/h)"
    text = f"{a.key}: {'; '.join(a.reasons[:4])}" + (f" [{', '.join(facts)}]" if facts else "")
    return f"{text} -> {what}{money}"[:900]


def _tool_call(kind: ActionKind, arguments: dict[str, Any]) -> ToolCall:
    return ToolCall(tool=kind.value, arguments=arguments)


def _recommend_one(
    a: _Assessment,
    node_pool: NodePoolState | None,
    catalogue: PriceCatalogue,
    snapshot: FleetSnapshot,
    config: PlannerConfig,
) -> Recommendation:
    snap, state = a.snap, a.state
    desired = snap.replicas.get("desired", state.desired_replicas)
    owner = snap.owner or state.autoscaler
    target = a.target
    ref = PoolRef(namespace=snap.namespace, name=snap.name)
    params: ActionParams | None = None
    what = "no change"
    notes: list[str] = []
    if target != desired:
        if owner is not None and not owner.paused:
            kind_name = "KEDA ScaledObject" if owner.kind == AutoscalerKind.KEDA else "HPA"
            configured = config.owner_max.get(a.key)
            band = config.owner_max_band
            if configured is not None and band is not None:
                # the fast loop works within a band above the planner's target: left at its configured
                # max, KEDA's queue rule orders that max at every queue spike (2-5x what the load needs).
                # While a backlog is sized, the target already holds its arrivals: no band on top of it
                # (KEDA's queue rule filled it, 1.3x the target, at every surge)
                surge = config.owner_max_band_surge
                width = surge if surge is not None and a.backlog and target > desired else band
                want_max = max(target, min(configured, math.ceil(round(width * target, 9))))
            elif target > owner.max_replicas:
                want_max = target
            elif configured is not None and owner.max_replicas > max(configured, target):
                want_max = max(configured, target)  # a max the planner raised comes back down
            else:
                want_max = owner.max_replicas
            new_max = None if want_max == owner.max_replicas else want_max
            new_min = None
            if target > desired and target > owner.min_replicas:
                new_min = target
                what = f"raise {kind_name} {owner.name} min {owner.min_replicas} -> {target}"
            elif target < desired and owner.min_replicas > target:
                new_min = target
                what = f"lower {kind_name} {owner.name} min {owner.min_replicas} -> {target}"
            elif target > desired:
                notes.append(f"{kind_name} min {owner.min_replicas} already covers {target}")
            else:
                notes.append(f"{kind_name} {owner.name} (min {owner.min_replicas}) will scale in on its own")
            if new_min is not None or new_max is not None:
                params = AutoscalerPatch(
                    min_replicas=owner.min_replicas if new_min is None else new_min, max_replicas=new_max
                )
                if new_min is None:
                    what = f"set {kind_name} {owner.name} max"
                if new_max is not None:
                    what += f", max {owner.max_replicas} -> {new_max}"
        else:
            params = ScaleDeploymentParams(replicas=target)
            what = f"scale {desired} -> {target}"
            if owner is not None and owner.paused:
                notes.append(f"autoscaler {owner.name} is paused: direct scale")
    if snap.gitops is not None and params is not None:
        notes.append(f"managed by {snap.gitops.tool} app {snap.gitops.app}: commit the change to Git too")

    delta: float | None = 0.0
    tool_call: ToolCall | None = None
    prereqs: list[ToolCall] = []
    if params is not None:
        action = Action(
            id=f"plan-{snap.namespace}-{snap.name}",
            kind=params.kind,
            target=ref,
            params=params,
            rationale="planner",
            dry_run=True,
            requested_at=snapshot.taken_at,
        )
        delta = action_cost_delta(
            action, state.model_copy(update={"desired_replicas": desired}), None, catalogue
        )
        rationale = _rationale(a, what, delta)
        where = {"cluster": snap.cluster} if snap.cluster else {}  # several clusters: the call names it
        if isinstance(params, AutoscalerPatch):
            args: dict[str, Any] = {"namespace": snap.namespace, "deployment": snap.name, **where}
            args["min_replicas"] = params.min_replicas
            if params.max_replicas is not None:
                args["max_replicas"] = params.max_replicas
            args.update(rationale=rationale, dry_run=True)
            tool_call = _tool_call(ActionKind.PATCH_HPA, args)
        else:
            tool_call = _tool_call(
                ActionKind.SCALE_DEPLOYMENT,
                {
                    "namespace": snap.namespace,
                    "deployment": snap.name,
                    **where,
                    "replicas": target,
                    "rationale": rationale,
                    "dry_run": True,
                },
            )
        extra_gpus = (target - desired) * snap.gpus_per_replica
        if node_pool is not None and extra_gpus > 0:
            free = node_pool_free_gpus(node_pool)
            if extra_gpus > free:
                need = extra_gpus - free
                node_req = Action(
                    id=f"plan-nodes-{node_pool.name}",
                    kind=ActionKind.REQUEST_GPU_NODES,
                    params=GpuNodeRequest(node_pool=node_pool.name, gpus=need),
                    rationale="planner",
                    dry_run=True,
                    requested_at=snapshot.taken_at,
                )
                node_delta = action_cost_delta(node_req, None, node_pool, catalogue)
                lim = node_pool.gpu_limit
                total_after = (
                    node_pool.nodes_ready + node_pool.nodes_launching
                ) * node_pool.gpus_per_node + need
                if lim is not None and total_after > lim:
                    notes.append(f"node pool {node_pool.name} limit {lim} GPUs would be exceeded")
                prereqs.append(
                    _tool_call(
                        ActionKind.REQUEST_GPU_NODES,
                        {
                            "node_pool": node_pool.name,
                            "gpus": need,
                            "method": "auto",
                            "rationale": (
                                f"{a.key} needs {extra_gpus} more {node_pool.gpu_type} GPUs, {free} free in "
                                f"{node_pool.name}; provisioning takes ~{node_pool.typical_provision_s:.0f} s"
                                + ("" if node_delta is None else f" (+${node_delta:.2f}/h for new nodes)")
                            ),
                            "dry_run": True,
                        },
                    )
                )
            else:
                notes.append(f"{free} idle GPUs in {node_pool.name} absorb this: no new nodes")

    action_name = "none" if tool_call is None else tool_call.tool
    months = catalogue.hours_per_month
    if tool_call is None:
        slo_text = _no_action_effect(a, snap, target, desired)
    elif target > desired:
        slo_text = (
            f"capacity for the load forecast {a.horizon_s:.0f} s ahead; new replicas serve after ~"
            f"{(state.cold_start_s or config.default_cold_start_s):.0f} s"
        )
        if a.breaches:
            slo_text = f"{' and '.join(a.breaches)} back within SLO once they serve; " + slo_text
    else:
        slo_text = "SLO margins kept with fewer replicas (WVA N-1 rule and token load)"
    expected = ExpectedEffect(
        replicas_before=desired,
        replicas_after=target if tool_call is not None else desired,
        usd_per_hour_delta=None if delta is None else round(delta, 4),
        usd_per_month_delta=None if delta is None else round(delta * months, 2),
        utilisation_after=_utilisation(a, target if tool_call is not None else desired),
        slo=slo_text,
    )
    return Recommendation(
        pool=a.key,
        action=action_name,
        replicas_now=desired,
        replicas_target=target,
        bottleneck=a.bottleneck,
        reasons=a.reasons + notes,
        expected=expected,
        tool_call=tool_call,
        prerequisites=prereqs,
        diagnoses=a.diagnoses,
    )


def _no_action_effect(a: _Assessment, snap: PoolSnapshot, target: int, desired: int) -> str:
    """Why no call is recommended, in the words the reasons and diagnoses use (one story, issue 19)."""
    if not a.breaches:
        return "SLO holds at current size"
    kinds = {d.kind for d in a.diagnoses}
    if "cpu_bound" in kinds:
        return "breach remains: CPU-bound, GPU replicas would not fix it (see diagnoses); a human should look"
    if target > desired:
        return "owner bounds already allow the target; the fast loop will get there"
    ready = snap.replicas.get("ready", desired)
    on_way = snap.replicas.get("starting", 0) + snap.replicas.get("pending", 0)
    if desired > ready and on_way:
        return (
            f"capacity for {desired} replicas is already on its way ({on_way} starting or waiting for a "
            f"node, {ready} serving): the breach should clear once they serve; no extra call needed"
        )
    thin = [r for r in a.reasons if "a few slow requests" in r]
    if thin:
        return "breach remains: too little traffic for replicas to matter (see reasons); a human should look"
    return "breach remains: no replica change fits the bounds (see reasons); a human should look"


def _index(
    snapshot: FleetSnapshot, pools: Sequence[PoolState], node_pools: Sequence[NodePoolState] | None
) -> tuple[dict[str, PoolState], dict[str, NodePoolState]]:
    states = {p.ref.key: p for p in pools}
    nps = {n.name: n for n in (node_pools if node_pools else snapshot.node_pools)}
    return states, nps


def recommend(
    snapshot: FleetSnapshot,
    pools: Sequence[PoolState],
    node_pools: Sequence[NodePoolState] | None,
    catalogue: PriceCatalogue,
    history: History | None = None,
    config: PlannerConfig | None = None,
    minutes: Mapping[str, MinuteDemand] | None = None,
) -> list[Recommendation]:
    """One recommendation per pool in the snapshot (see module doc for the rules). ``minutes``: per-pool
    demand per minute, for the periodic model (``planner.seasonality``)."""
    cfg = config or PlannerConfig()
    states, nps = _index(snapshot, pools, node_pools)
    out: list[Recommendation] = []
    for snap in snapshot.pools:
        key = pool_key(snap)
        state = states.get(key) or snap.to_pool_state()
        node_pool = nps.get(snap.node_pool or state.node_pool or "")
        a = _assess(
            snap, state, catalogue, (history or {}).get(key), cfg, node_pool, (minutes or {}).get(key)
        )
        out.append(_recommend_one(a, node_pool, catalogue, snapshot, cfg))
    return out


def diagnose(
    snapshot: FleetSnapshot,
    pools: Sequence[PoolState],
    catalogue: PriceCatalogue,
    config: PlannerConfig | None = None,
) -> list[Diagnosis]:
    """Every diagnosis in the fleet: per pool and per node pool (dark GPUs), largest $ first."""
    cfg = config or PlannerConfig()
    states, _ = _index(snapshot, pools, None)
    found: list[Diagnosis] = list(dark_capacity_nodes(list(snapshot.node_pools), catalogue, cfg))
    for snap in snapshot.pools:
        key = pool_key(snap)
        state = states.get(key) or snap.to_pool_state()
        found.extend(_assess(snap, state, catalogue, None, cfg).diagnoses)
    return sorted(found, key=lambda d: -(d.usd_per_month or 0.0))


class ScalingPlan(BaseModel):
    """What ``recommend_scaling`` returns: per-pool recommendations plus fleet-level diagnoses."""

    taken_at: str
    recommendations: list[Recommendation]
    fleet_diagnoses: list[Diagnosis] = Field(default_factory=list, description="Node pools: dark GPUs")
    usd_per_hour_delta: float | None = Field(description="Sum over recommended actions")
    partial: bool = False
    warnings: list[str] = Field(default_factory=list)


def plan_fleet(
    snapshot: FleetSnapshot,
    pools: Sequence[PoolState],
    catalogue: PriceCatalogue,
    history: History | None = None,
    config: PlannerConfig | None = None,
) -> ScalingPlan:
    """Recommendations for every pool and the node-pool diagnoses, in one compact model."""
    cfg = config or PlannerConfig()
    recs = recommend(snapshot, pools, None, catalogue, history, cfg)
    deltas = [r.expected.usd_per_hour_delta for r in recs if r.tool_call is not None]
    total = None if any(d is None for d in deltas) else round(sum(d or 0.0 for d in deltas), 4)
    return ScalingPlan(
        taken_at=snapshot.taken_at.isoformat(),
        recommendations=recs,
        fleet_diagnoses=dark_capacity_nodes(list(snapshot.node_pools), catalogue, cfg),
        usd_per_hour_delta=total,
        partial=snapshot.partial,
        warnings=list(snapshot.warnings),
    )


def explain_pool(
    snapshot_pool: PoolSnapshot,
    pool_state: PoolState | None,
    catalogue: PriceCatalogue,
    node_pool: NodePoolState | None = None,
    history: Sequence[PoolSample] | None = None,
    config: PlannerConfig | None = None,
) -> PoolExplanation:
    """Capacity headroom, bottleneck, diagnoses and cost of one pool."""
    cfg = config or PlannerConfig()
    state = pool_state or snapshot_pool.to_pool_state()
    a = _assess(snapshot_pool, state, catalogue, history, cfg, node_pool)
    ready = snapshot_pool.replicas.get("ready", 0)
    desired = snapshot_pool.replicas.get("desired", 0)
    per_h = (
        None if a.usd_per_gpu_hour is None else desired * snapshot_pool.gpus_per_replica * a.usd_per_gpu_hour
    )
    per_out = None
    if per_h is not None:
        _, per_out = split_token_prices(
            per_h,
            snapshot_pool.signals.prompt_tps,
            snapshot_pool.signals.gen_tps,
            catalogue.output_token_weight,
        )
    diags = list(a.diagnoses)
    if node_pool is not None:
        diags.extend(dark_capacity_nodes([node_pool], catalogue, cfg))

    def _head(load: float | None, c: float | None) -> float | None:
        if load is None or not c or ready <= 0:
            return None
        return round(1.0 - load / (ready * c), 3)

    owner = snapshot_pool.owner or state.autoscaler
    return PoolExplanation(
        pool=a.key,
        role=snapshot_pool.role.value,
        replicas=dict(snapshot_pool.replicas),
        owner=None
        if owner is None
        else f"{owner.kind.value}/{owner.name} [{owner.min_replicas}-{owner.max_replicas}]",
        capacity=a.capacity,
        load={
            "prompt_tps": a.r_in,
            "gen_tps": a.r_out,
            "prompt_tps_forecast": None if a.f_in is None else round(a.f_in, 1),
            "gen_tps_forecast": None if a.f_out is None else round(a.f_out, 1),
            "horizon_s": a.horizon_s,
        },
        headroom={"in": _head(a.r_in, a.capacity.c_in_tps), "out": _head(a.r_out, a.capacity.c_out_tps)},
        replicas_needed=a.n_cap,
        saturation=a.saturation,
        bottleneck=a.bottleneck,
        slo={
            "status": snapshot_pool.slo.value,
            "breaches": a.breaches,
            "ttft_p90_s": snapshot_pool.signals.ttft_p90_s,
            "itl_p90_s": snapshot_pool.signals.itl_p90_s,
            "targets": snapshot_pool.slo_targets.model_dump(),
        },
        usd_per_hour=None if per_h is None else round(per_h, 4),
        usd_per_month=None if per_h is None else round(per_h * catalogue.hours_per_month, 2),
        usd_per_m_output_tokens=None if per_out is None else round(per_out, 4),
        diagnoses=diags,
    )
