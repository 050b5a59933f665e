"""Token-aware capacity: replicas needed from token rates, and per-replica capacity C.

``N = max(ceil(R_in / (C_in x U)), ceil(R_out / (C_out x U)), floor)`` (seed 003, DOMAIN.md §3). C comes, in
order of trust, from configuration, from history (tokens/s per replica while TTFT and ITL stayed within SLO),
or from a roofline prior (CALIBRATION.md §4) so a pool never seen under load still gets a size estimate.
"""

from __future__ import annotations

import bisect
import math
import re
import statistics
from collections.abc import Sequence
from typing import Literal

from mcp_autoscale.cost.catalogue import GpuModel, PriceCatalogue
from mcp_autoscale.models import Role, SloTargets
from mcp_autoscale.planner.models import Capacity, PlannerConfig, PoolSample

_MOE = re.compile(r"(?<![\d.])(\d+)x(\d+(?:\.\d+)?)b(?![a-z])", re.IGNORECASE)
_PARAMS = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)b(?![a-z])", re.IGNORECASE)


def replicas_needed(
    r_in: float | None,
    r_out: float | None,
    c_in: float | None,
    c_out: float | None,
    u: float,
    floor: int,
) -> int:
    """``max(ceil(R_in / (C_in U)), ceil(R_out / (C_out U)), floor)``; a term without R or C drops out."""
    if not 0 < u <= 1:
        raise ValueError(f"target utilisation must be in (0, 1], not {u}")
    n = floor
    for r, c in ((r_in, c_in), (r_out, c_out)):
        if r is not None and c is not None and c > 0 and r > 0:
            # round away float noise (e.g. 3000 / (1000 x 0.75) = 4.000000000000001) before the ceiling
            n = max(n, math.ceil(round(r / (c * u), 9)))
    return n


def model_params_b(model: str) -> float | None:
    """Parameter count in billions read from a model name ('Llama-3.1-8B' -> 8, 'Mixtral-8x7B' -> 56)."""
    name = model.rsplit("/", 1)[-1]
    moe = _MOE.search(name)
    if moe:
        return float(moe.group(1)) * float(moe.group(2))
    found = _PARAMS.findall(name)
    return float(found[-1]) if found else None


def bytes_per_param(model: str) -> float:
    """Weight precision from the name: FP8/INT8 = 1 B, 4-bit = 0.5 B, else BF16 = 2 B."""
    low = model.lower()
    if any(t in low for t in ("w4a16", "awq", "gptq", "int4", "4bit")):
        return 0.5
    if any(t in low for t in ("fp8", "w8a8", "int8", "8bit")):
        return 1.0
    return 2.0


def weights_gb(model: str) -> float | None:
    p = model_params_b(model)
    return None if p is None else p * bytes_per_param(model)


def estimate_capacity(
    model: str, gpu: GpuModel, gpus: int, slo: SloTargets, config: PlannerConfig
) -> tuple[float | None, float | None, str]:
    """Roofline prior for (C_in, C_out) tokens/s per replica, with a note saying why a value is missing.

    Prefill is compute-bound: ``C_in = MFU x FLOPS / (2 P)``. Decode is memory-bound: one step reads the
    weights, ``t0 = W / (eta x BW)``, and grows with batch ``B`` as ``t(B) = t0 (1 + B / B_half)`` (the NIM
    Llama-8B/H100 fit, CALIBRATION.md §4); the largest batch with ``t(B) <= ITL SLO`` (capped at vLLM's
    max_num_seqs) gives ``C_out = B / t(B)``. KV-cache limits are not modelled: a learned C replaces this.
    """
    params = model_params_b(model)
    if params is None:
        return None, None, f"parameter count not readable from model name {model!r}"
    w_bytes = params * 1e9 * bytes_per_param(model)
    if w_bytes > 0.9 * gpu.memory_gb * 1e9 * gpus:
        return None, None, f"{params:g}B weights do not fit {gpus} x {gpu.memory_gb:g} GB"
    c_in = None
    if gpu.bf16_tflops is not None:
        c_in = config.mfu * gpu.bf16_tflops * 1e12 * gpus / (2 * params * 1e9)
    t0 = w_bytes / (config.bandwidth_efficiency * gpu.bandwidth_gbs * 1e9 * gpus)
    if t0 >= slo.itl_p90_s:
        return c_in, None, f"ITL at batch 1 ({t0 * 1e3:.0f} ms) already misses the {slo.itl_p90_s:g} s SLO"
    batch = min(float(config.max_num_seqs), config.batch_half * (slo.itl_p90_s / t0 - 1.0))
    c_out = batch / (t0 * (1.0 + batch / config.batch_half))
    return c_in, c_out, "roofline estimate (CALIBRATION.md §4)"


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[idx]


