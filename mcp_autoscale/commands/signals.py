"""``mcp-autoscale signals rules``: print the Prometheus recording rules for the current settings."""

from __future__ import annotations

from typing import Annotated

import typer

from mcp_autoscale.commands._common import build_settings, echo_out, exit_on_error, fail


def register(app: typer.Typer) -> None:
    signals_app = typer.Typer(help="Signal sources: Prometheus recording rules.", no_args_is_help=True)
    app.add_typer(signals_app, name="signals")

    @signals_app.command("rules")
    def rules(
        window: Annotated[
            str | None, typer.Option("--window", help="Rate window, e.g. 2m (default: rate_window setting).")
        ] = None,
        pool_label: Annotated[
            str | None,
            typer.Option("--pool-label", help="Label naming the pool (default: pool_label; '' = from pod)."),
        ] = None,
        interval: Annotated[
            str | None,
            typer.Option(
                "--interval", help="Rule evaluation interval (default: the scrape interval setting)."
            ),
        ] = None,
        fmt: Annotated[
            str,
            typer.Option(
                "--format", help="rules (a rule_files: file) or prometheusrule (prometheus-operator)."
            ),
        ] = "rules",
        namespace: Annotated[
            str | None, typer.Option("--namespace", help="metadata.namespace of the PrometheusRule.")
        ] = None,
    ) -> None:
        """Print recording rules that pre-aggregate per-pool histogram and counter rates.

        Load them into Prometheus, then set MCP_AUTOSCALE_PROMETHEUS_RECORDING_RULES=true (with the same
        rate window and pool label) so that snapshots read the recorded series.
        """
        from mcp_autoscale.signals.rules import duration, render

        with exit_on_error():
            settings = build_settings(rate_window=window, pool_label=pool_label)
        try:
            text = render(
                settings.rate_window,
                settings.pool_label,
                interval or duration(settings.scrape_interval_s),
                fmt,
                namespace,
            )
        except ValueError as err:
            fail(str(err), 2)
            return
        echo_out(text)
