"""The agent at fleet scale: a bounded number of calls per pass (breaches first) and the gate's rate limit
honoured instead of failing the pass."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from mcp.types import CallToolResult, TextContent

from mcp_autoscale.agent.loop import MAX_CALLS_PER_PASS, call_with_retry, cap_calls
from mcp_autoscale.agent.models import Proposal

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def proposal(i: int, breach: bool) -> Proposal:
    return Proposal(
        pool=f"ns/p{i}",
        tool="scale_deployment",
        arguments={"namespace": "ns", "deployment": f"p{i}", "replicas": 1},
        rationale="r",
        source="recommend_scaling",
        addresses_breach=breach,
    )


def test_calls_per_pass_are_capped_breaches_first() -> None:
    others = [proposal(i, False) for i in range(150)]
    breaches = [proposal(1000 + i, True) for i in range(30)]
    kept, deferred = cap_calls(others[:10] + breaches + others[10:])
    assert len(kept) == MAX_CALLS_PER_PASS and len(deferred) == 150 + 30 - MAX_CALLS_PER_PASS
    assert kept[:30] == breaches  # every breach call, first
    assert kept[30:] == others[: MAX_CALLS_PER_PASS - 30]  # then the planner's order
    many = [proposal(i, True) for i in range(MAX_CALLS_PER_PASS + 5)]
    assert cap_calls(many) == (many, [])  # a breach is never deferred


@dataclass
class LimitedClient:
    """Answers 'rate limited' ``limited`` times, then succeeds."""

    limited: int
    calls: list[dict[str, Any]] = field(default_factory=list)

    async def call_tool(self, tool: str, args: dict[str, Any]) -> CallToolResult:
        self.calls.append(args)
        if len(self.calls) <= self.limited:
            text = (
                "Error executing tool scale_deployment: rate limited: caller local:x may cause 10 audit "
                "records per second (burst 100); nothing was done or recorded. Retry in 0.0 s, and do not "
                "loop on dry runs"
            )
            return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)
        return CallToolResult(content=[TextContent(type="text", text="ok")], structured_content={"ok": 1})


async def test_rate_limited_calls_wait_and_retry() -> None:
    client = LimitedClient(limited=2)
    result = await call_with_retry(client, "scale_deployment", {"replicas": 1})
    assert not result.is_error and len(client.calls) == 3
    stuck = LimitedClient(limited=100)
    result = await call_with_retry(stuck, "scale_deployment", {"replicas": 1})
    assert result.is_error and len(stuck.calls) == 6  # bounded: the pass reports the error
