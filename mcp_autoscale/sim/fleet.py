"""Large generated fleets (``fleet-10``, ``fleet-100``, ``fleet-1000``): what an agent sees at scale.

A fleet is drawn once from a fixed generator seed, so the scenario is the same data on every run (the
twin's own ``seed`` then drives arrivals and cold starts). Pools spread over 40 namespaces, four GPU types
on six node pools, three kinds of owner (KEDA, HPA, none) and four engines; most pools run at a comfortable
share of their capacity, a few are idle (replicas but almost no traffic), a few run hot, and ~4% get a load
spike 66 s before hand-over that they cannot absorb in time (they breach when the agent arrives).
"""

from __future__ import annotations

import math
import random

from mcp_autoscale.models import AutoscalerKind, PoolRef, Role
from mcp_autoscale.sim.scenarios import AutoscalerSpec, LoadStep, NodePoolSpec, PoolSpec, Scenario

TEAMS = ("chat", "search", "support", "code", "ads", "docs", "voice", "agents")
STAGES = ("prod", "staging", "dev", "batch", "eval")
NAMESPACES = tuple(f"{t}-{s}" for t in TEAMS for s in STAGES)
"""40 namespaces."""

ENGINES = (("vllm", 0.55), ("sglang", 0.2), ("tgi", 0.15), ("triton", 0.1))
OWNERS = ((AutoscalerKind.KEDA, 0.45), (AutoscalerKind.HPA, 0.3), (None, 0.25))


class _Shape:
    """One kind of pool: model, profile, node pool, workload and a comfortable request rate per replica."""

    def __init__(
        self, slug: str, model: str, profile: str, node_pool: str, workload: str, rps: float, weight: float
    ) -> None:
        self.slug, self.model, self.profile, self.node_pool = slug, model, profile, node_pool
        self.workload, self.rps, self.weight = workload, rps, weight


LLAMA8 = "meta-llama/Llama-3.1-8B-Instruct"
SHAPES: tuple[_Shape, ...] = (
    _Shape("llama-8b", LLAMA8, "llama-3.1-8b/L4x1", "gpu-l4", "conversation", 1.2, 0.3),
    _Shape("llama-8b-spot", LLAMA8, "llama-3.1-8b/L4x1", "gpu-l4-spot", "conversation", 1.2, 0.15),
    _Shape("llama-8b-l40s", LLAMA8, "llama-3.1-8b/L40Sx1", "gpu-l40s", "conversation", 2.0, 0.2),
    _Shape(
        "granite-8b",
        "ibm-granite/granite-3.1-8b-instruct",
        "granite-3.1-8b/A10Gx1",
        "gpu-a10g",
        "conversation",
        0.3,
        0.15,
    ),
    _Shape("qwen-7b", "Qwen/Qwen2.5-7B-Instruct", "qwen2.5-7b/H100x1", "gpu-h100", "code", 4.0, 0.15),
    _Shape(
        "llama-70b",
        "meta-llama/Llama-3.3-70B-Instruct",
        "llama-3.3-70b/H100x4",
        "gpu-h100-reserved",
        "conversation",
        1.5,
        0.05,
    ),
)
NODE_POOLS: dict[str, tuple[str, str, str, int]] = {
    "gpu-l4": ("L4", "g6.xlarge", "on-demand", 1),
    "gpu-l4-spot": ("L4", "g6.xlarge", "spot", 1),
    "gpu-a10g": ("A10G", "g5.xlarge", "spot", 1),
    "gpu-l40s": ("L40S", "g6e.xlarge", "on-demand", 1),
    "gpu-h100": ("H100", "p5.48xlarge", "on-demand", 8),
    "gpu-h100-reserved": ("H100", "p5.48xlarge", "on-demand", 8),
}
GPUS_PER_REPLICA = {"llama-3.3-70b/H100x4": 4}

BREACH_SHARE = 0.04
"""Pools that get a load spike just before hand-over (they breach when the agent arrives)."""
HOT_SHARE = 0.05
IDLE_SHARE = 0.08
SPIKE_AT_S = -66.0
SPIKE_FACTOR = 4.0


