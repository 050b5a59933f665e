"""The default simulated fleet and the named scenarios (team brief: "The default simulated fleet").

A scenario is data: the fleet (pools, node pools, autoscalers), each pool's traffic, timed load changes,
and how long to pre-roll before ``Twin.now`` so that the signals already show the scenario's state when
the twin is handed over.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from mcp_autoscale.errors import InvalidInput
from mcp_autoscale.models import AutoscalerKind, PoolRef, Role


@dataclass(frozen=True)
class AutoscalerSpec:
    kind: AutoscalerKind
    name: str
    min_replicas: int
    max_replicas: int
    target: float
    """HPA: per-pod metric target (AverageValue); KEDA: waiting requests per replica (AverageValue)."""
    metric: str
    poll_s: float
    scale_down_stabilization_s: int = 300
    scale_up_stabilization_s: int = 0


@dataclass(frozen=True)
class PoolSpec:
    ref: PoolRef
    model: str
    role: Role
    profile: str
    node_pool: str
    replicas: int
    workload: str
    peak_rps: float
    """Request rate at the diurnal peak (before bursts and load factors)."""
    autoscaler: AutoscalerSpec | None = None
    handoff_to: PoolRef | None = None
    """Prefill pools hand finished prefills (with their KV) to this decode pool."""
    fed_by: PoolRef | None = None
    """Decode pools get their arrivals from this prefill pool instead of their own load model."""
    ctx_scale: float = 1.0
    gen_scale: float = 1.0
    labels: dict[str, str] = field(default_factory=dict)
    engine: str = "vllm"
    """What the cluster reports as the serving engine (the twin renders every pod's metrics as vLLM's)."""
    hash_len: int = 10
    """Length of the pod-template-hash in pod names (Kubernetes' encoding can be shorter than 10)."""


@dataclass(frozen=True)
class NodePoolSpec:
    name: str
    gpu_type: str
    instance_type: str
    capacity_type: Literal["on-demand", "spot"]
    gpus_per_node: int
    gpu_limit: int | None
    nodes: int


@dataclass(frozen=True)
class LoadStep:
    """At ``at_s`` s relative to the hand-over time (negative = during pre-roll), set a load factor."""

    at_s: float
    pool: PoolRef
    factor: float


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    start_hour: float
    pools: tuple[PoolSpec, ...]
    node_pools: tuple[NodePoolSpec, ...]
    load_steps: tuple[LoadStep, ...] = ()
    preroll_s: float = 120.0
    burst_scale: float = 1.0
    """Multiplies every workload's burst frequency (the ``burst`` scenario raises it)."""
    draw_batch: int = 4096
    tick_s: float = 1.0
    """The twin's default step (large scenarios use a coarser one so that 1,000 pools keep up)."""
    """Random draws buffered per stream and pool (large scenarios lower it to bound memory)."""


def _ref(key: str) -> PoolRef:
    ns, name = key.split("/")
    return PoolRef(namespace=ns, name=name)


LLAMA8B = _ref("chat/llama-8b")
PREFILL70 = _ref("chat/llama-70b-prefill")
DECODE70 = _ref("chat/llama-70b-decode")
QWEN7B = _ref("batch/qwen-7b")
GRANITE8B = _ref("dev/granite-8b")

_DEFAULT_POOLS: tuple[PoolSpec, ...] = (
    PoolSpec(
        ref=LLAMA8B,
        model="meta-llama/Llama-3.1-8B-Instruct",
        role=Role.UNIFIED,
        profile="llama-3.1-8b/L4x1",
        node_pool="gpu-l4",
        replicas=4,
        workload="conversation",
        peak_rps=3.0,
        autoscaler=AutoscalerSpec(
            kind=AutoscalerKind.KEDA,
            name="llama-8b",
            min_replicas=2,
            max_replicas=16,
            target=5.0,
            metric="prometheus: sum(vllm:num_requests_waiting) AverageValue 5",
            poll_s=30.0,
        ),
    ),
    PoolSpec(
        ref=PREFILL70,
        model="meta-llama/Llama-3.3-70B-Instruct",
        role=Role.PREFILL,
        profile="llama-3.3-70b/H100x4",
        node_pool="gpu-h100",
        replicas=2,
        workload="conversation",
        peak_rps=5.0,
        autoscaler=AutoscalerSpec(
            kind=AutoscalerKind.HPA,
            name="llama-70b-prefill",
            min_replicas=1,
            max_replicas=4,
            target=10000.0,
            metric="pods: rate(vllm:prompt_tokens_total) AverageValue 10000",
            poll_s=15.0,
        ),
        handoff_to=DECODE70,
    ),
    PoolSpec(
        ref=DECODE70,
        model="meta-llama/Llama-3.3-70B-Instruct",
        role=Role.DECODE,
        profile="llama-3.3-70b/H100x4",
        node_pool="gpu-h100",
        replicas=2,
        workload="conversation",
        peak_rps=0.0,
        autoscaler=AutoscalerSpec(
            kind=AutoscalerKind.KEDA,
            name="llama-70b-decode",
            min_replicas=1,
            max_replicas=6,
            target=5.0,
            metric="prometheus: sum(vllm:num_requests_waiting) AverageValue 5",
            poll_s=30.0,
        ),
        fed_by=PREFILL70,
    ),
    PoolSpec(
        ref=QWEN7B,
        model="Qwen/Qwen2.5-7B-Instruct",
        role=Role.UNIFIED,
        profile="qwen2.5-7b/H100x1",
        node_pool="gpu-h100",
        replicas=2,
        workload="code",
        peak_rps=2.0,
    ),
    PoolSpec(
        ref=GRANITE8B,
        model="ibm-granite/granite-3.1-8b-instruct",
        role=Role.UNIFIED,
        profile="granite-3.1-8b/A10Gx1",
        node_pool="gpu-a10g",
        replicas=1,
        workload="conversation",
        peak_rps=0.3,
    ),
)

_DEFAULT_NODE_POOLS: tuple[NodePoolSpec, ...] = (
    NodePoolSpec("gpu-l4", "L4", "g6.xlarge", "on-demand", 1, 24, 4),
    NodePoolSpec("gpu-h100", "H100", "p5.48xlarge", "on-demand", 8, 32, 3),
    NodePoolSpec("gpu-a10g", "A10G", "g5.xlarge", "spot", 1, 8, 1),
)


def _with(pools: tuple[PoolSpec, ...], ref: PoolRef, **changes: object) -> tuple[PoolSpec, ...]:
    return tuple(replace(p, **changes) if p.ref == ref else p for p in pools)  # type: ignore[arg-type]


SCENARIOS: dict[str, Scenario] = {
    "default": Scenario(
        name="default",
        description="Diurnal conversation/code traffic, healthy fleet; 6 of 24 H100s idle (dark capacity).",
        start_hour=10.0,
        pools=_DEFAULT_POOLS,
        node_pools=_DEFAULT_NODE_POOLS,
    ),
    "ttft-breach": Scenario(
        name="ttft-breach",
        description="chat/llama-8b gets ~3x load 4 minutes before hand-over: queue builds, TTFT p90 > 2 s, "
        "KEDA has asked for replicas that wait for L4 nodes and cold starts.",
        start_hour=14.0,
        pools=_DEFAULT_POOLS,
        node_pools=_DEFAULT_NODE_POOLS,
        load_steps=(LoadStep(-240.0, LLAMA8B, 3.0),),
        preroll_s=300.0,
    ),
    "kv-pressure": Scenario(
        name="kv-pressure",
        description="chat/llama-70b long contexts (6x prompts, 4x outputs): the decode pool's KV cache runs "
        "above 0.9 and preempts.",
        start_hour=14.0,
        pools=_with(
            _with(_DEFAULT_POOLS, PREFILL70, ctx_scale=6.0, gen_scale=4.0, peak_rps=3.6),
            DECODE70,
            ctx_scale=6.0,
            gen_scale=4.0,
        ),
        node_pools=_DEFAULT_NODE_POOLS,
        preroll_s=300.0,
    ),
    "idle": Scenario(
        name="idle",
        description="Night traffic (03:00, 30% load): replicas and H100s sit idle (dark capacity).",
        start_hour=3.0,
        pools=_DEFAULT_POOLS,
        node_pools=_DEFAULT_NODE_POOLS,
        load_steps=tuple(LoadStep(-240.0, p.ref, 0.3) for p in _DEFAULT_POOLS),
        preroll_s=240.0,
    ),
    "burst": Scenario(
        name="burst",
        description="Frequent traffic bursts (4x burst rate) plus a 3x burst on chat pools one minute before "
        "hand-over that lasts ten minutes.",
        start_hour=11.0,
        pools=_DEFAULT_POOLS,
        node_pools=_DEFAULT_NODE_POOLS,
        burst_scale=4.0,
        load_steps=(
            LoadStep(-60.0, LLAMA8B, 3.0),
            LoadStep(-60.0, PREFILL70, 3.0),
            LoadStep(540.0, LLAMA8B, 1.0),
            LoadStep(540.0, PREFILL70, 1.0),
        ),
    ),
}


from mcp_autoscale.sim.fleet import fleet_scenario  # noqa: E402  (the generator needs the types above)

for _n in (10, 100, 1000):
    SCENARIOS[f"fleet-{_n}"] = fleet_scenario(_n)


def check_scenario(name: str, option: str = "--scenario") -> str:
    """A known scenario name, or ``InvalidInput`` listing them (checked before a server is spawned)."""
    if name not in SCENARIOS:
        raise InvalidInput(f"{option} {name!r}: unknown scenario; known: {', '.join(sorted(SCENARIOS))}")
    return name
