"""``mcp-autoscale serve``: the MCP server over stdio (default) or streamable HTTP."""

from __future__ import annotations

from typing import Annotated

import typer

from mcp_autoscale.commands._common import (
    AuditOpt,
    BackendOpt,
    ClockOpt,
    ContextOpt,
    DryRunOpt,
    KubeCacheOpt,
    PolicyOpt,
    PrometheusOpt,
    RunbooksOpt,
    ScenarioOpt,
    SeedOpt,
    build_settings,
    exit_on_error,
    fail,
)
from mcp_autoscale.errors import InvalidInput
from mcp_autoscale.logs import configure_logging, get_logger

log = get_logger(__name__)


def parse_clusters(values: list[str]) -> dict[str, str]:
    """``["eu=kind-eu", "us=in-cluster"]`` -> ``{"eu": "kind-eu", "us": "in-cluster"}`` (order kept)."""
    out: dict[str, str] = {}
    for value in values:
        name, sep, context = value.partition("=")
        if not sep or not name or not context:
            raise InvalidInput(f"--cluster {value!r}: expected NAME=CONTEXT (e.g. eu=prod-eu-context)")
        out[name] = context
    return out


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        backend: BackendOpt = None,
        prometheus: PrometheusOpt = None,
        policy: PolicyOpt = None,
        audit: AuditOpt = None,
        dry_run: DryRunOpt = False,
        context: ContextOpt = None,
        scenario: ScenarioOpt = None,
        seed: SeedOpt = None,
        sim_clock: ClockOpt = None,
        runbooks: RunbooksOpt = None,
        kube_cache: KubeCacheOpt = None,
        cluster: Annotated[
            list[str] | None,
            typer.Option(
                "--cluster",
                help="NAME=CONTEXT, repeatable: address pools on several clusters (kubeconfig contexts; "
                "CONTEXT 'in-cluster' for the pod's own). The first is the default.",
            ),
        ] = None,
        transport: Annotated[
            str, typer.Option("--transport", help="stdio or http (streamable HTTP at /mcp)")
        ] = "stdio",
        host: Annotated[str, typer.Option("--host", help="HTTP bind address")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", help="HTTP port", min=1, max=65535)] = 8765,
        metrics_port: Annotated[
            int | None,
            typer.Option(
                "--metrics-port",
                min=0,
                max=65535,
                help="Serve Prometheus /metrics on this port (127.0.0.1; MCP_AUTOSCALE_METRICS_HOST to "
                "change). HTTP serves /metrics on --port anyway.",
            ),
        ] = None,
        log_level: Annotated[str, typer.Option("--log-level")] = "info",
    ) -> None:
        """Run the MCP server (stdio by default; logs go to stderr)."""
        from mcp_autoscale.app import build_app
        from mcp_autoscale.server import run_http, run_stdio

        configure_logging(log_level)
        if transport not in ("stdio", "http"):
            fail(f"--transport must be 'stdio' or 'http', not {transport!r}", 2)
        with exit_on_error():
            settings = build_settings(
                backend,
                prometheus,
                policy,
                audit,
                dry_run,
                context,
                scenario,
                seed,
                sim_clock=sim_clock,
                runbooks_dir=runbooks,
                metrics_port=metrics_port,
                clusters=parse_clusters(cluster) if cluster else None,
                kube_cache=kube_cache,
            )
            application = build_app(settings, long_running=True)
            if settings.metrics_port is not None:
                from mcp_autoscale import metrics

                metrics.watch_pending(application.gate)
                bound = metrics.serve_metrics(settings.metrics_host, settings.metrics_port)
                log.info("serve.metrics", url=f"http://{settings.metrics_host}:{bound}/metrics")
            if transport == "stdio":
                run_stdio(application)
                return
            run_http(application, host, port)
