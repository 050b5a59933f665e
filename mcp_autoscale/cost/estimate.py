"""Cost maths: $/h and $/month per pool and fleet, $ per 1M tokens, and the $ effect of actions.

Pure functions over the shared models and a :class:`PriceCatalogue`. Pools are costed per GPU they hold
(replicas x GPUs per replica x $/GPU-h of their instance type, or of their GPU model's reference instance);
node pools are costed per node, which is where idle ("dark") GPUs show up.

Token pricing follows OpenCost's method, ``$/h / (tokens/s x 3600) x 1e6``. To split one pool's $/h between
input and output tokens, an output token is weighted as ``w`` input tokens (``output_token_weight`` in the
catalogue, default 3: output costs ~2.5-4x input where priced apart). With observed rates ``R_in`` and
``R_out`` the input price ``p`` solves ``p x R_in + w x p x R_out = $/h``, so
``$/1M input = $/h / ((R_in + w x R_out) x 3600) x 1e6`` and ``$/1M output = w x $/1M input``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field

from mcp_autoscale.cost.catalogue import PriceCatalogue
from mcp_autoscale.errors import InvalidInput, NotFound
from mcp_autoscale.models import (
    Action,
    AutoscalerPatch,
    FleetSnapshot,
    GpuNodeRequest,
    NodePoolState,
    PoolSnapshot,
    PoolState,
    ScaleDeploymentParams,
)

SECONDS_PER_HOUR = 3600.0


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(x, nd)


def cost_per_million_tokens(cost_per_hour: float, tokens_per_s: float) -> float | None:
    """OpenCost's method: ``$/h / (tok/s x 3600) x 1e6``; None when nothing is served."""
    if tokens_per_s is None or tokens_per_s <= 0 or cost_per_hour < 0:
        return None
    return cost_per_hour / (tokens_per_s * SECONDS_PER_HOUR) * 1e6


def split_token_prices(
    cost_per_hour: float, prompt_tps: float | None, gen_tps: float | None, output_weight: float
) -> tuple[float | None, float | None]:
    """($/1M input, $/1M output) with output weighted ``output_weight`` x input (see module doc)."""
    r_in = max(prompt_tps or 0.0, 0.0)
    r_out = max(gen_tps or 0.0, 0.0)
    weighted = r_in + output_weight * r_out
    per_in = cost_per_million_tokens(cost_per_hour, weighted)
    if per_in is None:
        return None, None
    return per_in, per_in * output_weight


def pool_gpu_hour(pool: PoolState, catalogue: PriceCatalogue) -> float | None:
    """$ per GPU-hour for this pool (its instance type when known, else its GPU model)."""
    return catalogue.gpu_hour_for(pool.gpu_type, pool.instance_type, pool.capacity_type)


def pool_cost_per_hour(pool: PoolState, catalogue: PriceCatalogue) -> float | None:
    """desired replicas x GPUs per replica x $/GPU-h; None if the GPU is not in the catalogue."""
    per_gpu = pool_gpu_hour(pool, catalogue)
    if per_gpu is None:
        return None
    return pool.desired_replicas * pool.gpus_per_replica * per_gpu


def node_price_per_hour(node_pool: NodePoolState, catalogue: PriceCatalogue) -> float | None:
    """$/h of one node of a node pool (instance-aware)."""
    if node_pool.instance_type:
        inst = catalogue.instance(node_pool.instance_type)
        if inst is not None:
            per_gpu = catalogue.instance_hour(inst.name, node_pool.capacity_type)
            if per_gpu is not None:
                return per_gpu / inst.gpus * node_pool.gpus_per_node
    per_gpu = catalogue.gpu_hour(node_pool.gpu_type, node_pool.capacity_type)
    return None if per_gpu is None else per_gpu * node_pool.gpus_per_node


def node_pool_free_gpus(node_pool: NodePoolState) -> int:
    """GPUs on ready or launching nodes that no pod (nor balloon) holds."""
    total = (node_pool.nodes_ready + node_pool.nodes_launching) * node_pool.gpus_per_node
    return max(0, total - node_pool.gpus_allocated - node_pool.reserved_gpus)


