"""Bounded answers at 1,000 pools: paging visits every pool once under filters, the attention order, the
context budgets, and cursors that cannot continue (malformed, another query, expired)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from mcp import Client

from mcp_autoscale.app import AutoscaleApp, build_app
from mcp_autoscale.config import Settings
from mcp_autoscale.paging import (
    ATTENTION,
    Cursor,
    InvalidCursor,
    PageStore,
    attention,
    decode_cursor,
    encode_cursor,
    paginate,
    query_digest,
)
from mcp_autoscale.server import create_server

pytestmark = pytest.mark.anyio

BUDGET_TOKENS = 6000
READ_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("get_slo_snapshot", {}),
    ("list_pools", {}),
    ("recommend_scaling", {}),
    ("estimate_cost", {}),
]


def tokens(result: Any) -> int:
    """Characters / 4 of the larger of the text and the structured form (the issue's yardstick)."""
    text = sum(len(getattr(c, "text", "") or "") for c in result.content)
    structured = len(json.dumps(result.structured_content, separators=(",", ":")))
    return max(text, structured) // 4


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def fleet_app(tmp_path_factory: pytest.TempPathFactory) -> AutoscaleApp:
    tmp = tmp_path_factory.mktemp("fleet")
    settings = Settings(
        backend="sim",
        sim_scenario="fleet-1000",
        sim_clock="manual",
        audit_file=tmp / "audit.jsonl",
        state_dir=tmp / "state",
    )
    return build_app(settings)


@pytest.fixture(scope="module")
async def fleet(fleet_app: AutoscaleApp) -> AsyncIterator[Client]:
    async with Client(create_server(fleet_app)) as c:
        yield c


async def page_all(client: Client, tool: str, args: dict[str, Any], key: str, limit: int) -> list[Any]:
    items: list[Any] = []
    cursor = None
    while True:
        res = await client.call_tool(tool, {**args, "limit": limit, **({"cursor": cursor} if cursor else {})})
        assert not res.is_error, res.content
        data = res.structured_content or {}
        assert len(data[key]) <= limit
        items += data[key]
        cursor = data.get("next_cursor")
        if not cursor:
            return items


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"slo": "breach"},
        {"owner": "keda", "gpu_type": "L4"},
        {"namespace": "chat-prod"},
        {"slo": "ok", "owner": "none"},
    ],
)
async def test_paging_visits_every_pool_exactly_once(
    fleet: Client, fleet_app: AutoscaleApp, filters: dict[str, str]
) -> None:
    from mcp_autoscale.paging import active_filters, select

    seen = await page_all(fleet, "get_slo_snapshot", {**filters, "include_node_pools": False}, "pools", 97)
    keys = [f"{p['namespace']}/{p['name']}" for p in seen]
    expected = {
        f"{p.namespace}/{p.name}"
        for p in select(fleet_app.snapshotter.take().pools, active_filters(**filters))
    }
    assert expected, "the filter should match some pools of fleet-1000"
    assert len(keys) == len(set(keys)) == len(expected)
    assert set(keys) == expected
    if not filters:
        assert len(keys) == 1000


async def test_every_read_tool_pages_to_its_total(fleet: Client) -> None:
    first = await fleet.call_tool("list_pools", {"gpu_type": "h100"})
    total = (first.structured_content or {})["total_pools"]
    pools = await page_all(fleet, "list_pools", {"gpu_type": "h100"}, "pools", 60)
    assert len({(p["namespace"], p["deployment"]) for p in pools}) == len(pools) == total
    recs = await page_all(fleet, "recommend_scaling", {"gpu_type": "H100"}, "recommendations", 60)
    assert len({r["pool"] for r in recs}) == len(recs) == total
    costs = await page_all(fleet, "estimate_cost", {"gpu_type": "H100"}, "pools", 60)
    assert len({c["pool"] for c in costs}) == len(costs) == total
    spend = [c.get("usd_per_hour") or 0.0 for c in costs]
    assert spend == sorted(spend, reverse=True)  # top spenders first


async def test_attention_order_breach_then_at_risk_then_ok(fleet: Client, fleet_app: AutoscaleApp) -> None:
    res = await fleet.call_tool("get_slo_snapshot", {"include_node_pools": False})
    data = res.structured_content or {}
    summary = data["summary"]
    assert data["total_pools"] == summary["total_pools"] == 1000
    assert 30 <= summary["slo"]["breach"] <= 50  # ~3-5% breaching at hand-over
    assert summary["attention"]["idle_spend"] > 0 and summary["attention"]["at_risk"] > 0
    assert set(summary["gpu_type"]) == {"L4", "A10G", "L40S", "H100"}
    assert set(summary["owner"]) == {"keda", "hpa", "none"}
    assert [p["slo"] for p in data["pools"]] == ["breach"] * len(data["pools"])  # breaches come first
    pools = await page_all(fleet, "get_slo_snapshot", {"include_node_pools": False}, "pools", 200)
    by_key = {f"{p.namespace}/{p.name}": p for p in fleet_app.snapshotter.take().pools}
    ranks = [ATTENTION.index(attention(by_key[f"{p['namespace']}/{p['name']}"])) for p in pools]
    assert ranks == sorted(ranks)
    assert ranks[0] == 0 and ranks[-1] == ATTENTION.index("ok")
    assert ATTENTION.index("at_risk") in ranks
    recs = (await fleet.call_tool("recommend_scaling", {})).structured_content or {}
    first = recs["recommendations"]
    assert first and all(r["action"] != "none" for r in first)  # actions first
    assert by_key[first[0]["pool"]].slo.value == "breach"


