"""Simulator control, registered only on the sim backend: lets an agent (or the demo) let time pass."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from mcp_autoscale.app import AutoscaleApp


class SimulationTime(BaseModel):
    now: str
    advanced_s: float


def register(server: MCPServer, app: AutoscaleApp) -> None:
    twin = app.twin
    if twin is None:
        return

    @server.tool(
        annotations=ToolAnnotations(
            title="Advance the simulation",
            read_only_hint=False,
            destructive_hint=False,
            open_world_hint=False,
        )
    )
    def advance_simulation(
        seconds: Annotated[float, Field(gt=0, le=86400, description="Simulated seconds to run")],
    ) -> SimulationTime:
        """Simulator only: run the simulated fleet forward (e.g. past a cold start) without waiting."""
        twin.advance(seconds)
        return SimulationTime(now=twin.now.isoformat(), advanced_s=seconds)