def action_cost_delta(
    action: Action,
    pool: PoolState | None,
    node_pool: NodePoolState | None,
    catalogue: PriceCatalogue,
) -> float | None:
    """Added $/h of a proposed action (negative for scale-in); None when it cannot be priced.

    - scale_deployment: (replicas - desired) x GPUs per replica x $/GPU-h.
    - patch_hpa: the replica change the new bounds force at once (desired clamped into [min, max]); moving
      a bound the current count already respects costs nothing until the autoscaler uses it.
    - request_gpu_nodes: whole new nodes needed beyond the pool's free GPUs, x node $/h.
    """
    params = action.params
    if isinstance(params, ScaleDeploymentParams | AutoscalerPatch):
        if pool is None:
            return None
        per_gpu = pool_gpu_hour(pool, catalogue)
        if per_gpu is None:
            return None
        new = params.replicas if isinstance(params, ScaleDeploymentParams) else _clamp_by_patch(pool, params)
        return (new - pool.desired_replicas) * pool.gpus_per_replica * per_gpu
    if isinstance(params, GpuNodeRequest):
        if node_pool is None:
            return None
        per_node = node_price_per_hour(node_pool, catalogue)
        if per_node is None:
            return None
        missing = max(0, params.gpus - node_pool_free_gpus(node_pool))
        return math.ceil(missing / node_pool.gpus_per_node) * per_node
    raise InvalidInput(f"cannot price action kind {action.kind!r}")


def _clamp_by_patch(pool: PoolState, patch: AutoscalerPatch) -> int:
    """Replica count right after an autoscaler patch: the desired count clamped into the new bounds."""
    owner = pool.autoscaler
    lo = patch.min_replicas if patch.min_replicas is not None else (owner.min_replicas if owner else 0)
    hi = patch.max_replicas if patch.max_replicas is not None else (owner.max_replicas if owner else 1000)
    if patch.paused:
        return pool.desired_replicas
    return min(max(pool.desired_replicas, lo), max(hi, lo))


# --------------------------------------------------------------------------------------------------
# estimate_cost output
# --------------------------------------------------------------------------------------------------


class WhatIf(BaseModel):
    """A hypothetical change to one pool; unset fields keep their current value."""

    namespace: str
    deployment: str
    replicas: int | None = Field(default=None, ge=0, le=1000)
    gpu_type: str | None = Field(default=None, description="e.g. L4, L40S, A100-80, H100")
    gpus_per_replica: int | None = Field(default=None, ge=1, le=64)
    capacity_type: Literal["on-demand", "spot"] | None = None
    instance_type: str | None = None


class PoolCost(BaseModel):
    pool: str = Field(description="namespace/deployment")
    gpu_type: str
    instance_type: str | None = None
    capacity_type: str
    gpus: int = Field(description="replicas x GPUs per replica")
    usd_per_gpu_hour: float | None
    usd_per_hour: float | None
    usd_per_month: float | None
    prompt_tps: float | None = None
    gen_tps: float | None = None
    usd_per_m_input_tokens: float | None = None
    usd_per_m_output_tokens: float | None = None
    usd_per_m_tokens: float | None = Field(default=None, description="Blended over input + output tokens")
    note: str | None = None


class NodePoolCost(BaseModel):
    name: str
    instance_type: str | None
    capacity_type: str
    gpus_total: int = Field(description="GPUs on ready nodes")
    gpus_allocated: int
    gpus_reserved: int = Field(description="Held by placeholder (balloon) pods")
    gpus_idle: int
    usd_per_hour: float | None = Field(description="Ready nodes x node $/h")
    idle_usd_per_month: float | None = Field(description="Idle GPUs x $/GPU-h x hours per month")


class WhatIfResult(BaseModel):
    pool: str
    change: str
    usd_per_hour_before: float | None
    usd_per_hour_after: float | None
    delta_usd_per_hour: float | None
    delta_usd_per_month: float | None
    usd_per_m_output_tokens_before: float | None = None
    usd_per_m_output_tokens_after: float | None = None
    assumption: str = "Same served token rate (demand-bound); capacity to serve it is the caller's check"