def _pick(rng: random.Random, options: tuple[tuple[object, float], ...]) -> object:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]


def fleet_scenario(n: int, generator_seed: int = 15) -> Scenario:
    """A fleet of ``n`` pools (deterministic for a given ``n`` and ``generator_seed``)."""
    rng = random.Random(f"fleet-{n}-{generator_seed}")
    pools: list[PoolSpec] = []
    steps: list[LoadStep] = []
    demand: dict[str, int] = dict.fromkeys(NODE_POOLS, 0)
    breach = max(1, round(n * BREACH_SHARE))
    hot = round(n * HOT_SHARE)
    idle = max(1, round(n * IDLE_SHARE))
    kinds = ["breach"] * breach + ["hot"] * hot + ["idle"] * idle
    kinds += ["ok"] * (n - len(kinds))
    rng.shuffle(kinds)
    for i, kind in enumerate(kinds):
        shape = rng.choices(SHAPES, weights=[s.weight for s in SHAPES])[0]
        ns = NAMESPACES[i % len(NAMESPACES)]
        ref = PoolRef(namespace=ns, name=f"{shape.slug}-{i:04d}")
        gpus = GPUS_PER_REPLICA.get(shape.profile, 1)
        replicas = rng.randint(1, 2) if gpus > 1 else rng.randint(1, 4)
        owner = _pick(rng, OWNERS)
        share = {"ok": rng.uniform(0.25, 0.6), "hot": rng.uniform(0.85, 1.0), "idle": 0.02}.get(kind, 0.6)
        autoscaler = None
        if isinstance(owner, AutoscalerKind):
            keda = owner is AutoscalerKind.KEDA
            autoscaler = AutoscalerSpec(
                kind=owner,
                name=ref.name,
                min_replicas=1,
                max_replicas=max(replicas * 4, 4),
                target=5.0 if keda else 10000.0,
                metric=(
                    "prometheus: sum(vllm:num_requests_waiting) AverageValue 5"
                    if keda
                    else "pods: rate(vllm:prompt_tokens_total) AverageValue 10000"
                ),
                poll_s=30.0 if keda else 15.0,
            )
        pools.append(
            PoolSpec(
                ref=ref,
                model=shape.model,
                role=Role.UNIFIED,
                profile=shape.profile,
                node_pool=shape.node_pool,
                replicas=replicas,
                workload=shape.workload,
                peak_rps=round(shape.rps * replicas * share, 3),
                autoscaler=autoscaler,
                engine=str(_pick(rng, ENGINES)),
                hash_len=rng.choice((10, 10, 10, 9, 8, 7, 6, 5)),
                labels={"team": ns.split("-")[0]},
            )
        )
        if kind == "breach":
            steps.append(LoadStep(SPIKE_AT_S, ref, SPIKE_FACTOR))
        demand[shape.node_pool] += replicas * gpus
    node_pools = tuple(
        NodePoolSpec(
            name=name,
            gpu_type=gpu,
            instance_type=inst,
            capacity_type=cap,  # type: ignore[arg-type]
            gpus_per_node=per_node,
            gpu_limit=(math.ceil(demand[name] * 1.5 / per_node) + 1) * per_node,
            nodes=math.ceil(demand[name] * 1.1 / per_node) + (1 if name.endswith("reserved") else 0),
        )
        for name, (gpu, inst, cap, per_node) in NODE_POOLS.items()
    )
    return Scenario(
        name=f"fleet-{n}",
        description=f"{n} generated pools in {min(n, len(NAMESPACES))} namespaces on 4 GPU types and 6 node "
        f"pools; KEDA/HPA/unowned, vLLM/SGLang/TGI/Triton; ~{BREACH_SHARE:.0%} breaching at hand-over "
        f"(load x{SPIKE_FACTOR:.0f} {-SPIKE_AT_S:.0f} s before), ~{IDLE_SHARE:.0%} idle, "
        f"~{HOT_SHARE:.0%} hot.",
        start_hour=14.0,
        pools=tuple(pools),
        node_pools=node_pools,
        load_steps=tuple(steps),
        preroll_s=72.0,
        draw_batch=64,
        tick_s=2.0,
    )
