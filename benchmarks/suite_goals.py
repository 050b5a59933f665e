"""Issue 14's per-trace goal check, from a suite folder (``mcp-autoscale replay --suite --out DIR``).

For every ``DIR/<trace>/results.json`` with a planner and a causal oracle:

- not dominated by the causal oracle: planner GPU-hours <= the causal oracle's and TTFT-SLO minutes >= the
  causal oracle's - 1 pp;
- a peer dominates the planner: >= its TTFT minutes at <= its GPU-hours with a margin (0.5 pp, or 5% of
  GPU-hours);
- surge order: at each onset of a x1.8+ surge (a minute whose request rate is >= 1.8 x the median of the 10
  minutes before it, at least 12 minutes after the previous onset), the most replicas the planner's pool was
  given in the 12 minutes from the onset over the most the causal oracle held in them; the worst surge.

    .venv/bin/python benchmarks/suite_goals.py DIR          # prints a markdown table
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

PEERS = ("keda", "wva", "dynamo", "aibrix")
SURGE = 1.8
WINDOW_MIN = 12


def surge_onsets(rps: list[float]) -> list[int]:
    """Minutes where the rate jumps to >= SURGE x the median of the 10 minutes before."""
    out: list[int] = []
    for i in range(10, len(rps)):
        base = statistics.median(rps[i - 10 : i])
        if base > 0 and rps[i] >= SURGE * base and (not out or i - out[-1] >= WINDOW_MIN):
            out.append(i)
    return out


def surge_order(planner: dict[str, Any], causal: dict[str, Any]) -> float | None:
    rps = planner["series"]["rps"]
    worst = None
    for i in surge_onsets(rps):
        p = max(planner["series"]["desired"][i : i + WINDOW_MIN])
        c = max(causal["series"]["desired"][i : i + WINDOW_MIN])
        r = p / max(1, c)
        worst = r if worst is None else max(worst, r)
    return worst


def _dominates(peer: dict[str, Any], planner: dict[str, Any]) -> bool:
    """>= the planner's TTFT minutes at <= its GPU-hours, with a margin on one axis (0.5 pp or 5%)."""
    ttft, gpu = peer["ttft_minutes_ok_pct"], peer["gpu_hours"]
    mine, cost = planner["ttft_minutes_ok_pct"], planner["gpu_hours"]
    return (ttft >= mine + 0.5 and gpu <= cost) or (ttft >= mine and gpu <= 0.95 * cost)


def row(key: str, results: list[dict[str, Any]]) -> str | None:
    by = {r["name"]: r for r in results}
    p, c, o = by.get("planner"), by.get("causal"), by.get("oracle")
    if p is None or c is None:
        return None
    dpp = p["ttft_minutes_ok_pct"] - c["ttft_minutes_ok_pct"]
    ratio = p["gpu_hours"] / c["gpu_hours"]
    fails = []
    if dpp < -1.0:
        fails.append(f"{dpp:+.2f} pp")
    if ratio > 1.0:
        fails.append(f"{ratio:.2f}x")
    verdict = f"**yes** ({dpp:+.2f} pp, {ratio:.2f}x)" if not fails else f"no: {', '.join(fails)}"
    dom = [n for n in PEERS if n in by and _dominates(by[n], p)]
    peers = ", ".join(dom) if dom else ("none" if any(n in by for n in PEERS) else "-")
    vs_o = "-" if o is None else f"{p['gpu_hours'] / o['gpu_hours']:.2f}"
    so = surge_order(p, c)
    return (
        f"| {key} | {p['ttft_minutes_ok_pct']:.2f} / {p['gpu_hours']:.1f} | "
        f"{c['ttft_minutes_ok_pct']:.2f} / {c['gpu_hours']:.1f} | {verdict} | {peers} | {vs_o} | "
        f"{'-' if so is None else f'{so:.2f}'} |"
    )


def main(folder: Path) -> str:
    lines = [
        "| trace | planner TTFT % min / GPU-h | causal oracle | not dominated by the causal oracle "
        "(>= -1 pp, <= 1.00x) | a peer dominates the planner | planner / oracle GPU-h | "
        "surge order / causal's |",
        "|---|---|---|---|---|---|---|",
    ]
    for path in sorted(folder.glob("*/results.json")):
        r = row(path.parent.name, json.loads(path.read_text(encoding="utf-8"))["results"])
        if r is not None:
            lines.append(r)
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(main(Path(sys.argv[1])) + "\n")
