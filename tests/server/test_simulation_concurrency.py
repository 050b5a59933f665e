"""#13.12: a long ``advance_simulation`` runs off the event loop in slices; other calls are not held up."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import anyio
import anyio.to_thread
import pytest
from mcp import Client

from mcp_autoscale.app import build_app
from mcp_autoscale.config import Settings
from mcp_autoscale.server import create_server

pytestmark = pytest.mark.anyio

ADVANCE_S = 3 * 3600


async def test_a_read_during_a_long_advance_answers_before_it_ends(
    make_settings: Callable[..., Settings],
) -> None:
    app = build_app(make_settings())
    twin = app.twin
    assert twin is not None
    start = twin.now
    ticking = threading.Event()
    remove = twin.on_step(lambda _step: ticking.set())
    done: dict[str, Any] = {}
    async with Client(create_server(app)) as c:

        async def advance() -> None:
            done["advance"] = await c.call_tool("advance_simulation", {"seconds": ADVANCE_S})

        async with anyio.create_task_group() as tg:
            tg.start_soon(advance)
            assert await anyio.to_thread.run_sync(ticking.wait, 60.0), "the advance never started"
            remove()
            snap = await c.call_tool("get_slo_snapshot", {"namespace": "dev"})
            assert "advance" not in done, "the read waited for the whole advance"
        assert not snap.is_error
        seen = datetime.fromisoformat(snap.structured_content["taken_at"])  # type: ignore[index]
        # the read saw one consistent instant strictly inside the advance, not its end
        assert start < seen < start + timedelta(seconds=ADVANCE_S)
        result = done["advance"]
        assert not result.is_error
        assert result.structured_content["advanced_s"] == ADVANCE_S  # type: ignore[index]
        assert twin.now == start + timedelta(seconds=ADVANCE_S)
