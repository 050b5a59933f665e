"""Simulator control, registered only on the sim backend: lets an agent (or the demo) let time pass."""

from __future__ import annotations

from typing import Annotated

import anyio
import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from mcp_autoscale.app import AutoscaleApp
from mcp_autoscale.identity import require_scope
from mcp_autoscale.web.scopes import WRITE

SLICE_S = 60.0
"""Simulated seconds run per slice. The twin's lock is held for one slice at a time, so any other call
(a snapshot, a mutation) waits at most one slice, never the whole advance (a day took ~18 s)."""


class SimulationTime(BaseModel):
    now: str
    advanced_s: float


def register(server: MCPServer, app: AutoscaleApp) -> None:
    twin = app.twin
    if twin is None:
        return
    advancing = anyio.Lock()  # one advance at a time: each call's ``now`` is where its own run ended

    @server.tool(
        annotations=ToolAnnotations(
            title="Advance the simulation",
            read_only_hint=False,
            destructive_hint=False,
            open_world_hint=False,
        )
    )
    async def advance_simulation(
        seconds: Annotated[float, Field(gt=0, le=86400, description="Simulated seconds to run")],
        ctx: Context | None = None,
    ) -> SimulationTime:
        """Simulator only: run the simulated fleet forward (e.g. past a cold start) without waiting."""
        require_scope(ctx, WRITE)  # it changes the (simulated) fleet
        async with advancing:
            remaining = seconds
            while remaining > 0:
                step = min(remaining, SLICE_S)
                await anyio.to_thread.run_sync(twin.advance, step)  # off the event loop, one slice
                remaining -= step
            return SimulationTime(now=twin.now.isoformat(), advanced_s=seconds)
