"""Why pooling pays, in numbers: per-pool vs pooled burst headroom of a FLEET.yaml's interactive pools.

For each interactive pool: the replicas its load needs each minute at full (probed) capacity, and its burst
excess within one lead time (``planner.fleet.burst_excess``). Headroom held pool by pool must cover each
pool's own q-quantile; headroom held once per node pool covers the q-quantile of the sum.

    .venv/bin/python benchmarks/fleet_pooling_stats.py examples/fleet/FLEET.yaml
"""

from __future__ import annotations

import sys
from pathlib import Path

from mcp_autoscale.planner import replicas_needed
from mcp_autoscale.planner.fleet import burst_excess, pooled_headroom
from mcp_autoscale.replay.fleet import FleetConfig, probe_capacity
from mcp_autoscale.replay.fleet_spec import load_fleet

LEAD_MIN = 7  # node provisioning + cold start + a minute (calibration modes), rounded up


def main(path: Path) -> None:
    spec, traces = load_fleet(path)
    cfg = FleetConfig()
    for npool in spec.node_pools:
        pools = [p for p in spec.pools if p.node_pool == npool.name and p.priority == "interactive"]
        excess = {}
        for p in pools:
            tr = traces[p.ref.key]
            c_in, c_out = probe_capacity(spec, p.ref.key, tr, cfg)
            _, ctx, gen = tr.per_minute()
            need = [
                replicas_needed(i / 60.0, o / 60.0, c_in, c_out, 1.0, 0)
                for i, o in zip(ctx, gen, strict=True)
            ]
            excess[p.ref.key] = burst_excess(need, LEAD_MIN)
        print(f"{npool.name}: {len(pools)} interactive pools, lead {LEAD_MIN} min")
        print("| q | " + " | ".join(excess) + " | sum of per-pool | pooled | pooled / sum |")
        print("|---|" + "---:|" * (len(excess) + 3))
        for q in (0.9, 0.95, 0.99, 1.0):
            h = pooled_headroom(npool.name, excess, q)
            cells = " | ".join(str(h.per_pool_gpus[k]) for k in excess)
            ratio = h.pooled_gpus / h.sum_per_pool if h.sum_per_pool else float("nan")
            print(f"| {q:g} | {cells} | {h.sum_per_pool} | {h.pooled_gpus} | {ratio:.2f} |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "examples/fleet/FLEET.yaml"))
