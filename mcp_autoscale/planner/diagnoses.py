"""Diagnoses the fast loop cannot make, each with evidence from the snapshot and a $ figure (seed 002).

- tier misplacement: a model on a GPU far larger than it needs; the fix is a tier move, not replicas.
- dark capacity: GPUs paid for and idle (free GPUs on ready nodes, or a pool with replicas and no traffic).
- CPU-bound serving: high latency while the GPU is barely used; more GPU replicas would not help.
- KV pressure vs compute saturation: the same symptom (latency) with different fixes.
"""

from __future__ import annotations

import math

from mcp_autoscale.cost.catalogue import CapacityType, PriceCatalogue
from mcp_autoscale.cost.estimate import node_price_per_hour
from mcp_autoscale.models import NodePoolState, PoolSnapshot, Role
from mcp_autoscale.planner.capacity import estimate_capacity, model_params_b, replicas_needed, weights_gb
from mcp_autoscale.planner.models import Capacity, Diagnosis, PlannerConfig


def _r(x: float, nd: int = 2) -> float:
    return round(x, nd)


def _rates(snap: PoolSnapshot) -> tuple[float | None, float | None]:
    r_in, r_out = snap.signals.prompt_tps, snap.signals.gen_tps
    if snap.role == Role.PREFILL:
        r_out = None
    elif snap.role == Role.DECODE:
        r_in = None
    return r_in, r_out


def tier_misplacement(
    snap: PoolSnapshot,
    capacity: Capacity,
    usd_per_gpu_hour: float | None,
    catalogue: PriceCatalogue,
    config: PlannerConfig,
    capacity_type: str = "on-demand",
) -> Diagnosis | None:
    """Fires for a small model on a large GPU (weights <= ``tier_small_model_fraction`` of one GPU's memory)
    when a cheaper GPU tier holds the weights, meets the ITL SLO and serves the observed load for at least
    ``tier_min_saving_fraction`` less than the current tier would at the same utilisation.

    Capacity on another tier = this pool's capacity x (roofline estimate there / roofline estimate here), so
    a learned capacity carries over; the load is the observed token rate.
    """
    cur_gpu = catalogue.gpu(snap.gpu_type)
    w_gb = weights_gb(snap.model)
    r_in, r_out = _rates(snap)
    if cur_gpu is None or w_gb is None or usd_per_gpu_hour is None or (not r_in and not r_out):
        return None
    if w_gb > config.tier_small_model_fraction * cur_gpu.memory_gb:
        return None  # not a small model for this GPU: sizing it is a replica question, not a tier one
    g = snap.gpus_per_replica
    cap_t: CapacityType = "spot" if capacity_type == "spot" else "on-demand"
    est_in, est_out, _ = estimate_capacity(snap.model, cur_gpu, g, config.slo, config)
    c_in = capacity.c_in_tps or est_in
    c_out = capacity.c_out_tps or est_out
    floor = config.floor(snap.namespace)
    u = config.target_utilisation
    n_here = replicas_needed(r_in, r_out, c_in, c_out, u, floor)
    cost_here = n_here * g * usd_per_gpu_hour
    now = snap.replicas.get("desired", 0) * g * usd_per_gpu_hour
    best: tuple[float, str, int, float] | None = None
    for name in catalogue.gpu_types():
        tier = catalogue.gpu(name)
        price = catalogue.gpu_hour(name, cap_t)
        if tier is None or price is None or name == catalogue.canonical_gpu(snap.gpu_type):
            continue
        if price >= usd_per_gpu_hour or w_gb > config.tier_weight_fraction * tier.memory_gb * g:
            continue
        t_in, t_out, _ = estimate_capacity(snap.model, tier, g, config.slo, config)
        if (r_out and t_out is None) or (r_in and t_in is None):
            continue  # cannot meet the ITL SLO (or unknown FLOPS) on that tier
        s_in = None if c_in is None or t_in is None or est_in is None else c_in * t_in / est_in
        s_out = None if c_out is None or t_out is None or est_out is None else c_out * t_out / est_out
        n_t = replicas_needed(r_in, r_out, s_in, s_out, u, floor)
        cost_t = n_t * g * price
        if best is None or cost_t < best[0]:
            best = (cost_t, name, n_t, price)
    if best is None:
        return None
    cost_t, name, n_t, price = best
    if cost_here <= 0 or (cost_here - cost_t) < config.tier_min_saving_fraction * cost_here:
        return None
    months = catalogue.hours_per_month
    saving_now = (now - cost_t) * months
    params = model_params_b(snap.model)
    return Diagnosis(
        kind="tier_misplacement",
        target=f"{snap.namespace}/{snap.name}",
        summary=(
            f"{params:g}B model ({w_gb:.0f} GB weights) on {snap.gpu_type}: {n_t} x {name} serve the "
            f"observed load for ${cost_t:.2f}/h vs ${cost_here:.2f}/h for {n_here} x {snap.gpu_type} "
            f"at the same utilisation; moving saves ${saving_now:,.0f}/month against today's ${now:.2f}/h"
        ),
        evidence={
            "model_params_b": params,
            "weights_gb": _r(w_gb, 1),
            "gpu": snap.gpu_type,
            "gpu_memory_gb": cur_gpu.memory_gb,
            "prompt_tps": r_in,
            "gen_tps": r_out,
            "replicas_now": snap.replicas.get("desired", 0),
            "replicas_needed_here": n_here,
            "usd_per_gpu_hour_here": _r(usd_per_gpu_hour, 3),
            "tier": name,
            "replicas_needed_on_tier": n_t,
            "usd_per_gpu_hour_tier": _r(price, 3),
        },
        usd_per_month=_r(saving_now),
        suggestion=(
            f"move {snap.namespace}/{snap.name} to {name} ({n_t} replica(s)): a tier move, "
            "not a replica change"
        ),
    )


