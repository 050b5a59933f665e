"""``mcp-autoscale doctor``: check the installation, Prometheus, cluster access, RBAC, CRDs, policy and audit.

Exit 0 when no check fails (warnings allowed), 1 when one does, 2 on bad usage.
"""

from __future__ import annotations

from typing import Annotated

import typer

from mcp_autoscale.commands._common import (
    AuditOpt,
    BackendOpt,
    ContextOpt,
    PolicyOpt,
    PrometheusOpt,
    RunbooksOpt,
    ScenarioOpt,
    build_settings,
    echo_out,
    exit_on_error,
)
from mcp_autoscale.logs import configure_logging


def register(app: typer.Typer) -> None:
    @app.command()
    def doctor(
        backend: BackendOpt = None,
        prometheus: PrometheusOpt = None,
        policy: PolicyOpt = None,
        audit: AuditOpt = None,
        context: ContextOpt = None,
        runbooks: RunbooksOpt = None,
        scenario: ScenarioOpt = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON")] = False,
    ) -> None:
        """Check that this setup can serve: deps, policy, audit log, Prometheus, Kubernetes RBAC and CRDs."""
        from mcp_autoscale.doctor import render_table, run_checks

        configure_logging("error")
        with exit_on_error():
            settings = build_settings(
                backend, prometheus, policy, audit, False, context, scenario, runbooks_dir=runbooks
            )
        report = run_checks(settings)
        if as_json:
            echo_out(report.model_dump_json(indent=2))
        else:
            echo_out(render_table(report))
        raise typer.Exit(report.exit_code)