def learn_capacity(
    samples: Sequence[PoolSample], slo: SloTargets, config: PlannerConfig
) -> tuple[float | None, float | None, bool]:
    """Per-replica (C_in, C_out) from history, and whether they are only lower bounds.

    C = the 95th percentile of tokens/s per ready replica over samples where TTFT p90 and ITL p90 were both
    measured and within SLO. It is a true capacity only if the pool was loaded in some of those samples
    (KV >= 0.5 or requests waiting); otherwise it is a lower bound (the pool never showed its limit).
    """
    good = [
        s
        for s in samples
        if s.ready_replicas > 0
        and s.ttft_p90_s is not None
        and s.itl_p90_s is not None
        and s.ttft_p90_s <= slo.ttft_p90_s
        and s.itl_p90_s <= slo.itl_p90_s
    ]
    if not good:
        return None, None, True
    r_in = [s.prompt_tps / s.ready_replicas for s in good if s.prompt_tps]
    r_out = [s.gen_tps / s.ready_replicas for s in good if s.gen_tps]
    loaded = any(
        (s.kv_usage is not None and s.kv_usage >= 0.5) or (s.queue_depth is not None and s.queue_depth > 0.5)
        for s in good
    )
    c_in = _quantile(r_in, 0.95) if r_in else None
    c_out = _quantile(r_out, 0.95) if r_out else None
    return c_in, c_out, not loaded


def stable_samples(samples: Sequence[PoolSample], window_s: float) -> list[PoolSample]:
    """Samples whose ready-replica count had not changed for the whole rate window before them.

    A token rate is measured over a window (``rate(...[1m])``) but the ready count is instantaneous: right
    after a scale-in the rate still carries the removed replicas' work and the per-replica load reads too
    high (too low after a scale-out). Only samples with a constant count over the window are evidence.
    """
    out: list[PoolSample] = []
    since: float | None = None
    last: int | None = None
    for s in sorted(samples, key=lambda x: x.t_s):
        if s.ready_replicas != last:
            last, since = s.ready_replicas, s.t_s
        if since is not None and s.t_s - since >= window_s:
            out.append(s)
    return out


def _steady(samples: Sequence[PoolSample], times: Sequence[float], s: PoolSample, window_s: float) -> bool:
    """Whether the load one rate window before ``s`` was at least 2/3 of its own: at a sudden rise the
    rate (a window average) still reads the quiet part while the latency already shows the new load."""
    i = bisect.bisect_right(times, s.t_s - window_s) - 1
    if i < 0:
        return True
    prev = samples[i]
    for a, b in ((prev.prompt_tps, s.prompt_tps), (prev.gen_tps, s.gen_tps)):
        if a is not None and b is not None and b > 0 and a < b / 1.5:
            return False
    return True


def breach_bound(
    samples: Sequence[PoolSample], slo: SloTargets, config: PlannerConfig
) -> tuple[float | None, float | None]:
    """The per-replica load (prompt, output tokens/s) at which SLO breaches start (``breach_evidence``)."""
    b_in, b_out, _knee = breach_evidence(samples, slo, config)
    return b_in, b_out


