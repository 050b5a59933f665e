"""``mcp-autoscale sim``: serve the twin's metrics in vLLM exposition format for a real Prometheus."""

from __future__ import annotations

import threading
from typing import Annotated

import typer

from mcp_autoscale.commands._common import echo_out, exit_on_error, fail
from mcp_autoscale.logs import configure_logging


def register(app: typer.Typer) -> None:
    @app.command()
    def sim(
        port: Annotated[
            int, typer.Option("--port", help="HTTP port for /metrics (0 = any free port)", min=0, max=65535)
        ] = 9400,
        host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
        scenario: Annotated[str, typer.Option("--scenario", help="Simulator scenario")] = "default",
        seed: Annotated[int, typer.Option("--seed", help="Simulator seed", min=0, max=2**32 - 1)] = 7,
        speed: Annotated[
            float,
            typer.Option("--speed", help="Simulated seconds per wall second", min=0.1, max=3600.0),
        ] = 1.0,
    ) -> None:
        """Run the simulated fleet in wall-clock time and serve its metrics at /metrics."""
        from mcp_autoscale.sim import Twin, serve_metrics
        from mcp_autoscale.sim.scenarios import check_scenario

        configure_logging("info")
        with exit_on_error():
            check_scenario(scenario)
            twin = Twin(scenario=scenario, seed=seed, clock="wall", speed=speed)
        try:
            server = serve_metrics(twin, host=host, port=port)
        except (OSError, ValueError) as err:  # a host that does not resolve, a port in use or not allowed
            fail(f"--host {host} --port {port}: cannot listen: {err}", 2)
            return
        echo_out(f"serving {len(twin.pools())} simulated pools at {server.url}/metrics (Ctrl-C to stop)")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            server.close()
