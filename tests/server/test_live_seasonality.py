"""The live server learns what repeats: fleet snapshots feed a per-minute demand history (bounded), and
``recommend_scaling`` passes it to the planner, whose periodic model then names the period."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest
from mcp import Client

from mcp_autoscale.app import build_app
from mcp_autoscale.config import Settings
from mcp_autoscale.models import PoolRef
from mcp_autoscale.server import create_server
from mcp_autoscale.sim import ArrivalStep, Twin

pytestmark = pytest.mark.anyio

POOL = PoolRef(namespace="chat", name="llama-8b")
PERIOD_MIN = 12


async def test_recommend_scaling_detects_a_period_from_live_snapshots(
    make_settings: Callable[..., Settings],
) -> None:
    twin = Twin("default", 7, tick_s=10.0)  # 10 s ticks: 42 simulated minutes in a few seconds
    for ref in twin.pools():
        if ref != POOL and not ref.name.endswith("decode"):  # a decode pool is fed by its prefill pool
            twin.set_arrivals(ref, lambda _now, _dt: ArrivalStep(0.0))
    app = build_app(make_settings(), twin=twin)
    start = twin.now

    def on_off(now: datetime, _dt: float) -> ArrivalStep:
        """6 minutes on at 8 req/s, 6 minutes off at 0.5 req/s: a batch window every 12 minutes."""
        minute = int((now - start).total_seconds() // 60)
        return ArrivalStep(8.0 if minute % PERIOD_MIN < PERIOD_MIN // 2 else 0.5)

    twin.set_arrivals(POOL, on_off)
    async with Client(create_server(app)) as c:

        async def reasons() -> list[str]:
            r = await c.call_tool("recommend_scaling", {"namespace": POOL.namespace})
            assert not r.is_error
            recs = (r.structured_content or {})["recommendations"]
            (rec,) = [x for x in recs if x["pool"] == POOL.key]
            return list(rec["reasons"])

        for _ in range(PERIOD_MIN):  # one period: nothing repeats yet
            twin.advance(60.0)
            app.snapshotter.take()  # what any fleet-wide read does (the agent's every call)
        assert not any("repeats" in r for r in await reasons())
        for _ in range(2 * PERIOD_MIN + 6):  # past two periods
            twin.advance(60.0)
            app.snapshotter.take()
        found = [r for r in await reasons() if "repeats" in r]
    assert found and f"every {PERIOD_MIN} min" in found[0], found
    assert 0 < app.snapshotter.minutes.nbytes <= 16 * 1024 * 1024
