"""Where a fleet replay's strategies lose TTFT minutes and what their GPU-hours are made of.

    .venv/bin/python benchmarks/fleet_breakdown.py fleet-report-16/results.json [--against oracle]

Reads the ``results.json`` that ``mcp-autoscale replay --fleet`` writes. Per strategy and node pool:
billed GPU-hours = pod GPU-hours (replicas starting or serving) + idle node GPU-hours (launched nodes'
GPUs no pod holds: nodes provisioning ahead of their pods, nodes not yet consolidated after a scale-in,
warm placeholders, GPUs left over on multi-GPU nodes). Per pool: missed TTFT minutes grouped into
episodes (consecutive minutes), each with the request rate just before and during it, so a flash crowd,
a step, a batch edge or the first minutes of the day can be told apart.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def episodes(minutes: list[int]) -> list[tuple[int, int]]:
    """Consecutive runs of minutes as (first, last)."""
    out: list[tuple[int, int]] = []
    for m in minutes:
        if out and m == out[-1][1] + 1:
            out[-1] = (out[-1][0], m)
        else:
            out.append((m, m))
    return out


def gpu_breakdown(result: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per node pool: billed, pod and idle GPU-hours."""
    out: dict[str, dict[str, float]] = {}
    for npool, billed in result["node_gpu_hours"].items():
        pods = sum(p["gpu_hours"] for p in result["pools"] if p["node_pool"] == npool)
        out[npool] = {"billed": billed, "pods": round(pods, 2), "idle": round(billed - pods, 2)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--against", default="oracle", help="Strategy to compare GPU-hours with")
    args = ap.parse_args()
    data = json.loads(args.results.read_text())
    by = {r["name"]: r for r in data["results"]}
    ref = by.get(args.against)
    lines = [
        "| strategy | node pool | billed GPU-h | pod GPU-h | idle node GPU-h |",
        "|---|---|---:|---:|---:|",
    ]
    for name, r in by.items():
        for npool, g in gpu_breakdown(r).items():
            lines.append(f"| {name} | {npool} | {g['billed']:.1f} | {g['pods']:.1f} | {g['idle']:.1f} |")
    print("\n".join(lines))
    if ref is not None:
        print()
        for name, r in by.items():
            print(f"{name}: {r['gpu_hours'] / ref['gpu_hours']:.3f}x {args.against}'s GPU-hours")
    print()
    for name, r in by.items():
        print(f"## {name}: missed TTFT minutes (episode: minutes, req/s before -> during)")
        for p in r["pools"]:
            missed = p.get("ttft_missed_minutes", [])
            if not missed:
                continue
            rps = p["rps"]
            parts = []
            for a, b in episodes(missed):
                before = rps[max(0, a - 3)] if a >= 1 else 0.0
                during = max(rps[a : b + 1]) if rps[a : b + 1] else 0.0
                parts.append(
                    f"{a}-{b} ({before:.1f}->{during:.1f})" if b > a else f"{a} ({before:.1f}->{during:.1f})"
                )
            print(
                f"- {p['namespace']}/{p['name']} ({p['priority']}, {p['ttft_minutes_ok_pct']:.2f}%, "
                f"{len(missed)} min): " + ", ".join(parts)
            )


if __name__ == "__main__":
    main()
