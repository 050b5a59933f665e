"""The trace suite: every strategy on every shape x seed (and any Azure CSV given), on both cores.

One task per (trace, strategy) in a process pool; each task builds its trace from (shape, seed, duration)
or reads its CSV, so no trace is pickled across processes. The oracles' knowledge (``oracle_inputs``: a
capacity probe) is measured in each oracle task; it is deterministic, so both oracles of a trace know the
same. Per trace the suite writes ``<trace>/results.json`` (the single replay's ``ReplayReport``); over all
of them ``suite.md`` (one table: shape x strategy, means over seeds), ``suite.json`` and a Pareto plot
per shape (GPU-hours vs TTFT-SLO minutes).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel

from mcp_autoscale.cost import load_catalogue
from mcp_autoscale.replay.evaluate import (
    STRATEGIES,
    ReplayConfig,
    ReplayReport,
    StrategyResult,
    oracle_inputs,
    run_named,
)
from mcp_autoscale.replay.shapes import SHAPES, build_trace
from mcp_autoscale.replay.trace import Trace, load_trace

SUITE_TICK_S: dict[str, float] = {"weekly": 10.0}
"""Coarser twin ticks where the trace is long (the 7-day trace: 10 s), so the suite fits in minutes."""
SUITE_SAMPLE_S: dict[str, float] = {"weekly": 60.0}
"""The planner's sampling period where the trace is long (7 days: 60 s; its planning interval stays 120 s):
its cost is per sample, and 20,160 samples of 30 s would take more than the whole suite's budget."""


@dataclass(frozen=True)
class TraceSpec:
    """One trace of the suite: a shape and seed (and duration), or an Azure-format CSV."""

    shape: str
    seed: int
    duration_s: float | None = None
    csv: Path | None = None

    @property
    def key(self) -> str:
        return f"{self.shape}-s{self.seed}" if self.csv is None else self.shape

    def build(self) -> Trace:
        if self.csv is not None:
            return load_trace(self.csv)
        return build_trace(self.shape, self.seed, self.duration_s)


class SuiteRow(BaseModel):
    """One shape x strategy: means over the shape's traces."""

    shape: str
    strategy: str
    traces: int
    ttft_minutes_ok_pct: float
    itl_minutes_ok_pct: float
    gpu_hours: float
    usd_per_m_tokens: float | None
    vs_causal_gpu_hours: float | None
    vs_oracle_gpu_hours: float | None


class SuiteReport(BaseModel):
    strategies: list[str]
    traces: list[str]
    rows: list[SuiteRow]
    wall_s: float
    workers: int
    task_s: float
    """Sum of the tasks' wall times (on a busy machine, more than their CPU time)."""


@lru_cache(maxsize=2)
def _trace(spec: TraceSpec) -> Trace:
    """A worker builds each trace once for all its strategies (the 7-day trace takes ~1 s to build)."""
    return spec.build()


def _task(args: tuple[TraceSpec, str, ReplayConfig]) -> tuple[str, str, StrategyResult, float]:
    spec, name, cfg = args
    t0 = time.perf_counter()
    trace = _trace(spec)
    extra = oracle_inputs(trace, cfg) if name in ("oracle", "causal") else None
    result = run_named(name, trace, cfg, extra)
    return spec.key, name, result, time.perf_counter() - t0


PLANNER_COST = 3.0
"""The planner's task costs ~3x another strategy's on the 7-day trace (its per-sample work grows with its
history): it starts first, so the other worker is not left idle at the end."""


def _cost(job: tuple[TraceSpec, str, ReplayConfig]) -> float:
    return _length(job[0]) * (PLANNER_COST if job[1] == "planner" else 1.0)


def _length(spec: TraceSpec) -> float:
    if spec.duration_s is not None:
        return spec.duration_s
    if spec.csv is None and spec.shape in SHAPES:
        return SHAPES[spec.shape].duration_s / SUITE_TICK_S.get(spec.shape, 1.0)
    return float("inf")


def suite_specs(
    shapes: Sequence[str], seeds: Sequence[int], csvs: Sequence[Path] = (), duration_s: float | None = None
) -> list[TraceSpec]:
    """The suite's traces: each shape x seed (a shape's default duration unless ``duration_s``), then CSVs."""
    specs = [TraceSpec(s, seed, duration_s) for s in shapes for seed in seeds]
    taken = {s.key for s in specs}
    for c in csvs:
        name, n = Path(c).stem, 1
        while name in taken:  # two CSVs of one name (or named like a shape trace) keep apart
            n += 1
            name = f"{Path(c).stem}-{n}"
        taken.add(name)
        specs.append(TraceSpec(name, seeds[0] if seeds else 1, None, Path(c)))
    return specs