async def test_default_answers_fit_the_budget_at_1000_pools(fleet: Client) -> None:
    listed = (await fleet.list_tools()).tools
    tools_chars = len(
        json.dumps([t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in listed])
    )
    assert tools_chars // 4 <= BUDGET_TOKENS
    for name, args in READ_CALLS:
        res = await fleet.call_tool(name, args)
        assert not res.is_error, (name, res.content)
        assert tokens(res) <= BUDGET_TOKENS, (name, tokens(res))
        assert "\n " not in res.content[0].text  # compact text, no indented JSON  # type: ignore[union-attr]
    # an unowned pool: its explanation carries owner null (a required field the compact form must keep)
    first = await fleet.call_tool("list_pools", {"limit": 1, "owner": "none"})
    pool = (first.structured_content or {})["pools"][0]
    explained = await fleet.call_tool(
        "explain_pool", {"namespace": pool["namespace"], "deployment": pool["deployment"]}
    )
    assert not explained.is_error, explained.content
    assert tokens(explained) <= BUDGET_TOKENS
    for uri in ("autoscale://fleet/snapshot", "autoscale://cluster/state"):
        contents = (await fleet.read_resource(uri)).contents
        assert sum(len(getattr(c, "text", "")) for c in contents) // 4 <= BUDGET_TOKENS, uri
    unknown = await fleet.call_tool("explain_pool", {"namespace": "chat-prod", "deployment": "nope"})
    assert unknown.is_error and len(unknown.content[0].text) < 600  # type: ignore[union-attr]


async def test_five_pool_snapshot_fits_2500_tokens(make_settings: Callable[..., Settings]) -> None:
    async with Client(create_server(build_app(make_settings()))) as c:
        res = await c.call_tool("get_slo_snapshot", {})
        data = res.structured_content or {}
        assert data["total_pools"] == 5 and len(data["pools"]) == 5 and data.get("next_cursor") is None
        assert tokens(res) <= 2500


@pytest.mark.parametrize(
    ("cursor", "message"),
    [
        ("not a cursor!", "invalid cursor"),
        (encode_cursor(Cursor("abc", 5, "0" * 12)), "another query"),
    ],
)
async def test_bad_cursors_are_clear_tool_errors(fleet: Client, cursor: str, message: str) -> None:
    res = await fleet.call_tool("get_slo_snapshot", {"cursor": cursor})
    assert res.is_error
    assert message in res.content[0].text  # type: ignore[union-attr]


async def test_a_cursor_only_continues_its_own_query(fleet: Client) -> None:
    first = (await fleet.call_tool("list_pools", {"slo": "ok"})).structured_content or {}
    cursor = first["next_cursor"]
    other = await fleet.call_tool("list_pools", {"slo": "breach", "cursor": cursor})
    assert other.is_error and "another query" in other.content[0].text  # type: ignore[union-attr]
    cross_tool = await fleet.call_tool("get_slo_snapshot", {"slo": "ok", "cursor": cursor})
    assert cross_tool.is_error
    same = await fleet.call_tool("list_pools", {"slo": "ok", "cursor": cursor, "limit": 5})
    assert not same.is_error and len((same.structured_content or {})["pools"]) == 5


def test_expired_and_tampered_cursors() -> None:
    store = PageStore(size=2)
    items = list(range(10))
    q = query_digest("t", {"slo": "ok"})
    page = paginate(store, q, 3, None, lambda: ("h", items))
    assert page.items == [0, 1, 2] and page.total == 10 and page.next_cursor
    second = paginate(store, q, 3, page.next_cursor, lambda: ("h", []))
    assert second.items == [3, 4, 5]
    for _ in range(2):  # two newer answers push the first one out
        paginate(store, q, 3, None, lambda: ("h", items))
    with pytest.raises(InvalidCursor, match="expired or unknown"):
        paginate(store, q, 3, page.next_cursor, lambda: ("h", items))
    fresh = paginate(store, q, 3, None, lambda: ("h", items))
    assert fresh.next_cursor is not None
    c = decode_cursor(fresh.next_cursor)
    with pytest.raises(InvalidCursor, match="past the end"):
        paginate(store, q, 3, encode_cursor(c._replace(offset=99)), lambda: ("h", items))
    with pytest.raises(InvalidCursor, match="invalid cursor"):
        decode_cursor(encode_cursor(c)[:-3] + "@@@")
    single = paginate(store, q, 20, None, lambda: ("h", items))
    assert single.next_cursor is None and single.items == items  # one page: nothing stored


async def test_limit_bounds(fleet: Client) -> None:
    too_big = await fleet.call_tool("list_pools", {"limit": 201})
    assert too_big.is_error
    biggest = await fleet.call_tool("list_pools", {"limit": 200})
    assert len((biggest.structured_content or {})["pools"]) == 200