class CostEstimate(BaseModel):
    """What ``estimate_cost`` answers: current $ per pool and fleet, $ per 1M tokens, and a what-if."""

    currency: str = "USD"
    prices_as_of: str
    prices_source: str
    hours_per_month: float
    output_token_weight: float
    pools: list[PoolCost]
    node_pools: list[NodePoolCost] = Field(default_factory=list)
    fleet_usd_per_hour: float | None
    fleet_usd_per_month: float | None
    fleet_usd_per_m_input_tokens: float | None = None
    fleet_usd_per_m_output_tokens: float | None = None
    nodes_usd_per_hour: float | None = Field(default=None, description="All ready GPU nodes, idle included")
    what_if: WhatIfResult | None = None
    warnings: list[str] = Field(default_factory=list)


def _cost_pool(
    state: PoolState, snap: PoolSnapshot | None, catalogue: PriceCatalogue, months: float
) -> PoolCost:
    per_gpu = pool_gpu_hour(state, catalogue)
    per_hour = None if per_gpu is None else state.desired_replicas * state.gpus_per_replica * per_gpu
    prompt_tps = snap.signals.prompt_tps if snap else None
    gen_tps = snap.signals.gen_tps if snap else None
    per_in = per_out = blended = None
    if per_hour is not None:
        per_in, per_out = split_token_prices(per_hour, prompt_tps, gen_tps, catalogue.output_token_weight)
        blended = cost_per_million_tokens(per_hour, (prompt_tps or 0.0) + (gen_tps or 0.0))
    note = None
    if per_gpu is None:
        note = f"no price for GPU {state.gpu_type!r} in the catalogue"
    elif prompt_tps is None and gen_tps is None:
        note = "token rates not measured: no $ per 1M tokens"
    return PoolCost(
        pool=state.ref.key,
        gpu_type=state.gpu_type,
        instance_type=state.instance_type,
        capacity_type=state.capacity_type,
        gpus=state.desired_replicas * state.gpus_per_replica,
        usd_per_gpu_hour=_r(per_gpu),
        usd_per_hour=_r(per_hour),
        usd_per_month=_r(None if per_hour is None else per_hour * months, 2),
        prompt_tps=_r(prompt_tps, 1),
        gen_tps=_r(gen_tps, 1),
        usd_per_m_input_tokens=_r(per_in),
        usd_per_m_output_tokens=_r(per_out),
        usd_per_m_tokens=_r(blended),
        note=note,
    )


def _apply_what_if(state: PoolState, w: WhatIf, catalogue: PriceCatalogue) -> tuple[PoolState, str]:
    update: dict[str, object] = {}
    parts: list[str] = []
    if w.replicas is not None and w.replicas != state.desired_replicas:
        update["desired_replicas"] = w.replicas
        parts.append(f"replicas {state.desired_replicas} -> {w.replicas}")
    if w.gpu_type is not None:
        canonical = catalogue.canonical_gpu(w.gpu_type)
        if canonical is None:
            known = ", ".join(catalogue.gpu_types())
            raise InvalidInput(f"what_if.gpu_type {w.gpu_type!r} is not in the price catalogue ({known})")
        if canonical != catalogue.canonical_gpu(state.gpu_type):
            update["gpu_type"] = canonical
            update["instance_type"] = w.instance_type
            parts.append(f"GPU {state.gpu_type} -> {canonical}")
    if w.instance_type is not None:
        inst = catalogue.instance(w.instance_type)
        if inst is None:
            raise InvalidInput(f"what_if.instance_type {w.instance_type!r} is not in the price catalogue")
        update["instance_type"] = inst.name
        update["gpu_type"] = update.get("gpu_type", inst.gpu_type)
        if inst.name != state.instance_type:
            parts.append(f"instance {state.instance_type or '-'} -> {inst.name}")
    if w.gpus_per_replica is not None and w.gpus_per_replica != state.gpus_per_replica:
        update["gpus_per_replica"] = w.gpus_per_replica
        parts.append(f"GPUs/replica {state.gpus_per_replica} -> {w.gpus_per_replica}")
    if w.capacity_type is not None and w.capacity_type != state.capacity_type:
        update["capacity_type"] = w.capacity_type
        parts.append(f"{state.capacity_type} -> {w.capacity_type}")
    return state.model_copy(update=update), ", ".join(parts) or "no change"