def dark_capacity_nodes(
    node_pools: list[NodePoolState], catalogue: PriceCatalogue, config: PlannerConfig
) -> list[Diagnosis]:
    """GPUs on ready nodes held by no pod and no balloon: paid for, serving nothing."""
    out: list[Diagnosis] = []
    for np_ in node_pools:
        total = np_.nodes_ready * np_.gpus_per_node
        idle = total - np_.gpus_allocated - np_.reserved_gpus
        if idle <= 0:
            continue
        per_node = node_price_per_hour(np_, catalogue)
        per_gpu = None if per_node is None else per_node / np_.gpus_per_node
        usd = None if per_gpu is None else _r(idle * per_gpu * catalogue.hours_per_month)
        whole_nodes = idle // np_.gpus_per_node
        suggestion = (
            f"{whole_nodes} whole node(s) could be consolidated away"
            if whole_nodes
            else "place pending or planned replicas here before asking for new nodes"
        )
        out.append(
            Diagnosis(
                kind="dark_capacity",
                target=f"nodepool/{np_.name}",
                summary=(
                    f"{idle} of {total} {np_.gpu_type} GPUs on ready nodes are idle"
                    + (f" (${usd:,.0f}/month)" if usd is not None else "")
                ),
                evidence={
                    "gpus_total": total,
                    "gpus_allocated": np_.gpus_allocated,
                    "gpus_reserved": np_.reserved_gpus,
                    "gpus_idle": idle,
                    "nodes_ready": np_.nodes_ready,
                    "usd_per_gpu_hour": None if per_gpu is None else _r(per_gpu, 3),
                },
                usd_per_month=usd,
                suggestion=suggestion,
            )
        )
    return out


def idle_pool(
    snap: PoolSnapshot, usd_per_gpu_hour: float | None, catalogue: PriceCatalogue, config: PlannerConfig
) -> Diagnosis | None:
    """A pool holding more replicas than its floor while serving (almost) no tokens: allocated, dark."""
    s = snap.signals
    desired = snap.replicas.get("desired", 0)
    floor = config.floor(snap.namespace)
    if s.prompt_tps is None and s.gen_tps is None:
        return None
    tps = (s.prompt_tps or 0.0) + (s.gen_tps or 0.0)
    if tps > config.idle_tps_max or (s.queue_depth or 0) > 0 or (s.running or 0) > 0 or desired <= floor:
        return None
    extra = desired - floor
    usd = None
    if usd_per_gpu_hour is not None:
        usd = _r(extra * snap.gpus_per_replica * usd_per_gpu_hour * catalogue.hours_per_month)
    return Diagnosis(
        kind="dark_capacity",
        target=f"{snap.namespace}/{snap.name}",
        summary=(
            f"{desired} replicas ({desired * snap.gpus_per_replica} GPUs) serve {tps:.1f} tokens/s: "
            f"{extra} above the floor of {floor} are idle"
        ),
        evidence={"replicas": desired, "floor": floor, "tokens_per_s": _r(tps, 2), "running": s.running},
        usd_per_month=usd,
        suggestion=f"scale to {floor} (or lower the autoscaler's min to {floor})",
    )


