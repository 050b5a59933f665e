"""Drive the twin with a trace under each strategy and measure SLO attainment, GPU-hours and $.

The replayed pool is ``chat/llama-8b`` of the default fleet (Llama-3.1-8B on 1xL4, node pool ``gpu-l4``,
KEDA min 2 / max 16); every other pool is silenced so the run only pays for what it measures.

Measures, per strategy:
- TTFT: per minute, the p90 of first tokens produced in that minute (a minute with requests waiting and
  no first token counts as a miss); per request, the share with TTFT <= SLO.
- ITL: per minute, the token-weighted p90 of the twin's step latency; per token, the share of generated
  tokens decoded within the ITL SLO (tokens per tick = running x dt / ITL, exactly the twin's decode model).
- GPU-hours billed: GPUs of every launched ``gpu-l4`` node (what the cloud bills, idle or not); pod
  GPU-hours are reported too. $ = billed GPU-hours x the catalogue's $/GPU-h.
- $ per 1M tokens (OpenCost method) over the tokens actually served.
- Actions: replica changes (whoever made them) and outer-loop writes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from mcp_autoscale.cost import cost_per_million_tokens, load_catalogue, split_token_prices
from mcp_autoscale.cost.catalogue import PriceCatalogue
from mcp_autoscale.models import PoolRef, SloTargets
from mcp_autoscale.planner import PlannerConfig
from mcp_autoscale.replay.aibrix import Aibrix
from mcp_autoscale.replay.dynamo import Dynamo
from mcp_autoscale.replay.peer import PeerStrategy
from mcp_autoscale.replay.strategies import CausalOracle, KedaOnly, KedaPlusPlanner, Oracle, Strategy
from mcp_autoscale.replay.trace import Trace
from mcp_autoscale.replay.wva import Wva
from mcp_autoscale.sim import ArrivalStep, TraceRequest, Twin, TwinStep
from mcp_autoscale.sim.serving import Arrivals

POOL = PoolRef(namespace="chat", name="llama-8b")
PEERS: dict[str, type[PeerStrategy]] = {"wva": Wva, "dynamo": Dynamo, "aibrix": Aibrix}
"""The peers' autoscalers, one module each (replay/wva.py, dynamo.py, aibrix.py)."""
STRATEGIES = ("keda", "planner", "oracle", "causal", *PEERS)
NODE_POOL = "gpu-l4"
SCENARIO = "default"


@dataclass
class ReplayConfig:
    seed: int = 7
    slo: SloTargets = field(default_factory=SloTargets)
    tick_s: float = 1.0
    planner_interval_s: float = 120.0
    sample_s: float = 30.0
    planner_utilisation: float = 0.65
    planner_max_band: float | None = 1.3
    """The planner keeps KEDA's max at this x its target (``PlannerConfig.owner_max_band``)."""
    oracle_utilisation: float = 0.9
    causal_utilisation: float | None = None
    """The causal oracle's target utilisation (None: the planner's, so the two compare at the same U)."""
    causal_hold_s: float = 600.0
    """The causal oracle keeps the most any sample in this window needed (the planner's scale-in window)."""
    floor: int = 2
    price_catalogue: Path | None = None
    audit_dir: Path | None = None
    """Where the planner's gate keeps its audit log and state (None: a temporary directory)."""


class MinuteSeries(BaseModel):
    """One value per minute of the replay (for plots)."""

    rps: list[float]
    desired: list[int]
    ready: list[int]
    node_gpus: list[int]
    ttft_p90_s: list[float | None]
    itl_p90_s: list[float | None]
    queue_max: list[int]


class StrategyResult(BaseModel):
    name: str
    label: str
    minutes: int
    ttft_minutes_ok_pct: float = Field(description="% of minutes with TTFT p90 <= SLO")
    ttft_requests_ok_pct: float = Field(description="% of requests with TTFT <= SLO")
    itl_minutes_ok_pct: float = Field(description="% of minutes with ITL p90 <= SLO")
    itl_tokens_ok_pct: float = Field(description="% of generated tokens decoded within the ITL SLO")
    both_minutes_ok_pct: float
    requests_first_token: int
    requests_waiting_at_end: int
    gpu_hours: float = Field(description="Billed: GPUs of launched nodes in the pool's node pool")
    pod_gpu_hours: float = Field(description="GPUs held by the pool's starting + ready pods")
    usd: float
    usd_per_m_tokens: float | None
    usd_per_m_input_tokens: float | None
    usd_per_m_output_tokens: float | None
    prompt_tokens: int
    output_tokens: int
    replica_changes: int = Field(description="Changes of the Deployment's desired replicas")
    outer_actions: int = Field(description="Writes by the outer loop (planner or oracle)")
    gated_actions: int = Field(default=0, description="Outer-loop actions submitted through actions.Gate")
    verdicts: dict[str, int] = Field(default_factory=dict, description="Gated actions by outcome")
    mean_replicas: float
    wall_s: float
    knowledge: dict[str, float] = Field(default_factory=dict, description="What an oracle was told")
    series: MinuteSeries


