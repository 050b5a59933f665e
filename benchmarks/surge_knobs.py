"""The planner with PlannerConfig overrides against the causal oracle, per trace (issue 14's goal table).

    .venv/bin/python benchmarks/surge_knobs.py '{"surge_ratio": 1.5}' --shapes step,flash --seeds 2

Runs the planner (the replay's settings plus the overrides, a JSON object of ``PlannerConfig`` fields) and
the causal oracle on each shape x seed of the suite, on two processes, and prints one row per trace:
TTFT-SLO minutes and GPU-hours of both, whether the planner is not dominated (>= -1 pp, <= 1.00x) and the
surge order (``suite_goals.surge_order``). docs/evaluation.md quotes its output.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from suite_goals import surge_order

from mcp_autoscale.cost import load_catalogue
from mcp_autoscale.planner import PlannerConfig
from mcp_autoscale.replay.evaluate import POOL, ReplayConfig, run_named, run_strategy
from mcp_autoscale.replay.shapes import build_trace
from mcp_autoscale.replay.strategies import KedaPlusPlanner


def _job(args: tuple[str, int, str, dict[str, Any]]) -> tuple[str, int, str, dict[str, Any]]:
    shape, seed, who, overrides = args
    cfg = ReplayConfig(seed=seed)
    trace = build_trace(shape, seed, None)
    if who == "causal":
        return shape, seed, who, run_named("causal", trace, cfg).model_dump()
    cat = load_catalogue()
    pcfg = PlannerConfig(
        target_utilisation=cfg.planner_utilisation,
        owner_max_band=cfg.planner_max_band,
        floors={POOL.namespace: cfg.floor},
        **overrides,
    )
    result = run_strategy(trace, KedaPlusPlanner(cat, cfg.slo, config=pcfg), cfg, cat)
    return shape, seed, who, result.model_dump()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("overrides", help="JSON object of PlannerConfig fields, e.g. '{}'")
    ap.add_argument("--shapes", default="diurnal_bursts,step,ramp,onoff,flash")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    overrides = json.loads(a.overrides)
    jobs = [
        (shape, seed, who, overrides)
        for shape in a.shapes.split(",")
        for seed in range(1, a.seeds + 1)
        for who in ("planner", "causal")
    ]
    with ProcessPoolExecutor(a.workers) as ex:
        done = {(s, sd, w): r for s, sd, w, r in ex.map(_job, jobs)}
    lines = [
        "| trace | planner TTFT % min / GPU-h | causal oracle | not dominated | surge order / causal's |",
        "|---|---|---|---|---|",
    ]
    ok = 0
    for shape, seed, who, _ in jobs:
        if who != "planner":
            continue
        p, c = done[(shape, seed, "planner")], done[(shape, seed, "causal")]
        dpp = p["ttft_minutes_ok_pct"] - c["ttft_minutes_ok_pct"]
        ratio = p["gpu_hours"] / c["gpu_hours"]
        good = dpp >= -1.0 and ratio <= 1.0
        ok += good
        so = surge_order(p, c)
        lines.append(
            f"| {shape}-s{seed} | {p['ttft_minutes_ok_pct']:.2f} / {p['gpu_hours']:.1f} | "
            f"{c['ttft_minutes_ok_pct']:.2f} / {c['gpu_hours']:.1f} | "
            f"{'**yes**' if good else 'no'} ({dpp:+.2f} pp, {ratio:.2f}x) | {'-' if so is None else f'{so:.2f}'} |"
        )
    lines.append(f"\nnot dominated on {ok} of {len(lines) - 2} traces; overrides {json.dumps(overrides)}")
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
