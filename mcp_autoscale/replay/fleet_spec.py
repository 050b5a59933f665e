"""FLEET.yaml: many pools on shared GPU node pools, each with its own trace (a CSV or a suite shape).

Loaded into a twin ``Scenario`` (every pool a KEDA-owned unified pool on its node pool) plus one trace per
pool, cut to the fleet's ``duration``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mcp_autoscale.errors import InvalidInput
from mcp_autoscale.models import AutoscalerKind, PoolRef, Role
from mcp_autoscale.replay.shapes import build_trace
from mcp_autoscale.replay.trace import Trace, load_trace, parse_duration
from mcp_autoscale.sim.calibration import load_calibration
from mcp_autoscale.sim.scenarios import AutoscalerSpec, NodePoolSpec, PoolSpec, Scenario

INSTANCES: dict[str, tuple[str, int]] = {
    "L4": ("g6.xlarge", 1),
    "L40S": ("g6e.xlarge", 1),
    "A10G": ("g5.xlarge", 1),
    "H100": ("p5.48xlarge", 8),
}
"""GPU type -> (instance type, GPUs per node) of the twin's node pools."""
FAMILIES = {"llama-3.1-8b": "llama-3.1-8b", "qwen2.5-7b": "qwen2.5-7b", "granite-3.1-8b": "granite-3.1-8b"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NodePoolEntry(_Strict):
    name: str
    gpu_type: str
    limit_gpus: int = Field(ge=1, le=4096)

    @model_validator(mode="after")
    def _known(self) -> NodePoolEntry:
        if self.gpu_type not in INSTANCES:
            raise ValueError(f"gpu_type {self.gpu_type!r}: the twin knows {', '.join(INSTANCES)}")
        return self


class SyntheticTrace(_Strict):
    synthetic: str
    seed: int = 1
    scale: float = Field(default=1.0, gt=0, le=1, description="Keep this share of requests (thinning)")
    params: dict[str, Any] = Field(default_factory=dict, description="The shape's own parameters")


class PoolEntry(_Strict):
    namespace: str
    name: str
    model: str = "meta-llama/Llama-3.1-8B-Instruct"
    node_pool: str
    priority: Literal["interactive", "batch"] = "interactive"
    trace: str | SyntheticTrace
    profile: str | None = Field(default=None, description="Twin profile (default: from model and GPU)")

    @property
    def ref(self) -> PoolRef:
        return PoolRef(namespace=self.namespace, name=self.name)


LONG_FLEET_S = 6 * 3600.0
"""Fleets longer than this replay on coarser ticks and samples by default (``FleetSpec.timing``)."""
LONG_TICK_S, LONG_SAMPLE_S = 10.0, 60.0
"""The long fleet's twin tick and planner sample (as the suite's 7-day shape): a 16-pool day at 1 s ticks
and 30 s samples costs ~10x the CPU for the same comparison."""


class FleetSpec(_Strict):
    duration: str = "3h"
    node_pools: list[NodePoolEntry] = Field(min_length=1)
    pools: list[PoolEntry] = Field(min_length=1)
    tick_s: float | None = Field(
        default=None, gt=0, le=60, description="Twin tick (default: 1 s; 10 s beyond 6 h)"
    )
    sample_s: float | None = Field(
        default=None, ge=10, le=120, description="Planner sample (default: 30 s; 60 s beyond 6 h)"
    )

    @model_validator(mode="after")
    def _refs(self) -> FleetSpec:
        names = {n.name for n in self.node_pools}
        seen: set[str] = set()
        for p in self.pools:
            if p.node_pool not in names:
                raise ValueError(f"pool {p.ref.key}: unknown node_pool {p.node_pool!r}")
            if p.ref.key in seen:
                raise ValueError(f"pool {p.ref.key} listed twice")
            seen.add(p.ref.key)
        parse_duration(self.duration)
        tick, sample = self.timing
        if abs(sample / tick - round(sample / tick)) > 1e-9:
            raise ValueError(f"sample_s {sample:g} must be a whole number of ticks ({tick:g} s)")
        return self

    @property
    def timing(self) -> tuple[float, float]:
        """(tick s, sample s): as given, else 1 s / 30 s, or 10 s / 60 s for a fleet longer than 6 h."""
        long = parse_duration(self.duration) > LONG_FLEET_S
        tick = self.tick_s or (LONG_TICK_S if long else 1.0)
        sample = self.sample_s or (LONG_SAMPLE_S if long else 30.0)
        return tick, sample

    @property
    def duration_s(self) -> float:
        return parse_duration(self.duration)

    def node_pool(self, name: str) -> NodePoolEntry:
        return next(n for n in self.node_pools if n.name == name)


def load_fleet(path: Path) -> tuple[FleetSpec, dict[str, Trace]]:
    """Read FLEET.yaml and every pool's trace (CSV paths are relative to the file)."""
    try:
        raw = yaml.safe_load(path.read_text())
        spec = FleetSpec.model_validate(raw)
    except (OSError, yaml.YAMLError, ValueError) as exc:
        raise InvalidInput(f"{path}: {exc}") from exc
    traces = {p.ref.key: pool_trace(p, spec.duration_s, path.parent) for p in spec.pools}
    return spec, traces


def pool_trace(p: PoolEntry, duration_s: float, base: Path) -> Trace:
    if isinstance(p.trace, str):
        tr = load_trace(base / p.trace)
        return cut(tr, duration_s)
    t = p.trace
    tr = build_trace(t.synthetic, t.seed, duration_s, **t.params)
    if t.scale < 1.0:
        keep = np.random.default_rng([t.seed, 17]).random(tr.requests) < t.scale
        tr = Trace(tr.start, tr.t_s[keep], tr.context[keep], tr.generated[keep], f"{tr.source} x{t.scale:g}")
    return cut(tr, duration_s)


def cut(tr: Trace, duration_s: float) -> Trace:
    keep = tr.t_s < duration_s
    return Trace(tr.start, tr.t_s[keep], tr.context[keep], tr.generated[keep], tr.source)


def profile_of(p: PoolEntry, gpu_type: str) -> str:
    if p.profile:
        prof = p.profile
    else:
        fam = next(
            (v for k, v in FAMILIES.items() if k.replace(".", "").replace("-", "") in _norm(p.model)), None
        )
        prof = f"{fam}/{gpu_type}x1" if fam else ""
    if prof not in load_calibration().profiles:
        raise InvalidInput(
            f"pool {p.ref.key}: no twin profile for {p.model} on {gpu_type}; give profile: one of "
            f"{', '.join(load_calibration().profiles)}"
        )
    return prof


def _norm(model: str) -> str:
    return model.lower().replace(".", "").replace("-", "").replace("_", "")


def floor_of(p: PoolEntry) -> int:
    """Per-pool floors of the per-pool loops: HA 2 for interactive pools, 1 for batch."""
    return 2 if p.priority == "interactive" else 1


def scenario_of(spec: FleetSpec, only: str | None = None) -> Scenario:
    """The twin scenario: every pool KEDA-owned (queue AverageValue 5), starting at its floor on warm nodes.
    ``only``: just that pool (for a capacity probe)."""
    pools: list[PoolSpec] = []
    for p in spec.pools:
        if only is not None and p.ref.key != only:
            continue
        np_ = spec.node_pool(p.node_pool)
        prof = profile_of(p, np_.gpu_type)
        gpus = load_calibration().profiles[prof].gpus
        floor = floor_of(p)
        pools.append(
            PoolSpec(
                ref=p.ref,
                model=p.model,
                role=Role.UNIFIED,
                profile=prof,
                node_pool=p.node_pool,
                replicas=floor,
                workload="conversation",
                peak_rps=0.0,
                autoscaler=AutoscalerSpec(
                    kind=AutoscalerKind.KEDA,
                    name=p.name,
                    min_replicas=floor,
                    max_replicas=max(floor, np_.limit_gpus // gpus),
                    target=5.0,
                    metric="prometheus: sum(vllm:num_requests_waiting) AverageValue 5",
                    poll_s=30.0,
                ),
                labels={"priority": p.priority},
            )
        )
    node_pools = []
    for n in spec.node_pools:
        inst, per_node = INSTANCES[n.gpu_type]
        start_gpus = sum(
            floor_of(p) * load_calibration().profiles[profile_of(p, n.gpu_type)].gpus
            for p in spec.pools
            if p.node_pool == n.name and (only is None or p.ref.key == only)
        )
        node_pools.append(
            NodePoolSpec(
                n.name,
                n.gpu_type,
                inst,
                "on-demand",
                per_node,
                None if only else n.limit_gpus,
                -(-start_gpus // per_node),
            )
        )
    return Scenario(
        name="fleet-replay",
        description="A FLEET.yaml replay: every pool driven by its own trace",
        start_hour=0.0,
        pools=tuple(pools),
        node_pools=tuple(node_pools),
    )