class ReplayReport(BaseModel):
    trace: str
    requests: int
    duration_h: float
    seed: int
    slo: SloTargets
    usd_per_gpu_hour: float
    oracle_capacity: dict[str, float]
    results: list[StrategyResult]
    wall_s: float
    workers: int


def _weighted_p90(pairs: list[tuple[float, float]]) -> float | None:
    if not pairs:
        return None
    pairs.sort()
    total = sum(w for _, w in pairs)
    acc = 0.0
    for v, w in pairs:
        acc += w
        if acc >= 0.9 * total:
            return v
    return pairs[-1][0]


def _p90(values: list[float]) -> float | None:
    if not values:
        return None
    return float(np.quantile(np.asarray(values), 0.9))


def _arrivals_from(trace: Trace, twin: Twin) -> Callable[[object, float], Arrivals]:
    """The trace as the twin's arrival schedule: requests in [t, t + dt) with offsets within the step."""
    t_arr, ctx, gen = trace.t_s, trace.context, trace.generated
    start = twin.start

    def fn(now: object, dt: float) -> Arrivals:
        t0 = (now - start).total_seconds()  # type: ignore[operator]
        lo = int(np.searchsorted(t_arr, t0, side="left"))
        hi = int(np.searchsorted(t_arr, t0 + dt, side="left"))
        if hi <= lo:
            return ()
        offs = (t_arr[lo:hi] - t0).tolist()
        return [
            TraceRequest(o, c, g)
            for o, c, g in zip(offs, ctx[lo:hi].tolist(), gen[lo:hi].tolist(), strict=True)
        ]

    return fn


def _quiet_twin(seed: int, tick_s: float) -> Twin:
    twin = Twin(SCENARIO, seed, tick_s=tick_s)
    for ref in twin.pools():
        if ref.key == POOL.key:
            continue
        try:
            twin.set_arrivals(ref, lambda _now, _dt: ArrivalStep(0.0))
        except Exception:  # decode pools are fed by their prefill pool, silenced above
            continue
    return twin