def cpu_bound(
    snap: PoolSnapshot, usd_per_gpu_hour: float | None, catalogue: PriceCatalogue, config: PlannerConfig
) -> Diagnosis | None:
    """Latency over SLO while KV is low, few requests run and none wait on the GPU: the bottleneck is before
    the engine's scheduler (tokenisation, pre-processing, the API server's CPU), not the GPU. Needs at least
    ``min_requests_for_latency`` requests a minute (when measured): a p90 over fewer is noise."""
    s = snap.signals
    ready = max(1, snap.replicas.get("ready", 0))
    if s.kv_usage is None or s.running is None:
        return None
    slow = []
    if s.ttft_p90_s is not None and s.ttft_p90_s > snap.slo_targets.ttft_p90_s:
        slow.append(f"TTFT p90 {s.ttft_p90_s:.2f} s > {snap.slo_targets.ttft_p90_s:g} s")
    if s.itl_p90_s is not None and s.itl_p90_s > snap.slo_targets.itl_p90_s:
        slow.append(f"ITL p90 {s.itl_p90_s * 1e3:.0f} ms > {snap.slo_targets.itl_p90_s * 1e3:.0f} ms")
    run_per = s.running / ready
    q_per = (s.queue_depth or 0.0) / ready
    if not slow or s.kv_usage > config.cpu_bound_kv_max or run_per > config.cpu_bound_running_per_replica_max:
        return None
    if s.request_rps is not None and s.request_rps * 60.0 < config.min_requests_for_latency:
        return None  # a p90 over a handful of requests is one long prompt, not evidence
    if q_per >= 1.0:
        return None
    one_replica = None
    if usd_per_gpu_hour is not None:
        one_replica = _r(snap.gpus_per_replica * usd_per_gpu_hour * catalogue.hours_per_month)
    return Diagnosis(
        kind="cpu_bound",
        target=f"{snap.namespace}/{snap.name}",
        summary=(
            f"{'; '.join(slow)} with KV {s.kv_usage:.2f}, {run_per:.1f} running and {q_per:.1f} waiting per "
            "replica: the GPU is not the bottleneck"
        ),
        evidence={
            "ttft_p90_s": s.ttft_p90_s,
            "itl_p90_s": s.itl_p90_s,
            "kv_usage": s.kv_usage,
            "running_per_replica": _r(run_per),
            "queue_per_replica": _r(q_per),
        },
        usd_per_month=one_replica,
        suggestion=(
            "check CPU requests/limits and throttling of the serving pods (tokenisation, API server); each "
            "extra GPU replica would cost this much per month without fixing latency"
        ),
    )


def kv_or_compute(
    snap: PoolSnapshot, usd_per_gpu_hour: float | None, catalogue: PriceCatalogue, config: PlannerConfig
) -> Diagnosis | None:
    """Tell KV pressure (memory-bound: KV near full, preemptions) from compute saturation (ITL over SLO with
    KV to spare and a full batch). $ = the replicas that would bring the pool back (KV to 0.70, or ITL to
    SLO assuming ITL falls in proportion to the per-replica batch)."""
    s = snap.signals
    n = max(1, snap.replicas.get("ready", 0))
    months = catalogue.hours_per_month
    kv = s.kv_usage
    pre = s.preemptions_per_min or 0.0
    per_replica = None if usd_per_gpu_hour is None else snap.gpus_per_replica * usd_per_gpu_hour
    if kv is not None and (kv >= 0.85 or (pre > 0 and kv >= 0.70)):
        target = max(n + 1, math.ceil(round(kv * n / 0.70, 9)))
        return Diagnosis(
            kind="kv_pressure",
            target=f"{snap.namespace}/{snap.name}",
            summary=(
                f"KV cache {kv:.2f} full" + (f", {pre:g} preemptions/min" if pre else "") + ": memory-bound, "
                f"{target} replicas would bring KV to <= 0.70"
            ),
            evidence={
                "kv_usage": kv,
                "preemptions_per_min": s.preemptions_per_min,
                "queue_depth": s.queue_depth,
                "itl_p90_s": s.itl_p90_s,
                "replicas": n,
            },
            usd_per_month=None if per_replica is None else _r((target - n) * per_replica * months),
            suggestion=(
                "add replicas (spreads KV) or cap max context / max_num_seqs; a bigger batch or a faster "
                "GPU of the same memory will not help"
            ),
        )
    itl, slo_itl = s.itl_p90_s, snap.slo_targets.itl_p90_s
    run_per = None if s.running is None else s.running / n
    busy = run_per is not None and run_per > config.cpu_bound_running_per_replica_max
    if itl is not None and itl > slo_itl and (kv is None or kv < config.kv_saturated) and busy:
        target = max(n + 1, math.ceil(round(n * itl / slo_itl, 9)))
        kv_txt = "?" if kv is None else f"{kv:.2f}"
        return Diagnosis(
            kind="compute_saturation",
            target=f"{snap.namespace}/{snap.name}",
            summary=(
                f"ITL p90 {itl * 1e3:.0f} ms > {slo_itl * 1e3:.0f} ms with KV {kv_txt} and {run_per:.0f} "
                f"running per replica: compute-bound batch; ~{target} replicas"
            ),
            evidence={"itl_p90_s": itl, "kv_usage": kv, "running": s.running, "replicas": n},
            usd_per_month=None if per_replica is None else _r((target - n) * per_replica * months),
            suggestion="add replicas so each runs a smaller batch (or lower max_num_seqs, trading TTFT)",
        )
    return None