def breach_evidence(
    samples: Sequence[PoolSample], slo: SloTargets, config: PlannerConfig
) -> tuple[float | None, float | None, bool]:
    """The per-replica load (prompt, output tokens/s) at which SLO breaches start: an upper bound on C.

    A breach is the only evidence that capacity is lower than a figure. Samples count when the ready count
    was stable over the rate window, TTFT or ITL p90 was over its SLO, and the p90 stood on enough requests
    (a lone long prompt is no evidence). The bound is a low quantile (``breach_quantile``) of those loads,
    once ``breach_min_samples`` of them exist: where the knee of the latency curve begins, not its average.
    The flag says whether the bound stands on breaches with no queue (the knee itself) rather than only on
    saturated ones (the throughput ceiling, past the knee).
    """
    bad = []
    # a TTFT breach within two rate windows of a backlog is the backlog's wait (the p90 still holds the
    # queued requests while the pool drains them at a moderate per-replica load), not the pool's limit
    backlog_at: list[float] = [
        s.t_s
        for s in samples
        if s.queue_depth is not None and s.queue_depth > config.scale_in_queue_max * max(1, s.ready_replicas)
    ]
    times = [x.t_s for x in samples]
    for s in stable_samples(samples, config.signal_window_s):
        if s.ready_replicas <= 0:
            continue
        if s.request_rps is not None and s.request_rps * 60.0 < config.min_requests_for_latency:
            continue
        ttft_bad = s.ttft_p90_s is not None and s.ttft_p90_s > slo.ttft_p90_s
        itl_bad = s.itl_p90_s is not None and s.itl_p90_s > slo.itl_p90_s
        if ttft_bad and not itl_bad:
            i = bisect.bisect_right(backlog_at, s.t_s)
            if i > 0 and s.t_s - backlog_at[i - 1] <= 2.0 * config.signal_window_s:
                continue
        if (ttft_bad or itl_bad) and _steady(samples, times, s, config.signal_window_s):
            bad.append(s)
    if len(bad) < config.breach_min_samples:
        return None, None, False
    # a saturated pool (requests queued) serves at its throughput ceiling, past the knee: it bounds C
    # loosely. Breaches with no queue mark the knee itself; use them once there are enough.
    knee = [
        s
        for s in bad
        if s.queue_depth is not None and s.queue_depth <= config.scale_in_queue_max * max(1, s.ready_replicas)
    ]
    at_knee = len(knee) >= config.breach_min_samples
    if at_knee:
        bad = knee
    q = config.breach_quantile
    r_in = [s.prompt_tps / s.ready_replicas for s in bad if s.prompt_tps]
    r_out = [s.gen_tps / s.ready_replicas for s in bad if s.gen_tps]
    b_in = _quantile(r_in, q) if len(r_in) >= config.breach_min_samples else None
    b_out = _quantile(r_out, q) if len(r_out) >= config.breach_min_samples else None
    return b_in, b_out, at_knee


def latency_bound(samples: Sequence[PoolSample], slo: SloTargets, config: PlannerConfig) -> float | None:
    """Output tokens/s per replica at which the ITL p90 reaches its SLO, from the decode model fitted to the
    pool's own samples: an upper bound on C_out that needs no breach.

    The roofline's decode step grows with the batch, ``t(B) = t0 (1 + B / B_half)``, and a replica serving
    ``r = B / t`` output tokens/s then decodes at ``1 / t = 1 / t0 - r / B_half``: the inverse ITL falls on
    a straight line in the per-replica load. Fitted (least squares) to samples below saturation (ready count
    stable over the rate window, no backlog, ITL measured over >= ``min_requests_for_latency`` requests a
    minute), the line says where ITL meets the SLO from loads the pool served well within it. Breaches at
    saturation bound C only loosely (a saturated pool serves at its throughput ceiling, 40-50% past the ITL
    knee on the twin's L4); this bound is there from the first ``latency_min_samples`` quiet samples. None
    until then, when the loads span less than ``latency_min_spread`` (max / min), or when ITL does not rise
    with the load.
    """
    if config.latency_min_samples <= 0:
        return None
    xs: list[float] = []
    ys: list[float] = []
    for s in stable_samples(samples, config.signal_window_s):
        if s.ready_replicas <= 0 or not s.gen_tps or s.itl_p90_s is None or s.itl_p90_s <= 0:
            continue
        if s.request_rps is None or s.request_rps * 60.0 < config.min_requests_for_latency:
            continue
        if s.queue_depth is not None and s.queue_depth > config.scale_in_queue_max * s.ready_replicas:
            continue
        xs.append(s.gen_tps / s.ready_replicas)
        ys.append(1.0 / s.itl_p90_s)
    if len(xs) < config.latency_min_samples or min(xs) <= 0 or max(xs) < config.latency_min_spread * min(xs):
        return None
    slope, intercept = statistics.linear_regression(xs, ys)
    if slope >= 0:
        return None
    # the curve is the samples' mean; a minute's p90 scatters around it. Shift it by ``latency_fit_sd``
    # residual standard deviations, so the bound is where a slow minute, not the average one, meets the SLO
    sd = statistics.pstdev(y - (intercept + slope * x) for x, y in zip(xs, ys, strict=True))
    r = (intercept - config.latency_fit_sd * sd - 1.0 / slo.itl_p90_s) / -slope
    return r if r > 0 else None