def run_suite(
    specs: Sequence[TraceSpec],
    strategies: Sequence[str] = STRATEGIES,
    *,
    cfg: ReplayConfig | None = None,
    workers: int = 2,
) -> tuple[dict[str, ReplayReport], SuiteReport]:
    """Replay every spec under every strategy; returns the per-trace reports and the summary."""
    base = cfg or ReplayConfig()
    wall0 = time.perf_counter()
    jobs: list[tuple[TraceSpec, str, ReplayConfig]] = []
    for spec in specs:
        long = spec.duration_s is None and spec.csv is None
        tick = SUITE_TICK_S.get(spec.shape, base.tick_s) if long else base.tick_s
        sample = SUITE_SAMPLE_S.get(spec.shape, base.sample_s) if long else base.sample_s
        run_cfg = replace(base, seed=spec.seed, tick_s=tick, sample_s=sample, audit_dir=None)
        jobs += [(spec, name, run_cfg) for name in strategies]
    jobs.sort(key=lambda j: -_cost(j))  # longest first, so the workers finish together
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            done = list(pool.map(_task, jobs))
    else:
        done = [_task(j) for j in jobs]
    catalogue = load_catalogue(base.price_catalogue)
    by_trace: dict[str, dict[str, StrategyResult]] = {}
    task_s = 0.0
    for key, name, result, took in done:
        by_trace.setdefault(key, {})[name] = result
        task_s += took
    reports: dict[str, ReplayReport] = {}
    for spec in specs:
        results = by_trace.get(spec.key, {})
        trace = spec.build() if results else None
        if trace is None:
            continue
        reports[spec.key] = ReplayReport(
            trace=trace.source,
            requests=trace.requests,
            duration_h=round(trace.duration_s / 3600.0, 3),
            seed=spec.seed,
            slo=base.slo,
            usd_per_gpu_hour=catalogue.gpu_hour_for("L4", "g6.xlarge") or 0.0,
            oracle_capacity=results["oracle"].knowledge if "oracle" in results else {},
            results=[results[n] for n in strategies if n in results],
            wall_s=round(sum(r.wall_s for r in results.values()), 2),
            workers=workers,
        )
    summary = SuiteReport(
        strategies=list(strategies),
        traces=[s.key for s in specs],
        rows=summarise(specs, reports, strategies),
        wall_s=round(time.perf_counter() - wall0, 1),
        workers=workers,
        task_s=round(task_s, 1),
    )
    return reports, summary


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs)


def summarise(
    specs: Sequence[TraceSpec], reports: dict[str, ReplayReport], strategies: Sequence[str]
) -> list[SuiteRow]:
    """Shape x strategy means; GPU-hour ratios are per trace (to that trace's causal oracle and oracle),
    then averaged."""
    shapes = list(dict.fromkeys(s.shape for s in specs))
    rows: list[SuiteRow] = []
    for shape in shapes:
        reps = [reports[s.key] for s in specs if s.shape == shape and s.key in reports]
        for name in strategies:
            res = [(rep, r) for rep in reps for r in rep.results if r.name == name]
            if not res:
                continue

            def ratio(ref: str, res: list[tuple[ReplayReport, StrategyResult]] = res) -> float | None:
                vals = []
                for rep, r in res:
                    other = next((x for x in rep.results if x.name == ref), None)
                    if other is None or other.gpu_hours <= 0:
                        return None
                    vals.append(r.gpu_hours / other.gpu_hours)
                return round(_mean(vals), 3)

            per_m = [r.usd_per_m_tokens for _, r in res if r.usd_per_m_tokens is not None]
            rows.append(
                SuiteRow(
                    shape=shape,
                    strategy=name,
                    traces=len(res),
                    ttft_minutes_ok_pct=round(_mean([r.ttft_minutes_ok_pct for _, r in res]), 2),
                    itl_minutes_ok_pct=round(_mean([r.itl_minutes_ok_pct for _, r in res]), 2),
                    gpu_hours=round(_mean([r.gpu_hours for _, r in res]), 2),
                    usd_per_m_tokens=round(_mean(per_m), 4) if per_m else None,
                    vs_causal_gpu_hours=ratio("causal"),
                    vs_oracle_gpu_hours=ratio("oracle"),
                )
            )
    return rows