class _Meter:
    """Per-tick accounting through ``Twin.on_step`` (pure bookkeeping, no twin state changes)."""

    def __init__(
        self, slo: SloTargets, minutes: int, pool_key: str = POOL.key, node_pool: str = NODE_POOL
    ) -> None:
        self.pool_key, self.node_pool = pool_key, node_pool
        self.slo = slo
        self.minutes = minutes
        self.ttft_ok = 0
        self.ttft_n = 0
        self.itl_ok_w = 0.0
        self.itl_w = 0.0
        self.gpu_s = 0.0
        self.pod_gpu_s = 0.0
        self.changes = 0
        self.last_desired: int | None = None
        self.replica_s = 0.0
        self._minute = 0
        self._ttfts: list[float] = []
        self._itls: list[tuple[float, float]] = []
        self._queued = False
        self._qmax = 0
        self.ttft_p90: list[float | None] = []
        self.itl_p90: list[float | None] = []
        self.minute_ttft_ok: list[bool] = []
        self.minute_itl_ok: list[bool] = []
        self.desired: list[int] = []
        self.ready: list[int] = []
        self.node_gpus: list[int] = []
        self.queue_max: list[int] = []
        self._snap = (0, 0, 0)

    def __call__(self, st: TwinStep) -> None:
        if st.t_s <= 0:
            return
        p = st.pools[self.pool_key]
        dt = st.dt
        lim = self.slo.ttft_p90_s
        for x in p.ttft_samples:
            self.ttft_n += 1
            if x <= lim:
                self.ttft_ok += 1
        self._ttfts.extend(p.ttft_samples)
        if p.itl_s is not None and p.itl_s > 0 and p.running > 0:
            w = p.running * dt / p.itl_s
            self.itl_w += w
            if p.itl_s <= self.slo.itl_p90_s:
                self.itl_ok_w += w
            self._itls.append((p.itl_s, w))
        if p.queue > 0:
            self._queued = True
        self._qmax = max(self._qmax, p.queue)
        gpus = st.node_gpus.get(self.node_pool, 0)
        self.gpu_s += gpus * dt
        self.pod_gpu_s += p.gpus * dt
        self.replica_s += p.desired * dt
        if self.last_desired is not None and p.desired != self.last_desired:
            self.changes += 1
        self.last_desired = p.desired
        self._snap = (p.desired, p.ready, gpus)
        minute = int((st.t_s - 1e-9) // 60)
        if minute > self._minute:
            self._close_minute()
            self._minute = minute

    def _close_minute(self) -> None:
        t90 = _p90(self._ttfts)
        i90 = _weighted_p90(self._itls)
        self.ttft_p90.append(t90)
        self.itl_p90.append(i90)
        ttft_ok = (t90 <= self.slo.ttft_p90_s) if t90 is not None else not self._queued
        self.minute_ttft_ok.append(ttft_ok)
        self.minute_itl_ok.append(i90 is None or i90 <= self.slo.itl_p90_s)
        self.desired.append(self._snap[0])
        self.ready.append(self._snap[1])
        self.node_gpus.append(self._snap[2])
        self.queue_max.append(self._qmax)
        self._ttfts, self._itls, self._queued, self._qmax = [], [], False, 0

    def finish(self) -> None:
        if self._ttfts or self._itls or len(self.ttft_p90) < self.minutes:
            self._close_minute()


def run_strategy(
    trace: Trace, strategy: Strategy, cfg: ReplayConfig, catalogue: PriceCatalogue
) -> StrategyResult:
    """Replay ``trace`` on a fresh twin under ``strategy``; deterministic for a given ``cfg.seed``."""
    wall0 = time.perf_counter()
    twin = _quiet_twin(cfg.seed, cfg.tick_s)
    twin.set_arrivals(POOL, _arrivals_from(trace, twin))
    duration = math.ceil(trace.duration_s / 60.0) * 60.0
    minutes = int(duration // 60)
    meter = _Meter(cfg.slo, minutes)
    twin.on_step(meter)
    prompt_tokens = output_tokens = 0.0
    t = 0.0
    next_minute = 60.0
    period = strategy.period_s
    strategy.setup(twin, POOL)
    try:
        while t < duration - 1e-9:
            step = min(period, duration - t)
            strategy.step(twin, POOL, t)
            twin.advance(step)
            t += step
            if t + 1e-9 >= next_minute:
                g = twin.ground_truth(POOL)
                prompt_tokens += (g.prompt_tps or 0.0) * 60.0
                output_tokens += (g.gen_tps or 0.0) * 60.0
                next_minute += 60.0
    finally:
        strategy.teardown()
    meter.finish()
    verdicts = dict(sorted(strategy.verdicts.items())) if isinstance(strategy, KedaPlusPlanner) else {}
    m = max(1, len(meter.minute_ttft_ok))
    per_gpu = catalogue.gpu_hour_for("L4", "g6.xlarge") or 0.0
    gpu_h = meter.gpu_s / 3600.0
    usd = gpu_h * per_gpu
    tokens = prompt_tokens + output_tokens
    hours = duration / 3600.0
    per_in, per_out = split_token_prices(
        usd / hours, prompt_tokens / duration, output_tokens / duration, catalogue.output_token_weight
    )
    both = sum(1 for a, b in zip(meter.minute_ttft_ok, meter.minute_itl_ok, strict=True) if a and b)
    req, _, _ = trace.per_minute()
    waiting = twin.ground_truth(POOL).queue_depth or 0.0
    return StrategyResult(
        name=strategy.name,
        label=strategy.label,
        minutes=m,
        ttft_minutes_ok_pct=round(100.0 * sum(meter.minute_ttft_ok) / m, 2),
        ttft_requests_ok_pct=round(100.0 * meter.ttft_ok / max(1, meter.ttft_n), 2),
        itl_minutes_ok_pct=round(100.0 * sum(meter.minute_itl_ok) / m, 2),
        itl_tokens_ok_pct=round(100.0 * meter.itl_ok_w / max(1e-9, meter.itl_w), 2),
        both_minutes_ok_pct=round(100.0 * both / m, 2),
        requests_first_token=meter.ttft_n,
        requests_waiting_at_end=int(waiting),
        gpu_hours=round(gpu_h, 3),
        pod_gpu_hours=round(meter.pod_gpu_s / 3600.0, 3),
        usd=round(usd, 2),
        usd_per_m_tokens=_round(cost_per_million_tokens(usd / hours, tokens / duration)),
        usd_per_m_input_tokens=_round(per_in),
        usd_per_m_output_tokens=_round(per_out),
        prompt_tokens=int(prompt_tokens),
        output_tokens=int(output_tokens),
        replica_changes=meter.changes,
        outer_actions=len(strategy.actions),
        gated_actions=sum(verdicts.values()),
        verdicts=verdicts,
        mean_replicas=round(meter.replica_s / duration, 3),
        wall_s=round(time.perf_counter() - wall0, 2),
        series=MinuteSeries(
            rps=[round(x / 60.0, 3) for x in req[:m].tolist()],
            desired=meter.desired[:m],
            ready=meter.ready[:m],
            node_gpus=meter.node_gpus[:m],
            ttft_p90_s=[_round(x) for x in meter.ttft_p90[:m]],
            itl_p90_s=[_round(x) for x in meter.itl_p90[:m]],
            queue_max=meter.queue_max[:m],
        ),
    )


def _round(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(x, nd)


def _await_ready(twin: Twin, ref: PoolRef, replicas: int, limit_s: float = 3600.0) -> None:
    """Idle the twin until ``replicas`` pods serve. A scenario that starts without nodes (a fleet's) would
    otherwise load replicas that are still waiting for nodes, and the probe would read the backlog of the
    cold start as a lack of capacity (it read ~0.6x the true capacity that way)."""
    twin.set_arrivals(ref, lambda _now, _dt: ArrivalStep(0.0))
    waited = 0.0
    while twin.backend.get_pool(ref).ready_replicas < replicas:
        if waited >= limit_s:
            raise RuntimeError(
                f"capacity probe: {ref.key} has no {replicas} ready replicas after {limit_s:.0f} s"
            )
        twin.advance(30.0)
        waited += 30.0


def bisect_capacity(
    make_twin: Callable[[], Twin],
    ref: PoolRef,
    slo: SloTargets,
    prompt_mean: float,
    output_mean: float,
    replicas: int = 4,
) -> tuple[float, float]:
    """The highest request rate per replica at which TTFT p90 and ITL p90 stay within SLO in every minute
    of a 10-minute steady run on ``replicas`` pinned replicas of ``ref`` (bisection on fresh twins).
    Returns (prompt tokens/s, output tokens/s) per replica."""

    def holds(rps_per_replica: float) -> bool:
        twin = make_twin()
        twin.pin_replicas(ref, replicas)
        _await_ready(twin, ref, replicas)
        rate = rps_per_replica * replicas
        twin.set_arrivals(ref, lambda _now, _dt: ArrivalStep(rate, prompt_mean, output_mean))
        twin.advance(300.0)
        for _ in range(10):
            twin.advance(60.0)
            g = twin.ground_truth(ref)
            if (g.ttft_p90_s or 0.0) > slo.ttft_p90_s or (g.itl_p90_s or 0.0) > slo.itl_p90_s:
                return False
        return True

    lo, hi = 0.05, 8.0
    for _ in range(9):
        mid = math.sqrt(lo * hi)
        if holds(mid):
            lo = mid
        else:
            hi = mid
    return lo * prompt_mean, lo * output_mean


def measure_capacity(
    cfg: ReplayConfig, prompt_mean: float, output_mean: float, replicas: int = 4
) -> tuple[float, float]:
    """The twin's true per-replica capacity of the replayed pool for this request shape (KEDA paused)."""
    return bisect_capacity(
        lambda: _quiet_twin(cfg.seed, cfg.tick_s), POOL, cfg.slo, prompt_mean, output_mean, replicas
    )


def _job(args: tuple[str, Trace, ReplayConfig, dict[str, object]]) -> StrategyResult:
    return run_named(*args)


def run_named(
    name: str, trace: Trace, cfg: ReplayConfig, extra: dict[str, object] | None = None
) -> StrategyResult:
    """Replay ``trace`` under the strategy called ``name`` (one of ``STRATEGIES``). ``extra`` is what the
    oracles know (``oracle_inputs``); None measures it."""
    extra = dict(extra or {})
    catalogue = load_catalogue(cfg.price_catalogue)
    strategy: Strategy
    if name == "keda":
        strategy = KedaOnly()
    elif name in PEERS:
        strategy = PEERS[name](min_replicas=cfg.floor)
    elif name == "planner":
        pcfg = PlannerConfig(
            target_utilisation=cfg.planner_utilisation,
            owner_max_band=cfg.planner_max_band,
            floors={POOL.namespace: cfg.floor},
        )
        strategy = KedaPlusPlanner(
            catalogue,
            cfg.slo,
            interval_s=cfg.planner_interval_s,
            sample_s=cfg.sample_s,
            config=pcfg,
            audit_dir=cfg.audit_dir,
        )
    elif name == "causal":
        if not extra:
            extra = oracle_inputs(trace, cfg)
        strategy = CausalOracle(
            trace,
            float(extra["c_in"]),  # type: ignore[arg-type]
            float(extra["c_out"]),  # type: ignore[arg-type]
            floor=cfg.floor,
            utilisation=cfg.causal_utilisation or cfg.planner_utilisation,
            hold_s=cfg.causal_hold_s,
            max_replicas=int(extra["max_replicas"]),  # type: ignore[call-overload]
        )
    else:
        if not extra:
            extra = oracle_inputs(trace, cfg)
        strategy = Oracle(
            extra["demand_in"],  # type: ignore[arg-type]
            extra["demand_out"],  # type: ignore[arg-type]
            float(extra["c_in"]),  # type: ignore[arg-type]
            float(extra["c_out"]),  # type: ignore[arg-type]
            lead_s=float(extra["lead_s"]),  # type: ignore[arg-type]
            floor=cfg.floor,
            utilisation=cfg.oracle_utilisation,
            max_replicas=int(extra["max_replicas"]),  # type: ignore[call-overload]
        )
    result = run_strategy(trace, strategy, cfg, catalogue)
    if isinstance(strategy, Oracle | CausalOracle):
        result.knowledge = {k: round(float(extra[k]), 1) for k in ("c_in", "c_out", "lead_s")}  # type: ignore[arg-type]
    if isinstance(strategy, CausalOracle):
        result.knowledge["utilisation"] = strategy.u
    return result


def oracle_inputs(trace: Trace, cfg: ReplayConfig) -> dict[str, object]:
    """What the oracle knows: per-minute demand of the whole trace, true capacity, and the cold start."""
    req, ctx, gen = trace.per_minute()
    n = max(1, int(req.sum()))
    c_in, c_out = measure_capacity(cfg, float(ctx.sum()) / n, float(gen.sum()) / n)
    twin = _quiet_twin(cfg.seed, cfg.tick_s)
    state = twin.backend.get_pool(POOL)
    (node_pool,) = [n for n in twin.backend.list_node_pools() if n.name == NODE_POOL]
    lead = (state.cold_start_s or 0.0) + node_pool.typical_provision_s + 60.0
    return {
        "demand_in": (ctx / 60.0).tolist(),
        "demand_out": (gen / 60.0).tolist(),
        "c_in": c_in,
        "c_out": c_out,
        "lead_s": lead,
        "max_replicas": (node_pool.gpu_limit or 1000) // state.gpus_per_replica,
    }


def compare(
    trace: Trace,
    cfg: ReplayConfig | None = None,
    strategies: Sequence[str] = ("keda", "planner", "oracle"),
    workers: int = 2,
) -> ReplayReport:
    """Replay one trace under each strategy (in parallel processes when ``workers`` > 1)."""
    cfg = cfg or ReplayConfig()
    wall0 = time.perf_counter()
    # both oracles know the same capacity: probe once (under a second) when both run; a lone oracle
    # probes inside its own job, so the probe overlaps with the other strategies
    known: dict[str, object] = {}
    if "oracle" in strategies and "causal" in strategies:
        known = oracle_inputs(trace, cfg)
    jobs: list[tuple[str, Trace, ReplayConfig, dict[str, object]]] = [
        (n, trace, cfg, known if n in ("oracle", "causal") else {}) for n in strategies
    ]
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
            results = list(pool.map(_job, jobs))
    else:
        results = [_job(j) for j in jobs]
    catalogue = load_catalogue(cfg.price_catalogue)
    return ReplayReport(
        trace=trace.source,
        requests=trace.requests,
        duration_h=round(trace.duration_s / 3600.0, 3),
        seed=cfg.seed,
        slo=cfg.slo,
        usd_per_gpu_hour=catalogue.gpu_hour_for("L4", "g6.xlarge") or 0.0,
        oracle_capacity=next((r.knowledge for r in results if r.name == "oracle"), {}),
        results=results,
        wall_s=round(time.perf_counter() - wall0, 2),
        workers=workers,
    )