def estimate(
    snapshot: FleetSnapshot,
    pools: Sequence[PoolState],
    catalogue: PriceCatalogue,
    what_if: WhatIf | None = None,
) -> CostEstimate:
    """Per-pool and fleet $/h, $/month and $ per 1M tokens at observed throughput, plus an optional what-if.

    ``pools`` supplies instance type and capacity type; a snapshot pool without a matching PoolState is
    costed from the snapshot alone (its GPU model's reference instance, on-demand).
    """
    months = catalogue.hours_per_month
    states = {p.ref.key: p for p in pools}
    snaps = {(f"{p.cluster}:" if p.cluster else "") + f"{p.namespace}/{p.name}": p for p in snapshot.pools}
    warnings: list[str] = []
    keys = list(snaps) + [k for k in states if k not in snaps]
    out: list[PoolCost] = []
    for key in keys:
        state = states.get(key) or snaps[key].to_pool_state()
        pc = _cost_pool(state, snaps.get(key), catalogue, months)
        if pc.usd_per_hour is None:
            warnings.append(f"{key}: {pc.note}")
        out.append(pc)

    priced = [p for p in out if p.usd_per_hour is not None]
    fleet_h = sum(p.usd_per_hour or 0.0 for p in priced) if priced else None
    fleet_in = fleet_out = None
    if fleet_h is not None:
        r_in = sum(p.prompt_tps or 0.0 for p in priced)
        r_out = sum(p.gen_tps or 0.0 for p in priced)
        fleet_in, fleet_out = split_token_prices(fleet_h, r_in, r_out, catalogue.output_token_weight)

    node_costs: list[NodePoolCost] = []
    nodes_h: float | None = 0.0
    for np_ in snapshot.node_pools:
        per_node = node_price_per_hour(np_, catalogue)
        total = np_.nodes_ready * np_.gpus_per_node
        idle = max(0, total - np_.gpus_allocated - np_.reserved_gpus)
        per_gpu = None if per_node is None else per_node / np_.gpus_per_node
        node_costs.append(
            NodePoolCost(
                name=np_.name,
                instance_type=np_.instance_type,
                capacity_type=np_.capacity_type,
                gpus_total=total,
                gpus_allocated=np_.gpus_allocated,
                gpus_reserved=np_.reserved_gpus,
                gpus_idle=idle,
                usd_per_hour=_r(None if per_node is None else per_node * np_.nodes_ready),
                idle_usd_per_month=_r(None if per_gpu is None else idle * per_gpu * months, 2),
            )
        )
        if per_node is None:
            warnings.append(f"node pool {np_.name}: no price for {np_.instance_type or np_.gpu_type}")
            nodes_h = None
        elif nodes_h is not None:
            nodes_h += per_node * np_.nodes_ready

    wi: WhatIfResult | None = None
    if what_if is not None:
        key = f"{what_if.namespace}/{what_if.deployment}"
        if key not in states and key not in snaps:
            raise NotFound(f"what_if pool {key} is not in the fleet (known: {', '.join(keys)})")
        before_state = states.get(key) or snaps[key].to_pool_state()
        after_state, change = _apply_what_if(before_state, what_if, catalogue)
        before = _cost_pool(before_state, snaps.get(key), catalogue, months)
        after = _cost_pool(after_state, snaps.get(key), catalogue, months)
        delta = (
            None
            if before.usd_per_hour is None or after.usd_per_hour is None
            else after.usd_per_hour - before.usd_per_hour
        )
        wi = WhatIfResult(
            pool=key,
            change=change,
            usd_per_hour_before=before.usd_per_hour,
            usd_per_hour_after=after.usd_per_hour,
            delta_usd_per_hour=_r(delta),
            delta_usd_per_month=_r(None if delta is None else delta * months, 2),
            usd_per_m_output_tokens_before=before.usd_per_m_output_tokens,
            usd_per_m_output_tokens_after=after.usd_per_m_output_tokens,
        )

    return CostEstimate(
        prices_as_of=catalogue.as_of,
        prices_source=catalogue.source,
        hours_per_month=months,
        output_token_weight=catalogue.output_token_weight,
        pools=out,
        node_pools=node_costs,
        fleet_usd_per_hour=_r(fleet_h),
        fleet_usd_per_month=_r(None if fleet_h is None else fleet_h * months, 2),
        fleet_usd_per_m_input_tokens=_r(fleet_in),
        fleet_usd_per_m_output_tokens=_r(fleet_out),
        nodes_usd_per_hour=_r(nodes_h) if snapshot.node_pools else None,
        what_if=wi,
        warnings=warnings,
    )
