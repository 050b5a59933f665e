"""Replay a fleet (FLEET.yaml) on one twin: every pool on shared node pools, each driven by its own trace.

Strategies: ``keda``, ``planner``, ``causal`` (each per pool, blind to the others), ``fleet`` (the fleet
planner) and ``oracle`` (per-pool clairvoyant oracles side by side: the clairvoyant fleet). Each strategy
runs on a fresh twin in its own process. Per pool the meter is the single-pool replay's (TTFT and ITL
minutes, pod GPU-hours); the fleet's GPU-hours are what the cloud bills: GPUs of launched nodes in every
node pool, placeholder (warm) nodes included.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from mcp_autoscale.cost import load_catalogue
from mcp_autoscale.models import SloTargets
from mcp_autoscale.planner import PlannerConfig
from mcp_autoscale.planner.fleet import FleetPolicy
from mcp_autoscale.replay.evaluate import ReplayConfig, _arrivals_from, _Meter, bisect_capacity
from mcp_autoscale.replay.fleet_spec import INSTANCES, FleetSpec, PoolEntry, floor_of, scenario_of
from mcp_autoscale.replay.fleet_strategies import FleetPlanner, FleetStrategy, PerPool
from mcp_autoscale.replay.strategies import CausalOracle, KedaOnly, KedaPlusPlanner, Oracle, Strategy
from mcp_autoscale.replay.trace import Trace
from mcp_autoscale.sim import Twin, TwinStep

FLEET_STRATEGIES = ("keda", "planner", "causal", "fleet", "oracle")


@dataclass
class FleetConfig(ReplayConfig):
    fleet_utilisation: float = 0.9
    """The fleet planner's target utilisation for interactive pools (their burst headroom is pooled)."""
    fleet_policy: FleetPolicy = field(default_factory=FleetPolicy)
    fleet_warm_max_share: float = 0.25
    """Pooled headroom per node pool: at most this share of the node pool's limit."""
    fleet_reserve_min: int = 2
    """The least pooled headroom per node pool with interactive pools (GPUs), from the start."""
    fleet_reserve_node_aware: bool = False
    """On multi-GPU nodes (H100 x8), hold the batch spare only in GPUs of nodes billed anyway."""
    fleet_reserve: Literal["batch", "warm"] = "batch"
    """Where the pooled headroom is held: warm placeholder GPUs, or a batch pool's spare."""


class FleetPoolResult(BaseModel):
    namespace: str
    name: str
    priority: str
    node_pool: str
    ttft_minutes_ok_pct: float
    itl_minutes_ok_pct: float
    gpu_hours: float
    """Pod GPU-hours (starting + ready pods): a pool's share; idle node GPUs are the fleet's."""
    requests: int
    requests_waiting_at_end: int
    mean_replicas: float
    desired: list[int]
    rps: list[float]
    ttft_missed_minutes: list[int] = []
    """Minutes (from the start) whose TTFT p90 missed the SLO: where the pool lost them."""


class FleetStrategyResult(BaseModel):
    name: str
    label: str
    gpu_hours: float
    usd: float
    ttft_minutes_ok_pct: float
    """Mean over pools of the % of minutes within the TTFT SLO."""
    itl_minutes_ok_pct: float
    interactive_ttft_min_pct: float
    """The worst interactive pool's TTFT minutes within SLO (%)."""
    node_gpu_hours: dict[str, float]
    node_gpus: dict[str, list[int]]
    outer_actions: int
    verdicts: dict[str, int]
    pools: list[FleetPoolResult]
    notes: dict[str, object]
    wall_s: float


class FleetReport(BaseModel):
    fleet: str
    duration_h: float
    pools: int
    seed: int
    slo: SloTargets
    results: list[FleetStrategyResult]
    wall_s: float
    workers: int
    tick_s: float = 1.0
    sample_s: float = 30.0


