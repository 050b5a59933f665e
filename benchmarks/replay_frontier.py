"""The cost of SLO attainment without foresight: planner and causal oracle across target utilisations.

For each U, replays one synthetic trace under the planner (KEDA + planner outer loop) and under the causal
oracle (true capacity, the exact load so far, no foresight), next to the oracle (perfect foresight), all
in one run. Prints a markdown table: % of minutes within the TTFT SLO, GPU-hours billed and the ratio to
the oracle. This is the trade-off docs/evaluation.md discusses; it is a benchmark, not a test.

    python benchmarks/replay_frontier.py --hours 24 --seed 7 --u 0.55,0.65,0.75,0.85 --workers 2
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

from mcp_autoscale.replay.evaluate import ReplayConfig, StrategyResult, oracle_inputs, run_named
from mcp_autoscale.replay.trace import Trace, synthetic_trace


def _run(
    args: tuple[str, float, Trace, ReplayConfig, dict[str, object]],
) -> tuple[str, float, StrategyResult]:
    name, u, trace, cfg, known = args
    cfg = replace(cfg, planner_utilisation=u, causal_utilisation=u)
    return name, u, run_named(name, trace, cfg, known)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--u", default="0.55,0.65,0.75,0.85", help="Target utilisations to sweep")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    us = [float(x) for x in a.u.split(",") if x.strip()]
    trace = synthetic_trace(a.hours * 3600.0, seed=a.seed)
    cfg = ReplayConfig(seed=a.seed)
    t0 = time.perf_counter()
    known = oracle_inputs(trace, cfg)
    jobs = [("oracle", cfg.oracle_utilisation, trace, cfg, known)]
    jobs += [(name, u, trace, cfg, known) for u in us for name in ("planner", "causal")]
    with ProcessPoolExecutor(max_workers=max(1, a.workers)) as pool:
        results = list(pool.map(_run, jobs))
    oracle = next(r for n, _, r in results if n == "oracle")
    print(f"{trace.source}: {trace.requests:,} requests; {time.perf_counter() - t0:.0f} s wall\n")
    print(
        "| strategy | U | TTFT SLO % minutes | ITL SLO % minutes | GPU-hours billed | x oracle | outer actions |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, u, r in sorted(results, key=lambda x: (x[0] != "oracle", x[0], -x[1])):
        ratio = r.gpu_hours / oracle.gpu_hours if oracle.gpu_hours else float("nan")
        print(
            f"| {name} | {u:g} | {r.ttft_minutes_ok_pct:.2f} | {r.itl_minutes_ok_pct:.2f} | "
            f"{r.gpu_hours:.1f} | {ratio:.2f} | {r.outer_actions} |"
        )


if __name__ == "__main__":
    main()
