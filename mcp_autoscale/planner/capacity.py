"""Token-aware capacity: replicas needed from token rates, and per-replica capacity C.

``N = max(ceil(R_in / (C_in x U)), ceil(R_out / (C_out x U)), floor)`` (seed 003, DOMAIN.md §3). C comes, in
order of trust, from configuration, from history (tokens/s per replica while TTFT and ITL stayed within SLO),
or from a roofline prior (CALIBRATION.md §4) so a pool never seen under load still gets a size estimate.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

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
    """Configured C if given, else learned from history, else the roofline prior (see module doc)."""
    conf = config.capacities.get(pool_key)
    if conf is not None and (conf.c_in_tps or conf.c_out_tps):
        return _by_role(Capacity(c_in_tps=conf.c_in_tps, c_out_tps=conf.c_out_tps, source="configured"), role)
    gpu = catalogue.gpu(gpu_type)
    est_in = est_out = None
    note = f"GPU {gpu_type!r} not in the catalogue"
    if gpu is not None:
        est_in, est_out, note = estimate_capacity(model, gpu, gpus_per_replica, config.slo, config)
    if history:
        l_in, l_out, lower = learn_capacity(history, config.slo, config)
        if l_in is not None or l_out is not None:
            if not lower:
                return _by_role(Capacity(c_in_tps=l_in, c_out_tps=l_out, source="learned"), role)
            return _by_role(
                Capacity(
                    c_in_tps=_max_opt(l_in, est_in),
                    c_out_tps=_max_opt(l_out, est_out),
                    source="learned+estimated",
                    note="history never reached saturation: max(observed within SLO, roofline)",
                ),
                role,
            )
    if est_in is None and est_out is None:
        return Capacity(c_in_tps=None, c_out_tps=None, source="unknown", note=note)
    return _by_role(Capacity(c_in_tps=est_in, c_out_tps=est_out, source="estimated", note=note), role)


def _max_opt(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _by_role(cap: Capacity, role: Role) -> Capacity:
    """Prefill pools are sized on prompt tokens only, decode pools on generated tokens only."""
    if role == Role.PREFILL:
        return cap.model_copy(update={"c_out_tps": None})
    if role == Role.DECODE:
        return cap.model_copy(update={"c_in_tps": None})
    return cap