class _FleetMeter:
    def __init__(self, spec: FleetSpec, slo: SloTargets, minutes: int) -> None:
        self.meters = {p.ref.key: _Meter(slo, minutes, p.ref.key, p.node_pool) for p in spec.pools}
        self.node_s: dict[str, float] = {n.name: 0.0 for n in spec.node_pools}
        self.node_minute: dict[str, list[int]] = {n.name: [] for n in spec.node_pools}
        self._minute = 0

    def __call__(self, st: TwinStep) -> None:
        if st.t_s <= 0:
            return
        for m in self.meters.values():
            m(st)
        for k in self.node_s:
            self.node_s[k] += st.node_gpus.get(k, 0) * st.dt
        minute = int((st.t_s - 1e-9) // 60)
        if minute > self._minute:
            for k, v in self.node_minute.items():
                v.append(st.node_gpus.get(k, 0))
            self._minute = minute


def probe_capacity(spec: FleetSpec, key: str, tr: Trace, cfg: FleetConfig) -> tuple[float, float]:
    """The twin's true per-replica capacity for one pool's profile and request shape (bisection on the pool
    alone, KEDA paused, as ``evaluate.measure_capacity``): (prompt tokens/s, output tokens/s)."""
    n = max(1, tr.requests)
    p_mean, o_mean = float(tr.context.sum()) / n, float(tr.generated.sum()) / n
    scenario = scenario_of(spec, only=key)
    (ref,) = [p.ref for p in spec.pools if p.ref.key == key]

    return bisect_capacity(lambda: Twin(scenario, cfg.seed, tick_s=cfg.tick_s), ref, cfg.slo, p_mean, o_mean)


def _lead_s(twin: Twin) -> float:
    cal = twin.cal.cold_start
    cold = cal["image_pull_cold_s"].mode + cal["weights_8b_s"].mode + cal["warmup_s"].mode
    return cold + cal["node_provision_s"].mode + 60.0


def make_strategy(
    name: str,
    spec: FleetSpec,
    traces: dict[str, Trace],
    cfg: FleetConfig,
    known: dict[str, tuple[float, float]],
) -> FleetStrategy:
    catalogue = load_catalogue(cfg.price_catalogue)
    entries = {p.ref.key: p for p in spec.pools}

    def max_rep(key: str) -> int:
        return spec.node_pool(entries[key].node_pool).limit_gpus

    def planner_for(p: PoolEntry, utilisation: float, floor: int, sub: str) -> KedaPlusPlanner:
        return KedaPlusPlanner(
            catalogue,
            cfg.slo,
            interval_s=cfg.planner_interval_s,
            sample_s=cfg.sample_s,
            config=PlannerConfig(
                target_utilisation=utilisation,
                owner_max_band=cfg.planner_max_band,
                floors={p.namespace: floor},
            ),
            audit_dir=cfg.audit_dir / sub / f"{p.namespace}-{p.name}" if cfg.audit_dir else None,
        )

    if name == "fleet":
        inner = {
            p.ref.key: planner_for(
                p,
                cfg.fleet_utilisation if p.priority == "interactive" else cfg.planner_utilisation,
                floor_of(p),
                "fleet",
            )
            for p in spec.pools
        }
        return FleetPlanner(
            catalogue,
            inner,
            sample_s=cfg.sample_s,
            interval_s=cfg.planner_interval_s,
            policy=cfg.fleet_policy,
            warm_max_share=cfg.fleet_warm_max_share,
            reserve_min=cfg.fleet_reserve_min,
            node_aware=cfg.fleet_reserve_node_aware,
            reserve=cfg.fleet_reserve,
            audit_dir=cfg.audit_dir / "fleet" if cfg.audit_dir else None,
        )

    def make(ref_key: str) -> Strategy:
        p = entries[ref_key]
        floor = floor_of(p)
        if name == "keda":
            return KedaOnly()
        if name == "planner":
            return planner_for(p, cfg.planner_utilisation, floor, "planner")
        c_in, c_out = known[ref_key]
        tr = traces[ref_key]
        if name == "causal":
            return CausalOracle(
                tr,
                c_in,
                c_out,
                floor=floor,
                utilisation=cfg.causal_utilisation or cfg.planner_utilisation,
                hold_s=cfg.causal_hold_s,
                max_replicas=max_rep(ref_key),
            )
        _, ctx, gen = tr.per_minute()
        return Oracle(
            (ctx / 60.0).tolist(),
            (gen / 60.0).tolist(),
            c_in,
            c_out,
            lead_s=_LEAD,
            floor=floor,
            utilisation=cfg.oracle_utilisation,
            max_replicas=max_rep(ref_key),
        )

    labels = {
        "keda": "KEDA only, per pool",
        "planner": "KEDA + planner, per pool",
        "causal": "Causal oracle, per pool",
        "oracle": "Clairvoyant oracle, per pool (the clairvoyant fleet)",
    }
    return PerPool(name, labels[name], lambda ref: make(ref.key))


_LEAD = 90.0 + 15.0 + 40.0 + 180.0 + 60.0
"""Oracle lead: cold pull + 8B weights + warm-up + node provisioning (calibration modes) + one minute."""


def run_fleet_strategy(
    name: str,
    spec: FleetSpec,
    traces: dict[str, Trace],
    cfg: FleetConfig,
    known: dict[str, tuple[float, float]],
    source: str = "fleet",
) -> FleetStrategyResult:
    """Replay every pool's trace on one fresh twin under the strategy ``name``."""
    wall0 = time.perf_counter()
    catalogue = load_catalogue(cfg.price_catalogue)
    twin = Twin(scenario_of(spec), cfg.seed, tick_s=cfg.tick_s)
    for p in spec.pools:
        twin.set_arrivals(p.ref, _arrivals_from(traces[p.ref.key], twin))
    duration = math.ceil(spec.duration_s / 60.0) * 60.0
    minutes = int(duration // 60)
    meter = _FleetMeter(spec, cfg.slo, minutes)
    twin.on_step(meter)
    strategy = make_strategy(name, spec, traces, cfg, known)
    strategy.setup(twin, spec)
    t = 0.0
    try:
        while t < duration - 1e-9:
            step = min(strategy.period_s, duration - t)
            strategy.step(twin, t)
            twin.advance(step)
            t += step
    finally:
        strategy.teardown()
    pools: list[FleetPoolResult] = []
    for p in spec.pools:
        m = meter.meters[p.ref.key]
        m.finish()
        n = max(1, len(m.minute_ttft_ok))
        req, _, _ = traces[p.ref.key].per_minute()
        pools.append(
            FleetPoolResult(
                namespace=p.namespace,
                name=p.name,
                priority=p.priority,
                node_pool=p.node_pool,
                ttft_minutes_ok_pct=round(100.0 * sum(m.minute_ttft_ok) / n, 2),
                itl_minutes_ok_pct=round(100.0 * sum(m.minute_itl_ok) / n, 2),
                gpu_hours=round(m.pod_gpu_s / 3600.0, 3),
                requests=traces[p.ref.key].requests,
                requests_waiting_at_end=int(twin.ground_truth(p.ref).queue_depth or 0.0),
                mean_replicas=round(m.replica_s / duration, 3),
                desired=m.desired[:n],
                rps=[round(x / 60.0, 3) for x in req[:n].tolist()],
                ttft_missed_minutes=[i for i, ok in enumerate(m.minute_ttft_ok) if not ok],
            )
        )
    node_h = {k: round(v / 3600.0, 3) for k, v in meter.node_s.items()}
    usd = 0.0
    for npool in spec.node_pools:
        inst, _ = INSTANCES[npool.gpu_type]
        usd += node_h[npool.name] * (catalogue.gpu_hour_for(npool.gpu_type, inst) or 0.0)
    inter = [x.ttft_minutes_ok_pct for x in pools if x.priority == "interactive"]
    notes: dict[str, object] = {}
    if isinstance(strategy, FleetPlanner):
        notes = {
            "warm_gpus": strategy.warm,
            "pooled_gpus": strategy.pooled,
            "headroom": strategy.headroom_log[-len(spec.node_pools) :],
            "trades": strategy.trades[:20],
        }
    return FleetStrategyResult(
        name=name,
        label=strategy.label,
        gpu_hours=round(sum(node_h.values()), 3),
        usd=round(usd, 2),
        ttft_minutes_ok_pct=round(sum(x.ttft_minutes_ok_pct for x in pools) / len(pools), 2),
        itl_minutes_ok_pct=round(sum(x.itl_minutes_ok_pct for x in pools) / len(pools), 2),
        interactive_ttft_min_pct=min(inter) if inter else 100.0,
        node_gpu_hours=node_h,
        node_gpus=meter.node_minute,
        outer_actions=len(strategy.actions),
        verdicts=dict(sorted(strategy.verdicts.items())),
        pools=pools,
        notes=notes,
        wall_s=round(time.perf_counter() - wall0, 2),
    )


def _job(
    args: tuple[str, FleetSpec, dict[str, Trace], FleetConfig, dict[str, tuple[float, float]]],
) -> FleetStrategyResult:
    return run_fleet_strategy(*args)


def _probe_job(args: tuple[FleetSpec, str, Trace, FleetConfig]) -> tuple[str, tuple[float, float]]:
    spec, key, tr, cfg = args
    return key, probe_capacity(spec, key, tr, cfg)


def compare_fleet(
    spec: FleetSpec,
    traces: dict[str, Trace],
    cfg: FleetConfig | None = None,
    strategies: Sequence[str] = FLEET_STRATEGIES,
    workers: int = 2,
    source: str = "fleet",
) -> FleetReport:
    """Replay the fleet under each strategy, one process per strategy (``workers`` at a time)."""
    cfg = cfg or FleetConfig()
    wall0 = time.perf_counter()
    known: dict[str, tuple[float, float]] = {}
    if any(s in ("causal", "oracle") for s in strategies):
        probes = [(spec, p.ref.key, traces[p.ref.key], cfg) for p in spec.pools]
        if workers > 1:
            with ProcessPoolExecutor(max_workers=workers) as ex:
                known = dict(ex.map(_probe_job, probes))
        else:
            known = dict(map(_probe_job, probes))
    jobs = [(n, spec, traces, cfg, known) for n in strategies]
    if workers > 1 and len(jobs) > 1:
        # longest first: the fleet and planner runs snapshot every sample
        order = sorted(range(len(jobs)), key=lambda i: jobs[i][0] not in ("fleet", "planner"))
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as ex:
            done = dict(zip(order, ex.map(_job, [jobs[i] for i in order]), strict=True))
        results = [done[i] for i in range(len(jobs))]
    else:
        results = [_job(j) for j in jobs]
    return FleetReport(
        fleet=source,
        duration_h=round(spec.duration_s / 3600.0, 3),
        pools=len(spec.pools),
        seed=cfg.seed,
        slo=cfg.slo,
        results=results,
        wall_s=round(time.perf_counter() - wall0, 2),
        workers=workers,
        tick_s=cfg.tick_s,
        sample_s=cfg.sample_s,
    )


def fleet_ratios(report: FleetReport) -> dict[str, float]:
    by = {r.name: r for r in report.results}
    out: dict[str, float] = {}
    f = by.get("fleet")
    if f is None:
        return out
    for other in ("planner", "causal", "oracle", "keda"):
        o = by.get(other)
        if o is not None and o.gpu_hours > 0:
            out[f"fleet/{other} GPU-h"] = round(f.gpu_hours / o.gpu_hours, 3)
            out[f"fleet-{other} TTFT pp"] = round(f.ttft_minutes_ok_pct - o.ttft_minutes_ok_pct, 2)
    return out


def write_fleet_results(report: FleetReport, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    path.write_text(report.model_dump_json(indent=1))
    return path
