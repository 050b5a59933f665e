"""``mcp-autoscale replay --fleet FLEET.yaml``: every pool of a fleet on one twin, per-pool loops against the
fleet planner and the clairvoyant fleet."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from mcp_autoscale.commands._common import build_settings, echo_out, exit_on_error


def run_fleet(
    path: Path, out: Path, seed: int, interval: float, workers: int, strategies: str | None
) -> None:
    from mcp_autoscale.errors import InvalidInput
    from mcp_autoscale.replay.fleet import FLEET_STRATEGIES, FleetConfig, compare_fleet, fleet_ratios
    from mcp_autoscale.replay.fleet_report import write_fleet_report
    from mcp_autoscale.replay.fleet_spec import load_fleet

    with exit_on_error():
        names = [s.strip() for s in (strategies or ",".join(FLEET_STRATEGIES)).split(",") if s.strip()]
        unknown = [n for n in names if n not in FLEET_STRATEGIES]
        if unknown or not names:
            raise InvalidInput(
                f"--strategies: unknown {', '.join(unknown) or '(none)'}; use {','.join(FLEET_STRATEGIES)}"
            )
        if not 60.0 <= interval <= 180.0:
            raise InvalidInput(f"--interval must be within 60-180 s, got {interval:g}")
        spec, traces = load_fleet(path)
        settings = build_settings()
        out.mkdir(parents=True, exist_ok=True)
        tick_s, sample_s = spec.timing
        cfg = FleetConfig(
            seed=seed,
            tick_s=tick_s,
            sample_s=sample_s,
            slo=settings.slo,
            planner_interval_s=interval,
            price_catalogue=settings.price_catalogue,
            audit_dir=out / "gate",
        )
        report = compare_fleet(spec, traces, cfg, names, workers=max(1, workers), source=str(path))
        command = "mcp-autoscale " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        report_path = write_fleet_report(report, out, command)
    for r in report.results:
        echo_out(
            f"{r.name:8s} GPU-h {r.gpu_hours:7.1f}  ${r.usd:8.2f}  TTFT ok {r.ttft_minutes_ok_pct:6.2f}% min  "
            f"ITL ok {r.itl_minutes_ok_pct:6.2f}% min  worst interactive {r.interactive_ttft_min_pct:6.2f}%"
        )
    for k, v in fleet_ratios(report).items():
        echo_out(f"{k}: {v}")
    echo_out(f"wall {report.wall_s:.1f} s; report: {report_path}")
