"""The agent drives the planner's ``recommend_scaling`` when the server has it: in-process server with the
tool registered from mcp_autoscale.planner.recommend, exactly the output contract the server wires."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from mcp import Client

from mcp_autoscale.agent import AgentOptions, run_iteration
from mcp_autoscale.app import build_app
from mcp_autoscale.config import Settings
from mcp_autoscale.planner import recommend
from mcp_autoscale.server import create_server

pytestmark = pytest.mark.anyio


async def test_recommendations_are_called_through_the_gate(make_settings: Callable[..., Settings]) -> None:
    app = build_app(make_settings(sim_scenario="ttft-breach", sim_warmup_s=0))
    server = create_server(app)
    tool_names = {t.name for t in await server.list_tools()}
    if "recommend_scaling" not in tool_names:

        @server.tool()
        def recommend_scaling() -> dict[str, Any]:
            """Planner recommendations (registered here until the server wires its own)."""
            snap = app.snapshotter.take()
            recs = recommend(snap, app.backend.list_pools(), app.backend.list_node_pools(), app.catalogue)
            return {"recommendations": [r.model_dump(mode="json") for r in recs]}

    async with Client(server) as client:
        it = await run_iteration(client, 1, AgentOptions(), run_id="test")
    assert it.recommendation_source == "recommend_scaling" and not it.errors
    assert it.proposals, it.notes
    for p in it.proposals:
        assert p.arguments["dry_run"] is True
        assert p.status in {"dry_run", "denied", "pending_approval"} and p.audit_id, p
        assert p.error is None
    llama = [p for p in it.proposals if p.pool == "chat/llama-8b"]
    assert llama and all(p.tool != "scale_deployment" for p in llama)
    assert any("TTFT p90" in p.rationale for p in llama)
    # the planner's own calls went through too (it proposes for pools beyond the breached one)
    assert any(p.source == "recommend_scaling" for p in it.proposals) or any("planner" in n for n in it.notes)
    audited = {r.id: r for r in app.audit.records()}
    assert all(audited[p.audit_id].dry_run for p in it.proposals if p.audit_id)