def _evidence(
    learned: float | None, bound: float | None, prior: float | None, model: float | None = None
) -> tuple[float | None, str]:
    """``max(learned, min(prior, breach bound, latency model))``: never below what stayed within SLO, never
    above the load where breaches began or where the fitted ITL curve meets the SLO; the prior fills in only
    up to those bounds. Returns the figure and where it came from.
    """
    bounds = [(v, src) for v, src in ((prior, "prior"), (bound, "breach"), (model, "model")) if v is not None]
    ceiling, src = min(bounds) if bounds else (None, "none")
    if learned is None and ceiling is None:
        return None, "none"
    if ceiling is None or (learned is not None and learned >= ceiling):
        return learned, "learned"
    return ceiling, src


def resolve_capacity(
    pool_key: str,
    model: str,
    gpu_type: str,
    gpus_per_replica: int,
    role: Role,
    catalogue: PriceCatalogue,
    history: Sequence[PoolSample] | None,
    config: PlannerConfig,
) -> Capacity:
    """Configured C if given, else what history supports, else the roofline prior.

    From history, per dimension: ``C = max(learned, min(roofline, breach bound))``. The learned figure (p95
    of per-replica load within SLO) is a floor: the pool has done that. It is not the ceiling, because a
    planner that keeps utilisation below 1 rarely shows the pool its limit, and a floor used as the limit
    ratchets down. Only breaches (``breach_bound``) pull the figure below the roofline prior.
    """
    conf = config.capacities.get(pool_key)
    if conf is not None and (conf.c_in_tps or conf.c_out_tps):
        return _by_role(Capacity(c_in_tps=conf.c_in_tps, c_out_tps=conf.c_out_tps, source="configured"), role)
    gpu = catalogue.gpu(gpu_type)
    est_in = est_out = None
    note = f"GPU {gpu_type!r} not in the catalogue"
    if gpu is not None:
        est_in, est_out, note = estimate_capacity(model, gpu, gpus_per_replica, config.slo, config)
    if history:
        l_in, l_out, _lower = learn_capacity(history, config.slo, config)
        b_in, b_out, knee = breach_evidence(history, config.slo, config)
        # the fitted ITL curve stands in where evidence is thin: no breach at the knee yet (only the prior,
        # or breaches at saturation, 40-50% past the knee); breaches at the knee are the better evidence
        thin = not knee or b_out is None
        m_out = None if role == Role.PREFILL or not thin else latency_bound(history, config.slo, config)
        if any(v is not None for v in (l_in, l_out, b_in, b_out, m_out)):
            c_in, src_in = _evidence(l_in, b_in, est_in)
            c_out, src_out = _evidence(l_out, b_out, est_out, m_out)
            if role == Role.PREFILL:
                used = {src_in}
            elif role == Role.DECODE:
                used = {src_out}
            else:
                used = {src_in, src_out}
            parts = []
            for dim, src, lv, bv, mv in (
                ("C_in", src_in, l_in, b_in, None),
                ("C_out", src_out, l_out, b_out, m_out),
            ):
                if src == "none":
                    continue
                txt = {
                    "learned": "observed within SLO",
                    "breach": "where breaches began",
                    "model": "where the fitted ITL curve meets the SLO",
                    "prior": "roofline (no breach or fitted ITL below it)",
                }[src]
                bound = "" if bv is None else f", breaches from {_fmt(bv)}"
                fitted = "" if mv is None else f", ITL fit {_fmt(mv)}"
                parts.append(f"{dim} {txt} (within SLO up to {_fmt(lv)}{bound}{fitted})")
            source: Literal["learned", "learned+estimated"] = (
                "learned+estimated" if "prior" in used else "learned"
            )
            return _by_role(
                Capacity(c_in_tps=c_in, c_out_tps=c_out, source=source, note="; ".join(parts)), role
            )
    if est_in is None and est_out is None:
        return Capacity(c_in_tps=None, c_out_tps=None, source="unknown", note=note)
    return _by_role(Capacity(c_in_tps=est_in, c_out_tps=est_out, source="estimated", note=note), role)


def _fmt(x: float | None) -> str:
    return "?" if x is None else f"{x:,.0f} tok/s"


def _by_role(cap: Capacity, role: Role) -> Capacity:
    """Prefill pools are sized on prompt tokens only, decode pools on generated tokens only."""
    if role == Role.PREFILL:
        return cap.model_copy(update={"c_out_tps": None})
    if role == Role.DECODE:
        return cap.model_copy(update={"c_in_tps": None})
    return cap
