"""Runbooks: each served as a resource ``autoscale://runbooks/<slug>``, plus ``find_runbook`` by symptom."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel, Field

from mcp_autoscale.app import AutoscaleApp
from mcp_autoscale.runbooks import Runbook, RunbookMatch, default_runbooks, find_runbooks
from mcp_autoscale.tools._shared import read_only


class RunbookSearch(BaseModel):
    query: str
    matches: list[RunbookMatch] = Field(
        description="Best first; read autoscale://runbooks/<slug> for the steps"
    )


def _register_runbook(server: MCPServer, runbook: Runbook) -> None:
    def read() -> str:
        return runbook.body

    read.__doc__ = runbook.summary
    server.resource(
        f"autoscale://runbooks/{runbook.slug}",
        name=f"runbook-{runbook.slug}",
        title=runbook.title,
        description=runbook.summary,
        mime_type="text/markdown",
    )(read)


def register(server: MCPServer, app: AutoscaleApp) -> None:
    runbooks = app.runbooks if app.runbooks is not None else default_runbooks()
    for runbook in runbooks:
        _register_runbook(server, runbook)

    @server.resource("autoscale://runbooks", name="runbook-index", mime_type="application/json")
    def runbook_index() -> str:
        """Every runbook: slug, title, severity, symptoms."""
        import json

        return json.dumps(
            [
                {"slug": r.slug, "title": r.title, "severity": r.severity, "symptoms": r.symptoms}
                for r in runbooks
            ],
            indent=1,
        )

    @server.tool(annotations=read_only("Find a runbook"))
    def find_runbook(
        symptom: Annotated[
            str, Field(min_length=2, max_length=300, description="e.g. 'pods pending, no GPU'")
        ],
        limit: Annotated[int, Field(ge=1, le=8)] = 3,
    ) -> RunbookSearch:
        """Search the runbooks by symptom or signal name; returns slugs to read as autoscale://runbooks/<slug>."""
        return RunbookSearch(query=symptom, matches=find_runbooks(symptom, runbooks, limit=limit))
