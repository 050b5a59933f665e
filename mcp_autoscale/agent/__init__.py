"""The reference agent loop: a deterministic MCP client that reads the fleet and proposes gated actions."""

from mcp_autoscale.agent.loop import AgentOptions, connect, run_agent, run_iteration
from mcp_autoscale.agent.models import AgentReport, ExitCode, Iteration, PoolView, Proposal
from mcp_autoscale.agent.report import render_markdown
from mcp_autoscale.agent.rules import (
    capacity_target,
    describe,
    pool_view,
    recommendation_proposals,
    rule_proposals,
)

__all__ = [
    "AgentOptions",
    "AgentReport",
    "ExitCode",
    "Iteration",
    "PoolView",
    "Proposal",
    "capacity_target",
    "connect",
    "describe",
    "pool_view",
    "recommendation_proposals",
    "render_markdown",
    "rule_proposals",
    "run_agent",
    "run_iteration",
]
