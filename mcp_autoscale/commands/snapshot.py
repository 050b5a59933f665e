"""``mcp-autoscale snapshot``: the fleet's SLO snapshot as a table or JSON."""

from __future__ import annotations

from typing import Annotated

import typer

from mcp_autoscale.commands._common import (
    AuditOpt,
    BackendOpt,
    ContextOpt,
    PolicyOpt,
    PrometheusOpt,
    ScenarioOpt,
    SeedOpt,
    build_settings,
    echo_out,
    exit_on_error,
)
from mcp_autoscale.logs import configure_logging
from mcp_autoscale.models import FleetSnapshot
from mcp_autoscale.paging import by_attention


def _fmt(value: float | None, unit: str = "", digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def render_table(snap: FleetSnapshot) -> str:
    """A plain-text table (no colour: it must read well in CI logs and job summaries)."""
    headers = [
        "pool",
        "gpu",
        "replicas",
        "owner",
        "ttft p90",
        "itl p90",
        "kv",
        "queue",
        "tok/s out",
        "$/h",
        "slo",
    ]
    rows = []
    for p in by_attention(snap.pools):  # what needs attention first (breach, at risk, stale, idle)
        r = p.replicas
        owner = "-" if p.owner is None else f"{'KEDA' if p.owner.kind.value == 'ScaledObject' else 'HPA'}"
        s = p.signals
        rows.append(
            [
                f"{p.namespace}/{p.name}",
                f"{p.gpus_per_replica}x{p.gpu_type}",
                f"{r['ready']}/{r['desired']}" + (f" (+{r['starting']} starting)" if r["starting"] else ""),
                owner,
                _fmt(s.ttft_p90_s, "s"),
                _fmt(None if s.itl_p90_s is None else s.itl_p90_s * 1000, "ms", 0),
                _fmt(s.kv_usage),
                _fmt(s.queue_depth, "", 0),
                _fmt(s.gen_tps, "", 0),
                _fmt(p.cost_per_hour),
                p.slo.value + ("" if not p.slo_breaches else " (" + "; ".join(p.slo_breaches) + ")"),
            ]
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    footer = f"\n{snap.backend} backend, signals from {snap.signal_source}, taken {snap.taken_at:%Y-%m-%d %H:%M:%S}Z"
    if snap.fleet_cost_per_hour is not None:
        footer += f", fleet ${snap.fleet_cost_per_hour:.2f}/h"
    if snap.source_errors:
        footer += "\nSOURCE DOWN: " + "; ".join(snap.source_errors)
    elif snap.partial:
        footer += "\nPARTIAL: " + "; ".join(snap.warnings or ["some signals are missing or stale"])
    unknown = [f"{p.namespace}/{p.name}" for p in snap.pools if p.slo.value == "unknown"]
    if unknown:
        footer += f"\nSLO NOT JUDGED (signals missing or stale): {', '.join(unknown)}"
    return "\n".join(lines) + footer


EXIT_SOURCE_DOWN = 1
EXIT_PARTIAL = 3


def snapshot_exit_code(snap: FleetSnapshot) -> int:
    """0 a complete answer; 1 a source failed as a whole (the table is blind where it feeds); 3 partial:
    some signals missing or stale, or a pool whose SLO cannot be judged. Blind is never 0."""
    if snap.source_errors:
        return EXIT_SOURCE_DOWN
    if snap.partial or any(p.slo.value == "unknown" for p in snap.pools):
        return EXIT_PARTIAL
    return 0


def register(app: typer.Typer) -> None:
    @app.command()
    def snapshot(
        backend: BackendOpt = None,
        prometheus: PrometheusOpt = None,
        policy: PolicyOpt = None,
        audit: AuditOpt = None,
        context: ContextOpt = None,
        scenario: ScenarioOpt = None,
        seed: SeedOpt = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
        namespace: Annotated[str | None, typer.Option("--namespace", "-n")] = None,
    ) -> None:
        """Print the current SLO snapshot.

        Exit 0: every pool judged on complete data; 1: a signal source (or the cluster's node pools) could
        not be read; 3: partial (signals missing or stale, an SLO that cannot be judged); 2: bad usage.
        """
        from mcp_autoscale.app import build_app

        configure_logging("warning")
        with exit_on_error():
            settings = build_settings(
                backend, prometheus, policy, audit, False, context, scenario, seed, sim_clock="manual"
            )
            application = build_app(settings, read_only=True)
            snap = application.snapshotter.take(namespace=namespace)
        echo_out(snap.model_dump_json(indent=2) if as_json else render_table(snap))
        raise typer.Exit(snapshot_exit_code(snap))
